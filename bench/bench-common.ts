/*
 * bench-common - what the benchmarks share: options and a plain SMTP sender
 *
 * DESCRIPTION
 *   option() reads a numeric "--name N" argument. smtpSend() delivers n
 *   messages over one SMTP session (used to fill Postfix's queue through its
 *   own smtpd); message(i) gives the recipient and the content (LF line
 *   ends, converted and dot-stuffed here). startPostfix() runs a private
 *   Postfix instance (as root) with smtpd, cleanup and trivial-rewrite and
 *   no queue manager, plus what the benchmark adds.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";

const POSTFIX = "/usr/sbin/postfix";

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

export interface PostfixInstance {
  port: number;
  spool: string;
  base: string;
  stop(): void;
}

/**
 * Starts a private Postfix (Debian's /usr/sbin/postfix, as root) under dir with smtpd on a
 * loopback port, the given extra main.cf lines and master.cf services; stop() aborts it.
 */
export async function startPostfix(
  dir: string,
  port: number,
  main: string[],
  master: string[],
): Promise<PostfixInstance> {
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
      ...main,
      "",
    ].join("\n"),
  );
  writeFileSync(
    join(etc, "master.cf"),
    [
      `127.0.0.1:${port} inet n - n - - smtpd`,
      "cleanup unix n - n - 0 cleanup",
      "rewrite unix - - n - - trivial-rewrite",
      "bounce unix - - n - 0 bounce",
      "defer unix - - n - 0 bounce",
      "trace unix - - n - 0 bounce",
      "proxymap unix - - n - - proxymap",
      "anvil unix - - n - 1 anvil",
      "postlog unix-dgram n - n - 1 postlogd",
      ...master,
      "",
    ].join("\n"),
  );
  const r = spawnSync(POSTFIX, ["-c", etc, "start"], { stdio: "pipe" });
  if (r.status !== 0) throw new Error(`postfix start: ${r.stderr.toString().trim()} (see ${base}/maillog)`);
  await new Promise((res) => setTimeout(res, 1000));
  return {
    port,
    spool,
    base,
    stop: () => {
      spawnSync(POSTFIX, ["-c", etc, "abort"], { stdio: "pipe" });
      spawnSync(POSTFIX, ["-c", etc, "stop"], { stdio: "pipe" });
    },
  };
}

/** Why Postfix cannot be run for a comparison here, or null when it can. */
export function postfixUnavailable(): string | null {
  if (!existsSync(POSTFIX)) return `not installed (${POSTFIX}, Debian package postfix)`;
  if (process.getuid?.() !== 0) return "needs root (run as root to compare)";
  return null;
}
