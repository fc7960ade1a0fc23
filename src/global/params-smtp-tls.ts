/*
 * params-smtp-tls - the TLS parameters of the SMTP and LMTP clients
 *
 * DESCRIPTION
 *   Part of the parameter table (params-table.ts): the smtp_tls_* family
 *   (and the older smtp_use_tls, smtp_enforce_tls, smtp_enforce_peername)
 *   that smtp(8) reads, each with its lmtp_ twin that the same program run
 *   as lmtp reads. Names and defaults are Postfix's, with these deliberate
 *   differences:
 *
 *   - smtp_tls_protocols and smtp_tls_mandatory_protocols default to
 *     ">=TLSv1.2" (Postfix: ">=TLSv1"), as smtpd_tls_* do here: TLS 1.0
 *     and 1.1 are deprecated (RFC 8996) and OpenSSL 3 refuses them at its
 *     default security level.
 *   - The "dane" and "dane-only" levels are accepted in syntax, but DANE
 *     (TLSA lookups) is not part of this build: "dane" works as "may" and
 *     "dane-only" as "encrypt", each with a warning saying so. Mail is
 *     never sent in plaintext where dane-only was asked for.
 *   - smtp_tls_session_cache_database: when empty, each agent process
 *     still resumes sessions it made itself (kept in its memory); when set
 *     (any table name), sessions are shared by all agents through the
 *     tlsmgr service, in its memory, not in a file (Postfix empties that
 *     file at every tlsmgr start anyway). smtp_tls_session_cache_timeout
 *     bounds their life.
 *   - smtp_tls_connection_reuse = yes keeps TLS sessions open for reuse in
 *     the agent process that made them (Postfix needs tlsproxy(8) for
 *     that); with "no" (the default) a TLS session is closed after its
 *     delivery, as Postfix does.
 *   - smtp_tls_block_early_mail_reply is accepted and has no effect: the
 *     CVE-2009-3555 attack it detects needs TLS renegotiation, which the
 *     client refuses.
 */
import { belowLevel, param as p } from "./params.js";
import type { ParamDef, ParamType } from "./params.js";

interface TlsClientParam {
  /** The name without the smtp_/lmtp_ prefix. */
  name: string;
  type: ParamType;
  smtp: string;
  /** The lmtp_ default when it differs from smtp's. */
  lmtp?: string;
  desc: string;
}

const CLIENT_TLS: readonly TlsClientParam[] = [
  {
    name: "tls_security_level",
    type: "str",
    smtp: "",
    desc: "TLS level: none, may, encrypt, fingerprint, verify or secure (empty: from *_use_tls/*_enforce_tls)",
  },
  { name: "use_tls", type: "bool", smtp: "no", desc: "use STARTTLS when offered (older form of level may)" },
  { name: "enforce_tls", type: "bool", smtp: "no", desc: "require TLS (older form of level encrypt)" },
  {
    name: "tls_enforce_peername",
    type: "bool",
    smtp: "yes",
    desc: "with *_enforce_tls: verify the server name (older form of level verify)",
  },
  { name: "tls_policy_maps", type: "list", smtp: "", desc: "tables of per-destination TLS policies" },
  {
    name: "tls_CAfile",
    type: "str",
    smtp: "",
    desc: "CA certificates (PEM) server certificates are verified against",
  },
  { name: "tls_CApath", type: "str", smtp: "", desc: "a directory of CA certificates (PEM files)" },
  { name: "tls_cert_file", type: "str", smtp: "", desc: "the client certificate (PEM, leaf first)" },
  {
    name: "tls_key_file",
    type: "str",
    smtp: "$smtp_tls_cert_file",
    lmtp: "$lmtp_tls_cert_file",
    desc: "the private key of the client certificate",
  },
  {
    name: "tls_chain_files",
    type: "list",
    smtp: "",
    desc: "PEM files, each a private key followed by its certificate chain",
  },
  {
    name: "tls_protocols",
    type: "str",
    smtp: ">=TLSv1.2",
    desc: "TLS protocols for opportunistic TLS (Postfix syntax)",
  },
  {
    name: "tls_mandatory_protocols",
    type: "str",
    smtp: ">=TLSv1.2",
    desc: "TLS protocols when TLS is required",
  },
  { name: "tls_ciphers", type: "str", smtp: "medium", desc: "the cipher grade for opportunistic TLS" },
  {
    name: "tls_mandatory_ciphers",
    type: "str",
    smtp: "medium",
    desc: "the cipher grade when TLS is required",
  },
  {
    name: "tls_exclude_ciphers",
    type: "list",
    smtp: "",
    desc: "ciphers or cipher types left out in every session",
  },
  {
    name: "tls_mandatory_exclude_ciphers",
    type: "list",
    smtp: "",
    desc: "ciphers left out when TLS is required",
  },
  {
    name: "tls_loglevel",
    type: "int",
    smtp: "0",
    desc: "TLS logging: 0 failures only, 1 a summary, 2 also resumption",
  },
  {
    name: "tls_note_starttls_offer",
    type: "bool",
    smtp: "no",
    desc: "log servers that offer STARTTLS when TLS is off",
  },
  {
    name: "tls_secure_cert_match",
    type: "list",
    smtp: "nexthop, dot-nexthop",
    lmtp: "nexthop",
    desc: "names a certificate must match at level secure",
  },
  {
    name: "tls_verify_cert_match",
    type: "list",
    smtp: "hostname",
    desc: "names a certificate must match at level verify",
  },
  {
    name: "tls_fingerprint_digest",
    type: "str",
    smtp: belowLevel("3.6", "md5", "sha256"),
    desc: "the digest of certificate fingerprints",
  },
  {
    name: "tls_fingerprint_cert_match",
    type: "list",
    smtp: "",
    desc: "certificate or public-key fingerprints accepted at level fingerprint",
  },
  {
    name: "tls_servername",
    type: "str",
    smtp: "",
    desc: "the SNI name sent: empty (none), hostname, nexthop, or a name",
  },
  {
    name: "tls_wrappermode",
    type: "bool",
    smtp: "no",
    desc: "implicit TLS (port 465): the handshake comes first; needs level encrypt or stronger",
  },
  {
    name: "tls_session_cache_database",
    type: "str",
    smtp: "",
    desc: "shared TLS session cache through tlsmgr (empty: per agent process)",
  },
  {
    name: "tls_session_cache_timeout",
    type: "time",
    smtp: "3600s",
    desc: "how long a TLS session may be resumed (0: never)",
  },
  {
    name: "tls_block_early_mail_reply",
    type: "bool",
    smtp: "no",
    desc: "accepted; no effect (renegotiation is refused)",
  },
  {
    name: "tls_connection_reuse",
    type: "bool",
    smtp: "no",
    desc: "keep TLS sessions open for more deliveries (in the agent process)",
  },
  { name: "tls_scert_verifydepth", type: "int", smtp: "9", desc: "the longest server certificate chain" },
  { name: "starttls_timeout", type: "time", smtp: "300s", desc: "the time limit of the TLS handshake" },
];

/** The smtp_ and lmtp_ entries of one client TLS parameter. */
function both(c: TlsClientParam): ParamDef[] {
  const extra = c.type === "time" ? { unit: "s" as const, min: 0 } : c.type === "int" ? { min: 0 } : {};
  return [
    p(`smtp_${c.name}`, c.type, c.smtp, `SMTP client: ${c.desc}`, extra),
    p(`lmtp_${c.name}`, c.type, c.lmtp ?? c.smtp, `LMTP client: ${c.desc}`, extra),
  ];
}

export const SMTP_TLS_PARAMS: readonly ParamDef[] = [
  ...CLIENT_TLS.flatMap(both),
  p("tls_append_default_CA", "bool", "no", "also trust the system's default CAs (with *_tls_CAfile/CApath)"),
];
