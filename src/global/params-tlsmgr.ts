/*
 * params-tlsmgr - the parameters of the tlsmgr service and the smtpd session cache
 *
 * DESCRIPTION
 *   Part of the parameter table (params-table.ts), with Postfix's names
 *   and defaults. smtpd_tls_session_cache_timeout is in params-tls.ts; the
 *   smtp_ and lmtp_ session cache parameters are with the other SMTP
 *   client TLS parameters.
 */
import { param as p } from "./params.js";
import type { ParamDef } from "./params.js";

export const TLSMGR_PARAMS: readonly ParamDef[] = [
  p(
    "smtpd_tls_session_cache_database",
    "str",
    "",
    "turns on the SMTP server's TLS session ID cache in tlsmgr (kept in memory, no file is written)",
  ),
  p(
    "tls_session_ticket_cipher",
    "str",
    "aes-256-cbc",
    "empty turns session tickets off (Node encrypts tickets with AES-128-CBC and HMAC-SHA256 whatever the value)",
  ),
];
