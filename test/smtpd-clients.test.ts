/*
 * smtpd-clients.test - smtpd driven by independent SMTP clients: swaks and smtp-source
 *
 * DESCRIPTION
 *   A running instance (smtpd, cleanup, trivial-rewrite, no qmgr, so
 *   accepted mail stays in incoming/) receives a MIME message with an
 *   attachment and a custom header from swaks (Debian package swaks), and
 *   50 messages over 5 parallel sessions from Postfix's smtp-source
 *   (Debian package postfix, /usr/sbin/smtp-source). A missing tool fails
 *   the test with the name of the package to install.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { contentLines, readEnvelope } from "../src/global/queue-file.js";
import { sleep, type Instance } from "../src/testing/instance.js";
import { smtpdInstance } from "../src/testing/smtpd-instance.js";

/** The first executable found for a tool, or a failure naming its Debian package. */
function tool(name: string, pkg: string): string {
  for (const dir of ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  assert.fail(`${name} is not installed: apt-get install ${pkg} (Debian package ${pkg})`);
}

/** Runs a program with a time limit; resolves with its exit code and output. */
function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString("latin1")));
    p.stderr.on("data", (d: Buffer) => (out += d.toString("latin1")));
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.on("error", reject);
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** The queue files in incoming/. */
function incoming(inst: Instance): string[] {
  return readdirSync(join(inst.spool, "incoming")).filter((n) => !n.startsWith("."));
}

/** A queue file's message content as text. */
async function content(inst: Instance, id: string): Promise<string> {
  const path = join(inst.spool, "incoming", id);
  const env = await readEnvelope(path);
  assert.ok(env.ok, env.ok ? "" : env.reason);
  const lines: string[] = [];
  for await (const l of contentLines(path, env.env)) lines.push(l.toString("latin1"));
  return lines.join("\n") + "\n";
}

test("swaks: a message with an attachment and a custom header gets 250 and is queued intact", async (t) => {
  const swaks = tool("swaks", "swaks");
  const inst = await smtpdInstance(t);
  const file = join(inst.dir, "report.bin");
  writeFileSync(file, Buffer.from(Array.from({ length: 600 }, (_, i) => i % 256)));
  const r = await run(swaks, [
    "--server",
    `127.0.0.1:${inst.port}`,
    "--helo",
    "client.example",
    "--from",
    "alice@sender.example",
    "--to",
    "bob@example.org",
    "--header",
    "X-Postern-Test: swaks custom header",
    "--h-Subject",
    "swaks attachment",
    "--body",
    "see attachment",
    "--attach",
    `@${file}`,
  ]);
  assert.equal(r.code, 0, r.out);
  const id = /<- {2}250 2\.0\.0 Ok: queued as ([0-9A-F]+)/.exec(r.out)?.[1];
  assert.ok(id, r.out);
  const text = await content(inst, id);
  assert.match(text, /\nX-Postern-Test: swaks custom header\n/);
  assert.match(text, /\nSubject: swaks attachment\n/);
  assert.match(text, /\nContent-Type: multipart\/mixed; boundary="[^"]+"\n/);
  assert.match(text, /Content-Disposition: attachment; filename="report\.bin"/);
  const b64 = Buffer.from(Array.from({ length: 600 }, (_, i) => i % 256))
    .toString("base64")
    .slice(0, 60);
  assert.ok(text.replace(/\n/g, "").includes(b64), "the attachment's base64 content is in the queue file");
  assert.match(text, /\nsee attachment\n/);
});

test("smtp-source: 50 messages over 5 sessions are all queued", async (t) => {
  const source = tool("smtp-source", "postfix");
  const inst = await smtpdInstance(t);
  const r = await run(source, [
    "-m",
    "50",
    "-s",
    "5",
    "-l",
    "2048",
    "-f",
    "src@sender.example",
    "-t",
    "bob@example.org",
    `127.0.0.1:${inst.port}`,
  ]);
  assert.equal(r.code, 0, r.out);
  for (let i = 0; i < 100 && incoming(inst).length < 50; i++) await sleep(50);
  const ids = incoming(inst);
  assert.equal(ids.length, 50, `queued: ${ids.length}\n${r.out}`);
  const accepted = inst.log().match(/smtpd\[\d+\]: [0-9A-F]+: client=/g) ?? [];
  assert.equal(accepted.length, 50);
  const one = await content(inst, ids[0] ?? "");
  assert.ok(one.length > 2000, "a 2 KB message");
});
