/*
 * params-table - every parameter Postern reads, with its Postfix default
 *
 * DESCRIPTION
 *   One entry per parameter: name, type, default (as Postfix has it), and a
 *   one-line description. postconf -d prints this table; the configuration
 *   reader uses it for defaults and for type checks; a name that is not here
 *   (and not a per-service or user-defined parameter) draws the
 *   "unused parameter" warning. Add a parameter here when a feature reads it.
 *
 *   Defaults marked runtime are filled in when the configuration is loaded
 *   (host name, the install's directories). The entries live in
 *   params-*.ts files, one per area (base, mail, smtpd, local, verify,
 *   postscreen, ...).
 */
import type { ParamDef } from "./params.js";
import { BASE_PARAMS } from "./params-base.js";
import { LOCAL_PARAMS } from "./params-local.js";
import { MAIL_PARAMS } from "./params-mail.js";
import { POSTSCREEN_PARAMS } from "./params-postscreen.js";
import { MILTER_PARAMS } from "./params-milter.js";
import { SMTPD_PARAMS } from "./params-smtpd.js";
import { VERIFY_PARAMS } from "./params-verify.js";
import { SMTP_PARAMS } from "./params-smtp.js";
import { SMTP_TLS_PARAMS } from "./params-smtp-tls.js";
import { SMTP_SASL_PARAMS } from "./params-smtp-sasl.js";
import { TLS_PARAMS } from "./params-tls.js";
import { TLSMGR_PARAMS } from "./params-tlsmgr.js";

const MAXINT = 2147483647;

export const PARAM_TABLE: readonly ParamDef[] = [
  ...BASE_PARAMS,
  ...MAIL_PARAMS,
  ...SMTPD_PARAMS,
  ...POSTSCREEN_PARAMS,
  ...TLS_PARAMS,
  ...LOCAL_PARAMS,
  ...VERIFY_PARAMS,
  ...SMTP_PARAMS,
  ...SMTP_TLS_PARAMS,
  ...SMTP_SASL_PARAMS,
  ...MILTER_PARAMS,
  ...TLSMGR_PARAMS,
];

/** Service-specific parameter name suffixes: "<service>_<suffix>" is valid for every master.cf service. */
export const SERVICE_PARAM_SUFFIXES: readonly string[] = [
  "delivery_slot_cost",
  "delivery_slot_discount",
  "delivery_slot_loan",
  "destination_concurrency_failed_cohort_limit",
  "destination_concurrency_limit",
  "destination_concurrency_negative_feedback",
  "destination_concurrency_positive_feedback",
  "destination_rate_delay",
  "destination_recipient_limit",
  "extra_recipient_limit",
  "initial_destination_concurrency",
  "minimum_delivery_slots",
  "recipient_limit",
  "recipient_refill_delay",
  "recipient_refill_limit",
  "time_limit",
  "transport_rate_delay",
];

const BY_NAME = new Map(PARAM_TABLE.map((d) => [d.name, d]));

/** Looks a parameter definition up by name. */
export function paramDef(name: string): ParamDef | undefined {
  return BY_NAME.get(name);
}

/** The largest value of an "int" parameter. */
export const PARAM_INT_MAX = MAXINT;
