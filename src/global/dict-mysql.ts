/*
 * dict-mysql - mysql: tables, lookups in MySQL or MariaDB
 *
 * SYNOPSIS
 *   dictOpen("mysql:/etc/postfix/mysql-aliases.cf")
 *
 *   hosts = unix:/run/mysqld/mysqld.sock inet:db1.example.com:3306 db2.example.com
 *   user = postfix
 *   password = secret
 *   dbname = mail
 *   query = SELECT goto FROM alias WHERE address = '%s'
 *
 * DESCRIPTION
 *   The parameters of mysql_table(5): hosts, user, password, dbname,
 *   charset (default utf8mb4), query (or the legacy select_field, table,
 *   where_field, additional_conditions), result_format, domain,
 *   expansion_limit, idle_interval, retry_interval, require_result_set
 *   (default yes: a query or CALL that returns no result set fails
 *   temporarily; with "no" it is "not found"), and tls_cert_file,
 *   tls_key_file, tls_CAfile, tls_CApath, tls_ciphers, tls_verify_cert;
 *   plus Postern's connect_timeout and query_timeout. See dict-sql.ts for
 *   failover and for how keys are protected.
 *
 *   A hosts entry is "unix:/path/to/socket", "inet:host:port", "host:port"
 *   or "host" (port 3306). As in Postfix, UNIX-domain sockets are tried
 *   before TCP hosts. Every column of every row of every result set is a
 *   result; NULL and empty values are skipped. Numbers and dates come back
 *   as text.
 *
 *   The client is mysql2, in pure JavaScript; queries with bound parameters
 *   are server-side prepared statements. option_file and option_group are
 *   not supported (a warning says so).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Connection } from "mysql2";
import { msg } from "../util/msg.js";
import { CfParams, parseEndpoint, type Endpoint } from "./dict-cf.js";
import { dictSurrogate } from "./dict-registry.js";
import {
  SqlDict,
  sqlHostList,
  type SqlAnswer,
  type SqlConn,
  type SqlDriver,
  type SqlLimits,
} from "./dict-sql.js";
import { errorText, type DictImpl } from "./dict-types.js";

/** Settings shared by every connection of one table. */
interface MyTlsSettings {
  ca?: Buffer[];
  cert?: Buffer;
  key?: Buffer;
  ciphers?: string;
  rejectUnauthorized: boolean;
}

/** Settings shared by every connection of one table. */
interface MySettings {
  user: string;
  password: string;
  dbname: string;
  charset: string;
  ssl: MyTlsSettings | null;
}

/** The lexical rules of MySQL's SQL (default sql_mode). */
const MY_DIALECT = {
  backslashEscapes: true,
  doubleQuoteStrings: true,
  backticks: true,
  hashComments: true,
  dollarQuotes: false,
};

/** Characters that mysql_real_escape_string() escapes, and their escapes. */
const ESCAPES: Record<string, string> = {
  "\0": "\\0",
  "\n": "\\n",
  "\r": "\\r",
  "\\": "\\\\",
  "'": "\\'",
  '"': '\\"',
  "\x1a": "\\Z",
};

/** A value of a row as text (what the C client gives Postfix). */
function asText(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "string") return v;
  if (Buffer.isBuffer(v)) return v.toString("utf8");
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v);
  if (v instanceof Date) return v.toISOString();
  return JSON.stringify(v);
}

/** Whether an error ends the connection (rather than the query). */
function isFatal(err: unknown): boolean {
  return (err as { fatal?: boolean }).fatal === true || !("sqlState" in (err as object));
}

type MyLib = typeof import("mysql2");

let myLib: Promise<MyLib> | null = null;

/** Loads mysql2 on first use (it is not needed by processes without mysql tables). */
function loadMysql(): Promise<MyLib> {
  myLib ??= import("mysql2");
  return myLib;
}

/** One client connection. */
class MyConn implements SqlConn {
  #conn: Connection;
  #noBackslash: boolean;
  #alive = true;

  /** Wraps a connected client; `noBackslash` is sql_mode NO_BACKSLASH_ESCAPES. */
  constructor(conn: Connection, noBackslash: boolean) {
    this.#conn = conn;
    this.#noBackslash = noBackslash;
    conn.on("error", () => {
      this.#alive = false;
    });
    conn.on("end", () => {
      this.#alive = false;
    });
  }

  /** Whether the connection can still be used. */
  get alive(): boolean {
    return this.#alive;
  }

  /** Quotes like mysql_real_escape_string(), which follows NO_BACKSLASH_ESCAPES. */
  quote(value: string): string {
    if (this.#noBackslash) return value.replace(/'/g, "''");
    // eslint-disable-next-line no-control-regex -- \x1a (Ctrl-Z) is one of the characters MySQL escapes
    return value.replace(/[\0\n\r\\'"\x1a]/g, (c) => ESCAPES[c] ?? c);
  }

  /** Runs a query (a prepared statement when it has parameters); a connection that dies ends it. */
  run(sql: string, params: string[], limits: SqlLimits): Promise<SqlAnswer> {
    return new Promise((resolve) => {
      const rows: (string | null)[][] = [];
      let chars = 0;
      let overflow = false;
      let resultSet = false;
      let done = false;
      const finish = (a: SqlAnswer): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.#conn.off("error", lost).off("end", lost);
        resolve(a);
      };
      const lost = (err?: Error): void => {
        this.close();
        finish({ ok: false, connection: true, reason: err?.message ?? "the server closed the connection" });
      };
      const timer = setTimeout(() => {
        this.close();
        finish({ ok: false, connection: true, reason: `query timed out after ${limits.timeoutMs} ms` });
      }, limits.timeoutMs);
      if (!this.#alive) return lost();
      this.#conn.on("error", lost).on("end", lost);
      const options = { sql, rowsAsArray: true };
      let q: ReturnType<Connection["query"]>;
      try {
        q = params.length > 0 ? this.#conn.execute(options, params) : this.#conn.query(options);
      } catch (err) {
        return lost(err instanceof Error ? err : new Error(String(err)));
      }
      q.on("fields", (fields: unknown) => {
        if (Array.isArray(fields)) resultSet = true;
      });
      q.on("result", (row: unknown) => {
        if (!Array.isArray(row) || overflow) return;
        const texts = row.map(asText);
        for (const v of texts) chars += v === null ? 0 : v.length;
        if (rows.length >= limits.maxRows || chars > limits.maxChars) overflow = true;
        else rows.push(texts);
      });
      q.on("error", (err: Error) => {
        if (isFatal(err)) this.close();
        finish({ ok: false, connection: isFatal(err), reason: errorText(err) });
      });
      q.on("end", () => {
        if (overflow) finish({ ok: false, connection: false, reason: "result is too large" });
        else finish({ ok: true, rows: resultSet ? rows : null });
      });
    });
  }

  /** Closes the connection without waiting. */
  close(): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#conn.destroy();
  }
}

/** Opens mysql connections. */
class MyDriver implements SqlDriver<Endpoint> {
  #s: MySettings;

  /** Keeps the table's settings. */
  constructor(s: MySettings) {
    this.#s = s;
  }

  /** MySQL's parameter marker. */
  placeholder(_n: number, _typed: boolean): string {
    return "?";
  }

  /** UNIX-domain sockets first. */
  rank(ep: Endpoint): number {
    return ep.kind === "unix" ? 0 : 1;
  }

  /** Connects and learns whether backslashes escape (sql_mode). */
  async connect(ep: Endpoint, timeoutMs: number): Promise<SqlConn> {
    const mysql = await loadMysql();
    const where = ep.kind === "unix" ? { socketPath: ep.path } : { host: ep.host, port: ep.port };
    const conn = mysql.createConnection({
      ...where,
      user: this.#s.user,
      password: this.#s.password,
      database: this.#s.dbname,
      charset: this.#s.charset,
      connectTimeout: timeoutMs,
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: true,
      multipleStatements: false,
      ...(this.#s.ssl !== null ? { ssl: this.#s.ssl } : {}),
    });
    conn.on("error", () => undefined);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        conn.destroy();
        reject(new Error(`connection timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      conn.query({ sql: "SELECT @@SESSION.sql_mode", rowsAsArray: true }, (err, rows) => {
        clearTimeout(timer);
        if (err !== null) {
          conn.destroy();
          reject(err);
          return;
        }
        const mode = asText((rows as unknown[][])[0]?.[0]) ?? "";
        resolve(new MyConn(conn, /NO_BACKSLASH_ESCAPES/i.test(mode)));
      });
    });
  }
}

/** Reads a file for the TLS settings. */
function readPem(cf: CfParams, param: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw cf.error(param, errorText(err));
  }
}

/** The TLS settings, or null when none is given. */
function tlsSettings(cf: CfParams): MyTlsSettings | null {
  const names = ["tls_cert_file", "tls_key_file", "tls_CAfile", "tls_CApath", "tls_ciphers"];
  if (!names.some((n) => cf.str(n, "") !== "") && !cf.has("tls_verify_cert")) return null;
  const s: MyTlsSettings = { rejectUnauthorized: cf.bool("tls_verify_cert", false) };
  const ca: Buffer[] = [];
  const caFile = cf.str("tls_CAfile", "");
  if (caFile !== "") ca.push(readPem(cf, "tls_CAfile", caFile));
  const caPath = cf.str("tls_CApath", "");
  if (caPath !== "") {
    for (const f of readdirSync(caPath)) {
      const p = join(caPath, f);
      if (statSync(p).isFile()) ca.push(readPem(cf, "tls_CApath", p));
    }
  }
  if (ca.length > 0) s.ca = ca;
  const cert = cf.str("tls_cert_file", "");
  if (cert !== "") s.cert = readPem(cf, "tls_cert_file", cert);
  const key = cf.str("tls_key_file", "");
  if (key !== "") s.key = readPem(cf, "tls_key_file", key);
  const ciphers = cf.str("tls_ciphers", "");
  if (ciphers !== "") s.ciphers = ciphers;
  return s;
}

/** Opens a mysql: table. */
export function mysqlOpen(name: string, flags: number): DictImpl {
  try {
    const cf = CfParams.read("mysql", name);
    const hosts: { host: Endpoint; text: string }[] = [];
    for (const entry of sqlHostList(cf, "localhost")) {
      const ep = parseEndpoint(entry, 3306);
      if (ep === null) throw cf.error("hosts", `bad host "${entry}"`);
      hosts.push({ host: ep, text: entry });
    }
    if (cf.str("option_file", "") !== "") msg.warn(`mysql:${name}: option_file is not supported: ignored`);
    const charset = cf.str("charset", "utf8mb4").toUpperCase();
    const settings: MySettings = {
      user: cf.str("user", ""),
      password: cf.str("password", ""),
      dbname: cf.required("dbname"),
      charset,
      ssl: tlsSettings(cf),
    };
    const opts = { requireResultSet: cf.bool("require_result_set", true) };
    return new SqlDict("mysql", name, flags, cf, hosts, new MyDriver(settings), MY_DIALECT, opts);
  } catch (err) {
    return dictSurrogate("mysql", name, flags, errorText(err));
  }
}
