/*
 * params-milter - the parameters of milters, content filters and the before-queue proxy
 *
 * DESCRIPTION
 *   Part of the parameter table (params-table.ts): name, type, Postfix
 *   default and a one-line description of each parameter the milter client
 *   (milter-client.ts, milter-chain.ts), smtpd's milter and proxy filter
 *   support and cleanup's non-SMTP milters read.
 */
import { param as p } from "./params.js";
import type { ParamDef } from "./params.js";

export const MILTER_PARAMS: readonly ParamDef[] = [
  p("smtpd_milters", "list", "", "milter applications for mail that arrives by SMTP"),
  p(
    "non_smtpd_milters",
    "list",
    "",
    "milter applications for mail that does not arrive by SMTP (sendmail, pickup)",
  ),
  p("milter_protocol", "str", "6", "the milter protocol version (2, 3, 4 or 6) and extensions offered"),
  p(
    "milter_default_action",
    "str",
    "tempfail",
    "what to do when a milter fails: accept, reject, tempfail, quarantine or shutdown",
  ),
  p("milter_connect_timeout", "time", "30s", "how long to wait for a milter connection", {
    unit: "s",
    min: 1,
  }),
  p("milter_command_timeout", "time", "30s", "how long to wait for a milter's reply to an envelope event", {
    unit: "s",
    min: 1,
  }),
  p("milter_content_timeout", "time", "300s", "how long to wait for a milter's reply to a content event", {
    unit: "s",
    min: 1,
  }),
  p(
    "milter_connect_macros",
    "str",
    "j {daemon_name} {daemon_addr} v _",
    "macros sent with the connect event",
  ),
  p(
    "milter_helo_macros",
    "str",
    "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    "macros sent with HELO/EHLO",
  ),
  p(
    "milter_mail_macros",
    "str",
    "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
    "macros sent with MAIL FROM",
  ),
  p("milter_rcpt_macros", "str", "i {rcpt_addr} {rcpt_host} {rcpt_mailer}", "macros sent with RCPT TO"),
  p("milter_data_macros", "str", "i", "macros sent with DATA"),
  p("milter_end_of_header_macros", "str", "i", "macros sent at the end of the headers"),
  p("milter_end_of_data_macros", "str", "i", "macros sent at the end of the message"),
  p("milter_unknown_command_macros", "str", "", "macros sent with an unknown SMTP command"),
  p("milter_macro_daemon_name", "str", "$myhostname", "the {daemon_name} macro"),
  p("milter_macro_v", "str", "$mail_name $mail_version", "the {v} macro"),
  p("milter_header_checks", "list", "", "header_checks for the headers that milters add"),
  p(
    "receive_override_options",
    "list",
    "",
    "no_unknown_recipient_checks, no_header_body_checks, no_milters, no_address_mappings",
  ),
  p("smtpd_proxy_filter", "str", "", "the before-queue content filter (host:port or inet:host:port)"),
  p("smtpd_proxy_timeout", "time", "100s", "how long to wait for the before-queue filter", {
    unit: "s",
    min: 1,
  }),
  p(
    "smtpd_proxy_options",
    "list",
    "",
    "speed_adjust: receive the whole message before contacting the filter",
  ),
  p("smtpd_proxy_ehlo", "str", "$myhostname", "the EHLO name sent to the before-queue filter"),
];
