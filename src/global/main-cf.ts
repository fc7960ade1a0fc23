/*
 * main-cf - read and edit main.cf
 *
 * SYNOPSIS
 *   import { parseMainCf, editMainCf } from "../global/main-cf.js";
 *
 * DESCRIPTION
 *   parseMainCf() turns main.cf text into "name = value" settings, each with
 *   the physical lines it came from, using Postfix's logical-line rules
 *   (comments, blank lines, continuation lines that start with white space).
 *   When a name is set twice, the later setting wins. A line that is not of
 *   the form "name = value" is an error naming file and line.
 *
 *   editMainCf() is the text transformation behind postconf -e, -X and -#:
 *   every setting of a named parameter is replaced by "name = value" (its
 *   continuation lines go), removed, or commented out with "#"; comments and
 *   the order of everything else stay as they were; new parameters are
 *   appended in name order.
 */

import { logicalLines } from "../util/logical-lines.js";

export interface CfSetting {
  name: string;
  value: string;
  file: string;
  first: number;
  last: number;
}

export interface CfProblem {
  file: string;
  line: number;
  text: string;
}

export interface MainCf {
  /** Effective settings by name (the last one wins). */
  settings: Map<string, CfSetting>;
  problems: CfProblem[];
}

const NAME_RE = /^[A-Za-z0-9_]+$/;

/** Splits "name = value"; returns an error text when the line is not of that form. */
export function splitNameValue(text: string): { name: string; value: string } | { error: string } {
  const eq = text.indexOf("=");
  if (eq < 0) return { error: `missing '=' after attribute name: "${text.trim().slice(0, 60)}"` };
  const name = text.slice(0, eq).trim();
  if (name === "") return { error: `missing attribute name: "${text.trim().slice(0, 60)}"` };
  if (!NAME_RE.test(name)) return { error: `bad parameter name: "${name.slice(0, 60)}"` };
  return { name, value: text.slice(eq + 1).trim() };
}

/** Parses main.cf text. */
export function parseMainCf(text: string, file: string): MainCf {
  const settings = new Map<string, CfSetting>();
  const problems: CfProblem[] = [];
  const lines = logicalLines(text, (p) => problems.push({ file, line: p.line, text: p.problem }));
  for (const l of lines) {
    const nv = splitNameValue(l.text);
    if ("error" in nv) {
      problems.push({ file, line: l.first, text: nv.error });
      continue;
    }
    settings.delete(nv.name);
    settings.set(nv.name, { name: nv.name, value: nv.value, file, first: l.first, last: l.last });
  }
  return { settings, problems };
}

export type MainCfEdit =
  | { op: "set"; values: Map<string, string> }
  | { op: "remove"; names: Set<string> }
  | { op: "comment"; names: Set<string> };

/** Returns the name a logical line sets, or null. */
function nameOf(line: string): string | null {
  const m = /^([A-Za-z0-9_]+)\s*=/.exec(line);
  return m?.[1] ?? null;
}

/** Applies a postconf -e/-X/-# edit to main.cf text; returns the new text and warnings. */
export function editMainCf(text: string, edit: MainCfEdit): { text: string; warnings: string[] } {
  const warnings: string[] = [];
  const phys = text === "" ? [] : text.replace(/\n$/, "").split("\n");
  const out: string[] = [];
  const found = new Map<string, number>();
  let interesting = false;
  for (const line of phys) {
    const t = line.trimStart();
    if (t === "" || t.startsWith("#")) {
      out.push(line);
      continue;
    }
    if (line !== t) {
      if (!interesting) out.push(line);
      else if (edit.op === "comment") out.push(`#${line}`);
      continue;
    }
    const name = nameOf(line);
    const wanted = name !== null && (edit.op === "set" ? edit.values.has(name) : edit.names.has(name));
    interesting = wanted;
    if (!wanted || name === null) {
      out.push(line);
      continue;
    }
    const n = (found.get(name) ?? 0) + 1;
    found.set(name, n);
    if (n === 2) warnings.push(`multiple entries for "${name}"`);
    if (edit.op === "set") out.push(`${name} = ${edit.values.get(name) ?? ""}`);
    else if (edit.op === "comment") out.push(`#${line}`);
  }
  if (edit.op === "set") {
    for (const name of [...edit.values.keys()].sort()) {
      if (!found.has(name)) out.push(`${name} = ${edit.values.get(name) ?? ""}`);
    }
  }
  return { text: out.length > 0 ? out.join("\n") + "\n" : "", warnings };
}
