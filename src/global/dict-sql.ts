/*
 * dict-sql - what the SQL tables share: query plans, host failover, lookups
 *
 * SYNOPSIS
 *   import { SqlDict, sqlQueryTemplate, type SqlDriver } from "./dict-sql.js";
 *   new SqlDict("pgsql", name, flags, cf, hosts, driver, dialect)
 *
 * DESCRIPTION
 *   An SQL table (pgsql, mysql, sqlite) has a query template (the "query"
 *   parameter, else the legacy select_field, table, where_field and
 *   additional_conditions), a result_format, a domain filter and an
 *   expansion_limit (see dict-expand.ts).
 *
 *   Lookup keys never reach the SQL text unprotected. A string literal of
 *   the template that holds expansions and nothing that needs escaping,
 *   such as '%s' or '%u@%d', is replaced by a bound parameter: the server
 *   receives the expanded key as data. Any other expansion is quoted with
 *   the server's own rules for the connection (standard_conforming_strings,
 *   NO_BACKSLASH_ESCAPES), as Postfix does; an expansion outside a quoted
 *   string is reported when the table is opened, because quoting cannot
 *   protect it. A key that contains a NUL character is not looked up.
 *
 *   Hosts are tried as in Postfix: the connected host first, then untried
 *   hosts in random order (a driver may rank some first), then failed
 *   hosts whose retry_interval has passed. A host that cannot be reached,
 *   or whose connection breaks or times out, is marked failed and the
 *   next one is tried; with a single host there is no waiting period. A
 *   reused connection that turns out to be broken is replaced once, so
 *   that a server restart is transparent. When no host answers, the lookup
 *   fails temporarily. An error that the server reports for the query
 *   (bad SQL, a type error caused by the key) fails only that lookup: the
 *   host stays in service. Idle connections close after idle_interval.
 *
 *   Postern adds two parameters: connect_timeout (default 10 seconds) and
 *   query_timeout (default 30 seconds). A result larger than SQL_MAX_ROWS
 *   rows or DICT_RESULT_MAX characters fails temporarily.
 */
import { msg } from "../util/msg.js";
import { CfParams } from "./dict-cf.js";
import { DICT_RESULT_MAX, DbTemplates, DomainFilter, ResultList } from "./dict-expand.js";
import { DictFlag, errorText, foldKey, found, NOT_FOUND, tempFail } from "./dict-types.js";
import type { DictImpl, DictResult } from "./dict-types.js";

/** The most rows one query may return. */
export const SQL_MAX_ROWS = 10000;

/** What a driver's query returns: rows of text (null for SQL NULL), or null rows for "no result set". */
export type SqlAnswer =
  | { ok: true; rows: (string | null)[][] | null }
  | { ok: false; connection: boolean; reason: string; wantTyped?: boolean };

/** Limits for one query. */
export interface SqlLimits {
  timeoutMs: number;
  maxRows: number;
  maxChars: number;
}

/** An open connection to one server. */
export interface SqlConn {
  /** Quotes a value for use inside a '...' literal of this connection. */
  quote(value: string): string;
  /** Runs a query with bound parameters. */
  run(sql: string, params: string[], limits: SqlLimits): Promise<SqlAnswer>;
  /** Whether the connection can still be used. */
  readonly alive: boolean;
  /** Closes the connection (no wait). */
  close(): void;
}

/** How an SQL table reaches its servers. */
export interface SqlDriver<H> {
  /** The bound-parameter marker for parameter n (1-based), typed as text when the server asked. */
  placeholder(n: number, typed: boolean): string;
  /** Opens a connection; rejects on failure. */
  connect(host: H, timeoutMs: number): Promise<SqlConn>;
  /** Lower ranks are tried first among untried hosts (mysql: unix sockets). */
  rank?(host: H): number;
}

/** The lexical rules of a server's SQL that matter for finding string literals. */
export interface SqlDialect {
  backslashEscapes: boolean;
  doubleQuoteStrings: boolean;
  backticks: boolean;
  hashComments: boolean;
  dollarQuotes: boolean;
}

/** A piece of a query template: SQL text, or a literal that becomes a bound parameter. */
type Piece = { param: false; text: string } | { param: true; inner: string };

/** Builds the query template from "query" or the legacy parameters. */
export function sqlQueryTemplate(cf: CfParams, allowFunction: boolean): string {
  const query = cf.str("query", "");
  if (query !== "") return query;
  if (allowFunction) {
    const fn = cf.str("select_function", "");
    if (fn !== "") return `SELECT ${fn}('%s')`;
  }
  const table = cf.required("table");
  const select = cf.required("select_field");
  const where = cf.required("where_field");
  const extra = cf.str("additional_conditions", "");
  return `SELECT ${select} FROM ${table} WHERE ${where}='%s' ${extra}`;
}

/** The end of a quoted run starting at i (the quote char); -1 when unterminated. */
function quotedEnd(t: string, i: number, q: string, backslash: boolean): number {
  for (let j = i + 1; j < t.length; j++) {
    const c = t[j];
    if (backslash && c === "\\") j++;
    else if (c === q) {
      if (t[j + 1] === q) j++;
      else return j + 1;
    }
  }
  return -1;
}

/** The end of a comment or other skipped construct at i, or i when there is none. */
function skipOther(t: string, i: number, d: SqlDialect): number {
  const c = t[i];
  if (c === "-" && t[i + 1] === "-") {
    const nl = t.indexOf("\n", i);
    return nl < 0 ? t.length : nl + 1;
  }
  if (c === "#" && d.hashComments) {
    const nl = t.indexOf("\n", i);
    return nl < 0 ? t.length : nl + 1;
  }
  if (c === "/" && t[i + 1] === "*") {
    const end = t.indexOf("*/", i + 2);
    return end < 0 ? t.length : end + 2;
  }
  if (c === "$" && d.dollarQuotes && !/[A-Za-z0-9_]/.test(t[i - 1] ?? " ")) {
    const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(t.slice(i));
    if (m !== null) {
      const end = t.indexOf(m[0], i + m[0].length);
      return end < 0 ? t.length : end + m[0].length;
    }
  }
  if ((c === '"' && !d.doubleQuoteStrings) || (c === "`" && d.backticks)) {
    const end = quotedEnd(t, i, c, false);
    return end < 0 ? t.length : end;
  }
  return i;
}

/** Whether the inside of a literal can become a bound parameter. */
function bindable(inner: string): boolean {
  return /%[^%]/.test(inner.replace(/%%/g, "")) && !/['\\"]/.test(inner);
}

/** Splits a query template into SQL text and bindable literals; notes unprotected expansions. */
export function planQuery(template: string, d: SqlDialect): { pieces: Piece[]; exposed: boolean } {
  const pieces: Piece[] = [];
  let text = "";
  let exposed = false;
  let i = 0;
  while (i < template.length) {
    const c = template[i] ?? "";
    const skip = skipOther(template, i, d);
    if (skip > i) {
      text += template.slice(i, skip);
      i = skip;
      continue;
    }
    if (c === "'" || (c === '"' && d.doubleQuoteStrings)) {
      const end = quotedEnd(template, i, c, d.backslashEscapes);
      const stop = end < 0 ? template.length : end;
      const inner = template.slice(i + 1, end < 0 ? stop : stop - 1);
      const prefixed = /[A-Za-z0-9_$&]/.test(template[i - 1] ?? " ");
      if (end >= 0 && c === "'" && !prefixed && bindable(inner)) {
        pieces.push({ param: false, text }, { param: true, inner });
        text = "";
      } else {
        text += template.slice(i, stop);
      }
      i = stop;
      continue;
    }
    if (c === "%" && template[i + 1] !== undefined) {
      if (template[i + 1] !== "%") exposed = true;
      text += template.slice(i, i + 2);
      i += 2;
      continue;
    }
    text += c;
    i++;
  }
  pieces.push({ param: false, text });
  return { pieces, exposed };
}

/** The per-host failover state. */
interface HostSlot<H> {
  host: H;
  text: string;
  conn: SqlConn | null;
  connecting: Promise<SqlConn> | null;
  failedUntil: number;
  tried: boolean;
  idle: NodeJS.Timeout | null;
}

/** Settings of an SQL table beyond its hosts. */
export interface SqlOptions {
  requireResultSet: boolean;
}

/** A table served by SQL servers. */
export class SqlDict<H> implements DictImpl {
  readonly type: string;
  readonly name: string;
  readonly flags: number;
  #driver: SqlDriver<H>;
  #slots: HostSlot<H>[];
  #templates: DbTemplates;
  #query: string;
  #plan: Piece[];
  #resultFormat: string;
  #domain: DomainFilter;
  #limit: number;
  #retryMs: number;
  #idleMs: number;
  #connectMs: number;
  #queryMs: number;
  #opts: SqlOptions;
  #typed = false;
  #closed = false;

  /** Reads the common parameters; throws on bad configuration. */
  constructor(
    type: string,
    name: string,
    flags: number,
    cf: CfParams,
    hosts: { host: H; text: string }[],
    driver: SqlDriver<H>,
    dialect: SqlDialect,
    opts: SqlOptions = { requireResultSet: true },
  ) {
    this.type = type;
    this.name = name;
    this.flags = flags | DictFlag.FIXED;
    this.#driver = driver;
    this.#opts = opts;
    this.#templates = new DbTemplates(`${type}:${name}`);
    this.#query = sqlQueryTemplate(cf, type === "pgsql");
    this.#templates.parse(this.#query, "query");
    this.#resultFormat = cf.str("result_format", cf.str("result_filter", "%s"));
    this.#templates.parse(this.#resultFormat, "result");
    const plan = planQuery(this.#query, dialect);
    this.#plan = plan.pieces;
    if (plan.exposed) {
      msg.warn(
        `${type}:${name}: query has a "%" expansion outside a quoted string; quoting cannot protect it`,
      );
    }
    this.#limit = cf.int("expansion_limit", 0, 0);
    this.#retryMs = cf.int("retry_interval", 60, 1) * 1000;
    this.#idleMs = cf.int("idle_interval", 60, 1) * 1000;
    this.#connectMs = cf.int("connect_timeout", 10, 1) * 1000;
    this.#queryMs = cf.int("query_timeout", 30, 1) * 1000;
    if (hosts.length === 0) throw cf.error("hosts", "no hosts are given");
    this.#slots = hosts.map((h) => ({
      host: h.host,
      text: h.text,
      conn: null,
      connecting: null,
      failedUntil: 0,
      tried: false,
      idle: null,
    }));
    this.#domain = new DomainFilter(cf.str("domain", ""), cf.path);
  }

  /** Looks up a key: domain filter, query with failover, result formatting. */
  async lookup(rawKey: string): Promise<DictResult> {
    if (this.#closed) return tempFail(`${this.type}:${this.name}: table is closed`);
    const key = foldKey(rawKey, this.flags, "fixed");
    if (key.includes("\0")) {
      msg.warn(`${this.type}:${this.name}: key contains a NUL character: not looked up`);
      return NOT_FOUND;
    }
    const verdict = await this.#domain.check(key);
    if (!verdict.ok) return tempFail(`${this.type}:${this.name}: domain list: ${verdict.reason}`);
    if (!verdict.match || this.#templates.expand(this.#query, key, null, null) === null) return NOT_FOUND;
    const answer = await this.#ask(key);
    if (!answer.ok) return tempFail(`${this.type}:${this.name}: ${answer.reason}`);
    if (answer.rows === null) {
      if (!this.#opts.requireResultSet) return NOT_FOUND;
      msg.warn(`${this.type}:${this.name}: query returned no result set`);
      return tempFail(`${this.type}:${this.name}: query returned no result set`);
    }
    const list = new ResultList(this.#limit);
    for (const row of answer.rows) {
      for (const v of row) {
        if (v !== null && !list.add(this.#templates.expand(this.#resultFormat, v, key, null))) break;
      }
      if (list.overflow !== null) break;
    }
    if (list.overflow !== null) {
      msg.warn(`${this.type}:${this.name}: ${list.overflow} for key "${key}"`);
      return tempFail(`${this.type}:${this.name}: ${list.overflow}`);
    }
    return list.count === 0 ? NOT_FOUND : found(list.text());
  }

  /** Expands the plan for a key on one connection: SQL text and parameters. */
  #build(conn: SqlConn, key: string): { sql: string; params: string[] } {
    const t = this.#templates;
    const params: string[] = [];
    let sql = "";
    for (const p of this.#plan) {
      if (p.param) {
        params.push(t.expand(p.inner, key, null, null) ?? "");
        sql += this.#driver.placeholder(params.length, this.#typed);
      } else if (p.text !== "") {
        sql += t.expand(p.text, key, null, (v) => conn.quote(v)) ?? "";
      }
    }
    return { sql, params };
  }

  /** Runs the query on the first host that answers. */
  async #ask(key: string): Promise<SqlAnswer> {
    const tried = new Set<HostSlot<H>>();
    let lastError = "no host is available";
    for (;;) {
      const slot = this.#pick(tried);
      if (slot === null) return { ok: false, connection: true, reason: `all hosts failed: ${lastError}` };
      tried.add(slot);
      for (let attempt = 0; attempt < 2; attempt++) {
        const reused = slot.conn !== null && slot.conn.alive;
        let conn: SqlConn;
        try {
          conn = await this.#connection(slot);
        } catch (err) {
          lastError = `${slot.text}: ${errorText(err)}`;
          this.#fail(slot, lastError);
          break;
        }
        let answer = await this.#run(conn, key);
        if (!answer.ok && answer.wantTyped === true && !this.#typed) {
          this.#typed = true;
          answer = await this.#run(conn, key);
        }
        if (answer.ok || !answer.connection) {
          if (!answer.ok) msg.warn(`${this.type}:${this.name}: ${slot.text}: query failed: ${answer.reason}`);
          this.#touch(slot);
          return answer;
        }
        lastError = `${slot.text}: ${answer.reason}`;
        this.#drop(slot);
        if (!reused) {
          this.#fail(slot, lastError);
          break;
        }
      }
    }
  }

  /** Builds and runs the query on one connection. */
  async #run(conn: SqlConn, key: string): Promise<SqlAnswer> {
    const q = this.#build(conn, key);
    const limits = { timeoutMs: this.#queryMs, maxRows: SQL_MAX_ROWS, maxChars: DICT_RESULT_MAX };
    return await conn.run(q.sql, q.params, limits);
  }

  /** Chooses the next host: connected, else untried (ranked, random), else failed and due. */
  #pick(tried: Set<HostSlot<H>>): HostSlot<H> | null {
    const open = this.#slots.filter((s) => !tried.has(s));
    const active = open.find((s) => s.conn !== null || s.connecting !== null);
    if (active !== undefined) return active;
    const now = Date.now();
    const single = this.#slots.length === 1;
    const fresh = open.filter((s) => !s.tried);
    const due = open.filter((s) => s.tried && (single || s.failedUntil <= now));
    const pool = fresh.length > 0 ? fresh : due;
    if (pool.length === 0) return null;
    const rank = (s: HostSlot<H>): number => this.#driver.rank?.(s.host) ?? 0;
    const best = Math.min(...pool.map(rank));
    const top = pool.filter((s) => rank(s) === best);
    return top[Math.floor(Math.random() * top.length)] ?? null;
  }

  /** The host's connection, opened (once, shared by concurrent lookups) when needed. */
  async #connection(slot: HostSlot<H>): Promise<SqlConn> {
    if (slot.conn !== null && slot.conn.alive) return slot.conn;
    if (slot.conn !== null) this.#drop(slot);
    if (slot.connecting === null) {
      slot.tried = true;
      const p = this.#driver.connect(slot.host, this.#connectMs);
      slot.connecting = p;
      try {
        const conn = await p;
        if (this.#closed) {
          conn.close();
          throw new Error("table is closed");
        }
        slot.conn = conn;
        slot.failedUntil = 0;
      } finally {
        slot.connecting = null;
      }
      return slot.conn;
    }
    return slot.connecting;
  }

  /** Marks a host failed for retry_interval; `why` starts with the host. */
  #fail(slot: HostSlot<H>, why: string): void {
    msg.warn(`${this.type}:${this.name}: cannot use host ${why}`);
    this.#drop(slot);
    slot.tried = true;
    slot.failedUntil = Date.now() + this.#retryMs;
  }

  /** Closes a host's connection. */
  #drop(slot: HostSlot<H>): void {
    if (slot.idle !== null) clearTimeout(slot.idle);
    slot.idle = null;
    slot.conn?.close();
    slot.conn = null;
  }

  /** Restarts the idle timer of a host's connection. */
  #touch(slot: HostSlot<H>): void {
    if (slot.idle !== null) clearTimeout(slot.idle);
    slot.idle = setTimeout(() => this.#drop(slot), this.#idleMs);
    slot.idle.unref();
  }

  /** Closes every connection and the domain list's tables. */
  close(): void {
    this.#closed = true;
    for (const s of this.#slots) this.#drop(s);
    this.#domain.close();
  }
}

/** Splits a "hosts" value into its entries. */
export function sqlHostList(cf: CfParams, def: string): string[] {
  return cf
    .str("hosts", def)
    .split(/[\s,]+/)
    .filter((h) => h !== "");
}
