/*
 * params-mail - the parameters of cleanup, qmgr, bounce and trivial-rewrite
 *
 * DESCRIPTION
 *   Part of the parameter table (params-table.ts): name, type, Postfix
 *   default and a one-line description of each parameter these parts of
 *   Postern read.
 */
import { param as p } from "./params.js";
import type { ParamDef } from "./params.js";

export const MAIL_PARAMS: readonly ParamDef[] = [
  // cleanup.
  p(
    "cleanup_replace_stray_cr_lf",
    "bool",
    "yes",
    "replace a CR that does not end a line with a space in the queued content (no smuggling onward)",
  ),
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
    "bounce_template_file",
    "str",
    "",
    "a file of bounce(5) templates for the notices' text (empty: built-in)",
  ),
  p(
    "header_from_format",
    "str",
    "standard",
    "From: in notices and added headers: standard (Name <addr>) or obsolete (addr (Name))",
  ),
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
  // trivial-rewrite: the "verify" context, for address verification probes.
  p(
    "address_verify_local_transport",
    "str",
    "$local_transport",
    "local_transport for address verification probes",
  ),
  p(
    "address_verify_virtual_transport",
    "str",
    "$virtual_transport",
    "virtual_transport for address verification probes",
  ),
  p(
    "address_verify_relay_transport",
    "str",
    "$relay_transport",
    "relay_transport for address verification probes",
  ),
  p(
    "address_verify_default_transport",
    "str",
    "$default_transport",
    "default_transport for address verification probes",
  ),
  p("address_verify_relayhost", "str", "$relayhost", "relayhost for address verification probes"),
  p(
    "address_verify_transport_maps",
    "list",
    "$transport_maps",
    "transport_maps for address verification probes",
  ),
  p(
    "address_verify_sender_dependent_relayhost_maps",
    "list",
    "$sender_dependent_relayhost_maps",
    "sender_dependent_relayhost_maps for address verification probes",
  ),
  p(
    "address_verify_sender_dependent_default_transport_maps",
    "list",
    "$sender_dependent_default_transport_maps",
    "sender_dependent_default_transport_maps for address verification probes",
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
];
