/*
 * params-local - the parameters of local submission and local delivery
 *
 * DESCRIPTION
 *   Part of the parameter table (params-table.ts): name, type, Postfix
 *   default and a one-line description of each parameter these parts of
 *   Postern read.
 */
import { param as p } from "./params.js";
import type { ParamDef } from "./params.js";

export const LOCAL_PARAMS: readonly ParamDef[] = [
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
    "local_login_sender_maps",
    "list",
    "static:*",
    "tables from login name to the envelope senders that user may submit with",
  ),
  p(
    "empty_address_local_login_sender_maps_lookup_key",
    "str",
    "<>",
    "the local_login_sender_maps pattern that stands for the null sender",
  ),
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
