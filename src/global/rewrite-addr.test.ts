/*
 * rewrite-addr.test - golden tests of address rewriting in the local and remote contexts
 *
 * DESCRIPTION
 *   testdata/rewrite/*.in: "#@ name = value" lines are main.cf settings;
 *   other lines are "context address" (external form); the output shows
 *   each address and its rewritten form, as trivial-rewrite would answer.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { goldenTests } from "../testing/golden.js";
import { Config } from "./config.js";
import { rewriteExternal, rewriteInternal, rewriteParams, type RewriteContextName } from "./rewrite-addr.js";

goldenTests(import.meta.url, "testdata/rewrite", (input) => {
  const main = input
    .split("\n")
    .filter((l) => l.startsWith("#@ "))
    .map((l) => l.slice(3))
    .join("\n");
  const p = rewriteParams(Config.fromText("/etc/postern", `compatibility_level = 3.6\n${main}\n`));
  let out = "";
  for (const line of input.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") {
      if (line.startsWith("# ")) out += `${line}\n`;
      continue;
    }
    const sp = line.indexOf(" ");
    const ctx = line.slice(0, sp) as RewriteContextName;
    const addr = line.slice(sp + 1);
    out += `${ctx} ${JSON.stringify(addr)} -> ${JSON.stringify(rewriteExternal(p, ctx, addr))}\n`;
  }
  return out;
});

test("internal-form rewriting quotes and unquotes the local part", () => {
  const p = rewriteParams(Config.fromText("/x", "myorigin = example.com\ncompatibility_level = 3.6\n"));
  assert.equal(rewriteInternal(p, "local", "john doe"), "john doe@example.com");
  assert.equal(rewriteInternal(p, "local", ""), "");
  assert.equal(rewriteInternal(p, "local", 'a"b@host.example'), 'a"b@host.example');
});
