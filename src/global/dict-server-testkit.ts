/*
 * dict-server-testkit - start and stop real servers for the server table tests
 *
 * SYNOPSIS
 *   import { findBinary, freePort, startDaemon, serverDir, writeCf } from "./dict-server-testkit.js";
 *   const bin = findBinary(["/usr/sbin/memcached"], "memcached");   // throws naming the package
 *   const port = await freePort();
 *   const d = await startDaemon("memcached", bin, ["-l", "127.0.0.1", "-p", String(port)], { port });
 *   ... d.stop();
 *
 * DESCRIPTION
 *   Tests run the real servers on 127.0.0.1, on free ports, with their data
 *   in a new temporary directory. When the tests run as root, a server that
 *   refuses root runs as its Debian account (postgres, mysql, openldap,
 *   memcache), which then owns the directory.
 *
 *   findBinary() fails (it never skips) when a server is not installed, and
 *   names the Debian package that provides it. startDaemon() waits until
 *   the port accepts connections, and gives up with the server's last
 *   output after a time limit. Every daemon and directory is also removed
 *   when the process exits, so a failing test leaves nothing behind.
 *   Only tests import this module.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getUser } from "../util/unix-users.js";

const daemons = new Set<ChildProcess>();
const dirs = new Set<string>();

process.on("exit", () => {
  for (const d of daemons) d.kill("SIGKILL");
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Returns the first path that exists; throws naming the Debian package when none does. */
export function findBinary(candidates: string[], debianPackage: string): string {
  for (const c of candidates) {
    if (c.includes("*")) {
      const hit = expandVersionGlob(c);
      if (hit !== null) return hit;
    } else if (existsSync(c)) {
      return c;
    }
  }
  throw new Error(
    `server binary not found (${candidates.join(", ")}): install the Debian package "${debianPackage}"`,
  );
}

/** Expands one "*" path component to the highest numbered match. */
function expandVersionGlob(pattern: string): string | null {
  const star = pattern.indexOf("*");
  const parent = pattern.slice(0, star);
  const rest = pattern.slice(star + 1);
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return null;
  }
  names.sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
  for (const n of names) if (existsSync(parent + n + rest)) return parent + n + rest;
  return null;
}

/** The uid/gid to run a server as: its account when we are root, else ourselves. */
export function runAs(account: string): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const u = getUser(account) ?? getUser("nobody");
  return u === null ? null : { uid: u.uid, gid: u.gid };
}

/** A new temporary directory, owned by `owner` when given; removed at exit. */
export function serverDir(prefix: string, owner: { uid: number; gid: number } | null): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(dir);
  if (owner !== null) chownSync(dir, owner.uid, owner.gid);
  return dir;
}

/** Removes a directory made by serverDir(). */
export function removeDir(dir: string): void {
  dirs.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}

/** Writes a file (a table's .cf file, data) and returns its path. */
export function writeCf(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** A port on 127.0.0.1 that was free a moment ago (nothing listens on it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether something accepts connections on 127.0.0.1:port. */
function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.setTimeout(1000);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
    s.once("timeout", () => {
      s.destroy();
      resolve(false);
    });
  });
}

/** Sleeps. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs a command to completion (setup steps such as initdb); throws with its output on failure. */
export function runSetup(
  cmd: string,
  args: string[],
  opts: { as?: { uid: number; gid: number } | null; cwd?: string; input?: string; timeoutMs?: number } = {},
): string {
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 60000,
    ...(opts.as ? { uid: opts.as.uid, gid: opts.as.gid } : {}),
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
  if (r.error !== undefined || r.status !== 0) {
    const why = r.error?.message ?? `exit status ${r.status ?? "?"} signal ${r.signal ?? "-"}`;
    throw new Error(`${cmd} ${args.join(" ")}: ${why}\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

/** True when fn resolves; false when it throws (a server that is not ready yet). */
export async function succeeds(fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch {
    return false;
  }
}

/** A running server. */
export interface Daemon {
  readonly name: string;
  readonly pid: number;
  /** The last output lines (for error messages). */
  output(): string;
  /** Stops the server and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * Starts a server in the foreground and waits until it is ready: `ready()`
 * when given (a real request, such as a query: a database opens its port
 * while it still says "starting up"), else until `port` accepts.
 */
export async function startDaemon(
  name: string,
  cmd: string,
  args: string[],
  opts: {
    port?: number;
    ready?: () => boolean | Promise<boolean>;
    as?: { uid: number; gid: number } | null;
    cwd?: string;
    timeoutMs?: number;
    stopSignal?: NodeJS.Signals;
  },
): Promise<Daemon> {
  const child = spawn(cmd, args, {
    stdio: ["ignore", "pipe", "pipe"],
    ...(opts.as ? { uid: opts.as.uid, gid: opts.as.gid } : {}),
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
  });
  daemons.add(child);
  let out = "";
  const keep = (b: Buffer): void => {
    out = (out + b.toString("utf8")).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let exited = false;
  const gone = new Promise<void>((resolve) => {
    child.once("exit", () => {
      exited = true;
      daemons.delete(child);
      resolve();
    });
    child.once("error", (err) => {
      out += `\nspawn error: ${err.message}`;
      exited = true;
      daemons.delete(child);
      resolve();
    });
  });
  const d: Daemon = {
    name,
    pid: child.pid ?? -1,
    output: () => out,
    stop: async () => {
      if (exited) return;
      child.kill(opts.stopSignal ?? "SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(t);
    },
  };
  const deadline = Date.now() + (opts.timeoutMs ?? 30000);
  for (;;) {
    if (exited) throw new Error(`${name} exited during start-up:\n${out}`);
    if (opts.ready !== undefined) {
      if (await opts.ready()) return d;
    } else if (opts.port !== undefined && (await portOpen(opts.port))) return d;
    if (Date.now() > deadline) {
      await d.stop();
      throw new Error(`${name} did not start in time:\n${out}`);
    }
    await sleep(100);
  }
}
