import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { closeSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { holdFileLock } from "./file-lock.js";

/** A separate process that takes the lock and keeps it until it is killed. */
async function holder(path: string): Promise<ChildProcess> {
  const mod = new URL("./file-lock.js", import.meta.url).href;
  const code = `const { holdFileLock } = await import(${JSON.stringify(mod)});
    const r = await holdFileLock(${JSON.stringify(path)}, 0);
    process.stdout.write(r.ok ? "locked\\n" : "failed " + r.reason + "\\n");
    setInterval(() => undefined, 60_000);`;
  const proc = spawn(process.execPath, ["--input-type=module", "-e", code], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const [line] = (await once(proc.stdout as NodeJS.ReadableStream, "data")) as [Buffer];
  assert.equal(line.toString().trim(), "locked");
  return proc;
}

test("one holder at a time; closing the descriptor releases the lock", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "postern-lock-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "x.lock");
  const a = await holdFileLock(path, 0);
  assert.ok(a.ok, JSON.stringify(a));
  assert.equal(readFileSync(path, "latin1"), `${process.pid}\n`);
  const b = await holdFileLock(path, 0);
  assert.ok(!b.ok && b.busy, JSON.stringify(b));
  assert.match(b.reason, new RegExp(`locked by pid ${process.pid}`));
  closeSync(a.fd);
  const c = await holdFileLock(path, 0);
  assert.ok(c.ok, JSON.stringify(c));
  closeSync(c.fd);
});

test("a holder killed with SIGKILL releases the lock; a waiter gets it then", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "postern-lock-"));
  const path = join(dir, "x.lock");
  const proc = await holder(path);
  t.after(() => {
    proc.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  const busy = await holdFileLock(path, 300);
  assert.ok(!busy.ok && busy.busy, `the lock is held by the other process: ${JSON.stringify(busy)}`);
  const waiting = holdFileLock(path, 20_000);
  setTimeout(() => proc.kill("SIGKILL"), 200);
  const got = await waiting;
  assert.ok(got.ok, `taken once the holder died: ${JSON.stringify(got)}`);
  assert.equal(readFileSync(path, "latin1"), `${process.pid}\n`);
  closeSync(got.fd);
});

test("a lock file that cannot be opened is an error, not a wait", async () => {
  const r = await holdFileLock("/nonexistent-dir-postern/x.lock", 1000);
  assert.ok(!r.ok && !r.busy);
  assert.match(r.reason, /^open \/nonexistent-dir-postern\/x\.lock: /);
});
