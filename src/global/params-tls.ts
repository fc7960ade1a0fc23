/*
 * params-tls - the parameters of TLS and SASL in the SMTP server
 *
 * DESCRIPTION
 *   Part of the parameter table (params-table.ts): STARTTLS and implicit
 *   TLS (smtpd_tls_*, the shared tls_*_cipherlist grades) and SMTP AUTH
 *   (smtpd_sasl_*, smtpd_sender_login_maps). Names and defaults are
 *   Postfix's, with two deliberate differences: the protocol defaults are
 *   ">=TLSv1.2" (TLS 1.0 and 1.1 are deprecated by RFC 8996, and OpenSSL 3
 *   refuses them at its default security level anyway), and the cipher grade
 *   lists leave out the anonymous, export, RC4, 3DES and CBC-SHA1 suites,
 *   which testssl.sh reports as weak. postern_sasl_password_maps is
 *   Postern's own: the password table of the built-in "postern" SASL type.
 */
import { belowLevel, param as p } from "./params.js";
import type { ParamDef } from "./params.js";

export const TLS_PARAMS: readonly ParamDef[] = [
  p("smtpd_tls_security_level", "str", "", "STARTTLS in the SMTP server: none, may or encrypt"),
  p("smtpd_use_tls", "bool", "no", "announce STARTTLS (older form of smtpd_tls_security_level = may)"),
  p("smtpd_enforce_tls", "bool", "no", "require STARTTLS (older form of smtpd_tls_security_level = encrypt)"),
  p("smtpd_tls_wrappermode", "bool", "no", "implicit TLS: the handshake comes first (port 465)"),
  p("smtpd_tls_cert_file", "str", "", "the server's RSA certificate (PEM, leaf first, then its chain)"),
  p("smtpd_tls_key_file", "str", "$smtpd_tls_cert_file", "the private key of smtpd_tls_cert_file"),
  p("smtpd_tls_eccert_file", "str", "", "the server's ECDSA certificate (PEM)"),
  p("smtpd_tls_eckey_file", "str", "$smtpd_tls_eccert_file", "the private key of smtpd_tls_eccert_file"),
  p(
    "smtpd_tls_chain_files",
    "list",
    "",
    "PEM files, each a private key followed by its certificate chain (RSA and ECDSA together)",
  ),
  p("smtpd_tls_CAfile", "str", "", "CA certificates (PEM) that client certificates are verified against"),
  p("smtpd_tls_CApath", "str", "", "a directory of CA certificates (PEM files) for client certificates"),
  p("smtpd_tls_protocols", "str", ">=TLSv1.2", "TLS protocols for opportunistic TLS (Postfix syntax)"),
  p("smtpd_tls_mandatory_protocols", "str", ">=TLSv1.2", "TLS protocols when TLS is required"),
  p("smtpd_tls_ciphers", "str", "medium", "the cipher grade for opportunistic TLS"),
  p("smtpd_tls_mandatory_ciphers", "str", "medium", "the cipher grade when TLS is required"),
  p("smtpd_tls_exclude_ciphers", "list", "", "ciphers or cipher types left out in every session"),
  p("smtpd_tls_mandatory_exclude_ciphers", "list", "", "ciphers left out when TLS is required"),
  p(
    "tls_high_cipherlist",
    "str",
    "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:@STRENGTH",
    "OpenSSL cipher list of the high grade",
  ),
  p(
    "tls_medium_cipherlist",
    "str",
    "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:ECDHE+AES:!aNULL:!eNULL:!SHA1:@STRENGTH",
    "OpenSSL cipher list of the medium grade",
  ),
  p(
    "tls_low_cipherlist",
    "str",
    "aNULL:-aNULL:HIGH:MEDIUM:LOW:+RC4:@STRENGTH",
    "OpenSSL cipher list of the low grade",
  ),
  p(
    "tls_export_cipherlist",
    "str",
    "aNULL:-aNULL:HIGH:MEDIUM:LOW:EXPORT:+RC4:@STRENGTH",
    "OpenSSL cipher list of the export grade",
  ),
  p("tls_null_cipherlist", "str", "eNULL:!aNULL", "OpenSSL cipher list of the null grade"),
  p("tls_preempt_cipherlist", "bool", "no", "the server's cipher order wins over the client's"),
  p(
    "tls_eecdh_auto_curves",
    "list",
    "X25519 X448 prime256v1 secp521r1 secp384r1",
    "ECDHE key-exchange curves",
  ),
  p("smtpd_tls_auth_only", "bool", "no", "offer SMTP AUTH only over TLS"),
  p("smtpd_tls_received_header", "bool", "no", "record the TLS protocol and cipher in the Received: header"),
  p("smtpd_tls_loglevel", "int", "0", "TLS logging: 0 none, 1 a summary per session, 2 more", { min: 0 }),
  p(
    "smtpd_tls_session_cache_timeout",
    "time",
    "3600s",
    "the lifetime of TLS session tickets (0 turns resumption off)",
    { unit: "s", min: 0, max: 8640000 },
  ),
  p("smtpd_starttls_timeout", "time", "${stress?{10}:{300}}s", "the time limit of the TLS handshake", {
    unit: "s",
    min: 1,
  }),
  p("smtpd_tls_ask_ccert", "bool", "no", "ask the client for a certificate"),
  p("smtpd_tls_req_ccert", "bool", "no", "require a trusted client certificate (with encrypt)"),
  p("smtpd_tls_ccert_verifydepth", "int", "9", "the longest client certificate chain", { min: 1 }),
  p(
    "smtpd_tls_fingerprint_digest",
    "str",
    belowLevel("3.6", "md5", "sha256"),
    "the digest of client certificate fingerprints",
  ),
  p("relay_clientcerts", "list", "", "tables of client certificate fingerprints that may relay"),
  // SMTP AUTH.
  p("smtpd_sasl_auth_enable", "bool", "no", "offer SMTP AUTH"),
  p("smtpd_sasl_type", "str", "cyrus", "the SASL back end: dovecot or postern (cyrus is not available)"),
  p(
    "smtpd_sasl_path",
    "str",
    "smtpd",
    "dovecot: the auth socket (relative to queue_directory, or inet:host:port)",
  ),
  p("smtpd_sasl_service", "str", "smtp", "the service name told to the SASL back end"),
  p("smtpd_sasl_security_options", "list", "noanonymous", "mechanism restrictions without TLS"),
  p(
    "smtpd_sasl_tls_security_options",
    "list",
    "$smtpd_sasl_security_options",
    "mechanism restrictions over TLS",
  ),
  p("smtpd_sasl_local_domain", "str", "", "the realm appended to user names without one"),
  p("smtpd_sasl_exceptions_networks", "list", "", "clients to whom AUTH is not announced"),
  p("smtpd_sasl_response_limit", "int", "12288", "the longest AUTH response line", { min: 1 }),
  p("smtpd_sasl_authenticated_header", "bool", "no", "name the login in the Received: header"),
  p("broken_sasl_auth_clients", "bool", "no", "also announce AUTH=mechanisms for old clients"),
  p("smtpd_sender_login_maps", "list", "", "tables of the logins that own each sender address"),
  p("smtpd_client_auth_rate_limit", "int", "0", "AUTH commands per client per anvil_rate_time_unit"),
  p(
    "smtpd_client_new_tls_session_rate_limit",
    "int",
    "0",
    "new (not resumed) TLS sessions per client per anvil_rate_time_unit",
  ),
  p(
    "postern_sasl_password_maps",
    "list",
    "",
    "postern SASL type: tables of user -> password hash (made with postern sasl-passwd)",
  ),
];
