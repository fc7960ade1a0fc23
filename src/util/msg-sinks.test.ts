/*
 * msg-sinks.test - the line format, the child record format, and FileSink
 *
 * DESCRIPTION
 *   The format is checked against the line Postfix log tools parse. Records are
 *   checked end to end: a real child process logs with RecordSink and the test
 *   relays its standard error like the master. FileSink is checked on real files:
 *   appending, reopening after logrotate renames or removes the file, two processes
 *   writing the same file without torn lines, and lines not lost at exit or fatal.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { decodeRecord, encodeRecord, FileSink, formatLogLine } from "./msg-sinks.js";
import { relayChildLog } from "./msg-relay.js";
import type { MsgLevel, MsgSink } from "./msg.js";

const SINKS = new URL("./msg-sinks.js", import.meta.url).href;
const MSG = new URL("./msg.js", import.meta.url).href;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "postern-msg-sinks-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Logged {
  level: MsgLevel;
  tag: string;
  pid: number;
  text: string;
}

/** A sink that keeps what it is given. */
class Capture implements MsgSink {
  readonly lines: Logged[] = [];
  write(level: MsgLevel, tag: string, pid: number, text: string): void {
    this.lines.push({ level, tag, pid, text });
  }
}

interface ChildResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs an ES module snippet in a new node process; sinks and msg are imported for it. */
function runChild(code: string, relayTo?: Capture): Promise<ChildResult> {
  const prelude = `import * as sinks from ${JSON.stringify(SINKS)}; import * as m from ${JSON.stringify(MSG)};\n`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", prelude + code], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
  if (relayTo !== undefined)
    relayChildLog(child.stderr, { tag: "postern/child", pid: child.pid ?? -1 }, relayTo);
  else child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stdout, stderr })));
}

/** The next turn of the event loop, when FileSink has written its batch. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The lines of a file, without the empty string after the last LF. */
function readLines(file: string): string[] {
  const text = fs.readFileSync(file, "utf8");
  return text === "" ? [] : text.replace(/\n$/, "").split("\n");
}

void describe("formatLogLine", () => {
  void it("writes the line Postfix log tools read", () => {
    const date = new Date(2024, 10, 20, 21, 38, 0);
    const line = formatLogLine(date, "myhost", "postern/smtpd", 1234, "warning", "text");
    assert.equal(line, "Nov 20 21:38:00 myhost postern/smtpd[1234]: warning: text");
  });

  void it("gives info no prefix, pads the day, and keeps an event on one line", () => {
    const date = new Date(2024, 0, 5, 7, 8, 9);
    assert.equal(
      formatLogLine(date, "h", "postern/qmgr", 7, "info", "a\nb"),
      "Jan  5 07:08:09 h postern/qmgr[7]: a?b",
    );
    assert.equal(formatLogLine(date, "h", "t", 1, "panic", "x"), "Jan  5 07:08:09 h t[1]: panic: x");
  });
});

void describe("child records", () => {
  void it("round-trips every level", () => {
    for (const level of ["info", "warning", "error", "fatal", "panic"] as const) {
      const line = encodeRecord(level, "queue id 4Xyz: to=<a@b>");
      assert.ok(line.startsWith("\x1e") && line.endsWith("\n"));
      assert.equal(line.indexOf("\n"), line.length - 1, "one record is one line");
      assert.deepEqual(decodeRecord(line.slice(0, -1)), {
        record: true,
        level,
        text: "queue id 4Xyz: to=<a@b>",
      });
    }
  });

  void it("keeps hostile text on one line and tells other text from records", () => {
    const line = encodeRecord("info", "evil\n\x1ewforged\r\x00");
    assert.equal(line.split("\n").length, 2);
    assert.deepEqual(decodeRecord(line.slice(0, -1)), {
      record: true,
      level: "info",
      text: "evil??wforged??",
    });
    assert.deepEqual(decodeRecord("    at Object.<anonymous> (x.js:1:1)"), {
      record: false,
      text: "    at Object.<anonymous> (x.js:1:1)",
    });
    assert.deepEqual(decodeRecord("\x1ezbad letter"), { record: false, text: "?zbad letter" });
  });

  void it("carries a real child's log through its stderr to the master's sink, in the child's name", async () => {
    const got = new Capture();
    const code = `
      m.msgInit({ tag: "forged/name", sink: new sinks.RecordSink() });
      m.msg.info("connect from localhost[127.0.0.1]");
      m.msg.warn("héllo wörld");
      process.stderr.write("not a record\\n");
      m.msg.fatal("cannot continue");`;
    const res = await runChild(code, got);
    assert.equal(res.status, 1);
    const pids = new Set(got.lines.map((l) => l.pid));
    assert.equal(pids.size, 1);
    assert.deepEqual(
      got.lines.map((l) => [l.level, l.tag, l.text]),
      [
        ["info", "postern/child", "connect from localhost[127.0.0.1]"],
        ["warning", "postern/child", "héllo wörld"],
        ["warning", "postern/child", "not a record"],
        ["fatal", "postern/child", "cannot continue"],
      ],
    );
  });
});

void describe("FileSink", () => {
  void it("appends to what is there, batching lines until the end of the turn", async () => {
    const file = path.join(tmp, "append.log");
    fs.writeFileSync(file, "old line\n");
    const sink = new FileSink({ path: file, host: "mx1" });
    sink.write("info", "postern/smtpd", 11, "one");
    sink.write("error", "postern/smtpd", 11, "two");
    assert.deepEqual(readLines(file), ["old line"], "batched: nothing written yet");
    await nextTurn();
    const lines = readLines(file);
    assert.equal(lines.length, 3);
    assert.match(lines[1] ?? "", /^\w{3} [ \d]\d \d\d:\d\d:\d\d mx1 postern\/smtpd\[11\]: one$/);
    assert.match(lines[2] ?? "", / mx1 postern\/smtpd\[11\]: error: two$/);
    sink.close();
  });

  void it("creates a missing file with mode 0600", () => {
    const file = path.join(tmp, "new.log");
    const sink = new FileSink({ path: file, host: "h" });
    sink.write("info", "t", 1, "x");
    sink.flush();
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    sink.close();
  });

  void it("reopens the file after logrotate renames it, and after it is removed", () => {
    const file = path.join(tmp, "rotate.log");
    const sink = new FileSink({ path: file, host: "h" });
    sink.write("info", "t", 1, "before rotation");
    sink.flush();
    fs.renameSync(file, `${file}.1`);
    sink.write("info", "t", 1, "after rotation");
    sink.flush();
    assert.match(readLines(`${file}.1`).join("\n"), /before rotation$/);
    assert.match(readLines(file).join("\n"), /after rotation$/);
    fs.unlinkSync(file);
    sink.write("info", "t", 1, "after removal");
    sink.flush();
    assert.deepEqual(readLines(file).length, 1);
    assert.match(readLines(file)[0] ?? "", /after removal$/);
    sink.close();
  });

  void it("refuses a symlink, and warns once however many lines fail", async () => {
    const target = path.join(tmp, "target");
    fs.writeFileSync(target, "");
    fs.symlinkSync(target, path.join(tmp, "link.log"));
    const code = `
      const sink = new sinks.FileSink({ path: ${JSON.stringify(path.join(tmp, "link.log"))} });
      for (let i = 0; i < 3; i++) { sink.write("info", "t", 1, "line " + i); sink.flush(); }`;
    const res = await runChild(code);
    assert.equal(fs.readFileSync(target, "utf8"), "");
    assert.equal(res.stderr.trim().split("\n").length, 1, res.stderr);
    assert.match(res.stderr, /warning: maillog_file .*link\.log: ELOOP/);
  });

  void it("writes /dev/stdout to fd 1", async () => {
    const res = await runChild(
      `new sinks.FileSink({ path: "/dev/stdout", host: "h" }).write("info", "t", 5, "to stdout");`,
    );
    assert.match(res.stdout, /^\w{3} [ \d]\d \d\d:\d\d:\d\d h t\[5\]: to stdout\n$/);
  });

  void it("does not lose batched lines at exit, uncaught exception, or fatal", async () => {
    const cases = [
      ["exit.log", `m.msg.info("queued"); process.exit(0);`, 0],
      ["throw.log", `m.msg.info("queued"); throw new Error("bug");`, 1],
      ["fatal.log", `m.msg.info("queued"); m.msg.fatal("no config");`, 1],
    ] as const;
    for (const [name, body, status] of cases) {
      const file = path.join(tmp, name);
      const res = await runChild(
        `m.msgInit({ sink: new sinks.FileSink({ path: ${JSON.stringify(file)} }) });\n${body}`,
      );
      assert.equal(res.status, status, name);
      assert.match(readLines(file)[0] ?? "", /postern\[\d+\]: queued$/, name);
    }
    assert.match(readLines(path.join(tmp, "fatal.log"))[1] ?? "", /: fatal: no config$/);
  });

  void it("never tears lines when two processes append to one file at once", async () => {
    const file = path.join(tmp, "shared.log");
    const n = 4000;
    const go = path.join(tmp, "go");
    const writer = (name: string): string => `
      const fs = await import("node:fs");
      const sink = new sinks.FileSink({ path: ${JSON.stringify(file)}, host: "h" });
      fs.writeFileSync(${JSON.stringify(path.join(tmp, "ready-"))} + "${name}", "");
      while (!fs.existsSync(${JSON.stringify(go)})) await new Promise((r) => setTimeout(r, 2));
      for (let i = 0; i < ${n}; i++) {
        sink.write("info", ${JSON.stringify(name)}, process.pid, i + " " + "${name}".repeat((i * 37) % 1500));
        if (i % 40 === 0) await new Promise((r) => setImmediate(r));
      }`;
    const running = Promise.all([runChild(writer("w1")), runChild(writer("w2"))]);
    const deadline = Date.now() + 20_000;
    while (!fs.existsSync(path.join(tmp, "ready-w1")) || !fs.existsSync(path.join(tmp, "ready-w2"))) {
      assert.ok(Date.now() < deadline, "writer processes did not start");
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    fs.writeFileSync(go, "");
    const results = await running;
    assert.deepEqual(
      results.map((r) => r.status),
      [0, 0],
    );
    const seen = { w1: 0, w2: 0 };
    let switches = 0;
    let last = "";
    for (const line of readLines(file)) {
      const m = /^\w{3} [ \d]\d \d\d:\d\d:\d\d h (w[12])\[\d+\]: (\d+) ((?:w[12])*)$/.exec(line);
      assert.ok(m !== null, `torn line: ${line.slice(0, 120)}`);
      const [, who = "", num = "", body = ""] = m;
      assert.equal(body, who.repeat((Number(num) * 37) % 1500), "a line holds one writer's text only");
      assert.equal(Number(num), seen[who as "w1" | "w2"]++, "each writer's lines in order");
      if (who !== last) switches++;
      last = who;
    }
    assert.deepEqual(seen, { w1: n, w2: n });
    assert.ok(switches > 2, `the writers did overlap (${switches} switches)`);
  });
});
