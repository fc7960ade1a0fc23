/*
 * params-verify - the parameters of address verification
 *
 * DESCRIPTION
 *   Part of the parameter table (params-table.ts): the verify service,
 *   its cache and probes, and smtpd's reject_unverified_sender and
 *   reject_unverified_recipient. The routing of probes (the
 *   address_verify_*_transport, relayhost and transport maps parameters)
 *   belongs to trivial-rewrite and lives in params-mail.ts. Postfix has
 *   no limit on the cache size or the probe rate; the postern_ ones are
 *   Postern's own.
 */
import { param as p } from "./params.js";
import type { ParamDef } from "./params.js";

export const VERIFY_PARAMS: readonly ParamDef[] = [
  p("address_verify_service_name", "str", "verify", "the name of the address verification service"),
  p(
    "address_verify_map",
    "str",
    "btree:$data_directory/verify_cache",
    "the persistent address verification cache (empty: in memory only)",
  ),
  p(
    "address_verify_positive_expire_time",
    "time",
    "31d",
    "how long a deliverable address stays in the cache without a refresh",
    { unit: "d", min: 1 },
  ),
  p(
    "address_verify_positive_refresh_time",
    "time",
    "7d",
    "how old a deliverable answer may get before a new probe refreshes it",
    { unit: "d", min: 1 },
  ),
  p("address_verify_negative_cache", "bool", "yes", "cache undeliverable addresses too"),
  p(
    "address_verify_negative_expire_time",
    "time",
    "3d",
    "how long an undeliverable address stays in the cache without a refresh",
    { unit: "d", min: 1 },
  ),
  p(
    "address_verify_negative_refresh_time",
    "time",
    "3h",
    "how old an undeliverable answer may get before a new probe refreshes it",
    { unit: "h", min: 1 },
  ),
  p(
    "address_verify_cache_cleanup_interval",
    "time",
    "12h",
    "how often the verify service removes expired cache entries (0: never)",
    { unit: "s", min: 0 },
  ),
  p("address_verify_sender", "str", "$double_bounce_sender", "the sender address of verification probes"),
  p(
    "address_verify_sender_ttl",
    "time",
    "0s",
    "when not 0, the probe sender gets a time-dependent local part that changes this often",
    { unit: "s", min: 0 },
  ),
  p(
    "address_verify_poll_count",
    "int",
    "${stress?{1}:{3}}",
    "how many times smtpd asks the verify service for an answer before it gives up for now",
    { min: 1 },
  ),
  p("address_verify_poll_delay", "time", "3s", "how long smtpd waits between verify service queries", {
    unit: "s",
    min: 1,
  }),
  p(
    "address_verify_pending_request_limit",
    "int",
    "5000",
    "the most verification probes in flight at once; beyond it, unknown addresses are not probed",
    { min: 1 },
  ),
  p(
    "postern_address_verify_cache_limit",
    "int",
    "100000",
    "the most addresses the verification cache holds; the oldest entries go first",
    { min: 100 },
  ),
  p(
    "postern_address_verify_probe_rate_limit",
    "int",
    "100",
    "the most verification probes the verify service sends per second (0: no limit)",
    { min: 0 },
  ),
  p("unverified_sender_reject_code", "str", "450", "the reply when sender verification fails"),
  p("unverified_recipient_reject_code", "str", "450", "the reply when recipient verification fails"),
  p(
    "unverified_sender_defer_code",
    "str",
    "450",
    "the reply when a sender's verification is pending or failed temporarily",
  ),
  p(
    "unverified_recipient_defer_code",
    "str",
    "450",
    "the reply when a recipient's verification is pending or failed temporarily",
  ),
  p(
    "unverified_sender_reject_reason",
    "str",
    "",
    "the text of the reply when sender verification fails (empty: the verify service's reason)",
  ),
  p(
    "unverified_recipient_reject_reason",
    "str",
    "",
    "the text of the reply when recipient verification fails (empty: the verify service's reason)",
  ),
  p(
    "unverified_sender_tempfail_action",
    "str",
    "$reject_tempfail_action",
    "what reject_unverified_sender does when the verify service cannot answer",
  ),
  p(
    "unverified_recipient_tempfail_action",
    "str",
    "$reject_tempfail_action",
    "what reject_unverified_recipient does when the verify service cannot answer",
  ),
];
