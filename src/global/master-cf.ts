/*
 * master-cf - read, print and edit master.cf
 *
 * SYNOPSIS
 *   import { parseMasterCf, formatMasterEntry, resolveEntry } from "../global/master-cf.js";
 *
 * DESCRIPTION
 *   master.cf has one service per logical line, in eight columns:
 *     service type private unpriv chroot wakeup maxproc command [args...]
 *   "-" in a column means the default. Arguments may be grouped with
 *   "{ ... }" (the braces and the white space just inside them are
 *   removed), and "-o name=value" or "-o { name = value }" overrides a
 *   main.cf parameter for that service. Service types are inet ([host:]port),
 *   unix, unix-dgram, fifo and pass.
 *
 *   parseMasterCf() checks every column and reports problems with file and
 *   line; resolveEntry() turns the columns into typed settings (defaults
 *   filled in) for master; formatMasterEntry() prints an entry as postconf -M
 *   does, optionally folded.
 */

import { logicalLines } from "../util/logical-lines.js";
import type { CfProblem } from "./main-cf.js";

export type ServiceType = "inet" | "unix" | "unix-dgram" | "fifo" | "pass";
export const SERVICE_TYPES: readonly ServiceType[] = ["inet", "unix", "unix-dgram", "fifo", "pass"];

export interface MasterEntry {
  service: string;
  type: ServiceType;
  private: string;
  unpriv: string;
  chroot: string;
  wakeup: string;
  maxproc: string;
  command: string;
  /** Arguments after the command, braces removed, -o values normalized to name=value. */
  args: string[];
  file: string;
  first: number;
  last: number;
}

export interface MasterCf {
  entries: MasterEntry[];
  problems: CfProblem[];
}

export const FIELD_NAMES = [
  "service",
  "type",
  "private",
  "unprivileged",
  "chroot",
  "wakeup",
  "process_limit",
  "command",
] as const;
export type FieldName = (typeof FIELD_NAMES)[number];

/** Daemon options that take a value (kept with it when printing). */
const OPTIONS_WITH_VALUE = "o";

/** Splits a logical line into tokens; a "{ ... }" group is one token with the braces removed. */
export function tokenize(text: string): { tokens: string[] } | { error: string } {
  const tokens: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i] ?? "")) i++;
    if (i >= text.length) break;
    if (text[i] === "{") {
      let depth = 0;
      let j = i;
      for (; j < text.length; j++) {
        if (text[j] === "{") depth++;
        else if (text[j] === "}" && --depth === 0) break;
      }
      if (j >= text.length) return { error: `missing '}' in "${text.slice(i)}"` };
      if (j + 1 < text.length && !/\s/.test(text[j + 1] ?? "")) {
        return {
          error: `syntax error after '}' in "${text.slice(i, text.indexOf(" ", j) < 0 ? undefined : text.indexOf(" ", j))}"`,
        };
      }
      tokens.push(text.slice(i + 1, j).trim());
      i = j + 1;
    } else {
      let j = i;
      while (j < text.length && !/\s/.test(text[j] ?? "")) j++;
      tokens.push(text.slice(i, j));
      i = j;
    }
  }
  return { tokens };
}

/** Normalizes an "-o" value: "name = value" becomes "name=value". */
function normalizeOverride(v: string): string {
  const eq = v.indexOf("=");
  return eq < 0 ? v : `${v.slice(0, eq).trim()}=${v.slice(eq + 1).trim()}`;
}

/** Checks a y/n/- column. */
function checkBool(v: string): boolean {
  return v === "y" || v === "n" || v === "-";
}

/** Checks the columns of an entry; returns the first problem or null. */
function checkColumns(f: string[]): string | null {
  const [service, type, priv, unpriv, chroot, wakeup, maxproc] = f as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if (!SERVICE_TYPES.includes(type as ServiceType)) return `bad transport type: ${type}`;
  if (type === "inet" && parseInetName(service) === null) return `bad inet service name: "${service}"`;
  if (type !== "inet" && !/^[A-Za-z0-9_.-]+$/.test(service)) return `bad service name: "${service}"`;
  if (!checkBool(priv)) return `field "private": bad value: "${priv}"`;
  if (type === "inet" && priv !== "n") return "inet service cannot be private";
  if (!checkBool(unpriv)) return `field "unprivileged": bad value: "${unpriv}"`;
  if (!checkBool(chroot)) return `field "chroot": bad value: "${chroot}"`;
  if (wakeup !== "-" && !/^\d+\??$/.test(wakeup)) return `field "wakeup_time": bad value: "${wakeup}"`;
  if (maxproc !== "-" && !/^\d+$/.test(maxproc)) return `field "max_proc": bad value: "${maxproc}"`;
  return null;
}

/** Parses master.cf text; bad lines are reported and left out. */
export function parseMasterCf(text: string, file: string): MasterCf {
  const entries: MasterEntry[] = [];
  const problems: CfProblem[] = [];
  const seen = new Set<string>();
  for (const l of logicalLines(text, (p) => problems.push({ file, line: p.line, text: p.problem }))) {
    const t = tokenize(l.text);
    const bad = (why: string): void => void problems.push({ file, line: l.first, text: why });
    if ("error" in t) {
      bad(t.error);
      continue;
    }
    const f = t.tokens;
    if (f.length < 8) {
      bad(`missing "${FIELD_NAMES[f.length] ?? "command"}" field`);
      continue;
    }
    const why = checkColumns(f);
    if (why !== null) {
      bad(why);
      continue;
    }
    const [service, type, priv, unpriv, chroot, wakeup, maxproc, command] = f as [
      string,
      ServiceType,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const key = `${service}/${type}`;
    if (seen.has(key)) bad(`duplicate service definition: ${key}`);
    seen.add(key);
    const args = f.slice(8);
    for (let i = 0; i < args.length - 1; i++) {
      if (args[i] === "-o") args[i + 1] = normalizeOverride(args[i + 1] ?? "");
    }
    entries.push({
      service,
      type,
      private: priv,
      unpriv,
      chroot,
      wakeup,
      maxproc,
      command,
      args,
      file,
      first: l.first,
      last: l.last,
    });
  }
  return { entries, problems };
}

/** Splits an inet service name "[host:]port" (host may be [v6]); null when malformed. */
export function parseInetName(name: string): { host: string; port: string } | null {
  const m = /^(?:\[([^\]]+)\]:|([^:[\]]+):)?([A-Za-z0-9_-]+)$/.exec(name);
  if (m === null) return null;
  return { host: m[1] ?? m[2] ?? "", port: m[3] ?? "" };
}

/** The -o overrides of an entry, in order. */
export function entryOverrides(e: MasterEntry): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < e.args.length - 1; i++) {
    if (e.args[i] !== "-o") continue;
    const v = e.args[++i] ?? "";
    const eq = v.indexOf("=");
    if (eq > 0) out.push([v.slice(0, eq), v.slice(eq + 1)]);
  }
  return out;
}

/** The column values of an entry in field order. */
export function entryFields(e: MasterEntry): string[] {
  return [e.service, e.type, e.private, e.unpriv, e.chroot, e.wakeup, e.maxproc, e.command];
}

const COLUMN_GOAL = [0, 11, 17, 25, 33, 41, 49, 57];
const LINE_LIMIT = 80;
const INDENT = "    ";

/** Prints an entry the way postconf -M does; fold breaks long lines and puts -o options on their own lines. */
export function formatMasterEntry(
  e: MasterEntry,
  fold: boolean,
  mapOverride?: (nv: string) => string,
): string {
  let out = "";
  let len = 0;
  entryFields(e).forEach((f, i) => {
    if (len > 0) {
      do {
        out += " ";
        len++;
      } while (len < (COLUMN_GOAL[i] ?? 0));
    }
    out += f;
    len += f.length;
  });
  let inOptions = true;
  for (let i = 0; i < e.args.length; i++) {
    const arg = e.args[i] ?? "";
    let text = hasBlank(arg) ? `{${arg}}` : arg;
    let withValue = false;
    if (inOptions && (!arg.startsWith("-") || arg === "--")) inOptions = false;
    else if (
      inOptions &&
      OPTIONS_WITH_VALUE.includes(arg[1] ?? "") &&
      arg.length === 2 &&
      i + 1 < e.args.length
    ) {
      let v = e.args[++i] ?? "";
      if (arg === "-o" && mapOverride) v = mapOverride(v);
      text = `${arg} ${hasBlank(v) ? `{${v}}` : v}`;
      withValue = true;
      len = LINE_LIMIT;
    }
    if (inOptions && !withValue) text = arg;
    if (!fold || len + 1 + text.length < LINE_LIMIT) {
      out += " ";
      len++;
    } else {
      out += `\n${INDENT}`;
      len = INDENT.length;
    }
    out += text;
    len += text.length;
    if (withValue) len = LINE_LIMIT;
  }
  return out + "\n";
}

/** Returns true when a text needs braces to stay one argument. */
function hasBlank(s: string): boolean {
  return /\s/.test(s) || s === "";
}

/** Replaces the text of the logical line(s) of one entry in master.cf text, or appends it. */
export function replaceEntryText(
  text: string,
  e: MasterEntry | undefined,
  replacement: string[] | "comment",
): string {
  const phys = text === "" ? [] : text.replace(/\n$/, "").split("\n");
  if (e === undefined) {
    if (replacement === "comment") return text;
    return [...phys, ...replacement].join("\n") + "\n";
  }
  const range = phys.slice(e.first - 1, e.last);
  const keep = (l: string): boolean => l.trim() === "" || l.trimStart().startsWith("#");
  const newLines =
    replacement === "comment"
      ? range.map((l) => (keep(l) ? l : `#${l}`))
      : [...replacement, ...range.filter(keep)];
  phys.splice(e.first - 1, e.last - e.first + 1, ...newLines);
  return phys.length > 0 ? phys.join("\n") + "\n" : "";
}
