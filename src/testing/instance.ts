/*
 * instance - a throw-away Postern instance for end-to-end tests
 *
 * SYNOPSIS
 *   const inst = makeInstance({ main: "max_idle = 2s\n", master: "..." });
 *   await inst.start(); ... await inst.stop(); inst.cleanup();
 *
 * DESCRIPTION
 *   Makes a temporary directory with etc/ (main.cf, master.cf), spool/ and
 *   lib/, logging to a file, with daemon_directory pointing at the compiled
 *   test daemons. The directory is world-readable so that services running
 *   as mail_owner can read their configuration. Helpers talk to services
 *   over real sockets and wait for log lines.
 */
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { installRoot } from "../global/install-paths.js";
import { runCli, type CliResult } from "./run-cli.js";

export interface Instance {
  dir: string;
  etc: string;
  spool: string;
  lib: string;
  maillog: string;
  start(): Promise<CliResult>;
  stop(): Promise<CliResult>;
  postern(...args: string[]): Promise<CliResult>;
  writeMaster(text: string): void;
  log(): string;
  waitLog(re: RegExp, timeoutMs?: number): Promise<string>;
  cleanup(): void;
}

/** Creates an instance; extra main.cf text is appended to the defaults. */
export function makeInstance(opts: { main?: string; master: string }): Instance {
  const dir = mkdtempSync(join(tmpdir(), "postern-e2e-"));
  chmodSync(dir, 0o755);
  const etc = join(dir, "etc");
  const spool = join(dir, "spool");
  const lib = join(dir, "lib");
  const maillog = join(dir, "maillog");
  mkdirSync(etc);
  const main = [
    "compatibility_level = 3.6",
    `queue_directory = ${spool}`,
    `data_directory = ${lib}`,
    `maillog_file = ${maillog}`,
    `daemon_directory = ${join(installRoot(), "dist", "src", "testing")}`,
    "mail_owner = nobody",
    "inet_interfaces = 127.0.0.1",
    "inet_protocols = ipv4",
    opts.main ?? "",
  ].join("\n");
  writeFileSync(join(etc, "main.cf"), main + "\n");
  writeFileSync(join(etc, "master.cf"), opts.master);
  const postern = (...args: string[]): Promise<CliResult> => runCli("postern", ["-c", etc, ...args]);
  const log = (): string => {
    try {
      return readFileSync(maillog, "utf8");
    } catch {
      return "";
    }
  };
  return {
    dir,
    etc,
    spool,
    lib,
    maillog,
    start: () => postern("start"),
    stop: () => postern("stop"),
    postern,
    writeMaster: (text) => writeFileSync(join(etc, "master.cf"), text),
    log,
    waitLog: async (re, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = re.exec(log());
        if (m) return m[0];
        if (Date.now() > deadline) throw new Error(`log line ${re} did not appear; log:\n${log()}`);
        await sleep(50);
      }
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Makes and starts an instance; it is aborted and removed after the test (plus any extra cleanup). */
export async function startInstance(
  t: { after: (fn: () => Promise<void>) => void },
  opts: { main?: string; master: string },
  extraCleanup?: () => void,
): Promise<Instance> {
  const inst = makeInstance(opts);
  const r = await inst.start();
  if (r.code !== 0) throw new Error(`postern start failed: ${r.stderr}`);
  t.after(async () => {
    await inst.postern("abort");
    inst.cleanup();
    extraCleanup?.();
  });
  return inst;
}

/** Waits a while. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Polls cond until it holds; fails after timeoutMs with "timed out waiting for
 * <what>", followed by the tail of inst's log when an instance is given.
 */
export async function until(
  what: string,
  cond: () => boolean,
  opts: { timeoutMs?: number; everyMs?: number; inst?: Instance } = {},
): Promise<void> {
  const end = Date.now() + (opts.timeoutMs ?? 30_000);
  while (!cond()) {
    if (Date.now() > end) {
      const log = opts.inst === undefined ? "" : `; log:\n${opts.inst.log().slice(-4000)}`;
      throw new Error(`timed out waiting for ${what}${log}`);
    }
    await sleep(opts.everyMs ?? 50);
  }
}

/** The names of the files below one queue directory of an instance (hashed subdirectories included). */
export function queueFileNames(inst: Instance, queue: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(n);
    }
  };
  walk(join(inst.spool, queue));
  return out;
}

/** A line-oriented client for test services. */
export class LineClient {
  #sock: Socket;
  #buf = "";
  #waiters: Array<() => void> = [];
  closed = false;

  constructor(sock: Socket) {
    this.#sock = sock;
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      this.#buf += d;
      this.#wake();
    });
    sock.on("close", () => {
      this.closed = true;
      this.#wake();
    });
    sock.on("error", () => undefined);
  }

  /** Connects to a TCP port on 127.0.0.1 or to a Unix socket path. */
  static connect(target: number | string): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const sock = typeof target === "number" ? connect(target, "127.0.0.1") : connect({ path: target });
      sock.once("connect", () => resolve(new LineClient(sock)));
      sock.once("error", reject);
    });
  }

  /** Wakes everyone waiting for input. */
  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Reads one line (without CRLF); rejects on close or timeout. */
  async line(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const l = this.#buf.slice(0, nl).replace(/\r$/, "");
        this.#buf = this.#buf.slice(nl + 1);
        return l;
      }
      if (this.closed) throw new Error("connection closed");
      if (Date.now() > deadline) throw new Error("timed out waiting for a line");
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  /** The client's own port (how daemons' log lines name this connection). */
  get localPort(): number {
    return this.#sock.localPort ?? 0;
  }

  /** Sends a line. */
  send(text: string): void {
    this.#sock.write(`${text}\r\n`);
  }

  /** Sends bytes as they are (no line ending added). */
  sendRaw(data: string | Buffer): void {
    this.#sock.write(data);
  }

  /** Closes the connection. */
  close(): void {
    this.#sock.destroy();
  }
}

/** Finds a free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      const port = typeof a === "object" && a !== null ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Pids of live processes whose environment names this configuration directory. */
export function processesOf(etc: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const env = readFileSync(`/proc/${name}/environ`, "latin1");
      const cmd = readFileSync(`/proc/${name}/cmdline`, "latin1");
      // A jailed daemon's bwrap parent lives exactly as long as the daemon: count the daemon once.
      if (/^[^\0]*\/bwrap\0/.test(cmd)) continue;
      if (env.includes(`MAIL_CONFIG=${etc}\0`) || cmd.includes(etc)) out.push(Number(name));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out;
}

/** The real uid of a process, from /proc/PID/status. */
export function processUid(pid: number): number {
  const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? -1);
}

/**
 * conf/master.cf as shipped, with one change: the SMTP listener is on the
 * test's port (inet_interfaces keeps it on loopback). Extra entries for the
 * test's own services are appended.
 */
export function shippedMaster(port: number, extra = ""): string {
  const stock = readFileSync(join(installRoot(), "conf", "master.cf"), "utf8");
  return withListener(stock, port) + extra;
}

/** Where Debian's postfix package keeps its stock master.cf (the name changed between releases). */
const DEBIAN_MASTER_CF = ["/usr/share/postfix/master.cf.proto", "/usr/share/postfix/master.cf.dist"];

/** Debian's stock master.cf (package postfix) with the SMTP listener on the test's port; null without it. */
export function debianMaster(port: number): string | null {
  for (const path of DEBIAN_MASTER_CF) {
    try {
      return withListener(readFileSync(path, "utf8"), port);
    } catch {
      /* try the next name */
    }
  }
  return null;
}

/** Moves a master.cf's "smtp inet" listener to a port. */
function withListener(text: string, port: number): string {
  const out = text.replace(/^smtp(\s+)inet /m, `${port}$1inet `);
  if (out === text) throw new Error("master.cf has no smtp inet service");
  return out;
}

/**
 * The entries of conf/master.cf as shipped for the named services
 * ("cleanup", "qmgr", "smtp/unix", ...; a bare name means its unix entry),
 * each with its continuation lines: a test that runs only part of the mail
 * system still runs that part with the shipped columns (chroot, unpriv,
 * maxproc). An unknown name is an error.
 */
export function shippedEntries(...names: string[]): string {
  const text = readFileSync(join(installRoot(), "conf", "master.cf"), "utf8");
  const entries = new Map<string, string>();
  let key = "";
  for (const line of text.split("\n")) {
    if (/^\s*(#|$)/.test(line)) continue;
    if (/^\s/.test(line)) {
      if (key !== "") entries.set(key, `${entries.get(key) ?? ""}${line}\n`);
      continue;
    }
    const [service, type] = line.split(/\s+/);
    key = `${service}/${type}`;
    entries.set(key, `${line}\n`);
  }
  return names
    .map((n) => {
      const e = entries.get(n.includes("/") ? n : `${n}/unix`);
      if (e === undefined) throw new Error(`conf/master.cf has no ${n} service`);
      return e;
    })
    .join("");
}

/** The messages delivered to a user's Maildir under dir/mail/ (a test's own mail_spool_directory). */
export function maildirMessages(dir: string, user: string): string[] {
  const box = join(dir, "mail", user, "new");
  try {
    return readdirSync(box).map((f) => readFileSync(join(box, f), "utf8"));
  } catch {
    return [];
  }
}
