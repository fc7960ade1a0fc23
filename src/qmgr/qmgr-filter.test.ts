/*
 * qmgr-filter.test - the route of a message with a content filter
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { contentFilterRoute } from "./qmgr-manager.js";

test("a content filter replaces the resolved route; an empty nexthop is myhostname", () => {
  const resolved = { transport: "smtp", nexthop: "remote.test" };
  assert.deepEqual(contentFilterRoute(undefined, resolved, "mx.example"), resolved);
  assert.deepEqual(contentFilterRoute("", resolved, "mx.example"), resolved);
  assert.deepEqual(contentFilterRoute("scan:[127.0.0.1]:10025", resolved, "mx.example"), {
    transport: "scan",
    nexthop: "[127.0.0.1]:10025",
  });
  assert.deepEqual(contentFilterRoute("scan:", resolved, "mx.example"), {
    transport: "scan",
    nexthop: "mx.example",
  });
  assert.deepEqual(contentFilterRoute("scan", resolved, "mx.example"), {
    transport: "scan",
    nexthop: "mx.example",
  });
});
