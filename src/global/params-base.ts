/*
 * params-base - the parameters of installation, master, logging, queue, tables
 *
 * DESCRIPTION
 *   Part of the parameter table (params-table.ts): name, type, Postfix
 *   default and a one-line description of each parameter these parts of
 *   Postern read.
 */
import { param as p, belowLevel as below } from "./params.js";
import type { ParamDef } from "./params.js";

export const BASE_PARAMS: readonly ParamDef[] = [
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
  p("readme_directory", "str", "no", "where the README files are (information for postconf; no or a path)"),
  p("html_directory", "str", "no", "where the HTML documentation is (information for postconf)"),
  p("manpage_directory", "str", "/usr/share/man", "where the manual pages are (information for postconf)"),
  p(
    "sample_directory",
    "str",
    "/etc/postern",
    "where sample configuration files are (information for postconf)",
  ),
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
    "${multi_instance_name?{$multi_instance_name}:{postfix}}",
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

  // Tables.
  p("alias_maps", "list", "hash:/etc/aliases", "the alias tables of local delivery"),
  p("alias_database", "list", "hash:/etc/aliases", "the alias files that newaliases rebuilds"),
  p(
    "proxy_read_maps",
    "list",
    "$local_recipient_maps $mydestination $virtual_alias_maps $virtual_alias_domains $virtual_mailbox_maps $virtual_mailbox_domains $relay_recipient_maps $relay_domains $canonical_maps $sender_canonical_maps $recipient_canonical_maps $relocated_maps $transport_maps $mynetworks $smtp_sasl_password_maps $lmtp_sasl_password_maps",
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
];
