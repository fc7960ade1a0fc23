/*
 * dict-unix.test - the unix: table against this system's account database
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { dictOpen } from "./dict.js";

test("unix:passwd.byname finds root with its passwd line, not a missing user", async () => {
  const d = dictOpen("unix:passwd.byname");
  const root = await d.lookup("ROOT");
  assert.equal(root.status, "found");
  if (root.status === "found") assert.match(root.value, /^root:\*:0:0:[^:]*:[^:]+:[^:]*$/);
  assert.deepEqual(await d.lookup("no-such-user-here"), { status: "notfound" });
  assert.deepEqual(await d.lookup("bad key/with slash"), { status: "notfound" });
  d.close();
});

test("unix:group.byname finds root's group; an unknown map fails every lookup", async () => {
  const g = await dictOpen("unix:group.byname").lookup("root");
  assert.deepEqual(g, { status: "found", value: "root:*:0:" });
  assert.equal((await dictOpen("unix:shadow.byname").lookup("root")).status, "tempfail");
});
