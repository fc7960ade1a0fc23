/*
 * msg-sinks-syslog.test - SyslogSink against a real rsyslogd
 *
 * DESCRIPTION
 *   Starts a private rsyslogd (Debian package "rsyslog") on sockets in a temporary
 *   directory: imuxsock on a datagram socket, as /dev/log is, and imptcp on a stream
 *   socket; it writes everything it gets to a file with the priority. No system
 *   configuration is read or changed, and rsyslogd is stopped at the end. Without
 *   rsyslogd the tests fail: they are the proof that syslog logging works.
 *   The fallback to standard error is checked in child processes.
 */

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { SyslogSink } from "./msg-sinks-syslog.js";

const SINKS = new URL("./msg-sinks-syslog.js", import.meta.url).href;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "postern-syslog-"));
const DGRAM = path.join(dir, "dgram.sock");
const STREAM = path.join(dir, "stream.sock");
const OUT = path.join(dir, "out.log");
let rsyslogd: ChildProcess | null = null;
let rsyslogdSaid = "";

/** The rsyslogd program, or null if it is not installed. */
function findRsyslogd(): string | null {
  const dirs = ["/usr/sbin", "/sbin", ...(process.env.PATH ?? "").split(":")];
  for (const d of dirs) {
    const p = path.join(d, "rsyslogd");
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* try the next */
    }
  }
  return null;
}

/** Sleeps a little. */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until every pattern matches a line of the rsyslogd output file; fails after 10 s. */
async function waitForLines(patterns: RegExp[]): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lines = fs.existsSync(OUT) ? fs.readFileSync(OUT, "utf8").split("\n") : [];
    const found = patterns.map((re) => lines.find((l) => re.test(l)));
    if (found.every((l) => l !== undefined)) return found;
    if (Date.now() > deadline) {
      assert.fail(
        `not in the syslog output: ${patterns.filter((_, i) => found[i] === undefined).join(", ")}\n${lines.join("\n")}`,
      );
    }
    await pause(20);
  }
}

before(async () => {
  const program = findRsyslogd();
  if (program === null) {
    assert.fail(
      "rsyslogd not found: these tests need a real syslog daemon; install the Debian package 'rsyslog'",
    );
  }
  const conf = path.join(dir, "rsyslog.conf");
  fs.writeFileSync(
    conf,
    [
      `global(workDirectory="${dir}")`,
      `module(load="imuxsock" SysSock.Use="off")`,
      `module(load="imptcp")`,
      `input(type="imuxsock" Socket="${DGRAM}" RateLimit.Interval="0")`,
      `input(type="imptcp" Path="${STREAM}" FileCreateMode="0666")`,
      `template(name="t" type="string" string="%syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf% pri=%pri%\\n")`,
      `*.* action(type="omfile" file="${OUT}" template="t")`,
    ].join("\n") + "\n",
  );
  const proc = spawn(program, ["-n", "-f", conf, "-i", path.join(dir, "rsyslogd.pid")], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  rsyslogd = proc;
  proc.on("error", () => {});
  proc.stdout.setEncoding("utf8").on("data", (s: string) => (rsyslogdSaid += s));
  proc.stderr.setEncoding("utf8").on("data", (s: string) => (rsyslogdSaid += s));
  const deadline = Date.now() + 10_000;
  while (!fs.existsSync(DGRAM) || !fs.existsSync(STREAM)) {
    if (proc.exitCode !== null || Date.now() > deadline)
      assert.fail(`rsyslogd did not start: ${rsyslogdSaid}`);
    await pause(20);
  }
});

after(async () => {
  const proc = rsyslogd;
  if (proc !== null && proc.exitCode === null && proc.signalCode === null) {
    const gone = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await gone;
    clearTimeout(timer);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

interface ChildResult {
  status: number | null;
  stderr: string;
}

/** Runs an ES module snippet in a new node process with the sinks module imported as `sinks`. */
function runChild(code: string): Promise<ChildResult> {
  const prelude = `import * as sinks from ${JSON.stringify(SINKS)};\n`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", prelude + code], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stderr })));
}

void describe("SyslogSink with rsyslogd", () => {
  void it("logs to a datagram socket (like /dev/log) with each line's own tag, pid and priority", async () => {
    const nonce = `${process.pid}-${Date.now()}`;
    const sink = new SyslogSink({ facility: "mail", socketPath: DGRAM });
    sink.write("warning", "postern/smtpd", 4242, `dgram ${nonce} héllo`);
    sink.write("info", "postern/qmgr", 77, `dgram ${nonce} from qmgr: to=<a@example.com>`);
    sink.write("error", "postern/smtpd", 4242, `dgram ${nonce} second`);
    await sink.close();
    const lines = await waitForLines([
      new RegExp(`^postern/smtpd\\[4242\\]: warning: dgram ${nonce} héllo pri=20$`),
      new RegExp(`^postern/qmgr\\[77\\]: dgram ${nonce} from qmgr: to=<a@example.com> pri=22$`),
      new RegExp(`^postern/smtpd\\[4242\\]: error: dgram ${nonce} second pri=19$`),
    ]);
    assert.equal(lines.length, 3);
  });

  void it("logs to a stream socket (imptcp path=) in pure Node, without logger(1)", async () => {
    const nonce = `${process.pid}-${Date.now()}`;
    const sink = new SyslogSink({
      facility: "local3",
      socketPath: STREAM,
      loggerPath: "/nonexistent/logger",
    });
    sink.write("warning", "postern/master", 1, `stream ${nonce}`);
    sink.write("info", "postern/pickup", 2, `stream ${nonce} info`);
    await sink.close();
    await waitForLines([
      new RegExp(`^postern/master\\[1\\]: warning: stream ${nonce} pri=156$`),
      new RegExp(`^postern/pickup\\[2\\]: stream ${nonce} info pri=158$`),
    ]);
  });

  void it("falls back to standard error with one warning when no syslog is reachable", async () => {
    const missing = path.join(dir, "no-such.sock");
    const code = (socketPath: string, loggerPath: string): string => `
      const sink = new sinks.SyslogSink({ socketPath: ${JSON.stringify(socketPath)},
        loggerPath: ${JSON.stringify(loggerPath)}, host: "h" });
      for (let i = 0; i < 3; i++) sink.write("info", "postern/smtpd", 99, "line " + i);
      await sink.close();`;
    const cases = [
      [
        missing,
        "/usr/bin/logger",
        /warning: syslog socket .*no-such\.sock: ENOENT: logging to standard error$/,
      ],
      [
        DGRAM,
        "/nonexistent/logger",
        /warning: .*: cannot run \/nonexistent\/logger: logging to standard error$/,
      ],
    ] as const;
    for (const [socketPath, loggerPath, warning] of cases) {
      const res = await runChild(code(socketPath, loggerPath));
      assert.equal(res.status, 0, res.stderr);
      const lines = res.stderr.trim().split("\n");
      assert.equal(lines.length, 4, res.stderr);
      assert.match(lines[0] ?? "", warning);
      assert.match(lines[0] ?? "", / h postern\[\d+\]: warning: /);
      lines.slice(1).forEach((l, i) => assert.match(l, new RegExp(` h postern/smtpd\\[99\\]: line ${i}$`)));
    }
  });
});
