/*
 * params-postscreen - the parameters of postscreen
 *
 * DESCRIPTION
 *   Part of the parameter table (params-table.ts): name, type, Postfix
 *   default and a one-line description of each parameter postscreen
 *   reads. The old names that Postfix still honours (blacklist,
 *   whitelist) are here too, with empty defaults, so that the new names'
 *   defaults can refer to them as Postfix's do.
 */
import { param as p } from "./params.js";
import type { ParamDef } from "./params.js";

const TTL = { unit: "s", min: 1 } as const;
const ACTION = "ignore (note and go on), enforce (reject mail with 550) or drop (521 and hang up)";

export const POSTSCREEN_PARAMS: readonly ParamDef[] = [
  p("smtpd_service_name", "str", "smtpd", "the pass service postscreen hands good clients to"),
  p("postscreen_access_list", "list", "permit_mynetworks", "the permanent allow and deny list of clients"),
  p("postscreen_blacklist_action", "str", "", "old name of postscreen_denylist_action"),
  p(
    "postscreen_denylist_action",
    "str",
    "${postscreen_blacklist_action?{$postscreen_blacklist_action}:{ignore}}",
    `what to do with a client that postscreen_access_list rejects: ${ACTION}`,
  ),
  p("postscreen_greet_banner", "str", "$smtpd_banner", "the teaser banner line (220-) of the pregreet test"),
  p("postscreen_greet_wait", "time", "${stress?{2}:{6}}s", "how long the pregreet test waits", TTL),
  p("postscreen_greet_action", "str", "ignore", `what to do with a client that talks too early: ${ACTION}`),
  p("postscreen_greet_ttl", "time", "1d", "how long a passed pregreet test is remembered", TTL),
  p("postscreen_dnsbl_sites", "list", "", "DNS block and allow lists: domain[=filter][*weight]"),
  p("postscreen_dnsbl_threshold", "int", "1", "the DNSBL score that makes a client fail", { min: 1 }),
  p("postscreen_dnsbl_whitelist_threshold", "str", "", "old name of postscreen_dnsbl_allowlist_threshold"),
  p(
    "postscreen_dnsbl_allowlist_threshold",
    "int",
    "${postscreen_dnsbl_whitelist_threshold?{$postscreen_dnsbl_whitelist_threshold}:{0}}",
    "a DNSBL score at or below this (when negative) lets a client skip the other tests",
    { min: -1_000_000 },
  ),
  p(
    "postscreen_dnsbl_action",
    "str",
    "ignore",
    `what to do with a client over the DNSBL threshold: ${ACTION}`,
  ),
  p("postscreen_dnsbl_reply_map", "str", "", "table that maps a DNSBL domain to the name shown in replies"),
  p("postscreen_dnsbl_timeout", "time", "10s", "how long postscreen waits for DNSBL answers", TTL),
  p("postscreen_dnsbl_ttl", "str", "", "old name of postscreen_dnsbl_max_ttl (in hours)"),
  p("postscreen_dnsbl_min_ttl", "time", "60s", "the shortest time a DNSBL result is remembered", TTL),
  p(
    "postscreen_dnsbl_max_ttl",
    "time",
    "${postscreen_dnsbl_ttl?{$postscreen_dnsbl_ttl}:{1}}h",
    "the longest time a DNSBL result is remembered",
    TTL,
  ),
  p("postscreen_cache_map", "str", "btree:$data_directory/postscreen_cache", "where test results are kept"),
  p("postscreen_cache_cleanup_interval", "time", "12h", "how often expired cache entries are removed", {
    unit: "s",
    min: 0,
  }),
  p("postscreen_cache_retention_time", "time", "7d", "how long an expired cache entry is kept", {
    unit: "s",
    min: 0,
  }),
  p("postscreen_pipelining_enable", "bool", "no", "run the pipelining test after the banner"),
  p("postscreen_pipelining_action", "str", "enforce", `what to do with a client that pipelines: ${ACTION}`),
  p("postscreen_pipelining_ttl", "time", "30d", "how long a passed pipelining test is remembered", TTL),
  p("postscreen_non_smtp_command_enable", "bool", "no", "run the non-SMTP command test after the banner"),
  p(
    "postscreen_non_smtp_command_action",
    "str",
    "drop",
    `what to do with a client that sends a non-SMTP command: ${ACTION}`,
  ),
  p("postscreen_non_smtp_command_ttl", "time", "30d", "how long a passed non-SMTP test is remembered", TTL),
  p("postscreen_bare_newline_enable", "bool", "no", "run the bare newline test after the banner"),
  p(
    "postscreen_bare_newline_action",
    "str",
    "ignore",
    `what to do with a client that ends a line with a bare newline: ${ACTION}`,
  ),
  p("postscreen_bare_newline_ttl", "time", "30d", "how long a passed bare newline test is remembered", TTL),
  p(
    "postscreen_command_time_limit",
    "time",
    "${stress?{10}:{300}}s",
    "how long postscreen's SMTP engine waits for a command",
    TTL,
  ),
  p("postscreen_command_count_limit", "int", "20", "commands postscreen's SMTP engine takes per session", {
    min: 1,
  }),
  p("postscreen_forbidden_commands", "list", "$smtpd_forbidden_commands", "commands that are not SMTP"),
  p(
    "postscreen_pre_queue_limit",
    "int",
    "$default_process_limit",
    "connections being screened above which postscreen reports stress (at 90%) and turns clients away",
    { min: 0 },
  ),
  p(
    "postscreen_post_queue_limit",
    "int",
    "$default_process_limit",
    "connections waiting for smtpd at which postscreen turns clients away (all server ports busy)",
    { min: 0 },
  ),
  p(
    "postscreen_client_connection_count_limit",
    "int",
    "$smtpd_client_connection_count_limit",
    "concurrent connections postscreen takes from one client (0: no limit)",
    { min: 0 },
  ),
  p(
    "postscreen_upstream_proxy_protocol",
    "str",
    "",
    "the proxy protocol in front of postscreen: empty or haproxy",
  ),
  p("postscreen_upstream_proxy_timeout", "time", "5s", "how long postscreen waits for the proxy header", TTL),
  p("postscreen_watchdog_timeout", "time", "10s", "how long postscreen may be busy with one event", TTL),
  p("postscreen_whitelist_interfaces", "list", "", "old name of postscreen_allowlist_interfaces"),
  p(
    "postscreen_allowlist_interfaces",
    "list",
    "${postscreen_whitelist_interfaces?{$postscreen_whitelist_interfaces}:{static:all}}",
    "server addresses where a client can earn postscreen's temporary allowlist status (not: backup MX addresses)",
  ),
  // smtpd's own footer settings; postscreen's defaults refer to them, as Postfix's do.
  p("smtpd_reject_footer", "str", "", "text added after each 4XX and 5XX reply of the SMTP server"),
  p("smtpd_reject_footer_maps", "list", "", "tables of footers, indexed by the complete 4XX or 5XX reply"),
  p(
    "postscreen_reject_footer",
    "str",
    "$smtpd_reject_footer",
    "text added after postscreen's 4XX and 5XX replies ($client_address, $client_port, $localtime, $server_name)",
  ),
  p(
    "postscreen_reject_footer_maps",
    "list",
    "$smtpd_reject_footer_maps",
    "tables of footers for postscreen's replies, indexed by the complete reply",
  ),
  p(
    "postscreen_command_filter",
    "str",
    "",
    "table that rewrites the commands a client sends to postscreen's SMTP engine",
  ),
  p(
    "postern_postscreen_client_limit",
    "int",
    "20000",
    "how many connections one postscreen process holds at once (its file descriptors permitting)",
    { min: 1, max: 100000 },
  ),
];
