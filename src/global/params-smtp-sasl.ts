/*
 * params-smtp-sasl - the parameters of SMTP AUTH in the SMTP and LMTP clients
 *
 * DESCRIPTION
 *   Part of the parameter table (params-table.ts): the smtp_sasl_* family
 *   that smtp(8) reads and the lmtp_* twins that the same program reads
 *   when it runs as lmtp, with Postfix's names and defaults. The client
 *   code is src/smtp/smtp-sasl.ts (smtp_send_dummy_mail_auth, which it
 *   also reads, is in params-smtp.ts).
 *
 *   Deviations from Postfix:
 *   - smtp_sasl_type defaults to "postern", the client built into Postern
 *     (PLAIN, LOGIN and CRAM-MD5, no library behind it), instead of
 *     "cyrus": a main.cf copied from a Postfix host that never set the
 *     type works unchanged, and an explicit "cyrus" is refused with a
 *     clear error rather than quietly treated as something it is not.
 *     postconf -A lists "postern".
 *   - smtp_sasl_path means nothing to the built-in type: a non-empty value
 *     draws a warning (Cyrus read its configuration directory from it).
 *   - smtp_sasl_mechanism_filter takes names, "!name" and type:table
 *     elements as Postfix's string lists do.
 *   - smtp_sasl_auth_cache_name (Postfix's cache of 535 replies) needs no
 *     proxy: prefix (Postern has no proxywrite service): the agents write
 *     a btree:, hash: or lmdb: file themselves (src/smtp/smtp-sasl-cache.ts).
 *   - As in Postfix, lmtp_sender_dependent_authentication exists but the
 *     LMTP client looks passwords up by server and next hop only.
 */
import { param as p } from "./params.js";
import type { ParamDef, ParamType, TimeUnit } from "./params.js";

interface Twin {
  /** The name without the smtp_/lmtp_ prefix. */
  name: string;
  type: ParamType;
  /** The default; "$X" stands for the smtp_ or lmtp_ prefix. */
  def: string;
  desc: string;
  fileEntries?: boolean;
  unit?: TimeUnit;
}

const TWINS: readonly Twin[] = [
  { name: "sasl_auth_enable", type: "bool", def: "no", desc: "authenticate to servers with SMTP AUTH" },
  {
    name: "sasl_password_maps",
    type: "list",
    def: "",
    desc: "tables of user:password by sender, server host or next hop",
  },
  {
    name: "sasl_security_options",
    type: "list",
    def: "noplaintext, noanonymous",
    desc: "mechanism restrictions on a session without TLS",
  },
  {
    name: "sasl_tls_security_options",
    type: "list",
    def: "$X_sasl_security_options",
    desc: "mechanism restrictions on a TLS session",
  },
  {
    name: "sasl_tls_verified_security_options",
    type: "list",
    def: "$X_sasl_tls_security_options",
    desc: "mechanism restrictions on a TLS session with a verified server certificate",
  },
  {
    name: "sasl_mechanism_filter",
    type: "list",
    def: "",
    desc: "the server mechanisms that may be used (empty: all)",
    fileEntries: true,
  },
  {
    name: "sender_dependent_authentication",
    type: "bool",
    def: "no",
    desc: "look the password up by sender address first (SMTP only)",
  },
  {
    name: "sasl_auth_soft_bounce",
    type: "bool",
    def: "yes",
    desc: "a 5xx authentication failure defers instead of bouncing",
  },
  { name: "sasl_type", type: "str", def: "postern", desc: "the SASL client implementation (postern)" },
  { name: "sasl_path", type: "str", def: "", desc: "implementation-specific data (unused by postern)" },
  {
    name: "sasl_auth_cache_name",
    type: "str",
    def: "",
    desc: "a table that remembers 535 replies per server, user and password (empty: none)",
  },
  {
    name: "sasl_auth_cache_time",
    type: "time",
    def: "90d",
    desc: "how long a remembered 535 reply stops new login attempts",
    unit: "d",
  },
];

export const SMTP_SASL_PARAMS: readonly ParamDef[] = (["smtp", "lmtp"] as const).flatMap((x) =>
  TWINS.map((c) =>
    p(
      `${x}_${c.name}`,
      c.type,
      c.def.replace("$X", `$${x}`),
      `${x === "smtp" ? "SMTP" : "LMTP"} client: ${c.desc}`,
      {
        ...(c.fileEntries === true ? { fileEntries: true } : {}),
        ...(c.unit !== undefined ? { unit: c.unit } : {}),
      },
    ),
  ),
);
