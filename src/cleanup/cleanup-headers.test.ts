/*
 * cleanup-headers.test - the From: header cleanup adds, in both header_from_format forms
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { missingHeaders } from "./cleanup-headers.js";

const BASE = {
  seen: new Set(["subject", "to", "date", "message-id"]),
  sender: "alice@example.com",
  arrival: { sec: 1_700_000_000, usec: 0 },
  queueId: "ABC",
  myhostname: "mx.example.com",
  undisclosed: "",
};

test("standard: Name <addr>; obsolete: addr (Name) with the comment escaped; no name or the null sender: addr", () => {
  assert.deepEqual(missingHeaders({ ...BASE, fullName: "Alice Q" }), ["From: Alice Q <alice@example.com>"]);
  assert.deepEqual(missingHeaders({ ...BASE, fullName: "Alice (Q) \\ X", obsoleteFrom: true }), [
    "From: alice@example.com (Alice \\(Q\\) \\\\ X)",
  ]);
  assert.deepEqual(missingHeaders({ ...BASE, obsoleteFrom: true }), ["From: alice@example.com"]);
  assert.deepEqual(missingHeaders({ ...BASE, sender: "", fullName: "x", obsoleteFrom: true }), [
    "From: MAILER-DAEMON",
  ]);
});
