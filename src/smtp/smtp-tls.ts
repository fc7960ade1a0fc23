/*
 * smtp-tls - the client side of TLS in the smtp and lmtp agents
 *
 * SYNOPSIS
 *   const st = clientTlsSettings(cfg, "smtp");           // once per process
 *   const pol = await policyFor(st, req.nexthop);        // per delivery
 *   const r = await startClientTls(st, pol, raw, peer);  // after "220 Ready to start TLS"
 *
 * DESCRIPTION
 *   The security level of a delivery, as Postfix's smtp(8) decides it:
 *   smtp_tls_security_level (or the older smtp_use_tls, smtp_enforce_tls
 *   and smtp_tls_enforce_peername), then smtp_tls_policy_maps looked up
 *   with the next-hop destination: a domain is looked up as itself and
 *   then as its parent domains with a leading dot (".example.com",
 *   ".com"); [host], [host]:port and host:port forms (explicit next hops)
 *   only as they are. A table entry is a level followed by attributes:
 *   match= (names for verify and secure, separated by ":"; fingerprints
 *   for fingerprint, separated by "|"; may repeat), protocols=, ciphers=,
 *   exclude=, servername= and tafile= (CA files that replace
 *   smtp_tls_CAfile for verify and secure); "{ name = value }" protects
 *   values with spaces. A bad entry, a table that cannot be read, or
 *   implicit TLS (smtp_tls_wrappermode) below "encrypt" make the policy
 *   invalid: the delivery is deferred with "client TLS configuration
 *   problem" and the reason is logged as a warning. "dane" works as "may"
 *   and "dane-only" as "encrypt" (DANE is not part of this build), with a
 *   warning.
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
import { X509Certificate, constants, createHash, getHashes } from "node:crypto";
import { isIP, type Socket } from "node:net";
import {
  checkServerIdentity,
  connect as tlsConnect,
  rootCertificates,
  createSecureContext,
  type ConnectionOptions,
  type DetailedPeerCertificate,
  type PeerCertificate,
  type SecureContext,
  type TLSSocket,
} from "node:tls";
import type { Config } from "../global/config.js";
import { dictOpen, DictFlag } from "../global/dict.js";
import { loadCaCerts, loadServerKeys, tlsCipherList, tlsProtocols } from "../global/tls-config.js";
import type { TlsSessionStore } from "../global/tls-session-store.js";
import { openClientSessionStore } from "../global/tlsmgr-client.js";
import { msg } from "../util/msg.js";

export type ClientTlsLevel = "none" | "may" | "encrypt" | "fingerprint" | "verify" | "secure";

const RANK: Record<ClientTlsLevel, number> = {
  none: 0,
  may: 1,
  encrypt: 2,
  fingerprint: 3,
  verify: 4,
  secure: 5,
};

/** The longest policy table value that is parsed. */
const POLICY_VALUE_MAX = 4096;

/** True when the level forbids plaintext. */
export function tlsRequired(level: ClientTlsLevel): boolean {
  return RANK[level] >= RANK.encrypt;
}

/** True when the level checks the server's certificate. */
export function mustMatch(level: ClientTlsLevel): boolean {
  return RANK[level] >= RANK.fingerprint;
}

export interface ClientTlsSettings {
  /** "smtp" or "lmtp": the parameter prefix. */
  prefix: string;
  /** The master.cf service (transport): settings may differ per service, so session keys name it. */
  service: string;
  globalLevel: ClientTlsLevel;
  policyMaps: string[];
  protocols: string;
  mandatoryProtocols: string;
  ciphers: string;
  mandatoryCiphers: string;
  exclude: string[];
  mandatoryExclude: string[];
  verifyMatch: string[];
  secureMatch: string[];
  fingerprintMatch: string[];
  digest: string;
  servername: string;
  wrapper: boolean;
  logLevel: number;
  noteStarttlsOffer: boolean;
  sessionTimeout: number;
  /** smtp_tls_session_cache_database: non-empty shares sessions between agents through tlsmgr. */
  sessionDatabase: string;
  queueDirectory: string;
  connectionReuse: boolean;
  handshakeTimeout: number;
  verifyDepth: number;
  /** Trust anchors (PEM); [] trusts nothing. */
  ca: string[];
  clientKeys: { key: string[]; cert: string[] } | null;
  /** A problem with the CA or client certificate files: TLS cannot be used. */
  problem: string | null;
  /** The OpenSSL cipher list of a grade with exclusions. */
  cipherList: (
    grade: string,
    exclude: readonly string[],
  ) => { ok: true; ciphers: string } | { ok: false; error: string };
}

/** What a delivery's TLS policy says. */
export interface TlsPolicy {
  level: ClientTlsLevel;
  protocols: string;
  grade: string;
  exclude: string[];
  match: string[];
  sni: string;
  /** Trust anchors that replace the global ones (tafile=); null: the global ones. */
  ca: string[] | null;
  /** Why the policy cannot be used (logged already); deliveries defer. */
  invalid: string | null;
  node: { minVersion: string; maxVersion: string; secureOptions: number; ciphers: string } | null;
}

/** Parses a level name; dane levels map to what this build can do. */
export function parseLevel(word: string, where: string): ClientTlsLevel | null {
  const w = word.trim().toLowerCase();
  if (w in RANK) return w as ClientTlsLevel;
  if (w === "dane" || w === "dane-only") {
    const as = w === "dane" ? "may" : "encrypt";
    warnOnce(
      `${where}: TLS security level "${w}" is not supported yet (no DANE in this build): using "${as}"`,
    );
    return as;
  }
  return null;
}

const warned = new Set<string>();

/** Logs a warning once per process. */
function warnOnce(text: string): void {
  if (warned.has(text) || warned.size > 1000) return;
  warned.add(text);
  msg.warn(text);
}

/** The global level from the new parameter or the older ones; a bad value is fatal, as in Postfix. */
function globalLevel(cfg: Config, p: (n: string) => string): ClientTlsLevel {
  const v = cfg.get(p("tls_security_level")).trim();
  if (v !== "") {
    const l = parseLevel(v, p("tls_security_level"));
    if (l === null) return msg.fatal(`invalid tls security level: "${v}"`);
    return l;
  }
  if (cfg.bool(p("enforce_tls"))) return cfg.bool(p("tls_enforce_peername")) ? "verify" : "encrypt";
  return cfg.bool(p("use_tls")) ? "may" : "none";
}

/** Reads the client TLS settings of one mode (smtp_* or lmtp_*). */
export function clientTlsSettings(cfg: Config, prefix: "smtp" | "lmtp"): ClientTlsSettings {
  const p = (n: string): string => `${prefix}_${n}`;
  const st: ClientTlsSettings = {
    prefix,
    service: cfg.get("service_name") || prefix,
    globalLevel: globalLevel(cfg, p),
    policyMaps: cfg.list(p("tls_policy_maps")),
    protocols: cfg.get(p("tls_protocols")),
    mandatoryProtocols: cfg.get(p("tls_mandatory_protocols")),
    ciphers: cfg.get(p("tls_ciphers")),
    mandatoryCiphers: cfg.get(p("tls_mandatory_ciphers")),
    exclude: cfg.list(p("tls_exclude_ciphers")),
    mandatoryExclude: cfg.list(p("tls_mandatory_exclude_ciphers")),
    verifyMatch: splitMatch(cfg.get(p("tls_verify_cert_match")), /[\s,:]+/),
    secureMatch: splitMatch(cfg.get(p("tls_secure_cert_match")), /[\s,:]+/),
    fingerprintMatch: splitMatch(cfg.get(p("tls_fingerprint_cert_match")), /[\s,]+/),
    digest: cfg.get(p("tls_fingerprint_digest")).trim().toLowerCase(),
    servername: cfg.get(p("tls_servername")).trim(),
    wrapper: cfg.bool(p("tls_wrappermode")),
    logLevel: cfg.int(p("tls_loglevel")),
    noteStarttlsOffer: cfg.bool(p("tls_note_starttls_offer")),
    sessionTimeout: cfg.time(p("tls_session_cache_timeout")),
    sessionDatabase: cfg.get(p("tls_session_cache_database")).trim(),
    queueDirectory: cfg.get("queue_directory"),
    connectionReuse: cfg.bool(p("tls_connection_reuse")),
    handshakeTimeout: cfg.time(p("starttls_timeout")),
    verifyDepth: cfg.int(p("tls_scert_verifydepth")),
    ca: [],
    clientKeys: null,
    problem: null,
    cipherList: (grade, exclude) => tlsCipherList(cfg, grade, exclude),
  };
  if (!getHashes().includes(st.digest))
    return msg.fatal(`unknown ${p("tls_fingerprint_digest")} "${st.digest}"`);
  try {
    const ca = loadCaCerts(cfg.get(p("tls_CAfile")), cfg.get(p("tls_CApath")));
    st.ca = cfg.bool("tls_append_default_CA") ? [...rootCertificates, ...ca] : ca;
    const keys = loadServerKeys({
      chainFiles: cfg.list(p("tls_chain_files")),
      pairs: [{ cert: cfg.get(p("tls_cert_file")), key: cfg.get(p("tls_key_file")) }],
    });
    if (keys.key.length > 0) st.clientKeys = keys;
  } catch (err) {
    st.problem = (err as Error).message;
    if (st.globalLevel !== "none" || st.policyMaps.length > 0) msg.warn(`cannot use TLS: ${st.problem}`);
  }
  return st;
}

/** A match list split by separators (empty words dropped). */
function splitMatch(text: string, sep: RegExp): string[] {
  return text.split(sep).filter((w) => w !== "");
}

/** A policy table entry before defaults are filled in. */
export interface SitePolicy {
  level: ClientTlsLevel;
  protocols?: string;
  grade?: string;
  exclude?: string[];
  match?: string[];
  sni?: string;
  tafile?: string[];
}

/** Splits a policy value into words at commas and white space, keeping "{ ... }" groups whole. */
export function policyWords(value: string): string[] | string {
  const out: string[] = [];
  let i = 0;
  while (i < value.length) {
    const c = value[i] ?? "";
    if (/[\s,]/.test(c)) {
      i++;
      continue;
    }
    if (c === "{") {
      const end = value.indexOf("}", i);
      if (end < 0) return `missing "}" in "${value.slice(i)}"`;
      out.push(
        value
          .slice(i + 1, end)
          .trim()
          .replace(/\s+/g, " "),
      );
      i = end + 1;
      continue;
    }
    let j = i;
    while (j < value.length && !/[\s,]/.test(value[j] ?? "")) j++;
    out.push(value.slice(i, j));
    i = j;
  }
  return out;
}

const HOSTNAME =
  /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}[a-z0-9_])?)*\.?$/i;

/** Parses one policy table value; a string result is the warning text (without the "where" part). */
export function parsePolicy(value: string, where: string): SitePolicy | string {
  if (value.length > POLICY_VALUE_MAX) return `policy longer than ${POLICY_VALUE_MAX} characters`;
  const words = policyWords(value);
  if (typeof words === "string") return `malformed attribute/value pair: ${words}`;
  const first = words[0];
  if (first === undefined) return "invalid empty policy";
  const level = parseLevel(first, where);
  if (level === null) return `invalid security level "${first}"`;
  const out: SitePolicy = { level };
  if (level === "none") {
    for (const w of words.slice(1)) msg.warn(`${where}: ignoring attribute "${w}" with TLS disabled`);
    return out;
  }
  for (const w of words.slice(1)) {
    const eq = w.indexOf("=");
    if (eq <= 0) return `malformed attribute/value pair "${w}": missing '='`;
    const name = w.slice(0, eq).trim().toLowerCase();
    const val = w.slice(eq + 1).trim();
    const once = (have: unknown): string | null =>
      have !== undefined ? `attribute "${name}" is specified multiple times` : null;
    if (val === "" && name !== "protocols" && name !== "exclude")
      return `attribute "${name}" has empty value`;
    if (name === "ciphers") {
      const e = once(out.grade);
      if (e !== null) return e;
      out.grade = val;
    } else if (name === "protocols") {
      const e = once(out.protocols);
      if (e !== null) return e;
      out.protocols = val;
    } else if (name === "exclude") {
      const e = once(out.exclude);
      if (e !== null) return e;
      out.exclude = val.split(/[\s,:]+/).filter((x) => x !== "");
    } else if (name === "servername") {
      const e = once(out.sni);
      if (e !== null) return e;
      if (!HOSTNAME.test(val)) return `"servername=${val}" specifies an invalid hostname`;
      out.sni = val;
    } else if (name === "match") {
      if (level === "fingerprint") out.match = [...(out.match ?? []), ...splitMatch(val, /\|/)];
      else if (level === "verify" || level === "secure")
        out.match = [...(out.match ?? []), ...splitMatch(val, /:/)];
      else return `attribute "match" invalid at security level "${level}"`;
    } else if (name === "tafile") {
      if (level !== "verify" && level !== "secure")
        return `attribute "tafile" invalid at security level "${level}"`;
      out.tafile = [...(out.tafile ?? []), ...splitMatch(val, /[\s,]+/)];
    } else return `invalid attribute name: "${name}"`;
  }
  return out;
}

/** Fills in the main.cf defaults of a level and checks what OpenSSL will be given. */
export function finishPolicy(st: ClientTlsSettings, site: SitePolicy, nexthop: string): TlsPolicy {
  const level = site.level;
  const mandatory = level !== "may";
  const pol: TlsPolicy = {
    level,
    protocols: site.protocols ?? (mandatory ? st.mandatoryProtocols : st.protocols),
    grade: site.grade ?? (mandatory ? st.mandatoryCiphers : st.ciphers),
    exclude: site.exclude ?? [...st.exclude, ...(mandatory ? st.mandatoryExclude : [])],
    match: [],
    sni: site.sni ?? st.servername,
    ca: null,
    invalid: null,
    node: null,
  };
  if (level === "none") return pol;
  const bad = (why: string): TlsPolicy => {
    msg.warn(why);
    return { ...pol, invalid: why };
  };
  if (st.wrapper && !tlsRequired(level))
    return bad(
      `${st.prefix}_tls_wrappermode requires "${st.prefix}_tls_security_level = encrypt" (or stronger)`,
    );
  if (st.problem !== null) {
    if (tlsRequired(level)) return bad(`TLS is required, but cannot be used: ${st.problem}`);
    return { ...pol, level: "none" };
  }
  if (level === "encrypt") pol.exclude.push("eNULL");
  if (mustMatch(level)) pol.exclude.push("aNULL");
  if (level === "fingerprint") {
    pol.match = site.match ?? st.fingerprintMatch;
    if (pol.match.length === 0)
      return bad(
        `nexthop domain ${nexthop}: configured at fingerprint security level, but with no fingerprints to match.`,
      );
  } else if (level === "verify" || level === "secure")
    pol.match = site.match ?? (level === "verify" ? st.verifyMatch : st.secureMatch);
  if (site.tafile !== undefined) {
    try {
      pol.ca = site.tafile.flatMap((f) => loadCaCerts(f, ""));
    } catch (err) {
      return bad(`nexthop domain ${nexthop}: tafile: ${(err as Error).message}`);
    }
  }
  if (pol.sni !== "" && !["hostname", "nexthop"].includes(pol.sni) && !HOSTNAME.test(pol.sni))
    return bad(`"${st.prefix}_tls_servername = ${pol.sni}" specifies an invalid hostname`);
  const protos = tlsProtocols(pol.protocols);
  if (!protos.ok) return bad(`nexthop domain ${nexthop}: ${protos.error}`);
  const ciphers = st.cipherList(pol.grade, pol.exclude);
  if (!ciphers.ok) return bad(`nexthop domain ${nexthop}: ${ciphers.error}`);
  pol.node = {
    minVersion: protos.minVersion,
    maxVersion: protos.maxVersion,
    secureOptions: protos.secureOptions | constants.SSL_OP_NO_RENEGOTIATION | constants.SSL_OP_NO_COMPRESSION,
    ciphers: ciphers.ciphers,
  };
  return pol;
}

/** The policy table keys of a next hop, in lookup order. */
export function policyKeys(nexthop: string): string[] {
  const dest = nexthop
    .trim()
    .replace(/^inet:/i, "")
    .toLowerCase();
  if (!HOSTNAME.test(dest) || isIP(dest) !== 0) return [dest];
  const out = [dest];
  for (let at = dest.indexOf(".", 1); at >= 0; at = dest.indexOf(".", at + 1)) out.push(dest.slice(at));
  return out;
}

/** The policy of a next hop: the global level, overridden by smtp_tls_policy_maps. */
export async function policyFor(st: ClientTlsSettings, nexthop: string): Promise<TlsPolicy> {
  const title = `${st.prefix}_tls_policy_maps`;
  for (const key of st.policyMaps.length > 0 ? policyKeys(nexthop) : []) {
    for (const table of st.policyMaps) {
      const where = `${title}, next-hop destination "${key}"`;
      const r = await dictOpen(table, { flags: DictFlag.FOLD_FIX }).lookup(key);
      if (r.status === "notfound") continue;
      if (r.status === "tempfail") {
        msg.warn(`${where}: policy table lookup error: ${r.reason}`);
        return invalidPolicy(`${where}: policy table lookup error`);
      }
      const site = parsePolicy(r.value, where);
      if (typeof site === "string") {
        msg.warn(`${where}: ${site}`);
        return invalidPolicy(`${where}: ${site}`);
      }
      return finishPolicy(st, site, hopDomain(nexthop));
    }
  }
  return finishPolicy(st, { level: st.globalLevel }, hopDomain(nexthop));
}

/** A policy that defers the delivery. */
function invalidPolicy(why: string): TlsPolicy {
  return {
    level: "none",
    protocols: "",
    grade: "",
    exclude: [],
    match: [],
    sni: "",
    ca: null,
    invalid: why,
    node: null,
  };
}

/** The next-hop domain of a next hop ("example.com" of "[example.com]:587"). */
export function hopDomain(nexthop: string): string {
  let s = nexthop.trim().replace(/^inet:/i, "");
  const br = /^\[([^\]]+)\]/.exec(s);
  if (br !== null) return (br[1] ?? "").replace(/^ipv6:/i, "").toLowerCase();
  const colon = s.lastIndexOf(":");
  if (colon > 0 && isIP(s) !== 6) s = s.slice(0, colon);
  return s.toLowerCase();
}

/** What decides trust and the handshake: part of session and connection cache keys. */
export function policyKey(pol: TlsPolicy): string {
  if (pol.level === "none") return "none";
  const ca = pol.ca === null ? "" : createHash("sha256").update(pol.ca.join("")).digest("hex").slice(0, 16);
  return [pol.level, pol.protocols, pol.grade, pol.exclude.join(":"), pol.match.join(":"), pol.sni, ca].join(
    "&",
  );
}

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
