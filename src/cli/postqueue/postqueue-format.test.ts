/*
 * postqueue-format.test - golden tests for the mailq and JSON listings
 *
 * DESCRIPTION
 *   testdata/listing/NAME.in: the items showq sends, one JSON object per
 *   line ({"kind": "msg", ...} or {"kind": "rcpt", ...}); NAME.ref: the
 *   output of postqueue -p with short and with long queue IDs, and of
 *   postqueue -j. Times are shown in UTC.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { goldenTests } from "../../testing/golden.js";
import type { ShowqItemValue } from "../../global/showq-client.js";
import { CompatFormat, JsonFormat, asctime } from "./postqueue-format.js";

process.env["TZ"] = "UTC";

type Item = Exclude<ShowqItemValue, { kind: "error" }>;

/** Runs a formatter over the items. */
function render(
  items: Item[],
  f: (write: (s: string) => void) => { item(i: Item): void; end(): void },
): string {
  let out = "";
  const fmt = f((s) => (out += s));
  for (const it of items) fmt.item(it);
  fmt.end();
  return out;
}

goldenTests(import.meta.url, "testdata/listing", (input) => {
  const items = input
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Item);
  return (
    "== postqueue -p\n" +
    render(items, (w) => new CompatFormat(false, w)) +
    "== postqueue -p (enable_long_queue_ids)\n" +
    render(items, (w) => new CompatFormat(true, w)) +
    "== postqueue -j\n" +
    render(items, (w) => new JsonFormat(w))
  );
});

test("asctime pads the day with a space, as C does", () => {
  assert.equal(asctime(Date.UTC(2026, 7, 1, 9, 5, 3) / 1000), "Sat Aug  1 09:05:03 2026");
});

test("every JSON line parses", () => {
  const out = render(
    [
      {
        kind: "msg",
        queue_name: "deferred",
        queue_id: "ABC123",
        arrival_time: 1,
        message_size: 2,
        forced_expire: 0,
        sender: 'we"ird\\',
      },
      { kind: "rcpt", orig_address: "a", address: "b", log_class: "defer", why: "tab\there" },
    ],
    (w) => new JsonFormat(w),
  );
  const o = JSON.parse(out) as { sender: string; recipients: Array<{ delay_reason: string }> };
  assert.equal(o.sender, 'we"ird\\');
  assert.equal(o.recipients[0]?.delay_reason, "tab\there");
});
