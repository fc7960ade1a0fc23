/*
 * sendmail-args.test - the sendmail command line as scripts use it
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { dsnNotifyMask, parseSendmailArgs, type SendmailOptions } from "./sendmail-args.js";

/** Parses and returns the options, failing the test on a parse error. */
function opts(argv: string[], program = "sendmail"): SendmailOptions {
  const r = parseSendmailArgs(argv, program);
  assert.ok(r.ok, r.ok ? "" : r.error);
  return r.opts;
}

test("PHP mail(), cron and logwatch invocations", () => {
  const php = opts(["-t", "-i"]);
  assert.equal(php.mode, "enqueue");
  assert.equal(php.extract, true);
  assert.equal(php.dotEnds, false);
  const cron = opts(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"]);
  assert.deepEqual(
    [cron.fullName, cron.encoding, cron.dotEnds, cron.recipients],
    ["CronDaemon", "8bit", false, ["root"]],
  );
  const oif = opts(["-oi", "-f", "app@example.com", "user@example.net"]);
  assert.deepEqual(
    [oif.dotEnds, oif.sender, oif.recipients],
    [false, "app@example.com", ["user@example.net"]],
  );
  assert.equal(opts(["-oitrue", "x"]).dotEnds, false);
  assert.equal(opts(["x"]).dotEnds, true);
});

test("options end at the first recipient or at --", () => {
  assert.deepEqual(opts(["-f", "a", "b", "-t"]).recipients, ["b", "-t"]);
  assert.deepEqual(opts(["--", "-t"]).recipients, ["-t"]);
  assert.equal(opts(["--", "-t"]).extract, false);
});

test("modes", () => {
  assert.equal(opts([], "mailq").mode, "mailq");
  assert.equal(opts(["-bp"]).mode, "mailq");
  assert.equal(opts(["-bi"]).mode, "newaliases");
  assert.equal(opts(["-I"]).mode, "newaliases");
  assert.equal(opts([], "newaliases").mode, "newaliases");
  assert.equal(opts(["-bs"]).mode, "smtp");
  assert.equal(opts(["-bd"]).mode, "daemon");
  assert.equal(opts(["-q"]).mode, "flush");
  assert.equal(opts(["-q1h"]).mode, "ignore");
  assert.equal(opts(["-bd", "-q30m"]).mode, "daemon");
  assert.equal(opts(["-q30m", "-bd"]).mode, "daemon");
  assert.equal(opts(["-q30m", "-bp"]).mode, "ignore", "an interval outside daemon mode: do nothing");
  assert.equal(opts(["-t", "-q30m"]).mode, "ignore", "not a conflict with -t: the mode stays delivery");
  assert.equal(opts(["-bh"]).mode, "ignore");
  assert.equal(opts(["-bv", "x"]).verify, true);
  assert.equal(opts(["-qRexample.com"]).siteToFlush, "example.com");
  assert.equal(opts(["-qR", "example.com"]).siteToFlush, "example.com");
  assert.equal(opts(["-qI3F2A1C0B7D"]).idToFlush, "3F2A1C0B7D");
  assert.equal(opts(["-bi", "-oA/etc/aliases2"]).aliasMap, "/etc/aliases2");
});

test("DSN, body type, configuration, rewriting context", () => {
  const o = opts([
    "-N",
    "success,delay",
    "-R",
    "hdrs",
    "-V",
    "env-1",
    "-G",
    "-C",
    "/etc/postern/main.cf",
    "x",
  ]);
  assert.equal(o.dsnNotify, 2 | 8);
  assert.equal(o.dsnRet, "hdrs");
  assert.equal(o.dsnEnvid, "env-1");
  assert.equal(opts(["-Venv-2", "x"]).dsnEnvid, "env-2", "attached value");
  assert.equal(opts(["-V", "env", "x"]).dsnEnvid, "env", "three characters: an envid, not old VERP");
  assert.deepEqual(opts(["-V", "a\tb", "x"]).warnings, ["bad syntax in -V option value -- ignored"]);
  assert.deepEqual(opts(["-V", "e".repeat(101), "x"]).warnings, ["too long -V option value -- ignored"]);
  assert.equal(o.rewriteContext, "remote");
  assert.equal(o.configDir, "/etc/postern");
  assert.equal(opts(["-C/srv/mail", "x"]).configDir, "/srv/mail");
  assert.equal(dsnNotifyMask("never"), 1);
  assert.equal(dsnNotifyMask("never,success"), 0);
  assert.equal(dsnNotifyMask("FAILURE"), 4);
  const bad = opts(["-N", "sometimes", "x"]);
  assert.equal(bad.dsnNotify, undefined);
  assert.deepEqual(bad.warnings, ["bad -N option value: 'sometimes' -- ignored"]);
});

test("ignored options are accepted, unsupported ones refused with EX_USAGE", () => {
  const o = opts([
    "-L",
    "label",
    "-h",
    "10",
    "-Am",
    "-U",
    "-m",
    "-c",
    "-x",
    "-O",
    "Timeout=1",
    "-om",
    "-o7",
    "-v",
    "x",
  ]);
  assert.deepEqual(o.recipients, ["x"]);
  assert.equal(o.verbose, 1);
  for (const [argv, status, text] of [
    [["-n", "x"], 64, "-n option not supported"],
    [["-Bfoo"], 64, "-B option needs 8BITMIME or 7BIT"],
    [["-qSsite"], 64, "-qS is not implemented"],
    [["-bq"], 64, "unsupported: -bq"],
    [["-t", "-bp"], 64, "-t can be used only in delivery mode"],
    [["-Z"], 64, "invalid option -- 'Z'"],
    [["-f"], 64, "option requires an argument -- 'f'"],
    [["-XV", "x"], 69, "-XV: VERP is not supported by this Postern build"],
    [
      ["-V", "+=", "x"],
      69,
      "-XV: VERP is not supported by this Postern build (option -V is deprecated; specify -XV instead)",
    ],
    [
      ["-V+=", "x"],
      69,
      "-XV+=: VERP is not supported by this Postern build (option -V+= is deprecated; specify -XV+= instead)",
    ],
  ] as Array<[string[], number, string]>) {
    const r = parseSendmailArgs(argv, "sendmail");
    assert.deepEqual(r, { ok: false, status, error: text }, argv.join(" "));
  }
});
