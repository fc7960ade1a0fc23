/*
 * msg-relay.test - the master's reader of child log records, with hostile input
 *
 * DESCRIPTION
 *   A child's stderr is fed through a PassThrough in the chunks a pipe might
 *   deliver: records split anywhere, a line far over the limit without newline,
 *   binary junk, a last line without newline, a read error, a sink that throws.
 */

import assert from "node:assert/strict";
import { once } from "node:events";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import { relayChildLog } from "./msg-relay.js";
import { encodeOnBehalf, encodeRecord } from "./msg-sinks.js";
import type { MsgLevel, MsgSink } from "./msg.js";

const WHO = { tag: "postern/smtpd", pid: 4321 };

/** A sink that keeps [level, text] pairs and checks the identity it is given. */
class Capture implements MsgSink {
  readonly lines: [MsgLevel, string][] = [];
  write(level: MsgLevel, tag: string, pid: number, text: string): void {
    assert.equal(tag, WHO.tag);
    assert.equal(pid, WHO.pid);
    this.lines.push([level, text]);
  }
}

/** Relays the given chunks through a stream and returns what reached the sink. */
async function relay(chunks: (Buffer | string)[], maxLine?: number): Promise<[MsgLevel, string][]> {
  const stream = new PassThrough();
  const sink = new Capture();
  relayChildLog(stream, WHO, sink, maxLine === undefined ? {} : { maxLine });
  for (const c of chunks) stream.write(c);
  stream.end();
  await once(stream, "end");
  return sink.lines;
}

void describe("relayChildLog", () => {
  void it("relays records in the child's name and other lines as warnings", async () => {
    const got = await relay([
      encodeRecord("info", "connect from x[192.0.2.1]"),
      encodeRecord("error", "too many errors"),
      "Error: boom\r\n\n   \n    at main (smtpd.js:1:1)\n",
    ]);
    assert.deepEqual(got, [
      ["info", "connect from x[192.0.2.1]"],
      ["error", "too many errors"],
      ["warning", "Error: boom"],
      ["warning", "    at main (smtpd.js:1:1)"],
    ]);
  });

  void it("joins records split across chunks, even byte by byte", async () => {
    const bytes = Buffer.from(encodeRecord("warning", "héllo ✉ split") + encodeRecord("info", "next"));
    const chunks = [...bytes].map((b) => Buffer.from([b]));
    assert.deepEqual(await relay(chunks), [
      ["warning", "héllo ✉ split"],
      ["info", "next"],
    ]);
  });

  void it("cuts a huge line without newline at the limit and discards the rest up to the newline", async () => {
    const mb = Buffer.alloc(1 << 20, "A");
    const chunks: Buffer[] = [Buffer.from("\x1ew")];
    for (let i = 0; i < 20; i++) chunks.push(mb);
    chunks.push(Buffer.from("tail of the long line\n" + encodeRecord("info", "after")));
    const got = await relay(chunks, 1000);
    assert.equal(got.length, 2);
    const [first, second] = got;
    assert.equal(first?.[0], "warning");
    assert.equal(first?.[1], "A".repeat(998) + "...");
    assert.deepEqual(second, ["info", "after"]);
  });

  void it("cuts a line that is exactly over the limit, and keeps one that fits", async () => {
    const fits = "x".repeat(100);
    const got = await relay([`${fits}\n${fits}y\nz\n`], 100);
    assert.deepEqual(got, [
      ["warning", fits],
      ["warning", `${fits}...`],
      ["warning", "z"],
    ]);
  });

  void it("turns binary junk into printable single lines", async () => {
    let seed = 7;
    const junk = Buffer.alloc(200_000);
    for (let i = 0; i < junk.length; i++)
      junk[i] = (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24;
    const got = await relay([junk, "\n" + encodeRecord("info", "still alive")], 512);
    assert.ok(got.length > 10);
    for (const [, text] of got) {
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(text, /[\x00-\x1f\x7f]/, "no control characters reach the log");
      assert.ok(Buffer.byteLength(text) <= 3 * 512 + 3, "no line over the limit");
    }
    assert.deepEqual(got.at(-1), ["info", "still alive"]);
  });

  void it("delivers a last line without newline when the stream ends", async () => {
    const record = encodeRecord("panic", "last words");
    assert.deepEqual(await relay([record.slice(0, 5), record.slice(5, -1)]), [["panic", "last words"]]);
  });

  void it("survives a read error and a sink that throws", async () => {
    const stream = new PassThrough();
    const got: string[] = [];
    let calls = 0;
    const sink: MsgSink = {
      write(level, tag, pid, text) {
        if (++calls === 1) throw new Error("sink broke");
        got.push(`${level}: ${text}`);
      },
    };
    relayChildLog(stream, WHO, sink);
    stream.write(encodeRecord("info", "lost to the sink"));
    stream.write(encodeRecord("info", "kept"));
    stream.write("partial");
    await new Promise((resolve) => setImmediate(resolve));
    stream.destroy(Object.assign(new Error("read failed"), { code: "EIO" }));
    await new Promise((resolve) => stream.once("close", resolve));
    assert.deepEqual(got, [
      "info: kept",
      "warning: partial",
      "warning: reading log records from this process: EIO",
    ]);
  });

  void it("takes records in another program's name only from a child allowed to (postlogd)", async () => {
    const rec = encodeOnBehalf("warning", "mytool", 77, "hello");
    const plain = await relay([rec]);
    assert.equal(plain.length, 1, "an ordinary child cannot name another tag: its own name, as a warning");
    assert.equal(plain[0]?.[0], "warning");
    assert.match(plain[0]?.[1] ?? "", /mytool 77 hello$/);
    const stream = new PassThrough();
    const got: string[] = [];
    relayChildLog(
      stream,
      WHO,
      { write: (l, tag, pid, text) => got.push(`${tag}[${pid}] ${l}: ${text}`) },
      { onBehalf: true },
    );
    stream.write(rec);
    stream.write(
      encodeOnBehalf("info", "bad tag with spaces", 1, "x").replace("bad tag with spaces", "bad tag"),
    );
    stream.end();
    await once(stream, "end");
    assert.equal(got[0], "mytool[77] warning: hello");
    assert.equal(got.length, 2);
    assert.match(
      got[1] ?? "",
      /^postern\/smtpd\[4321\] warning: /,
      "a malformed one stays in the child's name",
    );
  });
});
