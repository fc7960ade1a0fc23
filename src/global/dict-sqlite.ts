/*
 * dict-sqlite - sqlite: tables, lookups in an SQLite database file
 *
 * SYNOPSIS
 *   dictOpen("sqlite:/etc/postfix/sqlite-aliases.cf")
 *
 *   dbpath = /etc/postfix/mail.sqlite
 *   query = SELECT goto FROM alias WHERE address = '%s'
 *
 * DESCRIPTION
 *   The parameters of sqlite_table(5): dbpath, query (or the legacy
 *   select_field, table, where_field, additional_conditions),
 *   result_format, domain and expansion_limit. Keys are protected as in
 *   dict-sql.ts: a literal such as '%s' becomes a bound parameter, other
 *   expansions are quoted by doubling "'".
 *
 *   SQLite comes as sql.js, SQLite compiled to WebAssembly, because Node 20
 *   has no built-in SQLite and a native add-on cannot be loaded by a
 *   jailed daemon. sql.js works on a copy of the database in memory: the
 *   file is read when the table is first used and read again when it
 *   changes (checked at most once a second), so the table always answers
 *   from one consistent version of the file and never writes to it. A file
 *   larger than SQLITE_MAX_FILE cannot be used.
 *
 *   Every column of every row is a result; NULL and empty values are
 *   skipped; numbers come back as text, blobs as UTF-8.
 *
 * DIAGNOSTICS
 *   A missing, unreadable or corrupt database file, and an SQL error, make
 *   the lookup fail temporarily.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import { CfParams } from "./dict-cf.js";
import { dictSurrogate } from "./dict-registry.js";
import { SqlDict, type SqlAnswer, type SqlConn, type SqlDriver, type SqlLimits } from "./dict-sql.js";
import { errorText, type DictImpl } from "./dict-types.js";

/** The largest database file that is loaded. */
export const SQLITE_MAX_FILE = 256 * 1024 * 1024;

/** How often a database file is checked for changes. */
const RECHECK_MS = 1000;

/** The lexical rules of SQLite's SQL. */
const SQLITE_DIALECT = {
  backslashEscapes: false,
  doubleQuoteStrings: false,
  backticks: true,
  hashComments: false,
  dollarQuotes: false,
};

type SqlJs = Awaited<ReturnType<(typeof import("sql.js"))["default"]>>;
type Database = InstanceType<SqlJs["Database"]>;

let engine: Promise<SqlJs> | null = null;

/** Loads the SQLite engine once per process, on first use. */
function sqlJs(): Promise<SqlJs> {
  engine ??= import("sql.js").then(async (m) => await m.default());
  return engine;
}

/** What identifies one version of a file. */
function stampOf(path: string): string | null {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return null;
  }
}

/** Reads a whole file of at most `max` bytes. */
function readFileBounded(path: string, max: number): { data: Uint8Array; stamp: string } {
  const fd = openSync(path, "r");
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${path}: not a regular file`);
    if (st.size > max) throw new Error(`${path}: file is larger than ${max} bytes`);
    const data = new Uint8Array(st.size);
    let done = 0;
    while (done < data.length) {
      const n = readSync(fd, data, done, data.length - done, done);
      if (n <= 0) throw new Error(`${path}: file shrank while it was read`);
      done += n;
    }
    return { data, stamp: `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}` };
  } finally {
    closeSync(fd);
  }
}

/** A value of a row as text. */
function asText(v: number | string | Uint8Array | null): string | null {
  if (v === null) return null;
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  return Buffer.from(v).toString("utf8");
}

/** One loaded version of the database file. */
class SqliteConn implements SqlConn {
  #db: Database;
  #path: string;
  #stamp: string;
  #checked = Date.now();
  #open = true;

  /** Wraps a database loaded from `path` at version `stamp`. */
  constructor(db: Database, path: string, stamp: string) {
    this.#db = db;
    this.#path = path;
    this.#stamp = stamp;
  }

  /** Usable until closed or until the file changes. */
  get alive(): boolean {
    if (!this.#open) return false;
    const now = Date.now();
    if (now - this.#checked < RECHECK_MS) return true;
    this.#checked = now;
    if (stampOf(this.#path) !== this.#stamp) this.close();
    return this.#open;
  }

  /** Doubles quotes, like sqlite3_mprintf("%q"). */
  quote(value: string): string {
    return value.replace(/'/g, "''");
  }

  /** Runs a query; an SQL error fails only this query. */
  run(sql: string, params: string[], limits: SqlLimits): Promise<SqlAnswer> {
    if (!this.#open) return Promise.resolve({ ok: false, connection: true, reason: "database is closed" });
    let stmt: ReturnType<Database["prepare"]> | null = null;
    try {
      stmt = this.#db.prepare(sql);
      stmt.bind(params);
      const rows: (string | null)[][] = [];
      let chars = 0;
      while (stmt.step()) {
        const row = stmt.get().map(asText);
        for (const v of row) chars += v === null ? 0 : v.length;
        if (rows.length >= limits.maxRows || chars > limits.maxChars) {
          return Promise.resolve({ ok: false, connection: false, reason: "result is too large" });
        }
        rows.push(row);
      }
      return Promise.resolve({ ok: true, rows });
    } catch (err) {
      return Promise.resolve({ ok: false, connection: false, reason: errorText(err) });
    } finally {
      stmt?.free();
    }
  }

  /** Frees the in-memory copy. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#db.close();
  }
}

/** Loads the database file. */
class SqliteDriver implements SqlDriver<string> {
  /** SQLite's parameter marker. */
  placeholder(_n: number, _typed: boolean): string {
    return "?";
  }

  /** Reads the file and checks that it is a database. */
  async connect(path: string, _timeoutMs: number): Promise<SqlConn> {
    const SQL = await sqlJs();
    const file = readFileBounded(path, SQLITE_MAX_FILE);
    const db = new SQL.Database(file.data);
    try {
      db.exec("SELECT count(*) FROM sqlite_master");
    } catch (err) {
      db.close();
      throw new Error(`${path}: ${errorText(err)}`, { cause: err });
    }
    return new SqliteConn(db, path, file.stamp);
  }
}

/** Opens a sqlite: table. */
export function sqliteOpen(name: string, flags: number): DictImpl {
  try {
    const cf = CfParams.read("sqlite", name);
    const dbpath = cf.required("dbpath");
    const hosts = [{ host: dbpath, text: dbpath }];
    return new SqlDict("sqlite", name, flags, cf, hosts, new SqliteDriver(), SQLITE_DIALECT, {
      requireResultSet: false,
    });
  } catch (err) {
    return dictSurrogate("sqlite", name, flags, errorText(err));
  }
}
