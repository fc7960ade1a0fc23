/*
 * sasl-server - the server side of SASL: back ends, mechanisms, security options
 *
 * SYNOPSIS
 *   const b = saslServerBackend(cfg, "smtpd");   // dovecot or postern, or an error
 *   const mechs = filterMechanisms(await b.mechanisms(), ["noanonymous"]);
 *   const conv = b.conversation({ service: "smtp", localAddr, clientAddr, secured });
 *   let step = await conv.first("PLAIN", initialBase64OrNull);
 *
 * DESCRIPTION
 *   A back end lists its mechanisms (with the properties that
 *   smtpd_sasl_security_options filter on) and runs conversations: each
 *   step is a challenge to send (base64), success with the user name, or a
 *   failure (temporary when the back end could not be asked). Challenges
 *   and responses travel base64-encoded, as on the SMTP wire.
 *   Types: "dovecot" (sasl-dovecot.ts: Dovecot's auth protocol over
 *   smtpd_sasl_path) and "postern" (sasl-postern.ts: PLAIN and LOGIN against
 *   scrypt hashes in postern_sasl_password_maps). postconf -a lists them.
 */
import type { Config } from "./config.js";
import { DovecotBackend } from "./sasl-dovecot.js";
import { PosternBackend } from "./sasl-postern.js";
import { SASL_SERVER_TYPES, type SaslBackend } from "./sasl-types.js";

export * from "./sasl-types.js";

/** The back end smtpd_sasl_type names (prefix "smtpd" or another service's), or an error to log. */
export function saslServerBackend(cfg: Config, prefix = "smtpd"): SaslBackend | { error: string } {
  const type = cfg.get(`${prefix}_sasl_type`).trim().toLowerCase();
  if (type === "dovecot")
    return new DovecotBackend(cfg.get(`${prefix}_sasl_path`), cfg.get("queue_directory"));
  if (type === "postern") return new PosternBackend(cfg.list("postern_sasl_password_maps"));
  return {
    error: `unsupported SASL server implementation: ${type} (${prefix}_sasl_type: use ${SASL_SERVER_TYPES.join(" or ")})`,
  };
}
