/*
 * bench-common - what the benchmarks share: options and a plain SMTP sender
 *
 * DESCRIPTION
 *   option() reads a numeric "--name N" argument. smtpSend() delivers n
 *   messages over one SMTP session (used to fill Postfix's queue through its
 *   own smtpd); message(i) gives the recipient and the content (LF line
 *   ends, converted and dot-stuffed here). ensureOpenFiles() re-runs a
 *   benchmark under a higher "ulimit -n" (as root); startPostfix() runs a
 *   private Postfix instance to compare with.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";

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

/** The soft and hard limits on open files of this process, from /proc/self/limits. */
export function openFileLimits(): { soft: number; hard: number } {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
  const n = (s: string | undefined): number => (s === "unlimited" ? Infinity : Number(s ?? 0));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

/**
 * Runs this benchmark again under "sh -c 'ulimit -n N'" when its open-file
 * limit is below `need` and it runs as root (Node raises the soft limit to
 * the hard limit by itself; only root can raise the hard one). Returns when
 * nothing needs doing; otherwise exits with the re-run's status.
 */
export function ensureOpenFiles(need: number, marker: string): void {
  const lim = openFileLimits();
  if (lim.soft >= need) return;
  if (process.getuid?.() !== 0 || process.env[marker] !== undefined) {
    console.log(`open-file limit ${lim.soft} < ${need}: fewer connections may open (raise ulimit -Hn first)`);
    return;
  }
  console.log(`raising the open-file limit from ${lim.soft} to ${need} (ulimit -n)`);
  const r = spawnSync(
    "sh",
    [
      "-c",
      `ulimit -n ${need} || echo "could not raise it: going on with $(ulimit -n)"; exec "$0" "$@"`,
      process.execPath,
      ...process.argv.slice(1),
    ],
    { stdio: "inherit", env: { ...process.env, [marker]: "1" } },
  );
  process.exit(r.status ?? 1);
}

/** A private Postfix instance (Debian's /usr/sbin/postfix, as root) under dir, started and ready. */
export interface PostfixInstance {
  base: string;
  spool: string;
  masterPid: number;
  stop(): void;
}

/** Starts a private Postfix instance with the given main.cf lines and master.cf service lines. */
export async function startPostfix(
  dir: string,
  main: string[],
  services: string[],
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
      ...services,
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
  const pf = (...args: string[]): void => {
    const r = spawnSync("/usr/sbin/postfix", ["-c", etc, ...args], { stdio: "pipe" });
    if (r.status !== 0)
      throw new Error(`postfix ${args.join(" ")}: ${r.stderr.toString().trim()} (see ${base}/maillog)`);
  };
  pf("start");
  await new Promise((r) => setTimeout(r, 1000));
  return {
    base,
    spool,
    masterPid: Number(readFileSync(join(spool, "pid", "master.pid"), "utf8").trim()),
    stop: () => {
      spawnSync("/usr/sbin/postfix", ["-c", etc, "abort"], { stdio: "pipe" });
      spawnSync("/usr/sbin/postfix", ["-c", etc, "stop"], { stdio: "pipe" });
    },
  };
}
