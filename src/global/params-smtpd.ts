/*
 * params-smtpd - the parameters of the SMTP server
 *
 * DESCRIPTION
 *   Part of the parameter table (params-table.ts): name, type, Postfix
 *   default and a one-line description of each parameter these parts of
 *   Postern read.
 */
import { param as p } from "./params.js";
import type { ParamDef } from "./params.js";

export const SMTPD_PARAMS: readonly ParamDef[] = [
  // smtpd.
  p("smtpd_timeout", "time", "${stress?{10}:{300}}s", "how long smtpd waits for a client to send something", {
    unit: "s",
    min: 1,
  }),
  p("smtpd_hard_error_limit", "int", "${stress?{1}:{20}}", "errors after which smtpd hangs up", { min: 1 }),
  p("smtpd_soft_error_limit", "int", "10", "errors after which smtpd slows down", { min: 0 }),
  p("smtpd_error_sleep_time", "time", "1s", "the pause before each reply past the soft error limit", {
    unit: "s",
    min: 0,
  }),
  p(
    "smtpd_junk_command_limit",
    "int",
    "${stress?{1}:{100}}",
    "NOOP, RSET, VRFY and ETRN commands allowed before they count as errors",
    { min: 1 },
  ),
  p("smtpd_recipient_limit", "int", "1000", "the most recipients in one transaction", { min: 1 }),
  p("queue_minfree", "long", "0", "free bytes the queue file system must keep for smtpd to accept mail", {
    min: 0,
  }),
  p("smtpd_client_restrictions", "list", "", "restrictions applied to the client's name and address"),
  p("smtpd_helo_restrictions", "list", "", "restrictions applied to the HELO/EHLO name"),
  p("smtpd_sender_restrictions", "list", "", "restrictions applied to the MAIL FROM address"),
  p(
    "smtpd_recipient_restrictions",
    "list",
    "",
    "restrictions applied to each RCPT TO address, after smtpd_relay_restrictions",
  ),
  p("smtpd_data_restrictions", "list", "", "restrictions applied to the DATA and BDAT commands"),
  p("smtpd_end_of_data_restrictions", "list", "", "restrictions applied after the message content"),
  p("smtpd_etrn_restrictions", "list", "", "restrictions applied to the ETRN command"),
  p("smtpd_delay_reject", "bool", "yes", "apply client, helo and sender restrictions at RCPT time"),
  p("smtpd_helo_required", "bool", "no", "require HELO or EHLO before MAIL FROM"),
  p("disable_vrfy_command", "bool", "no", "refuse the VRFY command"),
  p("smtpd_discard_ehlo_keywords", "list", "", "EHLO keywords that smtpd does not announce"),
  p(
    "smtpd_forbidden_commands",
    "list",
    "CONNECT GET POST",
    "commands that make smtpd hang up at once (non-SMTP clients)",
  ),
  p(
    "smtpd_forbid_bare_newline",
    "str",
    "normalize",
    "bare LF line endings: normalize (accept, never as end of data), yes (refuse), no",
  ),
  p(
    "smtpd_forbid_bare_newline_exclusions",
    "list",
    "$mynetworks",
    "clients exempt from smtpd_forbid_bare_newline = yes",
  ),
  p(
    "smtpd_forbid_bare_newline_reject_code",
    "int",
    "550",
    "the reply code for a bare LF when it is forbidden",
    { min: 400, max: 599 },
  ),
  p(
    "smtpd_forbid_unauth_pipelining",
    "bool",
    "yes",
    "hang up on clients that pipeline where SMTP does not allow it",
  ),
  p("smtpd_peername_lookup", "bool", "yes", "look the client's name up in DNS (with a forward check)"),
  p("smtpd_null_access_lookup_key", "str", "<>", "the key check_sender_access uses for the null sender"),
  p("reject_code", "int", "554", "the reply code of the reject restriction", { min: 400, max: 599 }),
  p("defer_code", "int", "450", "the reply code of the defer restriction", { min: 400, max: 599 }),
  p("access_map_reject_code", "int", "554", "the reply code of REJECT in an access table", {
    min: 400,
    max: 599,
  }),
  p("access_map_defer_code", "int", "450", "the reply code of DEFER in an access table", {
    min: 400,
    max: 599,
  }),
  p("relay_domains_reject_code", "int", "554", "the reply code of reject_unauth_destination", {
    min: 400,
    max: 599,
  }),
  p("invalid_hostname_reject_code", "int", "501", "the reply code of reject_invalid_helo_hostname", {
    min: 400,
    max: 599,
  }),
  p("non_fqdn_reject_code", "int", "504", "the reply code of the reject_non_fqdn_* restrictions", {
    min: 400,
    max: 599,
  }),
  p("postern_dns_servers", "list", "", "DNS servers (host or host:port) for all lookups; empty: resolv.conf"),
  p("postern_dns_timeout", "time", "5s", "how long one DNS query attempt may take (two attempts)", {
    unit: "s",
    min: 1,
  }),
  p("unknown_client_reject_code", "int", "450", "the reply code of reject_unknown_client_hostname"),
  p("unknown_hostname_reject_code", "int", "450", "the reply code of reject_unknown_helo_hostname"),
  p("unknown_address_reject_code", "int", "450", "the reply code of reject_unknown_*_domain"),
  p("reject_tempfail_action", "str", "defer_if_permit", "what a DNS lookup failure in a reject_ check does"),
  p(
    "unknown_helo_hostname_tempfail_action",
    "str",
    "$reject_tempfail_action",
    "tempfail action of HELO checks",
  ),
  p("unknown_address_tempfail_action", "str", "$reject_tempfail_action", "tempfail action of domain checks"),
  p("maps_rbl_reject_code", "int", "554", "the reply code of the DNS block list restrictions"),
  p("rbl_reply_maps", "list", "", "tables of reply templates per DNS block list domain"),
  p(
    "default_rbl_reply",
    "str",
    "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}",
    "the reply template of the DNS block list restrictions",
  ),
  p("smtpd_reject_unlisted_recipient", "bool", "yes", "reject recipients unknown to the recipient maps"),
  p("smtpd_reject_unlisted_sender", "bool", "no", "reject senders unknown to the recipient maps"),
  p("smtpd_client_connection_count_limit", "int", "50", "concurrent sessions per client (0: no limit)"),
  p("smtpd_client_connection_rate_limit", "int", "0", "connections per client per anvil_rate_time_unit"),
  p("smtpd_client_message_rate_limit", "int", "0", "MAIL FROM commands per client per anvil_rate_time_unit"),
  p("smtpd_client_recipient_rate_limit", "int", "0", "RCPT TO commands per client per anvil_rate_time_unit"),
  p(
    "smtpd_client_connection_limit_exceptions",
    "list",
    "",
    "the older name of smtpd_client_event_limit_exceptions",
  ),
  p(
    "smtpd_client_event_limit_exceptions",
    "list",
    "${smtpd_client_connection_limit_exceptions:$mynetworks}",
    "clients exempt from the smtpd_client_*_limit restrictions",
  ),
  p("smtpd_authorized_xclient_hosts", "list", "", "clients that may use XCLIENT to name the real client"),
  p("smtpd_authorized_xforward_hosts", "list", "", "clients that may use XFORWARD to pass on client details"),
  p("smtpd_upstream_proxy_protocol", "str", "", "the proxy protocol in front of smtpd: empty or haproxy"),
  p("smtpd_upstream_proxy_timeout", "time", "5s", "how long smtpd waits for the proxy protocol header", {
    unit: "s",
    min: 1,
  }),
  p("anvil_rate_time_unit", "time", "60s", "the window over which anvil counts rates", { unit: "s", min: 1 }),
  p("unknown_local_recipient_reject_code", "int", "550", "the reply code for an unknown local user"),
  p("unknown_virtual_alias_reject_code", "int", "550", "the reply code for an unknown virtual alias"),
  p("unknown_virtual_mailbox_reject_code", "int", "550", "the reply code for an unknown virtual mailbox"),
  p("unknown_relay_recipient_reject_code", "int", "550", "the reply code for an unknown relay recipient"),
  p("policy_time_limit", "time", "1000s", "the time limit of a policy server process that spawn runs", {
    unit: "s",
  }),
  p("smtpd_policy_service_timeout", "time", "100s", "the time limit of one policy request", { unit: "s" }),
  p("smtpd_policy_service_max_idle", "time", "300s", "when an idle policy connection is closed", {
    unit: "s",
  }),
  p("smtpd_policy_service_max_ttl", "time", "1000s", "when a policy connection is closed", { unit: "s" }),
  p(
    "smtpd_policy_service_default_action",
    "str",
    "451 4.3.5 Server configuration problem",
    "the reply when a policy server fails",
  ),
  p("smtpd_policy_service_try_limit", "int", "2", "tries of one policy request before the default action", {
    min: 1,
  }),
  p("smtpd_policy_service_policy_context", "str", "", "the policy_context attribute sent to policy servers"),
  p("smtpd_policy_service_request_limit", "int", "0", "requests per policy connection (0: no limit)"),
  p(
    "local_header_rewrite_clients",
    "list",
    "permit_inet_interfaces",
    "clients whose message headers are rewritten in the local context (append $myorigin, $mydomain)",
  ),
];
