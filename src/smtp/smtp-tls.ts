/*
 * smtp-tls - the client side of TLS in the smtp and lmtp agents
 *
 * SYNOPSIS
 *   const st = clientTlsSettings(cfg, "smtp");           // smtp-tls-policy.ts
 *   const pol = await policyFor(st, req.nexthop);        // smtp-tls-policy.ts
 *   const r = await startClientTls(st, pol, raw, peer);  // after "220 Ready to start TLS"
 *
 * DESCRIPTION
 *   The policy (level, match names, protocols) comes from
 *   smtp-tls-policy.ts, re-exported here.
 *
 *   startClientTls() runs the handshake over the plain socket with the
 *   policy's protocols, cipher grade and exclusions, SNI
 *   (smtp_tls_servername or servername=), the client certificate and the
 *   trust anchors (smtp_tls_CAfile, smtp_tls_CApath, plus the system's with
 *   tls_append_default_CA), then checks the server as the level asks:
 *   "fingerprint" wants the certificate's or its public key's fingerprint
 *   (smtp_tls_fingerprint_digest) among the match list; "verify" and
 *   "secure" want a trusted chain and a certificate name matching one of
 *   the match names (hostname: the MX host name; nexthop: the next-hop
 *   domain; dot-nexthop and names starting with a dot: any subdomain).
 *   A handshake that fails is "Cannot start TLS: handshake failure"; a
 *   check that fails is "Server certificate not verified" (the log says
 *   why). Summaries follow smtp_tls_loglevel: at 1 "Verified|Trusted|
 *   Untrusted|Anonymous TLS connection established to host[addr]:port:
 *   TLSv1.3 with cipher ... (256/256 bits)", at 2 also the certificate,
 *   the matched name and "Reusing old session".
 *
 *   Sessions are resumed through clientSessionStore(), keyed by transport,
 *   next hop, server name, address and port and everything in the policy
 *   that decides trust (a resumed session keeps its first verification
 *   result), and kept for smtp_tls_session_cache_timeout. A resumed session
 *   shows no server certificate, so each saved session carries the
 *   certificate and trust verdict of its full handshake (wrapSession), and
 *   verify/secure check names against that one.
 */
import { X509Certificate, createHash } from "node:crypto";
import { isIP, type Socket } from "node:net";
import {
  checkServerIdentity,
  connect as tlsConnect,
  createSecureContext,
  type ConnectionOptions,
  type DetailedPeerCertificate,
  type PeerCertificate,
  type SecureContext,
  type TLSSocket,
} from "node:tls";
import type { TlsSessionStore } from "../global/tls-session-store.js";
import { openClientSessionStore } from "../global/tlsmgr-client.js";
import { msg } from "../util/msg.js";
import { hopDomain, policyKey, type ClientTlsSettings, type TlsPolicy } from "./smtp-tls-policy.js";

export * from "./smtp-tls-policy.js";

let store: TlsSessionStore | null = null;

/** The store TLS sessions are resumed from (the one place to plug in a shared store). */
export function clientSessionStore(st: ClientTlsSettings): TlsSessionStore {
  store ??= openClientSessionStore({
    queueDirectory: st.queueDirectory,
    cacheType: st.prefix === "lmtp" ? "lmtp" : "smtp",
    database: st.sessionDatabase,
    timeout: st.sessionTimeout,
  });
  return store;
}

/** The server a handshake is for. */
export interface TlsPeer {
  host: string;
  addr: string;
  port: number;
  /** "host[addr]:port" as logs name it. */
  name: string;
  /** The next hop as given (for session keys) and its domain (for nexthop matching). */
  nexthop: string;
}

export interface ClientTlsInfo {
  protocol: string;
  cipher: string;
  bits: number;
  reused: boolean;
  kind: "Anonymous" | "Untrusted" | "Trusted" | "Verified";
  cn: string;
  issuer: string;
  fingerprint: string;
  pkeyFingerprint: string;
}

export type TlsStart =
  | { ok: true; sock: TLSSocket; info: ClientTlsInfo }
  | {
      ok: false;
      text: string;
      dsn: string;
      /** Under "may": the same server may be tried again in plaintext. */
      retryPlain: boolean;
    };

/** The SNI name to send, or undefined. */
function sniName(pol: TlsPolicy, peer: TlsPeer): string | undefined {
  const n = pol.sni === "hostname" ? peer.host : pol.sni === "nexthop" ? hopDomain(peer.nexthop) : pol.sni;
  return n === "" || isIP(n) !== 0 ? undefined : n;
}

/** The session cache key of a server under a policy. */
function sessionKey(st: ClientTlsSettings, pol: TlsPolicy, peer: TlsPeer): string {
  return [
    st.service,
    peer.nexthop.toLowerCase(),
    peer.host.toLowerCase(),
    `${peer.addr}:${peer.port}`,
    policyKey(pol),
  ].join("&");
}

/** The most OpenSSL contexts kept (one per policy in use). */
const CONTEXTS_MAX = 100;
const contexts = new Map<string, SecureContext>();

/** The OpenSSL context of a policy, made once (CA certificates are parsed once, not per connection). */
function contextFor(st: ClientTlsSettings, pol: TlsPolicy): SecureContext {
  const key = `${st.service}&${policyKey(pol)}`;
  const hit = contexts.get(key);
  if (hit !== undefined) return hit;
  const n = pol.node;
  const ctx = createSecureContext({
    ca: pol.ca ?? st.ca,
    ...(n !== null
      ? {
          minVersion: n.minVersion as "TLSv1.2",
          maxVersion: n.maxVersion as "TLSv1.3",
          secureOptions: n.secureOptions,
          ciphers: n.ciphers,
        }
      : {}),
    ...(st.clientKeys !== null ? { key: st.clientKeys.key, cert: st.clientKeys.cert } : {}),
  });
  if (contexts.size >= CONTEXTS_MAX) contexts.delete(contexts.keys().next().value ?? "");
  contexts.set(key, ctx);
  return ctx;
}

/** Builds Node's connection options for a policy. */
export function connectOptions(st: ClientTlsSettings, pol: TlsPolicy, peer: TlsPeer): ConnectionOptions {
  const sni = sniName(pol, peer);
  return {
    secureContext: contextFor(st, pol),
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
    ...(sni !== undefined ? { servername: sni } : {}),
  };
}

/** Runs the TLS handshake on a plain socket and checks the server as the policy asks. */
export async function startClientTls(
  st: ClientTlsSettings,
  pol: TlsPolicy,
  raw: Socket,
  peer: TlsPeer,
): Promise<TlsStart> {
  const cache = clientSessionStore(st);
  const key = sessionKey(st, pol, peer);
  const saved = st.sessionTimeout > 0 ? unwrapSession(await cache.get(key)) : null;
  const opts: ConnectionOptions = {
    ...connectOptions(st, pol, peer),
    socket: raw,
    ...(saved !== null ? { session: saved.session } : {}),
  };
  const sock = tlsConnect(opts);
  // A session is saved with what the full handshake learnt of the server, known only after the check below.
  let learnt: PeerFacts | null = null;
  let early: Buffer | null = null;
  sock.on("session", (s: Buffer) => {
    if (learnt !== null) cache.put(key, wrapSession(s, learnt), st.sessionTimeout);
    else early = s;
  });
  const up = await new Promise<string | null>((resolve) => {
    const timer = setTimeout(() => done("timeout"), st.handshakeTimeout * 1000);
    const done = (why: string | null): void => {
      clearTimeout(timer);
      sock.off("secureConnect", onOk);
      sock.off("error", onErr);
      sock.off("close", onClose);
      resolve(why);
    };
    const onOk = (): void => done(null);
    const onErr = (err: Error): void => done(err.message);
    const onClose = (): void => done("lost connection");
    sock.once("secureConnect", onOk);
    sock.once("error", onErr);
    sock.once("close", onClose);
  });
  if (up !== null) {
    sock.on("error", () => undefined);
    sock.destroy();
    if (saved !== null) cache.remove(key);
    msg.info(`SSL_connect error to ${peer.name}: ${up}`);
    return {
      ok: false,
      text: "Cannot start TLS: handshake failure",
      dsn: "4.7.5",
      retryPlain: pol.level === "may",
    };
  }
  sock.on("error", () => undefined);
  const check = examinePeer(st, pol, sock, peer, saved?.peer ?? null);
  if (check.failure !== null) {
    cache.remove(key);
    sock.destroy();
    return { ok: false, text: "Server certificate not verified", dsn: "4.7.5", retryPlain: false };
  }
  learnt = check.peer;
  if (early !== null) cache.put(key, wrapSession(early, learnt), st.sessionTimeout);
  return { ok: true, sock, info: check.info };
}

/** What a full handshake learnt of the server: its certificate (DER, empty: none) and whether it was trusted. */
export interface PeerFacts {
  cert: Buffer;
  trusted: boolean;
}

const SESSION_MAGIC = 0x50535431; // "PST1"

/**
 * A session as the store keeps it: magic, trusted flag, certificate length
 * and certificate, then Node's serialized session. A resumed session shows
 * no peer certificate, so the name checks of verify and secure use the one
 * saved here (the session key names the trust settings it was checked by).
 */
export function wrapSession(session: Buffer, peer: PeerFacts): Buffer {
  const head = Buffer.alloc(9);
  head.writeUInt32BE(SESSION_MAGIC, 0);
  head.writeUInt8(peer.trusted ? 1 : 0, 4);
  head.writeUInt32BE(peer.cert.length, 5);
  return Buffer.concat([head, peer.cert, session]);
}

/** The session and server facts of a saved entry; null for none or for one in another format. */
export function unwrapSession(b: Buffer | null): { session: Buffer; peer: PeerFacts } | null {
  if (b === null || b.length < 9 || b.readUInt32BE(0) !== SESSION_MAGIC) return null;
  const len = b.readUInt32BE(5);
  if (9 + len >= b.length) return null;
  return {
    peer: { trusted: b.readUInt8(4) === 1, cert: b.subarray(9, 9 + len) },
    session: b.subarray(9 + len),
  };
}

/** Names in a certificate: DNS subjectAltNames, or the CN when there are none. */
function certNames(cert: PeerCertificate): string[] {
  const san = (cert.subjectaltname ?? "")
    .split(/,\s*/)
    .filter((s) => s.startsWith("DNS:"))
    .map((s) => s.slice(4).toLowerCase());
  if (san.length > 0) return san;
  const cn = cert.subject?.CN;
  return (Array.isArray(cn) ? cn : cn !== undefined ? [cn] : []).map((n) => n.toLowerCase());
}

/** True when a certificate matches a name ("."-prefixed: any subdomain). */
export function nameMatches(cert: PeerCertificate, name: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, "");
  if (n.startsWith(".")) {
    return certNames(cert).some(
      (c) => (c.startsWith("*.") ? c.slice(1) : c).endsWith(n) && c.length > n.length,
    );
  }
  return checkServerIdentity(n, cert) === undefined;
}

/** A fingerprint in Postfix's form (hex pairs joined by colons). */
function fingerprint(digest: string, der: Buffer): string {
  const hex = createHash(digest).update(der).digest("hex").toUpperCase();
  return (hex.match(/../g) ?? []).join(":");
}

/** The match names of a policy, resolved for this server. */
function matchNames(pol: TlsPolicy, peer: TlsPeer): string[] {
  const hop = hopDomain(peer.nexthop);
  return pol.match.map((m) => {
    const l = m.toLowerCase();
    return l === "hostname" ? peer.host : l === "nexthop" ? hop : l === "dot-nexthop" ? `.${hop}` : m;
  });
}

/** The length of the chain the server sent. */
function chainLength(cert: DetailedPeerCertificate): number {
  let n = 0;
  const seen = new Set<unknown>();
  for (
    let c: DetailedPeerCertificate | undefined = cert;
    c !== undefined && !seen.has(c) && n < 100;
    c = c.issuerCertificate
  ) {
    seen.add(c);
    if (c.raw === undefined || c.raw.length === 0) break;
    n++;
  }
  return n;
}

/** The verification error as Postfix words it. */
function verifyError(code: string, cert: PeerCertificate): string {
  if (code === "DEPTH_ZERO_SELF_SIGNED_CERT") return "self-signed certificate";
  if (
    [
      "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
      "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
      "SELF_SIGNED_CERT_IN_CHAIN",
    ].includes(code)
  ) {
    const issuer = Object.entries(cert.issuer ?? {})
      .map(([k, v]) => `/${k}=${String(v)}`)
      .join("");
    return `untrusted issuer ${issuer || "<unknown>"}`;
  }
  if (code === "CERT_HAS_EXPIRED") return "certificate has expired";
  if (code === "CERT_NOT_YET_VALID") return "certificate not yet valid";
  return code;
}

/** Classifies the server certificate, logs as smtp_tls_loglevel asks, and says whether the level is met. */
export function examinePeer(
  st: ClientTlsSettings,
  pol: TlsPolicy,
  sock: TLSSocket,
  peer: TlsPeer,
  resumed: PeerFacts | null = null,
): { info: ClientTlsInfo; failure: string | null; peer: PeerFacts } {
  const cipher = sock.getCipher();
  const bits = /AES_?256|CHACHA20|CAMELLIA256|ARIA256/i.test(cipher.name)
    ? 256
    : /AES_?128|CAMELLIA128|ARIA128/i.test(cipher.name)
      ? 128
      : 0;
  let cert = sock.getPeerCertificate(true);
  let has = cert.raw !== undefined && cert.raw.length > 0;
  const depthOk = !has || chainLength(cert) <= st.verifyDepth + 1;
  let trusted = has && sock.authorized && depthOk;
  if (!has && sock.isSessionReused() && resumed !== null && resumed.cert.length > 0) {
    // A resumed session: the server's certificate is the one its full handshake showed.
    cert = new X509Certificate(resumed.cert).toLegacyObject() as DetailedPeerCertificate;
    has = true;
    trusted = resumed.trusted && sock.authorized;
  }
  const info: ClientTlsInfo = {
    protocol: sock.getProtocol() ?? "unknown",
    cipher: cipher.name,
    bits,
    reused: sock.isSessionReused(),
    kind: !has ? "Anonymous" : trusted ? "Trusted" : "Untrusted",
    cn: "",
    issuer: "",
    fingerprint: "",
    pkeyFingerprint: "",
  };
  let failure: string | null = null;
  let matched: string | null = null;
  if (has) {
    const one = (v: string | string[] | undefined): string => (Array.isArray(v) ? (v[0] ?? "") : (v ?? ""));
    info.cn = one(cert.subject?.CN);
    info.issuer = one(cert.issuer?.CN);
    info.fingerprint = fingerprint(st.digest, cert.raw);
    const spki = new X509Certificate(cert.raw).publicKey.export({ type: "spki", format: "der" });
    info.pkeyFingerprint = fingerprint(st.digest, spki);
  }
  if (pol.level === "fingerprint") {
    const norm = (f: string): string => f.replace(/:/g, "").toUpperCase();
    const want = new Set(pol.match.map(norm));
    if (has && (want.has(norm(info.fingerprint)) || want.has(norm(info.pkeyFingerprint))))
      matched = "fingerprint";
    else failure = has ? "fingerprint mismatch" : "no certificate";
  } else if (pol.level === "verify" || pol.level === "secure") {
    if (!trusted) {
      const code = !depthOk
        ? "CERT_CHAIN_TOO_LONG"
        : (sock.authorizationError?.toString() ?? "no certificate");
      failure = has ? verifyError(code, cert) : "no certificate";
    } else {
      matched = matchNames(pol, peer).find((n) => nameMatches(cert, n)) ?? null;
      if (matched === null) failure = "num=62:hostname mismatch";
    }
  }
  if (matched !== null) info.kind = "Verified";
  if (st.logLevel >= 2 && info.reused) msg.info(`${peer.name}: Reusing old session`);
  if (st.logLevel >= 2 && has)
    msg.info(
      `${peer.name}: subject_CN=${info.cn}, issuer=${info.issuer}, cert fingerprint=${info.fingerprint}, pkey fingerprint=${info.pkeyFingerprint}`,
    );
  if (st.logLevel >= 2 && matched !== null && matched !== "fingerprint")
    msg.info(`${peer.name}: matched peername: ${matched}`);
  if (failure !== null) {
    if (info.reused)
      msg.info(
        `${peer.name}: re-using session with untrusted peer credential, look for details earlier in the log`,
      );
    else msg.info(`server certificate verification failed for ${peer.name}: ${failure}`);
  }
  if (st.logLevel >= 1) msg.info(tlsSummaryLine(info, peer.name));
  return { info, failure, peer: { cert: has ? cert.raw : Buffer.alloc(0), trusted } };
}

/** Postfix's client summary line. */
export function tlsSummaryLine(info: ClientTlsInfo, name: string): string {
  return `${info.kind} TLS connection established to ${name}: ${info.protocol} with cipher ${info.cipher} (${info.bits}/${info.bits} bits)`;
}
