/*
 * smtp-tls-policy - the TLS security level of a delivery in the smtp and lmtp agents
 *
 * SYNOPSIS
 *   const st = clientTlsSettings(cfg, "smtp");           // once per process
 *   const pol = await policyFor(st, req.nexthop);        // per delivery
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
 */
import { constants, createHash, getHashes } from "node:crypto";
import { isIP } from "node:net";
import { rootCertificates } from "node:tls";
import type { Config } from "../global/config.js";
import { dictOpen, DictFlag } from "../global/dict.js";
import { loadCaCerts, loadServerKeys, tlsCipherList, tlsProtocols } from "../global/tls-config.js";
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
