/*
 * smtpd-tls - STARTTLS and implicit TLS in the SMTP server
 *
 * DESCRIPTION
 *   smtpdTls() builds, once per process, what every session needs: the
 *   security level (smtpd_tls_security_level, or the older smtpd_use_tls and
 *   smtpd_enforce_tls), and the TLS context: keys and certificate chains
 *   (smtpd_tls_chain_files, or smtpd_tls_cert_file/key_file and
 *   smtpd_tls_eccert_file/eckey_file, RSA and ECDSA together), protocols
 *   and cipher grade (the mandatory_ forms under "encrypt"), exclusions,
 *   session tickets (smtpd_tls_session_cache_timeout; 0 turns resumption
 *   off) and client certificates (smtpd_tls_ask_ccert, smtpd_tls_CAfile).
 *   A context that cannot be made (a missing or bad file) is logged once:
 *   STARTTLS is then not announced, and answered "454 4.7.0 TLS not
 *   available due to local problem"; in wrapper mode the client is dropped.
 *   Client renegotiation is refused (a DoS lever with no use in SMTP).
 *
 *   startTls() wraps the client's plain socket (the master hands smtpd
 *   plain sockets) in a server-side TLS socket and waits for the handshake
 *   (smtpd_starttls_timeout). The caller has already thrown away anything
 *   the client sent after STARTTLS: only bytes read after the "220 Ready to
 *   start TLS" reply reach the TLS layer, so plaintext pipelined behind
 *   STARTTLS can never be taken for a command sent under TLS.
 *   tlsSummary() is Postfix's log line ("Anonymous TLS connection
 *   established from name[addr]: TLSv1.3 with cipher ... (256/256 bits)"),
 *   tlsReceived() the Received: header comment lines, and
 *   permitTlsClientcerts() the restrictions permit_tls_clientcerts
 *   (relay_clientcerts: certificate or public-key fingerprints with
 *   smtpd_tls_fingerprint_digest) and permit_tls_all_clientcerts (any
 *   client certificate that verifies against the CA).
 *
 *   Session tickets are encrypted with the key of the tlsmgr service, so a
 *   client may resume with any smtpd process of the instance (without
 *   tlsmgr, with keys of the process: only the process that served it
 *   before resumes it); tls_session_ticket_cipher empty turns tickets off.
 *   With smtpd_tls_session_cache_database, TLS 1.2 clients without
 *   tickets resume by session ID through tlsmgr (smtpd-tlsmgr.ts).
 */
import { X509Certificate, constants, createHash, getHashes } from "node:crypto";
import type { Socket } from "node:net";
import {
  TLSSocket,
  createSecureContext,
  type DetailedPeerCertificate,
  type SecureContext,
  type SecureContextOptions,
} from "node:tls";
import type { Config } from "../global/config.js";
import { dictOpen } from "../global/dict.js";
import { DictFlag } from "../global/dict-types.js";
import { loadCaCerts, loadServerKeys, tlsCipherList, tlsProtocols } from "../global/tls-config.js";
import { msg } from "../util/msg.js";
import { SmtpdTlsmgr, ticketCipherAllows } from "./smtpd-tlsmgr.js";

export type TlsLevel = "none" | "may" | "encrypt";

export interface SmtpdTls {
  level: TlsLevel;
  wrapper: boolean;
  /** null: TLS is wanted but the context could not be made (see problem). */
  context: SecureContext | null;
  problem: string | null;
  askCcert: boolean;
  requireCcert: boolean;
  timeoutMs: number;
  logLevel: number;
  receivedHeader: boolean;
  digest: string;
  relayCerts: string[];
  /** The CAs client certificates are verified against (smtpd_tls_CAfile, smtpd_tls_CApath). */
  caCerts: X509Certificate[];
  verifyDepth: number;
  /** The ticket key and session cache shared through tlsmgr (null without TLS). */
  shared: SmtpdTlsmgr | null;
}

/** What a session knows about its TLS layer. */
export interface TlsInfo {
  protocol: string;
  cipher: string;
  useBits: number;
  algBits: number;
  reused: boolean;
  cert: {
    cn: string;
    issuer: string;
    trusted: boolean;
    fingerprint: string;
    pkeyFingerprint: string;
  } | null;
}

/** The security level from the new parameter or the older pair. */
export function tlsLevel(cfg: Config): TlsLevel {
  const v = cfg.get("smtpd_tls_security_level").trim().toLowerCase();
  if (v === "none" || v === "may" || v === "encrypt") return v;
  if (v !== "") {
    msg.warn(`invalid smtpd_tls_security_level value "${v}": using "encrypt"`);
    return "encrypt";
  }
  if (cfg.bool("smtpd_enforce_tls")) return "encrypt";
  return cfg.bool("smtpd_use_tls") ? "may" : "none";
}

/** Builds the TLS settings and context of the process. */
export function smtpdTls(cfg: Config): SmtpdTls {
  const wrapper = cfg.bool("smtpd_tls_wrappermode");
  let level = tlsLevel(cfg);
  if (wrapper && level === "none") level = "may";
  const base: SmtpdTls = {
    level,
    wrapper,
    context: null,
    problem: null,
    askCcert: cfg.bool("smtpd_tls_ask_ccert") || (level === "encrypt" && cfg.bool("smtpd_tls_req_ccert")),
    requireCcert: level === "encrypt" && cfg.bool("smtpd_tls_req_ccert"),
    timeoutMs: cfg.time("smtpd_starttls_timeout") * 1000,
    logLevel: cfg.int("smtpd_tls_loglevel"),
    receivedHeader: cfg.bool("smtpd_tls_received_header"),
    digest: cfg.get("smtpd_tls_fingerprint_digest").trim().toLowerCase(),
    relayCerts: cfg.list("relay_clientcerts"),
    caCerts: [],
    verifyDepth: cfg.int("smtpd_tls_ccert_verifydepth"),
    shared: null,
  };
  if (level === "none") return base;
  try {
    base.context = secureContext(cfg, base);
  } catch (err) {
    base.problem = (err as Error).message;
    msg.warn(`cannot use TLS: ${base.problem}; STARTTLS is not offered`);
  }
  return base;
}

/** Makes the OpenSSL context from the configuration; throws with a clear message. */
function secureContext(cfg: Config, s: SmtpdTls): SecureContext {
  const mandatory = s.level === "encrypt";
  const protos = tlsProtocols(cfg.get(mandatory ? "smtpd_tls_mandatory_protocols" : "smtpd_tls_protocols"));
  if (!protos.ok) throw new Error(protos.error);
  const exclude = [
    ...cfg.list("smtpd_tls_exclude_ciphers"),
    ...(mandatory ? cfg.list("smtpd_tls_mandatory_exclude_ciphers") : []),
    ...(s.askCcert ? ["aNULL"] : []),
  ];
  const grade = cfg.get(mandatory ? "smtpd_tls_mandatory_ciphers" : "smtpd_tls_ciphers");
  const ciphers = tlsCipherList(cfg, grade, exclude);
  if (!ciphers.ok) throw new Error(ciphers.error);
  if (!getHashes().includes(s.digest)) throw new Error(`unknown smtpd_tls_fingerprint_digest "${s.digest}"`);
  const keys = loadServerKeys({
    chainFiles: cfg.list("smtpd_tls_chain_files"),
    pairs: [
      { cert: cfg.get("smtpd_tls_cert_file"), key: cfg.get("smtpd_tls_key_file") },
      { cert: cfg.get("smtpd_tls_eccert_file"), key: cfg.get("smtpd_tls_eckey_file") },
    ],
  });
  if (keys.cert.length === 0)
    throw new Error("no server certificate: set smtpd_tls_chain_files or smtpd_tls_cert_file");
  warnSelfSigned(keys.cert);
  const ca = s.askCcert ? loadCaCerts(cfg.get("smtpd_tls_CAfile"), cfg.get("smtpd_tls_CApath")) : [];
  s.caCerts = ca.map((pem) => new X509Certificate(pem));
  const timeout = cfg.time("smtpd_tls_session_cache_timeout");
  let secureOptions =
    protos.secureOptions | constants.SSL_OP_NO_RENEGOTIATION | constants.SSL_OP_NO_COMPRESSION;
  const tickets = timeout > 0 && ticketCipherAllows(cfg.get("tls_session_ticket_cipher"));
  if (!tickets) secureOptions |= constants.SSL_OP_NO_TICKET;
  const options: SecureContextOptions = {
    key: keys.key,
    cert: keys.cert,
    ...(ca.length > 0 ? { ca } : {}),
    ciphers: ciphers.ciphers,
    minVersion: protos.minVersion,
    maxVersion: protos.maxVersion,
    secureOptions,
    honorCipherOrder: cfg.bool("tls_preempt_cipherlist"),
    ecdhCurve: cfg.list("tls_eecdh_auto_curves").join(":") || "auto",
    sessionTimeout: Math.max(1, timeout),
    // Sessions (and tickets) are valid for this service's settings only, as Postfix ties them to the service.
    sessionIdContext: createHash("sha256")
      .update(cfg.get("service_name") || "smtpd")
      .digest("hex")
      .slice(0, 32),
  };
  const cache = timeout > 0 && cfg.get("smtpd_tls_session_cache_database").trim() !== "";
  s.shared = new SmtpdTlsmgr(cfg, options, { tickets, cache, timeout });
  return createSecureContext(options);
}

/** Says so when a server certificate is self-signed (the embedded default makes one). */
function warnSelfSigned(certs: readonly string[]): void {
  for (const pem of certs) {
    try {
      const c = new X509Certificate(pem);
      if (c.subject === c.issuer && c.verify(c.publicKey))
        msg.info(
          `using a self-signed server certificate (${c.subject.replace(/\n/g, ", ")}); clients that verify certificates will not trust it`,
        );
    } catch {
      /* createSecureContext reports unreadable certificates */
    }
  }
}

/** The EHLO keyword when STARTTLS may be offered now. */
export function starttlsOffered(s: SmtpdTls, active: boolean): boolean {
  return s.level !== "none" && !s.wrapper && !active && s.context !== null;
}

/** The refusal of a STARTTLS command, or null when the handshake may start. */
export function starttlsRefusal(
  s: SmtpdTls,
  arg: string,
  active: boolean,
  discarded: boolean,
): string | null {
  if (arg !== "") return "501 5.5.4 Syntax: STARTTLS";
  if (active) return "554 5.5.1 Error: TLS already active";
  if (s.level === "none" || discarded) return "502 5.5.1 Error: command not implemented";
  if (s.context === null) return "454 4.7.0 TLS not available due to local problem";
  return null;
}

export type StartResult = { ok: true; sock: TLSSocket; info: TlsInfo } | { ok: false; reason: string };

/** Runs the server side of the TLS handshake on a plain socket. */
export async function startTls(s: SmtpdTls, raw: Socket, client: string): Promise<StartResult> {
  let context = s.context;
  if (context === null) return { ok: false, reason: "no TLS context" };
  if (s.shared !== null) {
    // The client may go away while tlsmgr is asked; the handshake below reports that.
    const ignore = (): void => {};
    raw.on("error", ignore);
    context = await s.shared.context(context);
    raw.removeListener("error", ignore);
    if (raw.destroyed) return { ok: false, reason: "lost connection" };
  }
  // Replies are small and each one is awaited by the client: no Nagle delay under TLS records.
  raw.setNoDelay(true);
  const sock = new TLSSocket(raw, {
    isServer: true,
    secureContext: context,
    requestCert: s.askCcert,
    rejectUnauthorized: false,
    ...(s.shared?.socketOptions() ?? {}),
  });
  return new Promise((resolve) => {
    const done = (r: StartResult): void => {
      clearTimeout(timer);
      sock.removeListener("secure", onSecure);
      sock.removeListener("error", onError);
      sock.removeListener("close", onClose);
      resolve(r);
    };
    const onSecure = (): void => done({ ok: true, sock, info: tlsInfo(s, sock) });
    const onError = (err: Error): void => {
      msg.info(`SSL_accept error from ${client}: ${err.message}`);
      sock.destroy();
      done({ ok: false, reason: err.message });
    };
    const onClose = (): void => done({ ok: false, reason: "lost connection" });
    const timer = setTimeout(() => {
      msg.info(`SSL_accept error from ${client}: timeout`);
      sock.destroy();
      done({ ok: false, reason: "timeout" });
    }, s.timeoutMs);
    sock.once("secure", onSecure);
    sock.once("error", onError);
    sock.once("close", onClose);
  });
}

/** The bits of a cipher by its name (used/algorithm, as Postfix shows them). */
function cipherBits(name: string): number {
  if (/AES_?256|CHACHA20|CAMELLIA256|ARIA256/i.test(name)) return 256;
  if (/AES_?128|CAMELLIA128|ARIA128/i.test(name)) return 128;
  if (/3DES|DES-CBC3/i.test(name)) return 112;
  return 0;
}

/** A certificate fingerprint in Postfix's form: hex pairs joined by colons. */
export function fingerprint(digest: string, der: Buffer): string {
  const hex = createHash(digest).update(der).digest("hex").toUpperCase();
  return (hex.match(/../g) ?? []).join(":");
}

/** Collects what the session needs to know about its TLS layer. */
function tlsInfo(s: SmtpdTls, sock: TLSSocket): TlsInfo {
  const c = sock.getCipher();
  const bits = cipherBits(c.name);
  const peer = s.askCcert ? sock.getPeerCertificate(true) : null;
  let cert: TlsInfo["cert"] = null;
  if (peer !== null && peer.raw !== undefined && peer.raw.length > 0) {
    const spki = new X509Certificate(peer.raw).publicKey.export({ type: "spki", format: "der" });
    const cn = (v: string | string[] | undefined): string => (Array.isArray(v) ? (v[0] ?? "") : (v ?? ""));
    cert = {
      cn: cn(peer.subject?.CN),
      issuer: cn(peer.issuer?.CN),
      trusted: chainTrusted(s, peer),
      fingerprint: fingerprint(s.digest, peer.raw),
      pkeyFingerprint: fingerprint(s.digest, spki),
    };
  }
  return {
    protocol: sock.getProtocol() ?? "unknown",
    cipher: c.name,
    useBits: bits,
    algBits: bits,
    reused: sock.isSessionReused(),
    cert,
  };
}

/** The certificates a client sent, leaf first (Node links them through issuerCertificate). */
function peerChain(peer: DetailedPeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<DetailedPeerCertificate>();
  for (
    let c: DetailedPeerCertificate | undefined = peer;
    c !== undefined && !seen.has(c);
    c = c.issuerCertificate
  ) {
    seen.add(c);
    if (c.raw !== undefined && c.raw.length > 0) out.push(new X509Certificate(c.raw));
    if (out.length > 20) break;
  }
  return out;
}

/** True when a certificate is within its validity period. */
function current(c: X509Certificate, now: number): boolean {
  return Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
}

/** Verifies the client's chain up to one of the configured CAs (smtpd_tls_ccert_verifydepth links at most). */
function chainTrusted(s: SmtpdTls, peer: DetailedPeerCertificate): boolean {
  const now = Date.now();
  const chain = peerChain(peer);
  let cur = chain[0];
  for (let depth = 0; cur !== undefined && depth <= s.verifyDepth; depth++) {
    if (!current(cur, now)) return false;
    const here = cur;
    const signedBy = (c: X509Certificate): boolean => here.checkIssued(c) && here.verify(c.publicKey);
    const anchor = s.caCerts.find(signedBy);
    if (anchor !== undefined) return current(anchor, now);
    cur = chain.slice(1).find((c) => c !== here && c.ca && signedBy(c));
  }
  return false;
}

/** Postfix's TLS summary log line. */
export function tlsSummary(info: TlsInfo, client: string): string {
  const kind = info.cert === null ? "Anonymous" : info.cert.trusted ? "Trusted" : "Untrusted";
  return `${kind} TLS connection ${info.reused ? "reused" : "established"} from ${client}: ${info.protocol} with cipher ${info.cipher} (${info.useBits}/${info.algBits} bits)`;
}

/** Logs the handshake's outcome as smtpd_tls_loglevel asks. */
export function logTls(s: SmtpdTls, info: TlsInfo, client: string): void {
  if (s.logLevel < 1) return;
  if (info.cert !== null)
    msg.info(
      `${client}: ${info.cert.trusted ? "Trusted" : "Untrusted"}: subject_CN=${info.cert.cn}, issuer=${info.cert.issuer}, fingerprint=${info.cert.fingerprint}, pkey_fingerprint=${info.cert.pkeyFingerprint}`,
    );
  msg.info(tlsSummary(info, client));
}

/** Strips what may not appear in a header comment. */
function commentSafe(v: string): string {
  return v.replace(/[()\\"\r\n\t]/g, "?").slice(0, 255);
}

/** The Received: header comment lines for a TLS session (each starting with a tab). */
export function tlsReceived(s: SmtpdTls, info: TlsInfo | null): string[] {
  if (!s.receivedHeader || info === null) return [];
  const lines = [
    `\t(using ${info.protocol} with cipher ${info.cipher} (${info.useBits}/${info.algBits} bits))`,
  ];
  if (info.cert !== null)
    lines.push(
      `\t(Client CN "${commentSafe(info.cert.cn)}", Issuer "${commentSafe(info.cert.issuer)}" (${info.cert.trusted ? "verified OK" : "not verified"}))`,
    );
  else
    lines.push(
      s.askCcert ? "\t(Client did not present a certificate)" : "\t(No client certificate requested)",
    );
  return lines;
}

/** permit_tls_clientcerts and permit_tls_all_clientcerts: "permit", "dunno" or "tempfail". */
export async function permitTlsClientcerts(
  s: SmtpdTls,
  info: TlsInfo | null,
  all: boolean,
): Promise<"permit" | "dunno" | "tempfail"> {
  if (info === null) return "dunno";
  if (info.cert === null) {
    if (!s.askCcert)
      msg.warn(
        `${all ? "permit_tls_all_clientcerts" : "permit_tls_clientcerts"} is requested, but "smtpd_tls_ask_ccert = no"`,
      );
    return "dunno";
  }
  if (all && info.cert.trusted) return "permit";
  for (const print of [info.cert.pkeyFingerprint, info.cert.fingerprint]) {
    for (const table of s.relayCerts) {
      const r = await dictOpen(table, { flags: DictFlag.FOLD_FIX }).lookup(print);
      if (r.status === "found") return "permit";
      if (r.status === "tempfail") {
        msg.warn(`relay_clientcerts: lookup error for fingerprint '${info.cert.fingerprint}'`);
        return "tempfail";
      }
    }
  }
  return "dunno";
}

/** The TLS attributes of a policy delegation request (empty without TLS), as Postfix sends them. */
export function policyAttrs(info: TlsInfo | null): Record<string, string> {
  return {
    ccert_subject: info?.cert?.cn ?? "",
    ccert_issuer: info?.cert?.issuer ?? "",
    ccert_fingerprint: info?.cert?.fingerprint ?? "",
    ccert_pubkey_fingerprint: info?.cert?.pkeyFingerprint ?? "",
    encryption_protocol: info?.protocol ?? "",
    encryption_cipher: info?.cipher ?? "",
    encryption_keysize: info !== null ? String(info.useBits) : "0",
  };
}

/** EHLO keywords with the TLS/AUTH ones placed where Postfix puts them (before ENHANCEDSTATUSCODES). */
export function withExtensions(list: readonly string[], extra: readonly string[]): string[] {
  const at = list.findIndex((e) => e === "ENHANCEDSTATUSCODES");
  const i = at < 0 ? list.length : at;
  return [...list.slice(0, i), ...extra, ...list.slice(i)];
}
