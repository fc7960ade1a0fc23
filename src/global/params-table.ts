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
 *   (host name, the install's directories).
 */
import type { ParamDef, ParamType, TimeUnit } from "./params.js";

type Extra = Partial<Pick<ParamDef, "min" | "max" | "fileEntries" | "runtime">> & { unit?: TimeUnit };

/** Builds one table entry. */
function p(name: string, type: ParamType, def: string, desc: string, extra: Extra = {}): ParamDef {
  return { name, type, def, desc, ...extra };
}

/** A default that is one value below a compatibility level and another from it on. */
function below(level: string, legacy: string, current: string): string {
  return `\${{$compatibility_level} <level {${level}} ? {${legacy}} : {${current}}}`;
}

const MAXINT = 2147483647;

export const PARAM_TABLE: readonly ParamDef[] = [
  // Installation and identity.
  p("compatibility_level", "str", "0", "the backwards-compatibility level; new installs set 3.6"),
  p("config_directory", "str", "/etc/postern", "where main.cf and master.cf live", { runtime: true }),
  p("queue_directory", "str", "/var/spool/postern", "the root of the mail queue"),
  p("data_directory", "str", "/var/lib/postern", "where master's pid file, lock and caches live"),
  p(
    "daemon_directory",
    "str",
    "/usr/libexec/postern",
    "where programs named in master.cf that are not Postern daemons are found",
    { runtime: true },
  ),
  p("command_directory", "str", "/usr/sbin", "where the administrative commands are installed", {
    runtime: true,
  }),
  p("meta_directory", "str", "$config_directory", "where the master.cf and other read-only files live"),
  p("shlib_directory", "str", "no", "not used by Postern; kept so Postfix configurations parse"),
  p("sendmail_path", "str", "/usr/sbin/sendmail", "the sendmail-compatible command"),
  p("newaliases_path", "str", "/usr/bin/newaliases", "the newaliases command"),
  p("mailq_path", "str", "/usr/bin/mailq", "the mailq command"),
  p("mail_owner", "str", "postfix", "the unprivileged account that owns the queue and runs the daemons"),
  p("setgid_group", "str", "postdrop", "the group of the maildrop directory and public sockets"),
  p(
    "default_privs",
    "str",
    "nobody",
    "the rights for delivery to external files and commands when no recipient rights apply",
  ),
  p("mail_name", "str", "Postern", "the mail system name in banners and headers"),
  p("mail_version", "str", "0.1.0", "the version of the mail system (read-only)", { runtime: true }),
  p("myhostname", "str", "", "this host's fully-qualified domain name", { runtime: true }),
  p("mydomain", "str", "", "this host's domain name", { runtime: true }),
  p("myorigin", "str", "$myhostname", "the domain that locally-posted mail appears to come from"),
  p(
    "mydestination",
    "list",
    "$myhostname, localhost.$mydomain, localhost",
    "domains this host delivers locally",
    { fileEntries: true },
  ),
  p("mynetworks", "list", "", "trusted client networks (empty: computed from mynetworks_style)", {
    fileEntries: true,
  }),
  p(
    "mynetworks_style",
    "str",
    below("2", "subnet", "host"),
    "how mynetworks is computed when it is empty: host, subnet or class",
  ),
  p("relay_domains", "list", below("2", "$mydestination", ""), "destinations this host relays mail to", {
    fileEntries: true,
  }),
  p(
    "inet_interfaces",
    "list",
    "all",
    "the addresses inet services listen on: all, loopback-only, or addresses",
  ),
  p("inet_protocols", "list", "all", "the IP versions to use: all, ipv4, ipv6"),
  p("proxy_interfaces", "list", "", "addresses that reach this host through a proxy or NAT"),
  p(
    "import_environment",
    "list",
    "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ XAUTHORITY DISPLAY LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME",
    "environment variables that daemons keep",
  ),
  p("export_environment", "list", "TZ MAIL_CONFIG LANG", "environment variables passed to external commands"),
  p(
    "alternate_config_directories",
    "list",
    "",
    "configuration directories that unprivileged users may name with -c",
  ),
  p("multi_instance_directories", "list", "", "the configuration directories of other instances"),

  // Master and the process skeletons.
  p("default_process_limit", "int", "100", "the default maxproc of a master.cf service", { min: 1 }),
  p("max_use", "int", "100", "client requests a process serves before it is replaced", { min: 1 }),
  p("max_idle", "time", "100s", "how long an idle process waits for work before it exits", {
    unit: "s",
    min: 1,
  }),
  p(
    "service_throttle_time",
    "time",
    "60s",
    "how long master waits before it starts a service whose processes failed at start",
    { unit: "s", min: 1 },
  ),
  p("master_service_disable", "list", "", "master.cf services to leave unstarted (service/type patterns)"),
  p("daemon_timeout", "time", "18000s", "how long a daemon may handle one request before it is killed", {
    unit: "s",
    min: 1,
  }),
  p("ipc_timeout", "time", "3600s", "time limit for sending or receiving on an internal connection", {
    unit: "s",
    min: 1,
  }),
  p("ipc_idle", "time", "5s", "how long a client keeps an idle internal connection", { unit: "s", min: 1 }),
  p("ipc_ttl", "time", "1000s", "how long a client keeps any internal connection", { unit: "s", min: 1 }),
  p("stress", "str", "", "set to yes by master when a service runs at its process limit; read-only"),
  p("process_name", "str", "", "the name of the running program (read-only)", { runtime: true }),
  p("process_id", "str", "", "the process id of the running program (read-only)", { runtime: true }),
  p("service_name", "str", "", "the master.cf service name of the running daemon (read-only)", {
    runtime: true,
  }),
  p("debug_peer_list", "list", "", "clients and servers for which logging is more verbose"),
  p("debug_peer_level", "int", "2", "how much more verbose logging is for debug_peer_list", { min: 1 }),
  p(
    "internal_frame_limit",
    "int",
    "1048576",
    "the largest internal-protocol frame a daemon accepts, in bytes",
    { min: 1024 },
  ),
  p(
    "postern_stop_grace_time",
    "time",
    "10s",
    "how long a stopping master lets busy processes finish before it ends them",
    {
      unit: "s",
      min: 0,
    },
  ),
  p(
    "postern_process_client_limit",
    "int",
    "50",
    "how many clients one Postern process of a multi-client service serves at once",
    { min: 1 },
  ),

  // Logging.
  p(
    "syslog_name",
    "str",
    "${multi_instance_name?{$multi_instance_name}:{postern}}",
    "the program name prefix in log lines",
  ),
  p("multi_instance_name", "str", "", "the name of this instance"),
  p("syslog_facility", "str", "mail", "the syslog facility of log lines"),
  p("maillog_file", "str", "", "write log lines to this file (or /dev/stdout) instead of syslog"),
  p("maillog_file_prefixes", "list", "/var, /dev/stdout", "allowed prefixes for maillog_file"),
  p("maillog_file_permissions", "str", "0600", "the permissions of a new maillog_file"),

  // Queue.
  p(
    "hash_queue_names",
    "list",
    "deferred, defer",
    "the queue directories that are hashed into subdirectories",
  ),
  p("hash_queue_depth", "int", "1", "the number of subdirectory levels for hashed queues", {
    min: 1,
    max: 16,
  }),
  p("enable_long_queue_ids", "bool", "no", "use long, time-ordered queue file names"),
  p(
    "line_length_limit",
    "int",
    "2048",
    "the longest line of message content or configuration read in one piece",
    { min: 1 },
  ),
  p("message_size_limit", "long", "10240000", "the largest message accepted, in bytes (0: no limit)", {
    min: 0,
  }),

  // cleanup.
  p(
    "header_size_limit",
    "int",
    "102400",
    "the largest message header kept, in bytes; the excess is dropped",
    { min: 1 },
  ),
  p("hopcount_limit", "int", "50", "the most Received: headers a message may have before it bounces", {
    min: 1,
  }),
  p("duplicate_filter_limit", "int", "1000", "how many recipients cleanup remembers to drop duplicates", {
    min: 0,
  }),
  p(
    "always_add_missing_headers",
    "bool",
    "no",
    "add From:, Date:, Message-ID: and To: to remote mail as well as local mail",
  ),
  p(
    "undisclosed_recipients_header",
    "str",
    "",
    "the header added when a message has no To:, Cc: or Bcc: (empty: none)",
  ),

  // cleanup content: address rewriting and mapping, header and body checks, MIME.
  p("append_at_myorigin", "bool", "yes", "append @$myorigin to local-context addresses without a domain"),
  p("swap_bangpath", "bool", "yes", 'rewrite "site!user" to "user@site"'),
  p("allow_percent_hack", "bool", "yes", 'rewrite "user%domain" to "user@domain"'),
  p(
    "remote_header_rewrite_domain",
    "str",
    "",
    "the domain appended to incomplete header addresses of remote mail",
  ),
  p("header_address_token_limit", "int", "10240", "the most address tokens cleanup parses in one header", {
    min: 1,
  }),
  p("empty_address_recipient", "str", "MAILER-DAEMON", "the recipient of mail addressed to the null address"),
  p("enable_original_recipient", "bool", "yes", "keep the original recipient; duplicates differ by it"),
  p(
    "canonical_classes",
    "list",
    "envelope_sender, envelope_recipient, header_sender, header_recipient",
    "the addresses that canonical_maps rewrites",
  ),
  p(
    "sender_canonical_classes",
    "list",
    "envelope_sender, header_sender",
    "the addresses that sender_canonical_maps rewrites",
  ),
  p(
    "recipient_canonical_classes",
    "list",
    "envelope_recipient, header_recipient",
    "the addresses that recipient_canonical_maps rewrites",
  ),
  p("masquerade_domains", "list", "", "domains whose subdomains are hidden in addresses"),
  p("masquerade_exceptions", "list", "", "local parts that are never masqueraded"),
  p(
    "masquerade_classes",
    "list",
    "envelope_sender, header_sender, header_recipient",
    "the addresses that masquerading applies to",
  ),
  p(
    "propagate_unmatched_extensions",
    "list",
    "canonical, virtual",
    "mappings that keep an address extension",
  ),
  p("virtual_alias_recursion_limit", "int", "1000", "the deepest nesting of virtual alias expansion", {
    min: 1,
  }),
  p("virtual_alias_expansion_limit", "int", "1000", "the most addresses one virtual alias expands to", {
    min: 1,
  }),
  p(
    "virtual_alias_address_length_limit",
    "int",
    "1000",
    "the longest address a virtual alias lookup may return",
    { min: 1 },
  ),
  p("always_bcc", "str", "", "an address that receives a copy of every message"),
  p("sender_bcc_maps", "list", "", "tables of addresses that get a copy of mail from a sender"),
  p("recipient_bcc_maps", "list", "", "tables of addresses that get a copy of mail to a recipient"),
  p("header_checks", "list", "", "tables of actions for primary message headers"),
  p("mime_header_checks", "list", "$header_checks", "tables of actions for MIME headers"),
  p("nested_header_checks", "list", "$header_checks", "tables of actions for headers of attached messages"),
  p("body_checks", "list", "", "tables of actions for body lines"),
  p("body_checks_size_limit", "int", "51200", "how many bytes of each body part body_checks inspect", {
    min: 0,
  }),
  p(
    "message_drop_headers",
    "list",
    "bcc, content-length, resent-bcc, return-path",
    "headers cleanup removes",
  ),
  p("content_filter", "str", "", "the transport:destination that gets every message after it is queued"),
  p("disable_mime_input_processing", "bool", "no", "treat everything after the primary headers as body"),
  p("mime_nesting_limit", "int", "100", "the deepest multipart nesting cleanup accepts", { min: 1 }),
  p("mime_boundary_length_limit", "int", "2048", "the longest MIME boundary string cleanup keeps", {
    min: 1,
  }),
  p("strict_8bitmime", "bool", "no", "reject 8-bit data in headers and in 7-bit bodies"),
  p("strict_7bit_headers", "bool", "no", "reject 8-bit data in message headers"),
  p("strict_8bitmime_body", "bool", "no", "reject 8-bit data in bodies that are declared 7-bit"),
  p("strict_mime_encoding_domain", "bool", "no", "reject a bad encoding for message/* and multipart/*"),

  // qmgr.
  p("qmgr_message_active_limit", "int", "20000", "the most messages in the active queue", { min: 1 }),
  p("qmgr_message_recipient_limit", "int", "20000", "the most recipients qmgr keeps in memory", { min: 1 }),
  p("queue_run_delay", "time", "300s", "how often qmgr scans the deferred queue", { unit: "s", min: 1 }),
  p(
    "minimal_backoff_time",
    "time",
    "$queue_run_delay",
    "the least time a deferred message waits before it is tried again",
    { unit: "s", min: 1 },
  ),
  p(
    "maximal_backoff_time",
    "time",
    "4000s",
    "the most time a deferred message waits before it is tried again",
    { unit: "s", min: 1 },
  ),
  p("maximal_queue_lifetime", "time", "5d", "how long a message may stay queued before it is returned", {
    unit: "d",
    min: 0,
  }),
  p("bounce_queue_lifetime", "time", "5d", "how long a bounce (null sender) may stay queued", {
    unit: "d",
    min: 0,
  }),
  p("delay_warning_time", "time", "0h", "when to warn the sender of delayed mail (0: never)", {
    unit: "h",
    min: 0,
  }),

  // bounce, defer, trace.
  p("bounce_service_name", "str", "bounce", "the service that keeps bounce logs and sends notices"),
  p("defer_service_name", "str", "defer", "the service that keeps defer logs and sends delay notices"),
  p("trace_service_name", "str", "trace", "the service that keeps trace logs"),
  p("bounce_size_limit", "int", "50000", "the most bytes of the original message a notice returns", {
    min: 1,
  }),
  p("notify_classes", "list", "resource, software", "the problems reported to postmaster"),
  p("bounce_notice_recipient", "str", "postmaster", "the postmaster for notify_classes bounce"),
  p("2bounce_notice_recipient", "str", "postmaster", "the postmaster for undeliverable bounces"),
  p("delay_notice_recipient", "str", "postmaster", "the postmaster for notify_classes delay"),
  p("soft_bounce", "bool", "no", "turn every bounce into a deferral (safety net)"),
  p(
    "internal_mail_filter_classes",
    "list",
    "",
    "notices that go through header/body checks and content filters: bounce, notify",
  ),
  p(
    "initial_destination_concurrency",
    "int",
    "5",
    "the number of parallel deliveries to a destination at first",
    { min: 1 },
  ),
  p("default_destination_concurrency_limit", "int", "20", "the most parallel deliveries to one destination", {
    min: 1,
  }),
  p("default_destination_recipient_limit", "int", "50", "the most recipients in one delivery", { min: 1 }),
  p("default_destination_rate_delay", "time", "0s", "the pause between deliveries to one destination", {
    unit: "s",
    min: 0,
  }),
  p(
    "default_destination_concurrency_failed_cohort_limit",
    "int",
    "1",
    "failed deliveries at concurrency 1 before a destination is marked dead",
    { min: 1 },
  ),
  p(
    "local_destination_concurrency_limit",
    "int",
    "2",
    "the most parallel local deliveries to one recipient",
    { min: 1 },
  ),
  p("local_destination_recipient_limit", "int", "1", "recipients per local delivery", { min: 1 }),
  p("transport_retry_time", "time", "60s", "how long qmgr waits before it uses a failed transport again", {
    unit: "s",
    min: 1,
  }),
  p("command_time_limit", "time", "1000s", "the default time limit of one delivery (transport_time_limit)", {
    unit: "s",
    min: 1,
  }),

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

  // SMTP server basics that other defaults refer to.
  p("smtpd_banner", "str", "$myhostname ESMTP $mail_name", "the text after 220 in the SMTP greeting"),
  p("smtputf8_enable", "bool", below("1", "no", "yes"), "support the SMTPUTF8 extension"),
  p(
    "append_dot_mydomain",
    "bool",
    below("1", "yes", "no"),
    "append .$mydomain to addresses without a domain dot",
  ),
  p(
    "smtpd_relay_restrictions",
    "list",
    below("1", "", "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination"),
    "relay control applied before smtpd_recipient_restrictions",
  ),
  p("smtpd_restriction_classes", "list", "", "names of user-defined restriction lists"),
  p("recipient_delimiter", "str", "", "the separators between a user name and an address extension"),
  p(
    "parent_domain_matches_subdomains",
    "list",
    "debug_peer_list,fast_flush_domains,mynetworks,permit_mbox_mx_backup_networks,qmqpd_authorized_clients,relay_domains,smtpd_access_maps",
    "features where a domain pattern also matches its subdomains",
  ),

  // trivial-rewrite: address resolving (transports, next hops, address classes).
  p("local_transport", "str", "local:$myhostname", "the transport[:nexthop] for domains in mydestination"),
  p("virtual_transport", "str", "virtual", "the transport[:nexthop] for virtual_mailbox_domains"),
  p("relay_transport", "str", "relay", "the transport[:nexthop] for relay_domains"),
  p("default_transport", "str", "smtp", "the transport[:nexthop] for all other destinations"),
  p("relayhost", "str", "", "the next hop for non-local mail, e.g. [mail.isp.example]:587"),
  p("sender_dependent_relayhost_maps", "list", "", "tables of relayhost overrides per sender"),
  p(
    "sender_dependent_default_transport_maps",
    "list",
    "",
    "tables of default_transport overrides per sender",
  ),
  p(
    "empty_address_relayhost_maps_lookup_key",
    "str",
    "<>",
    "the sender_dependent_relayhost_maps key for the null sender",
  ),
  p(
    "empty_address_default_transport_maps_lookup_key",
    "str",
    "<>",
    "the sender_dependent_default_transport_maps key for the null sender",
  ),
  p("resolve_dequoted_address", "bool", "yes", "look for routing operators inside quoted local parts"),
  p("resolve_null_domain", "bool", "no", 'resolve "user@" as "user" instead of rejecting it'),
  p("resolve_numeric_domain", "bool", "no", "resolve user@1.2.3.4 as user@[1.2.3.4] instead of rejecting it"),
  p(
    "show_user_unknown_table_name",
    "bool",
    "yes",
    'name the table in "User unknown" replies ("in virtual alias table")',
  ),
  p("relocated_prefix_enable", "bool", "yes", 'prefix relocated_maps results with "5.1.6 User has moved to"'),
  p("allow_min_user", "bool", "no", 'allow recipient addresses that start with "-"'),
  p("helpful_warnings", "bool", "yes", "log warnings about mistakes such as overlapping domain lists"),
  p("rewrite_service_name", "str", "rewrite", "the name of the address rewriting and resolving service"),
  p("owner_request_special", "bool", "yes", "keep owner-x and x-request whole when - is a delimiter"),
  p("double_bounce_sender", "str", "double-bounce", "the sender of undeliverable-bounce notices"),

  // Tables.
  p("alias_maps", "list", "hash:/etc/aliases", "the alias tables of local delivery"),
  p("alias_database", "list", "hash:/etc/aliases", "the alias files that newaliases rebuilds"),
  p(
    "proxy_read_maps",
    "list",
    "$local_recipient_maps $mydestination $virtual_alias_maps $virtual_alias_domains $virtual_mailbox_maps $virtual_mailbox_domains $relay_recipient_maps $relay_domains $canonical_maps $sender_canonical_maps $recipient_canonical_maps $relocated_maps $transport_maps $mynetworks",
    "tables that proxymap may open for reading",
  ),
  p(
    "local_recipient_maps",
    "list",
    "proxy:unix:passwd.byname $alias_maps",
    "tables of valid local recipients",
  ),
  p("virtual_alias_maps", "list", "", "tables that redirect addresses (virtual aliasing)"),
  p(
    "virtual_alias_domains",
    "list",
    "$virtual_alias_maps",
    "domains whose addresses exist only as virtual aliases",
  ),
  p("virtual_mailbox_maps", "list", "", "tables of valid virtual mailbox recipients"),
  p("virtual_mailbox_domains", "list", "", "domains delivered by the virtual transport"),
  p("relay_recipient_maps", "list", "", "tables of valid recipients in relay_domains"),
  p("canonical_maps", "list", "", "tables that rewrite sender and recipient addresses"),
  p("sender_canonical_maps", "list", "", "tables that rewrite sender addresses"),
  p("recipient_canonical_maps", "list", "", "tables that rewrite recipient addresses"),
  p("relocated_maps", "list", "", "tables of users who have moved"),
  p("transport_maps", "list", "", "tables that choose the transport and next hop per destination"),
  p("lmdb_map_size", "long", "16777216", "the initial size of an lmdb table", { min: 1 }),
  p(
    "default_database_type",
    "str",
    "hash",
    "the table type that postmap, postalias and newaliases use when a name has no type",
  ),
  p("proxymap_service", "str", "proxymap", "the name of the read-only table lookup service (proxy: tables)"),

  // local submission: sendmail, postdrop, pickup, postqueue, showq, flush, qshape.
  p(
    "authorized_submit_users",
    "list",
    "static:anyone",
    "users who may submit mail with sendmail or postdrop",
    {
      fileEntries: true,
    },
  ),
  p("authorized_mailq_users", "list", "static:anyone", "users who may list the mail queue", {
    fileEntries: true,
  }),
  p("authorized_flush_users", "list", "static:anyone", "users who may flush the mail queue", {
    fileEntries: true,
  }),
  p(
    "sendmail_fix_line_endings",
    "str",
    "always",
    "how sendmail converts CRLF line endings: always, strict or never",
  ),
  p(
    "fast_flush_domains",
    "list",
    "$relay_domains",
    "destinations with per-destination logs of deferred mail",
    {
      fileEntries: true,
    },
  ),
  p("fast_flush_refresh_time", "time", "12h", "when a non-empty, unread fast flush log is refreshed", {
    unit: "h",
    min: 1,
  }),
  p("fast_flush_purge_time", "time", "7d", "when an empty fast flush log is removed", { unit: "d", min: 1 }),
  p("trigger_timeout", "time", "10s", "the time limit for sending a wakeup trigger to a daemon", {
    unit: "s",
    min: 1,
  }),
  p("cleanup_service_name", "str", "cleanup", "the name of the cleanup service"),
  p("pickup_service_name", "str", "pickup", "the name of the maildrop pickup service"),
  p("queue_service_name", "str", "qmgr", "the name of the queue manager service"),
  p("showq_service_name", "str", "showq", "the name of the queue listing service"),
  p("flush_service_name", "str", "flush", "the name of the fast flush service"),

  // local delivery: local(8), virtual(8), pipe(8).
  p(
    "forward_path",
    "str",
    "$home/.forward${recipient_delimiter}${extension}, $home/.forward",
    "where local(8) looks for .forward files ($user, $home, $extension, ... expanded per recipient)",
  ),
  p("home_mailbox", "str", "", "the mailbox under the home directory (a name ending in / is a Maildir)"),
  p(
    "mail_spool_directory",
    "str",
    "/var/mail",
    "where UNIX mailboxes are kept (a name ending in / means Maildirs)",
  ),
  p("mailbox_command", "str", "", "a command (e.g. procmail) that local(8) runs for mailbox delivery"),
  p("mailbox_command_maps", "list", "", "tables of per-user mailbox delivery commands"),
  p("mailbox_transport", "str", "", "a transport for all local mailbox deliveries (e.g. lmtp:unix:...)"),
  p("mailbox_transport_maps", "list", "", "tables of per-user mailbox delivery transports"),
  p("fallback_transport", "str", "", "a transport for local users not found in aliases or passwd"),
  p("fallback_transport_maps", "list", "", "tables of per-user fallback transports"),
  p("luser_relay", "str", "", "where mail for unknown local users goes ($user, $extension, ... expanded)"),
  p(
    "allow_mail_to_commands",
    "list",
    "alias, forward",
    "where |command destinations are allowed: alias, forward, include",
  ),
  p(
    "allow_mail_to_files",
    "list",
    "alias, forward",
    "where /file destinations are allowed: alias, forward, include",
  ),
  p(
    "prepend_delivered_header",
    "list",
    "command, file, forward",
    "the deliveries that get a Delivered-To: header",
  ),
  p(
    "mailbox_delivery_lock",
    "list",
    "fcntl, dotlock",
    "how local(8) locks a mailbox: dotlock, flock, fcntl (kernel locks via flock(1))",
  ),
  p("deliver_lock_attempts", "int", "20", "the most attempts to lock a mailbox", { min: 1 }),
  p("deliver_lock_delay", "time", "1s", "the time between attempts to lock a mailbox", { unit: "s", min: 0 }),
  p("stale_lock_time", "time", "500s", "the age after which a mailbox dotlock file is removed", {
    unit: "s",
    min: 1,
  }),
  p("mailbox_size_limit", "long", "51200000", "the largest mailbox or Maildir file, in bytes (0: no limit)"),
  p(
    "command_expansion_filter",
    "str",
    "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "characters allowed in $name values given to commands",
  ),
  p(
    "forward_expansion_filter",
    "str",
    "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "characters allowed in $name values in forward_path",
  ),
  p(
    "execution_directory_expansion_filter",
    "str",
    "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "characters allowed in $name values in command_execution_directory",
  ),
  p(
    "command_execution_directory",
    "str",
    "",
    "the working directory of local(8) commands ($home, $user, ... expanded)",
  ),
  p("local_command_shell", "str", "", "the shell for local(8) commands (empty: /bin/sh -c when needed)"),
  p("expand_owner_alias", "bool", "no", "use the expansion of owner-name, not owner-name, as the sender"),
  p("reset_owner_alias", "bool", "no", "forget the owner alias when expanding a child alias that has none"),
  p(
    "frozen_delivered_to",
    "bool",
    "yes",
    "set the Delivered-To: address once, before aliases and .forward files",
  ),
  p("require_home_directory", "bool", "no", "defer mail when the recipient's home directory is missing"),
  p("strict_mailbox_ownership", "bool", "yes", "defer mail when a mailbox is not owned by its recipient"),
  p("virtual_mailbox_base", "str", "", "the directory that virtual_mailbox_maps paths are under"),
  p("virtual_uid_maps", "list", "", "tables of the uid of each virtual mailbox"),
  p("virtual_gid_maps", "list", "", "tables of the gid of each virtual mailbox"),
  p("virtual_minimum_uid", "int", "100", "the smallest uid virtual(8) accepts", { min: 1 }),
  p(
    "virtual_mailbox_limit",
    "long",
    "51200000",
    "the largest virtual mailbox or Maildir file, in bytes (0: no limit)",
  ),
  p(
    "virtual_mailbox_lock",
    "list",
    "fcntl, dotlock",
    "how virtual(8) locks a mailbox: dotlock, flock, fcntl",
  ),
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
