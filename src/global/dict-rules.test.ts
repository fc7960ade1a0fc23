/*
 * dict-rules.test - golden tests for rules tables (cidr, regexp, pcre)
 *
 * DESCRIPTION
 *   Each testdata/dict/NAME.in script opens tables and queries them:
 *     open TYPE FILE       open TYPE:FILE (FILE relative to testdata/dict)
 *     query KEY            look up KEY (the rest of the line, may be empty)
 *     queryx KEY           the same, with \n, \t and \\ escapes in KEY
 *   The output, with the warnings logged while opening, must equal
 *   NAME.ref. The query results in the .ref files were checked against
 *   Postfix 3.7 (postmap -q); where Postern differs on purpose (constructs
 *   that need backtracking), the .ref shows Postern's answer.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { dictCloseAll, dictOpen } from "./dict.js";
import { captureLog, checkGolden, goldenDir, showResult } from "./dict-testkit.js";
import type { Dict } from "./dict-types.js";

/** Undoes \n, \t and \\ escapes. */
function unescape(s: string): string {
  return s.replace(/\\([nt\\])/g, (_m, c: string) => (c === "n" ? "\n" : c === "t" ? "\t" : "\\"));
}

/** Runs one .in script and returns its output. */
async function runScript(name: string): Promise<string> {
  const dir = goldenDir();
  const log = captureLog();
  const out: string[] = [];
  let dict: Dict | null = null;
  const flush = (): void => {
    for (const l of log.take()) out.push(l.split(`${dir}/`).join(""));
  };
  for (const line of readFileSync(join(dir, `${name}.in`), "utf8").split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const [cmd = "", ...rest] = line.split(" ");
    const arg = rest.join(" ");
    if (cmd === "open") {
      const [type = "", file = ""] = rest;
      out.push(`open ${type}:${file}`);
      dict = dictOpen(`${type}:${join(dir, file)}`);
      flush();
    } else if (cmd === "query" || cmd === "queryx") {
      if (dict === null) throw new Error(`${name}.in: query before open`);
      const key = cmd === "queryx" ? unescape(arg) : arg;
      const r = await dict.lookup(key);
      flush();
      out.push(`${JSON.stringify(key)} -> ${showResult(r)}`);
    } else {
      throw new Error(`${name}.in: unknown command ${cmd}`);
    }
  }
  dictCloseAll();
  return out.join("\n") + "\n";
}

for (const name of ["cidr", "regexp", "pcre"]) {
  test(`golden: ${name}.in gives ${name}.ref`, async () => {
    const got = await runScript(name);
    assert.equal(got, checkGolden(join(goldenDir(), `${name}.ref`), got));
  });
}
