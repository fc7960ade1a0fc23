/*
 * master-spec.test - master.cf defaults and command resolution
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Config } from "../global/config.js";
import { serviceSpec } from "./master-spec.js";

/** The spec of the first entry of a master.cf text. */
function spec(master: string, main = "compatibility_level = 3.6\ndaemon_directory = /nonexistent\n") {
  const cfg = Config.fromText("/etc/postern", main, master);
  const e = cfg.master.entries[0];
  assert.ok(e, cfg.master.problems.map((p) => p.text).join("; "));
  return serviceSpec(e, cfg);
}

test("'-' columns take Postfix's defaults", () => {
  const s = spec("cleanup unix - - - - - cleanup\n");
  assert.equal(s.privateClass, true);
  assert.equal(s.unpriv, true);
  assert.equal(s.chroot, false, "chroot defaults to n from compatibility level 1");
  assert.equal(s.wakeup, 0);
  assert.equal(s.maxproc, 100, "maxproc defaults to default_process_limit");
  assert.equal(spec("x unix - - - - - cleanup\n", "compatibility_level = 0\n").chroot, true);
  assert.equal(spec("x unix - - - - - cleanup\n", "default_process_limit = 7\n").maxproc, 7);
});

test("postscreen's maxproc counts processes; other services' counts clients", () => {
  assert.equal(spec("smtp inet n - n - 1 postscreen\n").maxprocCounts, "processes");
  assert.equal(spec("smtp inet n - n - 1 smtpd\n").maxprocCounts, "clients");
  for (const d of ["anvil", "verify", "scache", "tlsmgr"])
    assert.equal(spec(`${d} unix - - n - 1 ${d}\n`).maxprocCounts, "processes", d);
  assert.equal(spec("qmgr unix n - n 300 1 qmgr\n").maxprocCounts, "clients");
});

test("wakeup, conditional wakeup and unlimited maxproc", () => {
  const s = spec("flush unix n - n 1000? 0 flush\n");
  assert.equal(s.wakeup, 1000);
  assert.equal(s.conditionalWakeup, true);
  assert.equal(s.maxproc, 0);
});

test("commands: stock daemons, Node daemons in daemon_directory, other programs", () => {
  assert.equal(spec("smtp inet n - n - - smtpd\n").exec.kind, "node", "smtpd is a Postern daemon");
  assert.equal(spec("x inet n - n - 1 qmqpd\n").exec.kind, "unavailable", "qmqpd is not in this build yet");
  assert.equal(spec("x inet n - n - 1 postscreen\n").exec.kind, "node", "postscreen is a Postern daemon");
  assert.match(
    JSON.stringify(spec("x unix - - n - - mine.js\n").exec),
    /\/nonexistent\/mine\.js: no such file/,
  );
  const ext = spec("x unix - - n - - true\n", "daemon_directory = /bin\n").exec;
  assert.deepEqual(ext, { kind: "external", path: "/bin/true" });
});

test("loopback listeners are local-only; others are not", () => {
  assert.equal(spec("127.0.0.1:25 inet n - n - - smtpd\n").localOnly, true);
  assert.equal(spec("25 inet n - n - - smtpd\n").localOnly, false);
  assert.equal(spec("qmgr unix n - n 300 1 qmgr\n").localOnly, true);
  assert.equal(
    spec("smtpd pass - - n - - smtpd\n").localOnly,
    false,
    "a pass service serves network clients",
  );
});
