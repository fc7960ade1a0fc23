/*
 * config - the effective configuration: main.cf, master.cf -o, defaults
 *
 * SYNOPSIS
 *   import { Config } from "../global/config.js";
 *   const cfg = Config.load(configDirectory(opts.c));
 *   const idle = cfg.time("max_idle");          // seconds; ConfigError if bad
 *   const svc = cfg.withOverrides(entryOverrides(entry), "master.cf, line 12");
 *
 * DESCRIPTION
 *   A parameter's raw value comes from, in order: a per-service or
 *   command-line override (-o), main.cf, a run-time default (host name,
 *   directories), the default in params-table.ts. $name references are
 *   expanded when a value is used, not when it is read, so an override of
 *   one parameter changes every value that refers to it.
 *
 *   Typed getters check the value and throw ConfigError (code ECONFIG) with
 *   a message that names file, line, parameter, value and what was expected;
 *   problems() collects every such problem for "postern check".
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { macExpand, macReferences } from "../util/mac-expand.js";
import { parseMainCf, type CfProblem, type MainCf } from "./main-cf.js";
import { entryOverrides, parseMasterCf, type MasterCf } from "./master-cf.js";
import {
  parseBool,
  parseInt10,
  parseTime,
  splitList,
  validLevel,
  type ParamDef,
  type Parsed,
} from "./params.js";
import { PARAM_TABLE, SERVICE_PARAM_SUFFIXES, paramDef } from "./params-table.js";
import { installRoot, packageVersion } from "./install-paths.js";

export class ConfigError extends Error {
  readonly code = "ECONFIG";
}

interface Override {
  value: string;
  where: string;
}

interface ConfigState {
  dir: string;
  mainExists: boolean;
  main: MainCf;
  master: MasterCf;
  runtime: Map<string, string>;
  overrides: Map<string, Override>;
}

/** Computes the run-time defaults for a configuration directory. */
function runtimeDefaults(dir: string): Map<string, string> {
  const host = hostname();
  const fqdn = host.includes(".") ? host : `${host}.localdomain`;
  return new Map([
    ["config_directory", dir],
    ["myhostname", fqdn],
    ["daemon_directory", join(installRoot(), "libexec")],
    ["command_directory", join(installRoot(), "bin")],
    ["mail_version", packageVersion()],
    ["process_name", "postern"],
    ["process_id", String(process.pid)],
  ]);
}

/** Reads a file, or returns null when it does not exist; other errors throw ConfigError. */
function readOptional(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ENOENT") return null;
    throw new ConfigError(`open ${path}: ${e.message}`);
  }
}

export class Config {
  readonly dir: string;
  readonly main: MainCf;
  readonly master: MasterCf;
  readonly mainPath: string;
  readonly masterPath: string;
  readonly mainExists: boolean;
  #runtime: Map<string, string>;
  #overrides: Map<string, Override>;

  /** Use Config.load or Config.fromText. */
  private constructor(s: ConfigState) {
    this.dir = s.dir;
    this.mainPath = join(s.dir, "main.cf");
    this.masterPath = join(s.dir, "master.cf");
    this.mainExists = s.mainExists;
    this.main = s.main;
    this.master = s.master;
    this.#runtime = s.runtime;
    this.#overrides = s.overrides;
  }

  /** Parses the two files' text into a configuration. */
  static #parse(dir: string, main: string | null, master: string | null): Config {
    return new Config({
      dir,
      mainExists: main !== null,
      main: parseMainCf(main ?? "", join(dir, "main.cf")),
      master: parseMasterCf(master ?? "", join(dir, "master.cf")),
      runtime: runtimeDefaults(dir),
      overrides: new Map(),
    });
  }

  /** Reads main.cf and master.cf from a directory (a missing file reads as empty). */
  static load(dir: string): Config {
    return Config.#parse(dir, readOptional(join(dir, "main.cf")), readOptional(join(dir, "master.cf")));
  }

  /** Builds a configuration from text (tests, embedded defaults). */
  static fromText(dir: string, main: string, master = ""): Config {
    return Config.#parse(dir, main, master);
  }

  /** A view with extra overrides (master.cf -o, command-line -o, stress=yes); the files are shared. */
  withOverrides(pairs: Iterable<[string, string]>, where: string): Config {
    const overrides = new Map(this.#overrides);
    for (const [name, value] of pairs) overrides.set(name, { value, where });
    return new Config({
      dir: this.dir,
      mainExists: this.mainExists,
      main: this.main,
      master: this.master,
      runtime: this.#runtime,
      overrides,
    });
  }

  /** Sets a run-time value (process_name, service_name, ...) in this view. */
  setRuntime(name: string, value: string): void {
    this.#runtime = new Map(this.#runtime).set(name, value);
  }

  /** The raw (unexpanded) value of a parameter, or undefined when it has none. */
  raw(name: string): string | undefined {
    const o = this.#overrides.get(name);
    if (o !== undefined) return o.value;
    const s = this.main.settings.get(name);
    if (s !== undefined) return s.value;
    const r = this.#runtime.get(name);
    if (r !== undefined && (r !== "" || paramDef(name)?.runtime === true)) return r;
    if (name === "mydomain") return this.#derivedDomain();
    return paramDef(name)?.def;
  }

  /** mydomain's default: myhostname without its first label (localdomain when there is none). */
  #derivedDomain(): string {
    const host = this.get("myhostname");
    const dot = host.indexOf(".");
    return dot > 0 && dot < host.length - 1 ? host.slice(dot + 1) : "localdomain";
  }

  /** The raw default of a parameter (postconf -d), ignoring main.cf and overrides. */
  rawDefault(name: string): string | undefined {
    const def = paramDef(name);
    if (name === "mydomain") return Config.fromText(this.dir, "").#derivedDomain();
    if (def?.runtime === true) return this.#runtime.get(name) ?? def.def;
    return def?.def;
  }

  /** True when main.cf or an override sets the parameter. */
  isSet(name: string): boolean {
    return this.#overrides.has(name) || this.main.settings.has(name);
  }

  /** Where a parameter's value comes from, for error messages. */
  where(name: string): string {
    const o = this.#overrides.get(name);
    if (o !== undefined) return o.where;
    const s = this.main.settings.get(name);
    if (s !== undefined) return `${s.file}, line ${s.first}`;
    return "default";
  }

  /** Expands $name references in a text against this configuration. */
  expand(text: string, context = "value"): string {
    const r = macExpand(text, (n) => this.raw(n));
    if (!r.ok) throw new ConfigError(`${context}: ${r.error}`);
    return r.value;
  }

  /** The expanded value of a parameter ("" when it has none). */
  get(name: string): string {
    const raw = this.raw(name);
    if (raw === undefined) return "";
    const value = this.expand(raw, `${this.where(name)}: parameter ${name}`);
    return name === "myorigin" && value.startsWith("/") ? this.#fromFile(name, value) : value;
  }

  /**
   * A value kept in a file, as Debian's "myorigin = /etc/mailname": the
   * file's first word (a missing or empty file is an error naming it).
   */
  #fromFile(name: string, path: string): string {
    const text = this.#readFile(name, path);
    const word = text.split(/\s+/).find((w) => w !== "" && !w.startsWith("#"));
    if (word === undefined) throw new ConfigError(`${this.where(name)}: parameter ${name}: ${path} is empty`);
    return word;
  }

  /** Throws a ConfigError naming where the value came from and what was expected. */
  #bad(name: string, value: string, expected: string): never {
    throw new ConfigError(
      `${this.where(name)}: parameter ${name}: bad value "${value}": expected ${expected}`,
    );
  }

  /** Unwraps a parse result or throws. */
  #typed<T>(name: string, value: string, r: Parsed<T>): T {
    return r.ok ? r.value : this.#bad(name, value, r.expected);
  }

  /** A string parameter. */
  str(name: string): string {
    return this.get(name);
  }

  /** A yes/no parameter. */
  bool(name: string): boolean {
    const v = this.get(name);
    return this.#typed(name, v, parseBool(v));
  }

  /** An integer parameter, range-checked from the table. */
  int(name: string): number {
    const v = this.get(name);
    const d = paramDef(name);
    return this.#typed(name, v, parseInt10(v, d?.min ?? 0, d?.max));
  }

  /** A time parameter in seconds, with the table's default unit. */
  time(name: string): number {
    const v = this.get(name);
    const d = paramDef(name);
    return this.#typed(name, v, parseTime(v, d?.unit ?? "s", d?.min ?? 0, d?.max));
  }

  /** A list parameter: split on commas and white space, { } groups kept, /file entries expanded where allowed. */
  list(name: string): string[] {
    const v = this.get(name);
    const items = this.#typed(name, v, splitList(v));
    if (paramDef(name)?.fileEntries !== true) return items;
    return items.flatMap((item) => (item.startsWith("/") ? this.#fileEntries(name, item) : [item]));
  }

  /** Reads a file a parameter names; an error names the parameter, where it is set, and the file. */
  #readFile(name: string, path: string): string {
    try {
      return readFileSync(path, "utf8");
    } catch (err) {
      throw new ConfigError(
        `${this.where(name)}: parameter ${name}: open ${path}: ${(err as Error).message}`,
      );
    }
  }

  /** Reads the entries of a /file/name list element. */
  #fileEntries(name: string, path: string): string[] {
    const text = this.#readFile(name, path);
    const lines = text.split("\n").map((l) => l.replace(/#.*$/, ""));
    return lines.flatMap((l) => l.split(/[\s,]+/)).filter((w) => w !== "");
  }

  /** Checks one parameter's value against its type; returns the problem or null. */
  checkParam(def: ParamDef): string | null {
    try {
      switch (def.type) {
        case "bool":
          this.bool(def.name);
          break;
        case "int":
        case "long":
          this.int(def.name);
          break;
        case "time":
          this.time(def.name);
          break;
        case "list":
          this.list(def.name);
          break;
        default:
          this.get(def.name);
      }
      if (def.name === "compatibility_level" && !validLevel(this.get(def.name))) {
        this.#bad(def.name, this.get(def.name), "a level such as 0, 1, 2, 3.6");
      }
      return null;
    } catch (err) {
      if (err instanceof ConfigError) return err.message;
      throw err;
    }
  }

  /** Every problem in the files and in the values that are set, in file and line order (postern check, daemon start-up). */
  problems(): string[] {
    const found = [...this.main.problems, ...this.master.problems].map(
      (p: CfProblem) => `${p.file}, line ${p.line}: ${p.text}`,
    );
    const views: Config[] = [this];
    for (const e of this.master.entries) {
      const o = entryOverrides(e);
      if (o.length > 0)
        views.push(this.withOverrides(o, `${e.file}, line ${e.first}: service ${e.service}/${e.type}`));
    }
    for (const view of views) {
      for (const def of PARAM_TABLE) {
        if (view === this ? !view.isSet(def.name) && def.runtime !== true : !view.#overrides.has(def.name))
          continue;
        const p = view.checkParam(def);
        if (p !== null) found.push(p);
      }
    }
    const key = (p: string): [string, number] => {
      const m = /^(.*?), line (\d+)/.exec(p);
      return [m?.[1] ?? "", Number(m?.[2] ?? 0)];
    };
    return [...new Set(found)].sort((a, b) => {
      const [fa, la] = key(a);
      const [fb, lb] = key(b);
      return fa === fb ? la - lb : fa < fb ? -1 : 1;
    });
  }

  /** Names that are valid although not built in: per-service and user-defined ones. */
  #extraKnown(): Set<string> {
    const known = new Set<string>();
    for (const e of this.master.entries)
      for (const s of SERVICE_PARAM_SUFFIXES) known.add(`${e.service}_${s}`);
    const values = [...this.main.settings.values()].map((s) => s.value);
    for (const e of this.master.entries) for (const [, v] of entryOverrides(e)) values.push(v);
    for (const v of values) for (const n of macReferences(v)) known.add(n);
    for (const raw of [this.main.settings.get("smtpd_restriction_classes")?.value ?? ""]) {
      for (const n of raw.split(/[\s,]+/)) if (n !== "") known.add(n);
    }
    return known;
  }

  /** The "unused parameter" warnings, as Postfix's postconf prints them. */
  unusedWarnings(): string[] {
    const known = this.#extraKnown();
    const isKnown = (n: string): boolean => paramDef(n) !== undefined || known.has(n);
    const out: string[] = [];
    const mainNames = [...this.main.settings.keys()].sort();
    for (const n of mainNames) {
      if (!isKnown(n))
        out.push(`${this.mainPath}: unused parameter: ${n}=${this.main.settings.get(n)?.value ?? ""}`);
    }
    for (const e of this.master.entries) {
      for (const [n, v] of entryOverrides(e)) {
        if (!isKnown(n)) out.push(`${this.masterPath}: unused parameter: ${n}=${v}`);
      }
    }
    return out;
  }
}
