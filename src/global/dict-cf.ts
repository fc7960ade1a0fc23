/*
 * dict-cf - client configuration files of the server tables (pgsql:/file.cf, ...)
 *
 * SYNOPSIS
 *   import { CfParams, parseEndpoint } from "./dict-cf.js";
 *   const cf = CfParams.read("pgsql", "/etc/postfix/pgsql-aliases.cf");
 *   const hosts = cf.str("hosts", "");
 *   const limit = cf.int("expansion_limit", 0, 0);
 *
 * DESCRIPTION
 *   The server tables (pgsql, mysql, sqlite, ldap, memcache) are named by a
 *   file in main.cf syntax: "name = value" logical lines, "#" comments at
 *   line start, continuation lines that start with white space. As in
 *   Postfix, values are taken literally: "$name" is not expanded, and
 *   quotes are part of the value.
 *
 *   The getters check each value and throw a DictCfError that names the
 *   file and parameter; a table type turns that into an unusable table
 *   (every lookup fails temporarily), never into "not found".
 *
 *   Postfix also reads these parameters from main.cf ("pgsql:name" means
 *   name_hosts, name_user, ... in main.cf). That form is obsolete; Postern
 *   accepts only a file name, which must start with "/" or ".".
 *
 *   parseEndpoint() reads the "inet:host:port", "host:port", "[host]:port"
 *   and "unix:/path" forms used by hosts, memcache, socketmap and tcp.
 *
 * DIAGNOSTICS
 *   A missing or unreadable file, a file larger than CF_MAX_SIZE, a line
 *   that is not "name = value", and a value out of range are errors.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { parseMainCf } from "./main-cf.js";

/** The largest configuration file that is read. */
export const CF_MAX_SIZE = 1024 * 1024;

/** A configuration problem in a server table's file. */
export class DictCfError extends Error {
  readonly code = "EDICTCF";
}

/** Reads at most `max` bytes of a file; throws DictCfError when it is larger or unreadable. */
function readBounded(path: string, max: number): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    throw new DictCfError(`open ${path}: ${(err as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new DictCfError(`${path}: not a regular file`);
    if (st.size > max) throw new DictCfError(`${path}: file is larger than ${max} bytes`);
    const buf = Buffer.alloc(st.size);
    let done = 0;
    while (done < buf.length) {
      const n = readSync(fd, buf, done, buf.length - done, done);
      if (n <= 0) break;
      done += n;
    }
    return buf.subarray(0, done).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/** The parameters of one server table's configuration file. */
export class CfParams {
  readonly type: string;
  readonly path: string;
  #settings: Map<string, string>;

  /** Wraps parsed settings (use CfParams.read or CfParams.fromText). */
  private constructor(type: string, path: string, settings: Map<string, string>) {
    this.type = type;
    this.path = path;
    this.#settings = settings;
  }

  /** Reads a table's configuration file; throws DictCfError. */
  static read(type: string, name: string): CfParams {
    if (!name.startsWith("/") && !name.startsWith(".")) {
      throw new DictCfError(
        `${type}:${name}: need the path of a configuration file (the main.cf form "${name}_hosts" etc. is not supported)`,
      );
    }
    return CfParams.fromText(type, name, readBounded(name, CF_MAX_SIZE));
  }

  /** Parses configuration text (tests, and read()). */
  static fromText(type: string, path: string, text: string): CfParams {
    const cf = parseMainCf(text, path);
    const first = cf.problems[0];
    if (first !== undefined) throw new DictCfError(`${first.file}, line ${first.line}: ${first.text}`);
    const settings = new Map<string, string>();
    for (const [name, s] of cf.settings) settings.set(name, s.value);
    return new CfParams(type, path, settings);
  }

  /** Whether the file sets a parameter. */
  has(name: string): boolean {
    return this.#settings.has(name);
  }

  /** A string parameter, or the default when it is not set. */
  str(name: string, def: string): string {
    return this.#settings.get(name) ?? def;
  }

  /** A string parameter that must be set and not empty. */
  required(name: string): string {
    const v = this.#settings.get(name);
    if (v === undefined || v === "") throw this.error(name, "parameter is required");
    return v;
  }

  /** An integer parameter within [min, max]. */
  int(name: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const raw = this.#settings.get(name);
    if (raw === undefined || raw === "") return def;
    if (!/^[+-]?[0-9]+$/.test(raw)) throw this.error(name, `bad integer value "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw this.error(name, `value ${raw} is out of range [${min}, ${max}]`);
    return n;
  }

  /** A boolean parameter: yes/no/true/false (any case). */
  bool(name: string, def: boolean): boolean {
    const raw = this.#settings.get(name);
    if (raw === undefined || raw === "") return def;
    const low = raw.toLowerCase();
    if (low === "yes" || low === "true") return true;
    if (low === "no" || low === "false") return false;
    throw this.error(name, `bad boolean value "${raw}"; need yes or no`);
  }

  /** A DictCfError that names the file and the parameter. */
  error(name: string, text: string): DictCfError {
    return new DictCfError(`${this.path}: ${name}: ${text}`);
  }
}

/** Splits a list value at commas and white space. */
export function cfList(value: string): string[] {
  return value.split(/[\s,]+/).filter((s) => s !== "");
}

/** A network endpoint. */
export type Endpoint =
  { kind: "inet"; host: string; port: number; text: string } | { kind: "unix"; path: string; text: string };

/** Parses "inet:host:port", "host:port", "[host]:port", "host" or "unix:/path"; null when malformed. */
export function parseEndpoint(spec: string, defaultPort: number | null): Endpoint | null {
  if (spec.startsWith("unix:")) {
    const path = spec.slice(5);
    return path === "" ? null : { kind: "unix", path, text: spec };
  }
  const rest = spec.startsWith("inet:") ? spec.slice(5) : spec;
  let host: string;
  let port: string | null = null;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) return null;
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after.startsWith(":")) port = after.slice(1);
    else if (after !== "") return null;
  } else {
    const colon = rest.lastIndexOf(":");
    const ipv6 = rest.indexOf(":") !== colon;
    host = colon < 0 || ipv6 ? rest : rest.slice(0, colon);
    if (colon >= 0 && !ipv6) port = rest.slice(colon + 1);
  }
  if (host === "") return null;
  if (port === null) {
    if (defaultPort === null) return null;
    return { kind: "inet", host, port: defaultPort, text: spec };
  }
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) return null;
  return { kind: "inet", host, port: Number(port), text: spec };
}
