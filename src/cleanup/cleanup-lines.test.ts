import { test } from "node:test";
import assert from "node:assert/strict";
import { LineSplitter } from "./cleanup-lines.js";

/** Splits the chunks and returns the lines as latin1 text ("+" marks a piece of a longer line). */
async function split(chunks: string[], opts: { replaceStrayCr?: boolean }, piece = 1000): Promise<string[]> {
  const s = new LineSplitter(piece, opts);
  const out: string[] = [];
  const sink = (line: Buffer, complete: boolean): void => {
    out.push(line.toString("latin1") + (complete ? "" : "+"));
  };
  for (const c of chunks) await s.push(Buffer.from(c, "latin1"), sink);
  await s.end(sink);
  return out;
}

test("stray CRs become spaces with cleanup_replace_stray_cr_lf; CRLF ends a line either way", async () => {
  const input = ["a\r\nb\rc\r", "\nd\r.\r\ne"];
  assert.deepEqual(await split(input, {}), ["a", "b\rc", "d\r.", "e"]);
  assert.deepEqual(await split(input, { replaceStrayCr: true }), ["a", "b c", "d .", "e"]);
});

test("a CR at the end of a piece of a long line may be half of a CRLF: it waits for the next byte", async () => {
  assert.deepEqual(await split(["ab\rcd\r", "\n"], { replaceStrayCr: true }, 3), ["ab+", " cd+", ""]);
  assert.deepEqual(await split(["abc\r", "\nx"], { replaceStrayCr: true }, 3), ["abc+", "", "x"]);
});
