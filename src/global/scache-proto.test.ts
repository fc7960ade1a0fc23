/*
 * scache-proto.test - requests and replies of the connection cache, and the token box
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { attrList } from "../util/attr-codec.js";
import { ScacheReply, ScacheRequest, TokenBox, newToken } from "./scache-proto.js";

class Conn {
  closed = false;
  destroy(): void {
    this.closed = true;
  }
}

test("requests are checked: request kind, pid, token form, label and property sizes", () => {
  const token = newToken();
  assert.match(token, /^[0-9a-f]{32}$/);
  const ok = ScacheRequest.parse(
    ScacheRequest.build({
      request: "save",
      ttl: 2,
      endp_label: "smtp:[192.0.2.1]:25:h",
      endp_prop: "{}",
      pid: 42,
      token,
    }),
  );
  assert.ok(ok.ok);
  const bad = [
    { request: "flush", pid: "1" },
    { request: "find_dest", dest_label: "x" },
    { request: "find_dest", dest_label: "x", pid: "0" },
    { request: "save", pid: "1", token: "ABC" },
    { request: "find_endp", endp_label: "x".repeat(513), pid: "1" },
    { request: "save", pid: "1", ttl: "0" },
    { request: "save", pid: "1", ttl: "3601" },
  ];
  for (const b of bad) assert.equal(ScacheRequest.parse(attrList(b)).ok, false, JSON.stringify(b));
  assert.equal(ScacheReply.parse(attrList({ status: "maybe" })).ok, false);
  assert.ok(ScacheReply.parse(attrList({ status: "none" })).ok);
});

test("token box: an item waits for its taker, a taker waits for its item, strangers are closed", async () => {
  const box = new TokenBox<Conn>(50, 2);
  const a = new Conn();
  assert.ok(box.put("a", a));
  assert.equal(await box.take("a", 10), a, "arrived first");
  const b = new Conn();
  const waiting = box.take("b", 1000);
  box.put("b", b);
  assert.equal(await waiting, b, "arrived later");
  assert.equal(await box.take("nothing", 20), null, "never came");
  const late = new Conn();
  box.put("late", late);
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(late.closed, "unclaimed for too long");
  assert.equal(await box.take("late", 10), null);
  const c1 = new Conn();
  const c2 = new Conn();
  const c3 = new Conn();
  box.put("1", c1);
  box.put("2", c2);
  assert.equal(box.put("3", c3), false, "the box is full");
  assert.ok(c3.closed);
  box.clear();
  assert.ok(c1.closed && c2.closed);
  assert.equal(box.held, 0);
});
