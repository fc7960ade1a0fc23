import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { openFileLimit, parseOpenFileLimit } from "./open-files.js";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                524288               files
`;

test("the soft open-files limit is read from /proc/self/limits text", () => {
  assert.equal(parseOpenFileLimit(LIMITS), 20000);
  assert.equal(parseOpenFileLimit(LIMITS.replace("20000 ", "unlimited")), Infinity);
  assert.equal(parseOpenFileLimit("Max cpu time unlimited\n"), null);
  assert.equal(parseOpenFileLimit(LIMITS.replace("20000", "lots")), null);
});

test("this process's limit is the one /proc/self/limits shows", () => {
  const shown = parseOpenFileLimit(readFileSync("/proc/self/limits", "latin1"));
  assert.ok(shown !== null, "Linux shows the open-files limit");
  assert.equal(openFileLimit(7), shown === Infinity ? 7 : shown);
});
