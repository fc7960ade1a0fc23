/*
 * postconf-master - postconf -M, -F and -P: show and edit master.cf
 *
 * DESCRIPTION
 *   -M [service[/type]...]        show entries (-f folds long lines)
 *   -M service/type='entry'       add or replace an entry
 *   -MX service/type, -M# ...     remove or comment out entries
 *   -F [service[/type[/field]]]   show fields as service/type/field = value
 *   -Fe service/type/field=value  change one field
 *   -P [service[/type[/name]]]    show -o parameters as service/type/name = value
 *   -Pe service/type/name=value   add or change a -o parameter; -PX removes one
 *   A pattern element may be "*" or left out to match everything. Edits
 *   are made under a lock and published atomically (util/edit-file.ts).
 */
import { editFile } from "../../util/edit-file.js";
import {
  FIELD_NAMES,
  entryFields,
  entryOverrides,
  formatMasterEntry,
  parseMasterCf,
  replaceEntryText,
  type MasterEntry,
} from "../../global/master-cf.js";
import { printLine } from "./postconf-print.js";

export class PostconfError extends Error {}

/** Splits "a/b/c" into at most `max` parts; missing parts match anything. */
function splitPattern(p: string, max: number): string[] {
  const parts = p.split("/");
  if (parts.length > max || parts.some((x) => x === "")) throw new PostconfError(`invalid pattern: "${p}"`);
  return parts;
}

/** True when an entry matches service[/type] pattern parts. */
function matches(e: MasterEntry, parts: string[]): boolean {
  const [s, t] = parts;
  return (s === undefined || s === "*" || s === e.service) && (t === undefined || t === "*" || t === e.type);
}

/** The entries that any of the patterns match (all when there are none). */
function select(
  entries: MasterEntry[],
  patterns: string[],
  max: number,
): Array<[MasterEntry, string | undefined]> {
  if (patterns.length === 0) return entries.map((e) => [e, undefined]);
  const out: Array<[MasterEntry, string | undefined]> = [];
  for (const e of entries) {
    for (const p of patterns) {
      const parts = splitPattern(p, max);
      if (matches(e, parts)) out.push([e, parts[2]]);
    }
  }
  return out;
}

/** postconf -M: the entries, as master.cf lines. */
export function showEntries(
  text: string,
  file: string,
  patterns: string[],
  fold: boolean,
  expand?: (v: string) => string,
): string {
  const { entries } = parseMasterCf(text, file);
  return select(entries, patterns, 2)
    .map(([e]) => formatMasterEntry(e, fold, expand))
    .join("");
}

/** postconf -F: service/type/field = value lines. */
export function showFields(text: string, file: string, patterns: string[], fold: boolean): string {
  const { entries } = parseMasterCf(text, file);
  let out = "";
  for (const [e, field] of select(entries, patterns, 3)) {
    const values = entryFields(e);
    FIELD_NAMES.forEach((name, i) => {
      let v = values[i] ?? "";
      if (name === "command")
        v = [v, ...e.args.map((a) => (/\s/.test(a) || a === "" ? `{${a}}` : a))].join(" ");
      if (field === undefined || field === "*" || field === name)
        out += printLine(`${e.service}/${e.type}/${name} = ${v}`, fold);
    });
  }
  return out;
}

/** postconf -P: service/type/name = value lines for -o parameters. */
export function showParams(
  text: string,
  file: string,
  patterns: string[],
  fold: boolean,
  expand?: (v: string) => string,
): string {
  const { entries } = parseMasterCf(text, file);
  let out = "";
  for (const [e, name] of select(entries, patterns, 3)) {
    for (const [n, v] of entryOverrides(e)) {
      if (name === undefined || name === "*" || name === n)
        out += printLine(`${e.service}/${e.type}/${n} = ${expand ? expand(v) : v}`, fold);
    }
  }
  return out;
}

/** Finds the one entry named service/type. */
function findEntry(entries: MasterEntry[], service: string, type: string): MasterEntry | undefined {
  return entries.find((e) => e.service === service && e.type === type);
}

/** Parses an edit argument "service/type[/name]=value". */
function splitEdit(arg: string, parts: number): { path: string[]; value: string } {
  const eq = arg.indexOf("=");
  if (eq < 0) throw new PostconfError(`missing '=' in "${arg}"`);
  const path = arg.slice(0, eq).trim().split("/");
  if (path.length !== parts || path.some((p) => p === "" || p === "*"))
    throw new PostconfError(
      `invalid name in "${arg}": expected ${parts === 2 ? "service/type" : "service/type/name"}`,
    );
  return { path, value: arg.slice(eq + 1).trim() };
}

/** Re-parses one entry's replacement text, so that a bad edit is refused before it is written. */
function checkedEntryText(text: string, file: string): string[] {
  const parsed = parseMasterCf(text + "\n", file);
  const p = parsed.problems[0];
  if (p !== undefined) throw new PostconfError(`${p.text}`);
  const e = parsed.entries[0];
  if (e === undefined) throw new PostconfError("empty master.cf entry");
  return formatMasterEntry(e, true).replace(/\n$/, "").split("\n");
}

export type MasterEdit =
  | { op: "entry"; args: string[] }
  | { op: "remove" | "comment"; args: string[] }
  | { op: "field"; args: string[] }
  | { op: "param"; args: string[] }
  | { op: "param-remove"; args: string[] };

/** Applies one edit to master.cf text; returns the new text. */
export function editMasterText(text: string, file: string, edit: MasterEdit): string {
  for (const arg of edit.args) {
    const { entries } = parseMasterCf(text, file);
    if (edit.op === "entry") {
      const { path, value } = splitEdit(arg, 2);
      const lines = checkedEntryText(value, file);
      text = replaceEntryText(text, findEntry(entries, path[0] ?? "", path[1] ?? ""), lines);
    } else if (edit.op === "remove" || edit.op === "comment") {
      const parts = splitPattern(arg, 2);
      if (parts.length !== 2) throw new PostconfError(`invalid name: "${arg}": expected service/type`);
      const e = findEntry(entries, parts[0] ?? "", parts[1] ?? "");
      if (e === undefined) throw new PostconfError(`no match for "${arg}"`);
      text = replaceEntryText(text, e, edit.op === "remove" ? [] : "comment");
    } else {
      text = editEntryPart(text, file, entries, edit.op, arg);
    }
  }
  return text;
}

/** Changes one field or one -o parameter of an entry. */
function editEntryPart(
  text: string,
  file: string,
  entries: MasterEntry[],
  op: "field" | "param" | "param-remove",
  arg: string,
): string {
  const path = op === "param-remove" ? arg.split("/") : splitEdit(arg, 3).path;
  const value = op === "param-remove" ? "" : splitEdit(arg, 3).value;
  const [service = "", type = "", name = ""] = path;
  const e = findEntry(entries, service, type);
  if (e === undefined || path.length !== 3) throw new PostconfError(`no match for "${arg}"`);
  const copy: MasterEntry = { ...e, args: [...e.args] };
  if (op === "field") setField(copy, name, value);
  else setOverride(copy, name, op === "param" ? value : undefined);
  const lines = checkedEntryText(formatMasterEntry(copy, false).trimEnd(), file);
  return replaceEntryText(text, e, lines);
}

/** Sets a column of an entry; "command" takes the command and its arguments. */
function setField(e: MasterEntry, field: string, value: string): void {
  const keys: Record<string, keyof MasterEntry> = {
    service: "service",
    type: "type",
    private: "private",
    unprivileged: "unpriv",
    chroot: "chroot",
    wakeup: "wakeup",
    process_limit: "maxproc",
  };
  if (field === "command") {
    const words = value.split(/\s+/).filter((w) => w !== "");
    if (words.length === 0) throw new PostconfError("empty command field");
    e.command = words[0] ?? "";
    e.args = words.slice(1);
    return;
  }
  const key = keys[field];
  if (key === undefined) throw new PostconfError(`unknown field: "${field}"`);
  if (value === "" || /\s/.test(value)) throw new PostconfError(`bad value for field ${field}: "${value}"`);
  (e as unknown as Record<string, string>)[key] = value;
}

/** Adds, replaces or (value undefined) removes a -o name=value of an entry. */
function setOverride(e: MasterEntry, name: string, value: string | undefined): void {
  const args: string[] = [];
  let done = false;
  for (let i = 0; i < e.args.length; i++) {
    const a = e.args[i] ?? "";
    const next = e.args[i + 1] ?? "";
    if (a === "-o" && next.split("=")[0] === name) {
      i++;
      if (value !== undefined && !done) args.push("-o", `${name}=${value}`);
      done = true;
    } else {
      args.push(a);
    }
  }
  if (!done && value !== undefined) {
    const at = args.findIndex((a, i) => !a.startsWith("-") && args[i - 1] !== "-o");
    args.splice(at < 0 ? args.length : at, 0, "-o", `${name}=${value}`);
  }
  e.args = args;
}

/** Applies an edit to the master.cf file under its lock. */
export async function editMasterFile(path: string, edit: MasterEdit): Promise<void> {
  await editFile(path, (old) => editMasterText(old, path, edit));
}
