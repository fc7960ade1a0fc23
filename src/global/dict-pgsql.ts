/*
 * dict-pgsql - pgsql: tables, lookups in PostgreSQL
 *
 * SYNOPSIS
 *   dictOpen("pgsql:/etc/postfix/pgsql-aliases.cf")
 *
 *   hosts = inet:db1.example.com db2.example.com:5433 unix:/var/run/postgresql
 *   hosts = postgresql://user:secret@db.example.com/mail?sslmode=require
 *   user = postfix
 *   password = secret
 *   dbname = mail
 *   query = SELECT goto FROM alias WHERE address = '%s'
 *
 * DESCRIPTION
 *   The parameters of pgsql_table(5): hosts, user, password, dbname,
 *   encoding (default UTF8), query (or select_function, or the legacy
 *   select_field, table, where_field, additional_conditions),
 *   result_format, domain, expansion_limit, idle_interval,
 *   retry_interval; plus Postern's connect_timeout and query_timeout.
 *   See dict-sql.ts for failover and for how keys are protected.
 *
 *   A hosts entry is a connection URI (then user, password and dbname are
 *   taken from it), "unix:/directory" (the directory of the server's
 *   socket, as with libpq), or "inet:host:port", "host:port", "host"
 *   (port 5432). Every column of every row is a result; NULL and empty
 *   values are skipped.
 *
 *   The client is node-postgres ("pg"), in pure JavaScript. Values come
 *   back as the server's text, as libpq gives them to Postfix.
 */
import type { Client, ClientConfig, QueryArrayConfig } from "pg";
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

/** A pgsql host: a connection URI or an endpoint. */
type PgHost = { uri: string } | { ep: Endpoint; socketPort: number };

/** Settings shared by every connection of one table. */
interface PgSettings {
  user: string;
  password: string;
  dbname: string;
  encoding: string;
}

/** Returns every value as the server's text. */
const RAW_TEXT = { getTypeParser: () => (v: string) => v };

/** The lexical rules of PostgreSQL's SQL. */
const PG_DIALECT = {
  backslashEscapes: false,
  doubleQuoteStrings: false,
  backticks: false,
  hashComments: false,
  dollarQuotes: true,
};

/** SQLSTATE of "could not determine data type of parameter". */
const INDETERMINATE_DATATYPE = "42P18";

type PgLib = (typeof import("pg"))["default"];

let pgLib: Promise<PgLib> | null = null;

/** Loads node-postgres on first use (it is not needed by processes without pgsql tables). */
function loadPg(): Promise<PgLib> {
  pgLib ??= import("pg").then((m) => m.default);
  return pgLib;
}

/** Whether an error came from the server about the query (not about the session). */
function isQueryError(pg: PgLib, err: unknown): boolean {
  if (!(err instanceof pg.DatabaseError)) return false;
  return err.severity !== "FATAL" && err.severity !== "PANIC";
}

/** One client connection. */
class PgConn implements SqlConn {
  #pg: PgLib;
  #client: Client;
  #standard: boolean;
  #alive = true;

  /** Wraps a connected client; `standard` is standard_conforming_strings. */
  constructor(pg: PgLib, client: Client, standard: boolean) {
    this.#pg = pg;
    this.#client = client;
    this.#standard = standard;
    client.on("error", () => {
      this.#alive = false;
    });
    client.on("end", () => {
      this.#alive = false;
    });
  }

  /** Whether the connection can still be used. */
  get alive(): boolean {
    return this.#alive;
  }

  /** Quotes like PQescapeStringConn: doubles quotes, and backslashes unless strings are standard. */
  quote(value: string): string {
    const q = value.replace(/'/g, "''");
    return this.#standard ? q : q.replace(/\\/g, "\\\\");
  }

  /** Runs a query; rows beyond the limits are counted, not kept. */
  run(sql: string, params: string[], limits: SqlLimits): Promise<SqlAnswer> {
    return new Promise((resolve) => {
      const rows: (string | null)[][] = [];
      let chars = 0;
      let overflow = false;
      let done = false;
      const finish = (a: SqlAnswer): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(a);
      };
      const timer = setTimeout(() => {
        this.close();
        finish({ ok: false, connection: true, reason: `query timed out after ${limits.timeoutMs} ms` });
      }, limits.timeoutMs);
      const pg = this.#pg;
      const config: QueryArrayConfig<string[]> = {
        text: sql,
        values: params,
        rowMode: "array",
        types: RAW_TEXT,
      };
      const q = new pg.Query(config);
      q.on("row", (row: (string | null)[]) => {
        if (overflow) return;
        for (const v of row) chars += v === null ? 0 : v.length;
        if (rows.length >= limits.maxRows || chars > limits.maxChars) overflow = true;
        else rows.push(row);
      });
      q.on("error", (err: Error) => {
        if (!isQueryError(pg, err)) this.close();
        const wantTyped = err instanceof pg.DatabaseError && err.code === INDETERMINATE_DATATYPE;
        finish({ ok: false, connection: !isQueryError(pg, err), reason: errorText(err), wantTyped });
      });
      q.on("end", () => {
        if (overflow) finish({ ok: false, connection: false, reason: "result is too large" });
        else finish({ ok: true, rows });
      });
      try {
        this.#client.query(q);
      } catch (err) {
        this.close();
        finish({ ok: false, connection: true, reason: errorText(err) });
      }
    });
  }

  /** Closes the connection without waiting. */
  close(): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#client.end().catch(() => undefined);
  }
}

/** Opens pgsql connections. */
class PgDriver implements SqlDriver<PgHost> {
  #s: PgSettings;

  /** Keeps the table's settings. */
  constructor(s: PgSettings) {
    this.#s = s;
  }

  /** PostgreSQL's parameter markers: $1, $2, ... ($1::text where the type cannot be inferred). */
  placeholder(n: number, typed: boolean): string {
    return typed ? `$${n}::text` : `$${n}`;
  }

  /** Connects and learns standard_conforming_strings. */
  async connect(host: PgHost, timeoutMs: number): Promise<SqlConn> {
    const common = { connectionTimeoutMillis: timeoutMs, types: RAW_TEXT, application_name: "postern" };
    const pg = await loadPg();
    let config: ClientConfig;
    if ("uri" in host) {
      config = { ...common, connectionString: host.uri };
    } else {
      const where =
        host.ep.kind === "unix"
          ? { host: host.ep.path, port: host.socketPort }
          : { host: host.ep.host, port: host.ep.port };
      config = {
        ...common,
        ...where,
        ...(this.#s.user !== "" ? { user: this.#s.user } : {}),
        ...(this.#s.password !== "" ? { password: this.#s.password } : {}),
        database: this.#s.dbname,
        client_encoding: this.#s.encoding,
      };
    }
    const client = new pg.Client(config);
    client.on("error", () => undefined);
    const timer = setTimeout(() => void client.end().catch(() => undefined), timeoutMs);
    try {
      await client.connect();
      const r = await client.query({ text: "SHOW standard_conforming_strings", rowMode: "array" });
      const first = (r.rows as unknown[][])[0]?.[0];
      return new PgConn(pg, client, first === "on");
    } catch (err) {
      void client.end().catch(() => undefined);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Parses one hosts entry; "unix:/dir/.s.PGSQL.port" names a socket with its port. */
function pgHost(entry: string): PgHost | null {
  if (/^postgres(ql)?:\/\//.test(entry)) return { uri: entry };
  const ep = parseEndpoint(entry, 5432);
  if (ep === null) return null;
  const m = ep.kind === "unix" ? /^(.*)\/\.s\.PGSQL\.([0-9]{1,5})$/.exec(ep.path) : null;
  if (m === null) return { ep, socketPort: 5432 };
  return { ep: { kind: "unix", path: m[1] ?? "", text: ep.text }, socketPort: Number(m[2]) };
}

/** Opens a pgsql: table. */
export function pgsqlOpen(name: string, flags: number): DictImpl {
  try {
    const cf = CfParams.read("pgsql", name);
    const hosts: { host: PgHost; text: string }[] = [];
    for (const entry of sqlHostList(cf, "localhost")) {
      const host = pgHost(entry);
      if (host === null) throw cf.error("hosts", `bad host "${entry}"`);
      hosts.push({ host, text: "uri" in host ? entry.replace(/:[^:@/]*@/, ":*@") : entry });
    }
    const needDb = hosts.some((h) => !("uri" in h.host));
    const settings: PgSettings = {
      user: cf.str("user", ""),
      password: cf.str("password", ""),
      dbname: needDb ? cf.required("dbname") : cf.str("dbname", ""),
      encoding: cf.str("encoding", "UTF8"),
    };
    return new SqlDict("pgsql", name, flags, cf, hosts, new PgDriver(settings), PG_DIALECT);
  } catch (err) {
    return dictSurrogate("pgsql", name, flags, errorText(err));
  }
}
