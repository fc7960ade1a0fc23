/*
 * receive-override - receive_override_options: what smtpd and pickup turn off for re-injected mail
 *
 * SYNOPSIS
 *   const o = receiveOverride(cfg);
 *   await cleanup.flags(o.flags(CLEANUP_FLAG.FILTER | CLEANUP_FLAG.MAP));
 *   if (!o.noUnknownRecipientChecks) ...; if (!o.noMilters) ...
 *
 * DESCRIPTION
 *   receive_override_options (usually set with -o in master.cf on the
 *   service that takes mail back from a content filter) lists features
 *   that are turned off for the mail a service receives:
 *     no_unknown_recipient_checks  smtpd does not reject unknown recipients
 *     no_header_body_checks        cleanup skips header_checks and body_checks
 *     no_milters                   no smtpd_milters / non_smtpd_milters
 *     no_address_mappings          no canonical, virtual and masquerade mapping,
 *                                  no automatic BCC
 *   An unknown word is a warning and is ignored (as in Postfix).
 */
import { msg } from "../util/msg.js";
import { CLEANUP_FLAG } from "./cleanup-proto.js";
import type { Config } from "./config.js";

export interface ReceiveOverride {
  noUnknownRecipientChecks: boolean;
  noHeaderBodyChecks: boolean;
  noMilters: boolean;
  noAddressMappings: boolean;
  /** The cleanup flags a service asks for, with the overridden features removed. */
  flags: (wanted: number) => number;
}

const KNOWN = ["no_unknown_recipient_checks", "no_header_body_checks", "no_milters", "no_address_mappings"];
const cache = new WeakMap<Config, ReceiveOverride>();

/** Reads receive_override_options (once per configuration). */
export function receiveOverride(cfg: Config): ReceiveOverride {
  const cached = cache.get(cfg);
  if (cached !== undefined) return cached;
  const words = new Set(cfg.list("receive_override_options").map((w) => w.toLowerCase()));
  for (const w of words) if (!KNOWN.includes(w)) msg.warn(`unknown receive_override_options value: ${w}`);
  const o: ReceiveOverride = {
    noUnknownRecipientChecks: words.has("no_unknown_recipient_checks"),
    noHeaderBodyChecks: words.has("no_header_body_checks"),
    noMilters: words.has("no_milters"),
    noAddressMappings: words.has("no_address_mappings"),
    flags: (wanted) => {
      let f = wanted;
      if (o.noHeaderBodyChecks) f &= ~CLEANUP_FLAG.FILTER;
      if (o.noMilters) f &= ~CLEANUP_FLAG.MILTER;
      if (o.noAddressMappings) f &= ~CLEANUP_FLAG.MAP;
      return f;
    },
  };
  cache.set(cfg, o);
  return o;
}
