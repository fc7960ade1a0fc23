/*
 * postfix-oracle - a private, throw-away Postfix instance for differential tests
 *
 * SYNOPSIS
 *   if (postfixMissing() === null) {
 *     const pf = await startPostfix(t, "myhostname = mx.example.org\n");
 *     ... talk SMTP to 127.0.0.1:pf.port ...
 *   }
 *
 * DESCRIPTION
 *   Runs Debian's Postfix (package postfix) as root with everything in a
 *   temporary directory: its own config_directory (main.cf, and master.cf
 *   copied from /usr/share/postfix/master.cf.dist with only the SMTP
 *   listener moved to a free loopback port and the chroot column set to n),
 *   queue_directory, data_directory and maillog_file. It is started with
 *   "postfix -c DIR start" (as root, -c needs no alternate_config_directories
 *   entry), which creates the queue directories through post-install
 *   create-missing; it never reads or writes /etc/postfix's main.cf or
 *   master.cf, nor /var/spool/postfix. Readiness is the 220 greeting on the
 *   listener; "postfix -c DIR stop" (then SIGKILL to what is left) stops it
 *   when the test ends, and the directory is removed.
 *
 *   Why chroot = n: Postfix's chroot jail is the queue directory, and a
 *   chrooted daemon needs copies of /etc/services, /etc/hosts,
 *   /etc/resolv.conf, /etc/localtime and the NSS libraries there (Debian's
 *   init script copies them for /var/spool/postfix; "postfix start" does
 *   not). The oracle compares SMTP replies, which the chroot does not change.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, LineClient, sleep } from "./instance.js";

export const POSTFIX_COMMAND = "/usr/sbin/postfix";
export const POSTFIX_MASTER = "/usr/lib/postfix/sbin/master";
const MASTER_CF_DIST = ["/usr/share/postfix/master.cf.dist", "/usr/share/postfix/master.cf.proto"];

export interface PostfixInstance {
  dir: string;
  etc: string;
  spool: string;
  port: number;
  maillog: string;
  log(): string;
  stop(): Promise<void>;
}

/** Why a private Postfix cannot run here (not root, package not installed), or null when it can. */
export function postfixMissing(): string | null {
  if (process.getuid?.() !== 0) return "the private Postfix runs as root";
  for (const f of [POSTFIX_COMMAND, POSTFIX_MASTER]) if (!existsSync(f)) return `${f} is missing`;
  if (stockMasterCf() === null) return "Debian's master.cf.dist is missing";
  const passwd = readFileSync("/etc/passwd", "utf8");
  const group = readFileSync("/etc/group", "utf8");
  if (!/^postfix:/m.test(passwd)) return "no postfix user";
  if (!/^postdrop:/m.test(group)) return "no postdrop group";
  return null;
}

/** Debian's stock master.cf, or null. */
function stockMasterCf(): string | null {
  for (const p of MASTER_CF_DIST) {
    try {
      return readFileSync(p, "utf8");
    } catch {
      /* try the next name */
    }
  }
  return null;
}

/**
 * The stock master.cf with the "smtp inet" listener on 127.0.0.1:port and
 * every service's chroot column set to n (see above); nothing else changes.
 */
export function privateMasterCf(stock: string, port: number): string {
  let listener = false;
  const out = stock
    .split("\n")
    .map((line) => {
      if (/^\s|^#|^$/.test(line)) return line;
      const cols = line.split(/\s+/);
      if (cols.length < 8) return line;
      if (cols[0] === "smtp" && cols[1] === "inet") {
        listener = true;
        cols[0] = `127.0.0.1:${port}`;
      }
      cols[4] = "n";
      return cols.join(" ");
    })
    .join("\n");
  if (!listener) throw new Error("master.cf.dist has no smtp inet service");
  return out;
}

/** Runs a command; resolves with its exit code and output (never rejects). */
function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : null;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

/** Whether a process lives (a zombie counts as gone). */
function alive(pid: number): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return !/^State:\s+Z/m.test(status);
  } catch {
    return false;
  }
}

/** Connects and reads the greeting until one starts with 220, or fails after timeoutMs. */
export async function waitGreeting(port: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const c = await LineClient.connect(port);
      try {
        const l = await c.line(Math.max(1000, deadline - Date.now()));
        if (l.startsWith("220")) return;
        last = l;
      } finally {
        c.close();
      }
    } catch (e) {
      last = String(e);
    }
    await sleep(100);
  }
  throw new Error(`${what} on port ${port} sent no 220 greeting within ${timeoutMs} ms (last: ${last})`);
}

/**
 * Makes and starts a private Postfix with the given main.cf lines (after
 * the instance's own paths, so they may not override them); it is stopped
 * and removed after the test.
 */
export async function startPostfix(
  t: { after: (fn: () => Promise<void>) => void },
  main: string,
): Promise<PostfixInstance> {
  const why = postfixMissing();
  if (why !== null) throw new Error(`cannot run a private Postfix: ${why}`);
  const dir = mkdtempSync(join(tmpdir(), "postern-oracle-postfix-"));
  chmodSync(dir, 0o755);
  const etc = join(dir, "etc");
  const spool = join(dir, "spool");
  const lib = join(dir, "lib");
  const maillog = join(dir, "maillog");
  mkdirSync(etc);
  // postfix chdirs to the queue directory first; post-install makes the rest (as root, mode 0755 like its own).
  mkdirSync(spool, { mode: 0o755 });
  const port = await freePort();
  // The instance's own paths come last, so that the shared lines cannot move them out of dir.
  const text = [
    main,
    "# The private instance's own paths and accounts:",
    `queue_directory = ${spool}`,
    `data_directory = ${lib}`,
    `maillog_file = ${maillog}`,
    `maillog_file_prefixes = ${dir}`,
    "mail_owner = postfix",
    "setgid_group = postdrop",
    "inet_interfaces = 127.0.0.1",
    "inet_protocols = ipv4",
    "",
  ].join("\n");
  writeFileSync(join(etc, "main.cf"), text);
  writeFileSync(join(etc, "master.cf"), privateMasterCf(stockMasterCf() ?? "", port));
  const log = (): string => {
    try {
      return readFileSync(maillog, "utf8");
    } catch {
      return "";
    }
  };
  const pidFile = join(spool, "pid", "master.pid");
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    let pid = 0;
    try {
      pid = Number(readFileSync(pidFile, "utf8").trim());
    } catch {
      /* never started */
    }
    if (pid > 0 && alive(pid)) {
      await run(POSTFIX_COMMAND, ["-c", etc, "stop"], 30_000);
      const deadline = Date.now() + 10_000;
      while (alive(pid) && Date.now() < deadline) await sleep(50);
      if (alive(pid)) {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          /* gone meanwhile */
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  t.after(stop);
  // The settings Postfix will use: the paths must be the private ones.
  const conf = await run(
    "/usr/sbin/postconf",
    ["-c", etc, "-h", "queue_directory", "data_directory"],
    30_000,
  );
  if (conf.out.trim() !== `${spool}\n${lib}`) throw new Error(`private Postfix paths are wrong: ${conf.out}`);
  const r = await run(POSTFIX_COMMAND, ["-c", etc, "start"], 120_000);
  if (r.code !== 0) {
    throw new Error(`postfix -c ${etc} start failed (${r.code}): ${r.out}\nlog:\n${log()}`);
  }
  await waitGreeting(port, 60_000, "the private Postfix");
  return { dir, etc, spool, port, maillog, log, stop };
}
