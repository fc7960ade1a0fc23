/*
 * bench-common - what the benchmarks share: options and a plain SMTP sender
 *
 * DESCRIPTION
 *   option() reads a numeric "--name N" argument. smtpSend() delivers n
 *   messages over one SMTP session (used to fill Postfix's queue through its
 *   own smtpd); message(i) gives the recipient and the content (LF line
 *   ends, converted and dot-stuffed here). throughput() runs Postfix's
 *   smtp-source against a port and counts what was queued; startPostfix()
 *   runs a private Postfix instance (Debian's /usr/sbin/postfix, as root)
 *   with smtpd, cleanup and trivial-rewrite plus what the caller adds.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { sleep } from "../src/testing/instance.js";

export const POSTFIX = "/usr/sbin/postfix";
export const SMTP_SOURCE = "/usr/sbin/smtp-source";
export const SESSIONS = 20;

/** A numeric option "--name N", or the default. */
export function option(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive number`);
  return v;
}

/** Sends n messages over one SMTP session on 127.0.0.1:port. */
export async function smtpSend(
  port: number,
  n: number,
  message: (i: number) => { rcpt: string; content: string },
): Promise<void> {
  const sock = connect(port, "127.0.0.1");
  let buf = "";
  const waiters: Array<() => void> = [];
  sock.setEncoding("utf8");
  sock.on("data", (d: string) => {
    buf += d;
    waiters.splice(0).forEach((w) => w());
  });
  const reply = async (): Promise<string> => {
    for (;;) {
      const m = /^(\d{3}) [^\n]*\n/m.exec(buf);
      if (m !== null) {
        buf = buf.slice(m.index + m[0].length);
        return m[1] ?? "";
      }
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  const cmd = async (line: string, want: string): Promise<void> => {
    sock.write(`${line}\r\n`);
    const code = await reply();
    if (!code.startsWith(want)) throw new Error(`SMTP "${line.slice(0, 40)}": ${code}`);
  };
  if (!(await reply()).startsWith("2")) throw new Error("no SMTP greeting");
  await cmd("EHLO bench.example.org", "2");
  for (let i = 0; i < n; i++) {
    const m = message(i);
    await cmd("MAIL FROM:<bench@example.org>", "2");
    await cmd(`RCPT TO:<${m.rcpt}>`, "2");
    await cmd("DATA", "3");
    await cmd(`${m.content.replace(/\n/g, "\r\n").replace(/^\./gm, "..")}.`, "2");
  }
  await cmd("QUIT", "2");
  sock.destroy();
}

/** Counts the queue files in a directory (0 when it does not exist). */
export function countFiles(dir: string): number {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir).filter((n) => !n.startsWith(".")).length;
}

/** Runs smtp-source (n messages of 2 KB, SESSIONS sessions) against a port; messages queued per second and a note. */
export async function throughput(
  port: number,
  incoming: string,
  n: number,
  budgetMs: number,
  from = "bench@sender.example",
): Promise<{ rate: number; text: string }> {
  const before = countFiles(incoming);
  const t0 = Date.now();
  const args = ["-m", String(n), "-s", String(SESSIONS), "-l", "2048"];
  args.push("-f", from, "-t", "bob@example.org", `127.0.0.1:${port}`);
  const p = spawn(SMTP_SOURCE, args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  p.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => p.kill("SIGKILL"), budgetMs);
  const code = await new Promise<number | null>((r) => p.on("close", r));
  clearTimeout(timer);
  const seconds = (Date.now() - t0) / 1000;
  await sleep(500);
  const got = countFiles(incoming) - before;
  const rate = got / seconds;
  const note = code === 0 ? "" : ` (smtp-source exit ${code}${err ? `: ${err.trim().slice(0, 200)}` : ""})`;
  return { rate, text: `${got} msgs in ${seconds.toFixed(2)} s, ${rate.toFixed(0)} msg/s${note}` };
}

/** Starts a private Postfix (as root) under dir with the given main.cf and extra master.cf lines. */
export function startPostfix(
  dir: string,
  main: string[],
  master: string[],
): { spool: string; masterPid: () => number; stop: () => void } {
  const base = join(dir, "postfix");
  const etc = join(base, "etc");
  const spool = join(base, "spool");
  mkdirSync(etc, { recursive: true });
  mkdirSync(spool);
  mkdirSync(join(base, "data"));
  chownSync(join(base, "data"), Number(execFileSync("id", ["-u", "postfix"], { encoding: "utf8" })), 0);
  writeFileSync(
    join(etc, "main.cf"),
    [
      "compatibility_level = 3.6",
      `queue_directory = ${spool}`,
      `data_directory = ${base}/data`,
      "mail_owner = postfix",
      "setgid_group = postdrop",
      ...main,
      "in_flow_delay = 0",
      "alias_maps =",
      "alias_database =",
      "inet_interfaces = 127.0.0.1",
      "inet_protocols = ipv4",
      `maillog_file = ${base}/maillog`,
      `maillog_file_prefixes = ${base}`,
      "shlib_directory = /usr/lib/postfix",
      "daemon_directory = /usr/lib/postfix/sbin",
      "meta_directory = /etc/postfix",
      "",
    ].join("\n"),
  );
  writeFileSync(
    join(etc, "master.cf"),
    [
      ...master,
      "cleanup unix n - n - 0 cleanup",
      "rewrite unix - - n - - trivial-rewrite",
      "bounce unix - - n - 0 bounce",
      "defer unix - - n - 0 bounce",
      "trace unix - - n - 0 bounce",
      "proxymap unix - - n - - proxymap",
      "anvil unix - - n - 1 anvil",
      "postlog unix-dgram n - n - 1 postlogd",
      "",
    ].join("\n"),
  );
  const r = spawnSync(POSTFIX, ["-c", etc, "start"], { stdio: "pipe" });
  if (r.status !== 0) throw new Error(`postfix start: ${r.stderr.toString().trim()} (see ${base}/maillog)`);
  return {
    spool,
    masterPid: () => Number(readFileSync(join(spool, "pid", "master.pid"), "utf8").trim()),
    stop: () => {
      spawnSync(POSTFIX, ["-c", etc, "abort"], { stdio: "pipe" });
      spawnSync(POSTFIX, ["-c", etc, "stop"], { stdio: "pipe" });
    },
  };
}
