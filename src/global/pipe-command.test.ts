/*
 * pipe-command.test - commands with the message on standard input
 *
 * DESCRIPTION
 *   Runs real commands with the test's own rights (root in CI runs them as
 *   nobody in one test): exit statuses through sysexits, an enhanced status
 *   code in the output, signals, the time limit, the environment, and that
 *   a command string with shell characters goes to /bin/sh while the
 *   message stays on standard input.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeCommand } from "./pipe-command.js";

/** A message source. */
function* input(text = "Subject: x\n\nhello\n"): Generator<Buffer> {
  yield Buffer.from(text);
}

const base = { rights: null, timeLimitMs: 10_000 } as const;

test("exit 0 is delivery; the message arrives on standard input", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pipe-cmd-"));
  try {
    const r = await pipeCommand({
      ...base,
      argv: ["/bin/sh", "-c", `cat > ${dir}/in; echo done`],
      input: input(),
    });
    assert.deepEqual(r, { status: "ok", output: "done" });
    assert.equal(readFileSync(join(dir, "in"), "utf8"), "Subject: x\n\nhello\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sysexits: 75 defers, 67 bounces with its text and the command output", async () => {
  const t = await pipeCommand({ ...base, command: "echo 'busy now'; exit 75", input: input() });
  assert.deepEqual(t, { status: "defer", dsn: "4.3.0", text: "temporary failure. Command output: busy now" });
  const n = await pipeCommand({ ...base, command: "exit 67", input: input() });
  assert.deepEqual(n, { status: "bounce", dsn: "5.1.1", text: "user unknown" });
});

test("an enhanced status code at the start of the output wins over the exit status", async () => {
  const r = await pipeCommand({ ...base, command: "echo '4.2.2 mailbox full'; exit 1", input: input() });
  assert.deepEqual(r, { status: "defer", dsn: "4.2.2", text: "mailbox full" });
});

test("an unknown exit status bounces; a signal defers; the time limit kills the group and bounces", async () => {
  const u = await pipeCommand({ ...base, command: "exit 3", input: input() });
  assert.ok(u.status === "bounce" && /^Command died with status 3: "exit 3"/.test(u.text));
  const s = await pipeCommand({ ...base, command: "kill -TERM $$", input: input() });
  assert.equal(s.status, "defer");
  const started = Date.now();
  const h = await pipeCommand({ ...base, command: "sleep 20 & sleep 20", timeLimitMs: 500, input: input() });
  assert.ok(h.status === "bounce" && /Command time limit exceeded/.test(h.text));
  assert.ok(Date.now() - started < 5000);
});

test("a missing program defers; a direct command does not need a shell", async () => {
  const r = await pipeCommand({ ...base, argv: ["/nonexistent/prog"], input: input() });
  assert.equal(r.status, "defer");
  const d = await pipeCommand({ ...base, command: "/bin/echo one two", input: input() });
  assert.deepEqual(d, { status: "ok", output: "one two" });
});

test("the environment holds only exported names, PATH and the caller's variables", async () => {
  process.env["POSTERN_TEST_SECRET"] = "leak";
  const r = await pipeCommand({
    ...base,
    command: "env | sort | tr '\\n' ' '",
    exportNames: ["TZ", "LANG=C"],
    env: { RECIPIENT: "u@h" },
    input: input(),
  });
  assert.equal(r.status, "ok");
  const out = r.status === "ok" ? r.output : "";
  assert.match(out, /LANG=C/);
  assert.match(out, /PATH=\/usr\/bin:\/bin/);
  assert.match(out, /RECIPIENT=u@h/);
  assert.doesNotMatch(out, /POSTERN_TEST_SECRET/);
});

test("with root, the command runs with the given uid and gid", async () => {
  assert.equal(process.getuid?.(), 0, "run the suite as root (CI does)");
  const dir = mkdtempSync(join(tmpdir(), "pipe-uid-"));
  chmodSync(dir, 0o1777);
  try {
    const r = await pipeCommand({
      ...base,
      rights: { uid: 65534, gid: 65534 },
      command: `id -u > ${dir}/uid; id -G`,
      input: input(),
    });
    assert.deepEqual(r, { status: "ok", output: "65534" }, "no supplementary groups");
    assert.equal(readFileSync(join(dir, "uid"), "utf8").trim(), "65534");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
