/*
 * tls-config - Postfix's TLS settings turned into Node's (protocols, ciphers, keys)
 *
 * SYNOPSIS
 *   const p = tlsProtocols(">=TLSv1.2");   // { ok, minVersion, maxVersion, secureOptions }
 *   const c = tlsCipherList(cfg, "medium", ["aNULL"]);
 *   const k = loadServerKeys({ chainFiles: [...], rsa: {...}, ec: {...} });
 *
 * DESCRIPTION
 *   tlsProtocols() reads Postfix's protocol syntax: a list (separated by
 *   white space, commas or colons) of protocol names to include ("TLSv1.2
 *   TLSv1.3"), names to exclude ("!SSLv2, !SSLv3"), and bounds (">=TLSv1.2",
 *   "<=TLSv1.3"). The result is the lowest and highest enabled version plus
 *   OpenSSL's "no TLSvX" options for holes in between. SSLv2 and SSLv3 are
 *   never available (Node's OpenSSL has no code for them).
 *   tlsCipherList() maps a cipher grade (high, medium, low, export, null) to
 *   the tls_<grade>_cipherlist parameter, appends the exclusions as "!name",
 *   and adds the TLS 1.3 suites (which Node configures from the same list;
 *   without them it would switch TLS 1.3 off).
 *   loadServerKeys() reads the private keys and certificate chains: the
 *   smtpd_tls_chain_files form (each file: a key followed by its chain,
 *   several such groups allowed) or the older cert_file/key_file pairs.
 *   Every file is read with a size limit; a bad file is an error that names it.
 */
import { constants } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import type { Config } from "./config.js";

export const TLS_VERSIONS = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"] as const;
export type TlsVersion = (typeof TLS_VERSIONS)[number];
const ALL_NAMES = ["SSLv2", "SSLv3", ...TLS_VERSIONS];
const NO_FLAG: Record<TlsVersion, number> = {
  TLSv1: constants.SSL_OP_NO_TLSv1,
  "TLSv1.1": constants.SSL_OP_NO_TLSv1_1,
  "TLSv1.2": constants.SSL_OP_NO_TLSv1_2,
  "TLSv1.3": constants.SSL_OP_NO_TLSv1_3,
};
const TLS13_SUITES = ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"];
const PEM_FILE_MAX = 1 << 20;

export type TlsProtocols =
  | { ok: true; minVersion: TlsVersion; maxVersion: TlsVersion; secureOptions: number }
  | { ok: false; error: string };

/** Parses a Postfix TLS protocol list. */
export function tlsProtocols(spec: string): TlsProtocols {
  const words = spec.split(/[\s,:]+/).filter((w) => w !== "");
  let lo = 0;
  let hi = ALL_NAMES.length - 1;
  const excluded = new Set<string>();
  const included = new Set<string>();
  for (const w of words) {
    const m = /^(!|>=|<=)?(.*)$/.exec(w);
    const op = m?.[1] ?? "";
    const name = m?.[2] ?? "";
    const at = ALL_NAMES.findIndex((n) => n.toLowerCase() === name.toLowerCase());
    if (at < 0) return { ok: false, error: `unknown TLS protocol "${name}" in "${spec}"` };
    if (op === "!") excluded.add(ALL_NAMES[at] ?? "");
    else if (op === ">=") lo = Math.max(lo, at);
    else if (op === "<=") hi = Math.min(hi, at);
    else included.add(ALL_NAMES[at] ?? "");
  }
  const on = TLS_VERSIONS.filter((v) => {
    const at = ALL_NAMES.indexOf(v);
    return at >= lo && at <= hi && !excluded.has(v) && (included.size === 0 || included.has(v));
  });
  const min = on[0];
  const max = on[on.length - 1];
  if (min === undefined || max === undefined)
    return { ok: false, error: `no TLS protocol left by "${spec}"` };
  let secureOptions = 0;
  for (const v of TLS_VERSIONS.slice(TLS_VERSIONS.indexOf(min), TLS_VERSIONS.indexOf(max) + 1))
    if (!on.includes(v)) secureOptions |= NO_FLAG[v];
  return { ok: true, minVersion: min, maxVersion: max, secureOptions };
}

/** The OpenSSL cipher list of a grade with its exclusions, TLS 1.3 suites included. */
export function tlsCipherList(
  cfg: Config,
  grade: string,
  exclude: readonly string[],
): { ok: true; ciphers: string } | { ok: false; error: string } {
  const g = grade.trim().toLowerCase();
  if (!["high", "medium", "low", "export", "null"].includes(g))
    return { ok: false, error: `invalid cipher grade "${grade}" (high, medium, low, export or null)` };
  const base = cfg.get(`tls_${g}_cipherlist`).trim();
  const gone = new Set(exclude.map((e) => e.toUpperCase()));
  const suites = TLS13_SUITES.filter((s) => !gone.has(s));
  const parts = [base, ...exclude.filter((e) => !e.startsWith("TLS_")).map((e) => `!${e}`), ...suites];
  return { ok: true, ciphers: parts.filter((p) => p !== "").join(":") };
}

export interface ServerKeys {
  key: string[];
  cert: string[];
}

/** Reads a PEM file with a size limit. */
function readPem(file: string): string {
  const st = statSync(file);
  if (st.size > PEM_FILE_MAX) throw new Error(`${file}: larger than ${PEM_FILE_MAX} bytes`);
  return readFileSync(file, "latin1");
}

/** The PEM blocks of a text, in order. */
function pemBlocks(text: string): Array<{ label: string; pem: string }> {
  const out: Array<{ label: string; pem: string }> = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) out.push({ label: m[1] ?? "", pem: m[0] });
  return out;
}

/** Splits a chain file into key + chain groups. */
function chainGroups(file: string): ServerKeys {
  const out: ServerKeys = { key: [], cert: [] };
  let certs: string[] = [];
  const flush = (): void => {
    if (out.key.length > out.cert.length) {
      if (certs.length === 0) throw new Error(`${file}: a private key without a certificate`);
      out.cert.push(certs.join("\n") + "\n");
    }
    certs = [];
  };
  for (const b of pemBlocks(readPem(file))) {
    if (b.label.endsWith("PRIVATE KEY")) {
      flush();
      out.key.push(b.pem + "\n");
    } else if (b.label === "CERTIFICATE") {
      if (out.key.length === 0) throw new Error(`${file}: a certificate before its private key`);
      certs.push(b.pem);
    }
  }
  flush();
  if (out.key.length === 0) throw new Error(`${file}: no private key found`);
  return out;
}

/** Loads the server's keys and certificate chains; throws an Error naming the file at fault. */
export function loadServerKeys(opts: {
  chainFiles: readonly string[];
  pairs: ReadonlyArray<{ cert: string; key: string }>;
}): ServerKeys {
  const out: ServerKeys = { key: [], cert: [] };
  if (opts.chainFiles.length > 0) {
    for (const f of opts.chainFiles) {
      const g = chainGroups(f);
      out.key.push(...g.key);
      out.cert.push(...g.cert);
    }
    return out;
  }
  for (const p of opts.pairs) {
    if (p.cert === "") continue;
    const certs = pemBlocks(readPem(p.cert)).filter((b) => b.label === "CERTIFICATE");
    if (certs.length === 0) throw new Error(`${p.cert}: no certificate found`);
    const keys = pemBlocks(readPem(p.key || p.cert)).filter((b) => b.label.endsWith("PRIVATE KEY"));
    if (keys[0] === undefined) throw new Error(`${p.key || p.cert}: no private key found`);
    out.key.push(keys[0].pem + "\n");
    out.cert.push(certs.map((c) => c.pem).join("\n") + "\n");
  }
  return out;
}

/** Reads CA certificates from a file and/or a directory of PEM files. */
export function loadCaCerts(file: string, dir: string): string[] {
  const out: string[] = [];
  const add = (f: string): void => {
    for (const b of pemBlocks(readPem(f))) if (b.label === "CERTIFICATE") out.push(b.pem + "\n");
  };
  if (file !== "") add(file);
  if (dir !== "") {
    // A CApath holds hash links and PEM files; every regular file that parses is used.
    for (const name of readdirNames(dir)) {
      try {
        add(`${dir}/${name}`);
      } catch {
        /* not a readable PEM file: skipped, as OpenSSL does */
      }
    }
  }
  return out;
}

/** The names in a directory (at most 10,000), or none when it cannot be read. */
function readdirNames(dir: string): string[] {
  try {
    return readdirSync(dir).slice(0, 10_000);
  } catch {
    return [];
  }
}
