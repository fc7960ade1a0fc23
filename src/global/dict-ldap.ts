/*
 * dict-ldap - ldap: tables, searches in an LDAP directory
 *
 * SYNOPSIS
 *   dictOpen("ldap:/etc/postfix/ldap-aliases.cf")
 *
 *   server_host = ldap://ldap1.example.com ldap2.example.com:3890
 *   search_base = dc=example, dc=com
 *   query_filter = (mail=%s)
 *   result_attribute = maildrop
 *   bind_dn = cn=postfix, dc=example, dc=com
 *   bind_pw = secret
 *
 * DESCRIPTION
 *   The parameters of ldap_table(5): server_host (default localhost: host,
 *   host:port, ldap://, ldaps:// and ldapi:// URLs, tried in order),
 *   server_port (389), timeout (10 seconds), search_base (required),
 *   query_filter (default mailacceptinggeneralid=%s), result_format
 *   (result_filter), domain, result_attribute (default maildrop),
 *   special_result_attribute (DN and LDAP URL recursion),
 *   terminal_result_attribute, leaf_result_attribute, scope (sub, one,
 *   base), bind (yes/simple, no/none; sasl is not supported), bind_dn,
 *   bind_pw, recursion_limit (1000), expansion_limit, size_limit (default
 *   expansion_limit), dereference (0-3), version (2 or 3), start_tls,
 *   tls_ca_cert_file, tls_ca_cert_dir, tls_cert, tls_key,
 *   tls_require_cert, tls_cipher_suite.
 *
 *   The key is quoted for the filter as RFC 2254 asks (\2a for "*", and
 *   "(", ")", "\", NUL likewise) and for search_base as RFC 2253 asks, so a
 *   key can never change the structure of a search. A search base with
 *   expansions that does not exist means "not found"; a fixed one that
 *   does not exist is a temporary failure.
 *
 *   The client is ldapts, in pure JavaScript; it always speaks LDAPv3
 *   ("version = 2" is accepted, since current servers answer v3 clients).
 *   One connection is kept and reused; when it breaks, the lookup connects
 *   again (to the first server that answers) once, then fails temporarily.
 *   Every search is bounded by timeout and by size_limit (or, when that is
 *   0, by LDAP_MAX_ENTRIES entries).
 */
import { readdirSync, readFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import type { ConnectionOptions } from "node:tls";
import type { Client, Entry, SearchOptions } from "ldapts";
import { msg } from "../util/msg.js";
import { CfParams, cfList } from "./dict-cf.js";
import { DbTemplates, DomainFilter, ResultList } from "./dict-expand.js";
import { dictSurrogate } from "./dict-registry.js";
import { DictFlag, errorText, foldKey, found, NOT_FOUND, tempFail } from "./dict-types.js";
import type { DictImpl, DictResult } from "./dict-types.js";

/** The most entries one search may return when size_limit is 0. */
export const LDAP_MAX_ENTRIES = 10000;

/** One server: an LDAP URL, or a UNIX-domain socket (ldapi). */
type LdapServer = { url: string; socket: string | null };

/** Settings of one table. */
interface LdapSettings {
  servers: LdapServer[];
  timeoutMs: number;
  base: string;
  filter: string;
  resultFormat: string;
  scope: "base" | "one" | "sub";
  deref: "never" | "search" | "find" | "always";
  bind: boolean;
  bindDn: string;
  bindPw: string;
  startTls: boolean;
  tls: ConnectionOptions;
  terminal: string[];
  leaf: string[];
  result: string[];
  special: string[];
  recursionLimit: number;
  expansionLimit: number;
  sizeLimit: number;
}

/** Quotes a value for a search filter (RFC 2254). */
export function ldapFilterQuote(s: string): string {
  return s.replace(/[*()\\\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`);
}

/** Quotes a value for a DN (RFC 2253), quoting more than needed as Postfix does. */
export function ldapDnQuote(s: string): string {
  return s.replace(
    /[ \t"#+,;<>\\\0]/g,
    (c) => `\\${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`,
  );
}

let ldapLib: Promise<typeof import("ldapts")> | null = null;

/** Loads ldapts on first use (it is not needed by processes without ldap tables). */
function loadLdapts(): Promise<typeof import("ldapts")> {
  ldapLib ??= import("ldapts");
  return ldapLib;
}

/** Whether the server answered with an LDAP result code (ldapts ResultCodeError), not a connection failure. */
function isResultCode(err: unknown): err is Error & { code: number } {
  return err instanceof Error && typeof (err as { code?: unknown }).code === "number";
}

/** Whether the server said that an entry does not exist. */
function isNoSuchObject(err: unknown): boolean {
  return isResultCode(err) && err.code === 32;
}

/** The text of an error; ldapts result-code errors often have an empty message. */
function ldapErrorText(err: unknown): string {
  if (!isResultCode(err)) return errorText(err);
  const text = err.message.trim();
  const useful = text !== "" && !/^Code: 0x[0-9a-f]+$/i.test(text);
  return `${err.name} (result code ${err.code})${useful ? `: ${text}` : ""}`;
}

/** The values of an entry's attribute as text. */
function values(v: Entry[string] | undefined): string[] {
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => (typeof x === "string" ? x : x.toString("utf8")));
}

/** Parses the parts of an LDAP URL that matter: dn, attributes, scope, filter; null when malformed. */
export function parseLdapUrl(
  u: string,
): { dn: string; attrs: string[]; scope: LdapSettings["scope"]; filter: string } | null {
  const m = /^ldap[si]?:\/\/[^/]*(?:\/([^?]*)(?:\?([^?]*)(?:\?([^?]*)(?:\?([^?]*))?)?)?)?$/i.exec(u);
  if (m === null) return null;
  try {
    const dn = decodeURIComponent(m[1] ?? "");
    const attrs = (m[2] ?? "")
      .split(",")
      .filter((a) => a !== "")
      .map(decodeURIComponent);
    const scope = (m[3] ?? "") === "" ? "base" : (m[3] ?? "").toLowerCase();
    const filter = decodeURIComponent(m[4] ?? "") || "(objectClass=*)";
    if (scope !== "base" && scope !== "one" && scope !== "sub") return null;
    return { dn, attrs, scope, filter };
  } catch {
    return null;
  }
}

/** An ldap: table. */
class LdapDict implements DictImpl {
  readonly type = "ldap";
  readonly name: string;
  readonly flags: number;
  #s: LdapSettings;
  #templates: DbTemplates;
  #dynamicBase: boolean;
  #domain: DomainFilter;
  #client: Client | null = null;
  #all: string[];

  /** Keeps the settings; connects on the first lookup. */
  constructor(name: string, flags: number, cf: CfParams, s: LdapSettings) {
    this.name = name;
    this.flags = flags | DictFlag.FIXED;
    this.#s = s;
    this.#templates = new DbTemplates(`ldap:${name}`);
    this.#dynamicBase = this.#templates.parse(s.base, "query");
    this.#templates.parse(s.filter, "query");
    this.#templates.parse(s.resultFormat, "result");
    this.#all = [...s.terminal, ...s.leaf, ...s.result, ...s.special];
    this.#domain = new DomainFilter(cf.str("domain", ""), cf.path);
  }

  /** Connects to the first server that answers (and binds). */
  async #connect(): Promise<Client> {
    const s = this.#s;
    const { Client } = await loadLdapts();
    let last = "no servers";
    for (const server of s.servers) {
      const socket = server.socket;
      const client = new Client({
        url: server.url,
        timeout: s.timeoutMs,
        connectTimeout: s.timeoutMs,
        strictDN: false,
        ...(server.url.startsWith("ldaps:") ? { tlsOptions: s.tls } : {}),
        ...(socket !== null ? { createConnection: () => netConnect(socket) } : {}),
      });
      try {
        if (s.startTls) await client.startTLS(s.tls);
        if (s.bind) await client.bind(s.bindDn, s.bindPw);
        else await this.#probe(client);
        return client;
      } catch (err) {
        last = `${server.url}: ${ldapErrorText(err)}`;
        msg.warn(`ldap:${this.name}: cannot use server ${last}`);
        await client.unbind().catch(() => undefined);
      }
    }
    throw new Error(`no LDAP server answered: ${last}`);
  }

  /** Makes an unbound client connect now (ldapts connects on the first request): reads the root DSE. */
  async #probe(client: Client): Promise<void> {
    try {
      await client.search("", {
        scope: "base",
        filter: "(objectClass=*)",
        attributes: ["1.1"],
        sizeLimit: 1,
      });
    } catch (err) {
      if (!isResultCode(err)) throw err;
    }
  }

  /** Runs one search; more than the size limit of entries is an error. */
  async #search(
    base: string,
    scope: LdapSettings["scope"],
    filter: string,
    attrs: string[],
  ): Promise<Entry[]> {
    const s = this.#s;
    const limit = s.sizeLimit > 0 ? s.sizeLimit : LDAP_MAX_ENTRIES;
    const opts: SearchOptions = {
      scope,
      filter,
      attributes: attrs,
      derefAliases: s.deref,
      sizeLimit: limit + 1,
      timeLimit: Math.ceil(s.timeoutMs / 1000),
    };
    const entries = await this.#searchRetry(base, opts);
    if (entries.length > limit) throw new Error(`query size limit (${limit}) exceeded`);
    return entries;
  }

  /** Searches on the connection, connecting (once more after a broken connection) as needed. */
  async #searchRetry(base: string, opts: SearchOptions): Promise<Entry[]> {
    for (let attempt = 0; ; attempt++) {
      const reused = this.#client !== null;
      this.#client ??= await this.#connect();
      try {
        return (await this.#client.search(base, opts)).searchEntries;
      } catch (err) {
        if (isResultCode(err)) throw err;
        await this.#drop();
        if (attempt > 0 || !reused) throw err;
      }
    }
  }

  /** Adds the wanted values of some entries to the result, following special attributes. */
  async #collect(entries: Entry[], key: string, list: ResultList, depth: number): Promise<void> {
    const s = this.#s;
    const nTerm = s.terminal.length;
    const nLeaf = s.leaf.length;
    const nAttrs = nTerm + nLeaf + s.result.length;
    for (const entry of entries) {
      const has = (a: string): boolean =>
        Object.keys(entry).some((k) => k.toLowerCase() === a.toLowerCase() && values(entry[k]).length > 0);
      const terminal = s.terminal.some(has);
      const leaf = terminal || !s.special.some(has) || nLeaf === 0;
      for (const attr of Object.keys(entry)) {
        if (attr === "dn") continue;
        const vals = values(entry[attr]);
        const i = this.#all.findIndex((a) => a.toLowerCase() === attr.toLowerCase());
        if (vals.length === 0 || i < 0) continue;
        if (i < nAttrs || terminal) {
          if ((terminal && i >= nTerm) || (!leaf && i >= nTerm && i < nTerm + nLeaf)) continue;
          for (const v of vals) {
            if (!list.add(this.#templates.expand(s.resultFormat, v, key, null))) return;
          }
        } else if (depth >= s.recursionLimit) {
          list.overflow = `recursion limit (${s.recursionLimit}) exceeded for special attribute ${attr}`;
          return;
        } else {
          for (const v of vals) {
            await this.#follow(v, key, list, depth);
            if (list.overflow !== null) return;
          }
        }
      }
    }
  }

  /** Follows one value of a special attribute: a DN or an LDAP URL. */
  async #follow(v: string, key: string, list: ResultList, depth: number): Promise<void> {
    let base = v;
    let scope: LdapSettings["scope"] = "base";
    let filter = "(objectClass=*)";
    let attrs = this.#all;
    if (/^ldap[si]?:\/\//i.test(v)) {
      const url = parseLdapUrl(v);
      if (url === null) {
        list.overflow = `malformed LDAP URL ${v}`;
        return;
      }
      if (url.attrs.length > 0) {
        const wanted = new Set(url.attrs.map((a) => a.toLowerCase()));
        attrs = this.#all.filter((a) => wanted.has(a.toLowerCase()));
        if (attrs.length === 0) return;
      }
      ({ dn: base, scope, filter } = url);
    }
    try {
      await this.#collect(await this.#search(base, scope, filter, attrs), key, list, depth + 1);
    } catch (err) {
      if (isNoSuchObject(err)) msg.warn(`ldap:${this.name}: DN ${v} not found, skipping`);
      else list.overflow = `search error: ${ldapErrorText(err)}`;
    }
  }

  /** Looks up a key. */
  async lookup(rawKey: string): Promise<DictResult> {
    const key = foldKey(rawKey, this.flags, "fixed");
    const verdict = await this.#domain.check(key);
    if (!verdict.ok) return tempFail(`ldap:${this.name}: domain list: ${verdict.reason}`);
    if (!verdict.match) return NOT_FOUND;
    const base = this.#templates.expand(this.#s.base, key, null, ldapDnQuote);
    const filter = this.#templates.expand(this.#s.filter, key, null, ldapFilterQuote);
    if (base === null || filter === null) return NOT_FOUND;
    const list = new ResultList(this.#s.expansionLimit);
    try {
      const entries = await this.#search(base, this.#s.scope, filter, this.#all);
      await this.#collect(entries, key, list, 1);
    } catch (err) {
      if (isNoSuchObject(err) && this.#dynamicBase) return NOT_FOUND;
      msg.warn(`ldap:${this.name}: search error for "${key}": ${ldapErrorText(err)}`);
      return tempFail(`ldap:${this.name}: ${ldapErrorText(err)}`);
    }
    if (list.overflow !== null) {
      msg.warn(`ldap:${this.name}: ${list.overflow} for key "${key}"`);
      return tempFail(`ldap:${this.name}: ${list.overflow}`);
    }
    return list.count === 0 ? NOT_FOUND : found(list.text());
  }

  /** Closes the connection. */
  async #drop(): Promise<void> {
    const c = this.#client;
    this.#client = null;
    await c?.unbind().catch(() => undefined);
  }

  /** Closes the connection and the domain list's tables. */
  close(): void {
    void this.#drop();
    this.#domain.close();
  }
}

/** Parses server_host into servers. */
function ldapServers(cf: CfParams): LdapServer[] {
  const port = cf.int("server_port", 389, 1, 65535);
  return cfList(cf.str("server_host", "localhost")).map((h) => {
    if (/^ldapi:\/\//i.test(h)) {
      const path = decodeURIComponent(h.slice("ldapi://".length).replace(/\/.*$/, ""));
      if (path === "") throw cf.error("server_host", `ldapi URL without a socket path: ${h}`);
      return { url: "ldap://localhost", socket: path };
    }
    if (/^ldaps?:\/\//i.test(h)) return { url: h.replace(/\/+$/, ""), socket: null };
    const hostPort = /^(\[[^\]]+\]|[^:]+)(?::([0-9]{1,5}))?$/.exec(h);
    if (hostPort === null) throw cf.error("server_host", `bad server "${h}"`);
    return { url: `ldap://${hostPort[1] ?? ""}:${hostPort[2] ?? port}`, socket: null };
  });
}

/** Reads the TLS settings. */
function ldapTls(cf: CfParams): ConnectionOptions {
  const tls: ConnectionOptions = { rejectUnauthorized: cf.bool("tls_require_cert", false) };
  const ca: Buffer[] = [];
  const caFile = cf.str("tls_ca_cert_file", "");
  if (caFile !== "") ca.push(readFileSync(caFile));
  const caDir = cf.str("tls_ca_cert_dir", "");
  if (caDir !== "" && caFile === "")
    for (const f of readdirSync(caDir)) ca.push(readFileSync(join(caDir, f)));
  if (ca.length > 0) tls.ca = ca;
  const cert = cf.str("tls_cert", "");
  if (cert !== "") tls.cert = readFileSync(cert);
  const key = cf.str("tls_key", "");
  if (key !== "") tls.key = readFileSync(key);
  const ciphers = cf.str("tls_cipher_suite", "");
  if (ciphers !== "") tls.ciphers = ciphers;
  return tls;
}

/** Reads every parameter; throws on bad configuration. */
function ldapSettings(cf: CfParams): LdapSettings {
  const scope = cf.str("scope", "sub").toLowerCase();
  if (scope !== "sub" && scope !== "one" && scope !== "base")
    throw cf.error("scope", `unknown scope "${scope}"`);
  const bind = cf.str("bind", "yes").toLowerCase();
  if (bind === "sasl") throw cf.error("bind", "SASL binds are not supported");
  if (!["yes", "no", "simple", "none", "true", "false"].includes(bind))
    throw cf.error("bind", `bad value "${bind}"`);
  const derefs = ["never", "search", "find", "always"] as const;
  const expansionLimit = cf.int("expansion_limit", 0, 0);
  cf.int("version", 2, 2, 3);
  return {
    servers: ldapServers(cf),
    timeoutMs: cf.int("timeout", 10, 1) * 1000,
    base: cf.required("search_base"),
    filter: cf.str("query_filter", "mailacceptinggeneralid=%s"),
    resultFormat: cf.str("result_format", cf.str("result_filter", "%s")),
    scope,
    deref: derefs[cf.int("dereference", 0, 0, 3)] ?? "never",
    bind: bind === "yes" || bind === "simple" || bind === "true",
    bindDn: cf.str("bind_dn", ""),
    bindPw: cf.str("bind_pw", ""),
    startTls: cf.bool("start_tls", false),
    tls: ldapTls(cf),
    terminal: cfList(cf.str("terminal_result_attribute", "")),
    leaf: cfList(cf.str("leaf_result_attribute", "")),
    result: cfList(cf.str("result_attribute", "maildrop")),
    special: cfList(cf.str("special_result_attribute", "")),
    recursionLimit: cf.int("recursion_limit", 1000, 1),
    expansionLimit,
    sizeLimit: cf.int("size_limit", expansionLimit, 0),
  };
}

/** Opens an ldap: table. */
export function ldapOpen(name: string, flags: number): DictImpl {
  try {
    const cf = CfParams.read("ldap", name);
    return new LdapDict(name, flags, cf, ldapSettings(cf));
  } catch (err) {
    return dictSurrogate("ldap", name, flags, errorText(err));
  }
}
