/*
 * qshape-shape.test - golden tests for the queue shape table
 *
 * DESCRIPTION
 *   testdata/shape/NAME.in: a first line of qshape options (-s -p -l -b N
 *   -t N -m N -w N, a width of at most 80 meaning 80 as in qshape), then one message per line: "AGE-MINUTES SENDER
 *   RECIPIENT ...". NAME.ref: the table.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { goldenTests } from "../../testing/golden.js";
import { QueueShape } from "./qshape-shape.js";

goldenTests(import.meta.url, "testdata/shape", (input) => {
  const [head = "", ...msgs] = input.split("\n");
  const words = head.split(/\s+/).filter((w) => w !== "");
  const num = (flag: string, def: number): number => {
    const i = words.indexOf(flag);
    return i >= 0 ? Number(words[i + 1]) : def;
  };
  const shape = new QueueShape({
    buckets: num("-b", 10),
    tick: num("-t", 5),
    linear: words.includes("-l"),
    parents: words.includes("-p"),
    minSubdomains: num("-m", 5),
  });
  const now = 1_800_000_000;
  for (const line of msgs.filter((l) => l.trim() !== "")) {
    const [age = "0", sender = "", ...rcpts] = line.split(/\s+/);
    shape.add(now - Number(age) * 60, words.includes("-s") ? [sender === "<>" ? "" : sender] : rcpts, now);
  }
  const w = num("-w", 80);
  return shape.render(w > 80 ? w : 80);
});

test("buckets double from the first tick; the last has no limit", () => {
  const s = new QueueShape({ buckets: 10, tick: 5, linear: false, parents: false, minSubdomains: 5 });
  assert.deepEqual(
    [0, 299, 300, 599, 600, 1199, 1200, 76_799, 76_800, 10 ** 9].map((a) => s.bucket(a)),
    [1, 1, 2, 2, 3, 3, 4, 9, 10, 10],
  );
  const l = new QueueShape({ buckets: 4, tick: 10, linear: true, parents: false, minSubdomains: 5 });
  assert.deepEqual(
    [0, 599, 600, 1200, 1800, 99_999].map((a) => l.bucket(a)),
    [1, 1, 2, 3, 4, 4],
  );
});
