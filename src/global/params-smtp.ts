/*
 * params-smtp - the parameters of the SMTP and LMTP delivery agents
 *
 * DESCRIPTION
 *   Part of the parameter table (params-table.ts): the smtp_* parameters
 *   that smtp(8) reads and their lmtp_* counterparts (the same program run
 *   as lmtp reads those), with Postfix's names and defaults, plus the few
 *   global parameters the client shares (fallback_relay, the connection
 *   cache service, MIME output conversion).
 */
import { param as p } from "./params.js";
import type { ParamDef, ParamType, TimeUnit } from "./params.js";

interface ClientParam {
  /** The name without the smtp_/lmtp_ prefix. */
  name: string;
  type: ParamType;
  smtp: string;
  /** The lmtp_ default when it differs from smtp's. */
  lmtp?: string;
  desc: string;
  unit?: TimeUnit;
  /** Only smtp_ has it (e.g. EHLO switches), or only lmtp_ (LHLO). */
  only?: "smtp" | "lmtp";
}

const CLIENT: readonly ClientParam[] = [
  {
    name: "connect_timeout",
    type: "time",
    smtp: "30s",
    lmtp: "0s",
    desc: "time limit for a TCP connection (0: the system's)",
    unit: "s",
  },
  {
    name: "helo_timeout",
    type: "time",
    smtp: "300s",
    desc: "time limit for the greeting and the EHLO/HELO reply",
    unit: "s",
    only: "smtp",
  },
  {
    name: "lhlo_timeout",
    type: "time",
    smtp: "300s",
    desc: "time limit for the greeting and the LHLO reply",
    unit: "s",
    only: "lmtp",
  },
  { name: "mail_timeout", type: "time", smtp: "300s", desc: "time limit for the MAIL FROM reply", unit: "s" },
  { name: "rcpt_timeout", type: "time", smtp: "300s", desc: "time limit for a RCPT TO reply", unit: "s" },
  { name: "data_init_timeout", type: "time", smtp: "120s", desc: "time limit for the DATA reply", unit: "s" },
  {
    name: "data_xfer_timeout",
    type: "time",
    smtp: "180s",
    desc: "time limit for sending each part of the message body",
    unit: "s",
  },
  {
    name: "data_done_timeout",
    type: "time",
    smtp: "600s",
    desc: "time limit for the reply to the final dot",
    unit: "s",
  },
  { name: "quit_timeout", type: "time", smtp: "300s", desc: "time limit for the QUIT reply", unit: "s" },
  { name: "rset_timeout", type: "time", smtp: "20s", desc: "time limit for the RSET reply", unit: "s" },
  {
    name: "helo_name",
    type: "str",
    smtp: "$myhostname",
    desc: "the host name sent with EHLO or HELO",
    only: "smtp",
  },
  { name: "lhlo_name", type: "str", smtp: "$myhostname", desc: "the host name sent with LHLO", only: "lmtp" },
  { name: "never_send_ehlo", type: "bool", smtp: "no", desc: "send HELO, never EHLO", only: "smtp" },
  {
    name: "always_send_ehlo",
    type: "bool",
    smtp: "yes",
    desc: "send EHLO even when the greeting does not say ESMTP",
    only: "smtp",
  },
  {
    name: "send_xforward_command",
    type: "bool",
    smtp: "no",
    desc: "send the original client's details with XFORWARD when the server offers it (content filters)",
  },
  { name: "skip_5xx_greeting", type: "bool", smtp: "yes", desc: "a 5xx greeting means: try the next server" },
  {
    name: "skip_quit_response",
    type: "bool",
    smtp: "yes",
    lmtp: "no",
    desc: "do not wait for the QUIT reply",
  },
  { name: "bind_address", type: "str", smtp: "", desc: "the local IPv4 address for outgoing connections" },
  { name: "bind_address6", type: "str", smtp: "", desc: "the local IPv6 address for outgoing connections" },
  {
    name: "mx_address_limit",
    type: "int",
    smtp: "5",
    desc: "the most server addresses tried per delivery (0: no limit)",
  },
  {
    name: "mx_session_limit",
    type: "int",
    smtp: "2",
    desc: "the most sessions that reach a greeting per delivery (0: no limit)",
  },
  {
    name: "host_lookup",
    type: "str",
    smtp: "dns",
    desc: "how server addresses are found: dns, native or both",
  },
  { name: "dns_support_level", type: "str", smtp: "", desc: "disabled, enabled or dnssec (empty: enabled)" },
  {
    name: "defer_if_no_mx_address_found",
    type: "bool",
    smtp: "no",
    desc: "defer, do not bounce, when no MX host has an address",
  },
  {
    name: "address_preference",
    type: "str",
    smtp: "any",
    desc: "which address family to try first: ipv4, ipv6 or any",
  },
  {
    name: "fallback_relay",
    type: "list",
    smtp: "$fallback_relay",
    lmtp: "",
    desc: "hosts to try when the destination's own servers fail",
  },
  {
    name: "connection_cache_on_demand",
    type: "bool",
    smtp: "yes",
    desc: "keep sessions open for destinations with more mail",
  },
  {
    name: "connection_cache_destinations",
    type: "list",
    smtp: "",
    desc: "destinations whose sessions are always kept open",
  },
  {
    name: "connection_cache_time_limit",
    type: "time",
    smtp: "2s",
    desc: "how long an idle session is kept",
    unit: "s",
  },
  {
    name: "connection_reuse_time_limit",
    type: "time",
    smtp: "300s",
    desc: "how long one session may be reused in total",
    unit: "s",
  },
  {
    name: "connection_reuse_count_limit",
    type: "int",
    smtp: "0",
    desc: "how many times one session may be reused (0: no limit)",
  },
  {
    name: "generic_maps",
    type: "list",
    smtp: "",
    desc: "address rewriting on output (e.g. local addresses to valid Internet ones)",
  },
  {
    name: "header_checks",
    type: "list",
    smtp: "",
    desc: "header checks on output (IGNORE, REPLACE, PREPEND, WARN, ...)",
  },
  { name: "mime_header_checks", type: "list", smtp: "", desc: "MIME header checks on output" },
  { name: "nested_header_checks", type: "list", smtp: "", desc: "attached message header checks on output" },
  { name: "body_checks", type: "list", smtp: "", desc: "body checks on output" },
  { name: "line_length_limit", type: "int", smtp: "998", desc: "longer message lines are broken (0: never)" },
  { name: "quote_rfc821_envelope", type: "bool", smtp: "yes", desc: "quote envelope addresses that need it" },
  { name: "send_dummy_mail_auth", type: "bool", smtp: "no", desc: "send AUTH=<> with MAIL FROM" },
  {
    name: "address_verify_target",
    type: "str",
    smtp: "rcpt",
    desc: "where an address probe stops: rcpt or data",
  },
];

/** The smtp_ and lmtp_ entries of one client parameter. */
function both(c: ClientParam): ParamDef[] {
  const extra = c.unit !== undefined ? { unit: c.unit } : {};
  const out: ParamDef[] = [];
  if (c.only !== "lmtp") out.push(p(`smtp_${c.name}`, c.type, c.smtp, `SMTP client: ${c.desc}`, extra));
  if (c.only !== "smtp")
    out.push(p(`lmtp_${c.name}`, c.type, c.lmtp ?? c.smtp, `LMTP client: ${c.desc}`, extra));
  return out;
}

export const SMTP_PARAMS: readonly ParamDef[] = [
  ...CLIENT.flatMap(both),
  p("smtp_tcp_port", "str", "smtp", "the SMTP client's default server port"),
  p("lmtp_tcp_port", "str", "24", "the LMTP client's default server port"),
  p("fallback_relay", "list", "", "hosts to try when a destination's own servers fail (smtp_fallback_relay)"),
  p("ignore_mx_lookup_error", "bool", "no", "look up A records when an MX lookup fails temporarily"),
  p(
    "disable_mime_output_conversion",
    "bool",
    "no",
    "never convert 8-bit mail to 7-bit for a server without 8BITMIME",
  ),
  p(
    "lmtp_assume_final",
    "bool",
    "no",
    "treat an LMTP server that announces no DSN as the final destination (success notices say delivered)",
  ),
  p("connection_cache_service_name", "str", "scache", "the name of the connection cache service"),
  p("connection_cache_ttl_limit", "time", "2s", "the longest time an idle session may be cached", {
    unit: "s",
  }),
  p("connection_cache_status_update_time", "time", "600s", "how often scache logs its statistics", {
    unit: "s",
  }),
  p("connection_cache_protocol_timeout", "time", "5s", "time limit for a request to scache", { unit: "s" }),
];
