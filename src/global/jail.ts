/*
 * jail - the jail of chroot=y services: a private mount namespace
 *
 * SYNOPSIS
 *   const jail = probeJail();                 // once, as master starts
 *   fork(module, args, { execPath: jail.program, execArgv: jailArgv(jail, cfg, command) })
 *
 * DESCRIPTION
 *   A chroot=y daemon runs under bubblewrap (bwrap), in a mount namespace
 *   whose root is an empty tmpfs. In it the daemon sees only:
 *     - the queue directory, read-write (at its own path, so that every
 *       path in the configuration means the same inside and outside);
 *     - data_directory, read-write, for the daemons that keep caches
 *       there (postscreen, verify, tlsmgr);
 *     - read-only: Postern's own code (the package directory and
 *       daemon_directory), the configuration directory, the files the
 *       configuration names that Postfix opens before its chroot (TLS keys
 *       and certificates, table files: jail-files.ts), the few /etc files
 *       a resolver needs (resolv.conf, hosts, services, localtime, ...),
 *       a minimal /dev, and the Node binary with its shared libraries;
 *   and nothing else: no /etc/passwd or /etc/shadow, no home or mail
 *   directories, no /proc, no shell or other program. The Node binary sits
 *   alone in a directory of the jail's own tmpfs (JAIL_EXEC_DIR); once the
 *   daemon has started, and before it drops its privileges, it closes that
 *   directory (mode 0), so the unprivileged daemon cannot start even
 *   another Node. bwrap also sets no_new_privs, and the daemon is killed
 *   with bwrap (--die-with-parent).
 *
 *   Paths are the same inside the jail, so nothing in Postern translates
 *   paths. fsync, rename and every other system call work as usual.
 *   Started as root, bwrap needs no user namespace; started as another
 *   user, it makes one (--unshare-user), when the kernel allows that.
 *
 *   probeJail() finds bwrap and the Node runtime's files (ldd) and runs
 *   one jailed "node -e 0", so that a jail that cannot work is known when
 *   master starts, with the reason.
 */
import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { delimiter, isAbsolute, join, relative, sep } from "node:path";
import type { Config } from "./config.js";
import { installRoot } from "./install-paths.js";
import { jailReadFiles } from "./jail-files.js";

/** The jail directory that holds the Node binary; closed by the daemon after start. */
export const JAIL_EXEC_DIR = "/postern-exec";
/** What a resolver, the C library and the time functions read from /etc. */
const ETC_FILES = [
  "/etc/ld.so.cache",
  "/etc/resolv.conf",
  "/etc/hosts",
  "/etc/host.conf",
  "/etc/nsswitch.conf",
  "/etc/gai.conf",
  "/etc/services",
  "/etc/protocols",
  "/etc/localtime",
];
/** Daemons that keep state in data_directory. */
const DATA_DIRECTORY_USERS = new Set(["postscreen", "verify", "tlsmgr"]);

export interface Jail {
  /** The bwrap program. */
  program: string;
  /** The Node binary and its shared libraries (with the loader). */
  runtime: string[];
  /** Master is not root: bwrap makes a user namespace. */
  rootless: boolean;
}

/** Finds a program in the usual places and on PATH. */
function findProgram(name: string): string | null {
  const dirs = ["/usr/bin", "/bin", "/usr/local/bin", ...(process.env["PATH"] ?? "").split(delimiter)];
  for (const d of dirs) {
    if (!isAbsolute(d)) continue;
    const p = join(d, name);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

/** The shared libraries and loader of a binary, as the loader will look them up (from ldd). */
export function parseLdd(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*(?:\S+\s+=>\s+)?(\/\S+)\s+\(0x[0-9a-f]+\)\s*$/.exec(line);
    if (m?.[1] !== undefined) out.push(m[1]);
  }
  return out;
}

/** The Node binary and what it needs to run. */
function runtimeFiles(): string[] | string {
  const node = process.execPath;
  const ldd = findProgram("ldd");
  if (ldd === null) return "ldd was not found (it names the libraries Node needs in the jail)";
  try {
    const text = execFileSync(ldd, [node], { encoding: "utf8", timeout: 10_000, stdio: "pipe" });
    return [node, ...parseLdd(text)];
  } catch (err) {
    const e = err as { stdout?: string; message: string };
    // A statically linked binary: ldd says so and fails; it needs nothing else.
    if (typeof e.stdout === "string" && /not a dynamic executable/.test(e.stdout)) return [node];
    return `ldd ${node}: ${e.message}`;
  }
}

/** Is path inside dir (or dir itself)? */
function within(path: string, dir: string): boolean {
  const r = relative(dir, path);
  return r === "" || (!r.startsWith("..") && !isAbsolute(r));
}

/**
 * bwrap makes the missing parents of a mount point mode 0700, which the
 * unprivileged daemon could not pass through: make them 0755 first (those
 * not inside an earlier mount, which exist already).
 */
function parentDirs(path: string, made: Set<string>, mounts: Array<{ path: string }>): string[] {
  const out: string[] = [];
  const parts = path.split(sep).filter((p) => p !== "");
  for (let i = 1; i < parts.length; i++) {
    const dir = sep + parts.slice(0, i).join(sep);
    if (made.has(dir) || mounts.some((m) => m.path !== path && within(dir, m.path))) continue;
    made.add(dir);
    out.push("--perms", "0755", "--dir", dir);
  }
  return out;
}

/** The bwrap arguments that bind what the service's daemon may see, then "-- node". */
export function jailArgv(jail: Jail, cfg: Config, command: string): string[] {
  const rw: string[] = [cfg.get("queue_directory")];
  if (DATA_DIRECTORY_USERS.has(command)) rw.push(cfg.get("data_directory"));
  const daemonDir = cfg.get("daemon_directory");
  const ro = [
    ...jail.runtime.slice(1),
    ...ETC_FILES,
    installRoot(),
    cfg.dir,
    ...(daemonDir !== "" ? [daemonDir] : []),
    ...jailReadFiles(cfg),
  ];
  const mounts: Array<{ path: string; write: boolean }> = [];
  for (const p of rw)
    if (p !== "" && existsSync(p) && !mounts.some((m) => m.path === p)) mounts.push({ path: p, write: true });
  for (const p of ro) {
    // What lies inside a mount is there already (and a read-only bind inside the queue would hide writes).
    if (!existsSync(p) || mounts.some((m) => within(p, m.path))) continue;
    mounts.push({ path: p, write: false });
  }
  // Parents before children: a later bind covers an earlier one's subtree.
  mounts.sort((a, b) => a.path.split(sep).length - b.path.split(sep).length);
  const args = ["--die-with-parent", "--unshare-ipc", ...(jail.rootless ? ["--unshare-user"] : [])];
  args.push("--dev", "/dev");
  const made = new Set<string>(["/"]);
  for (const m of mounts) {
    args.push(...parentDirs(m.path, made, mounts));
    args.push(m.write ? "--bind" : "--ro-bind", m.path, m.path);
  }
  args.push("--ro-bind", jail.runtime[0] ?? process.execPath, `${JAIL_EXEC_DIR}/node`);
  args.push("--chdir", cfg.get("queue_directory"), "--", `${JAIL_EXEC_DIR}/node`);
  return args;
}

/** Finds bwrap and the runtime and runs one jailed Node; the jail, or why there can be none. */
export function probeJail(): Jail | string {
  const program = findProgram("bwrap");
  if (program === null) return "bubblewrap (bwrap) is not installed; install it (apt install bubblewrap)";
  const runtime = runtimeFiles();
  if (typeof runtime === "string") return runtime;
  const jail: Jail = { program, runtime, rootless: process.getuid?.() !== 0 };
  const args = ["--die-with-parent", ...(jail.rootless ? ["--unshare-user"] : []), "--dev", "/dev"];
  for (const f of [...runtime.slice(1), ...ETC_FILES]) if (existsSync(f)) args.push("--ro-bind", f, f);
  args.push("--ro-bind", runtime[0] ?? process.execPath, `${JAIL_EXEC_DIR}/node`);
  try {
    execFileSync(program, [...args, "--", `${JAIL_EXEC_DIR}/node`, "-e", "0"], {
      timeout: 30_000,
      stdio: "pipe",
      env: {},
    });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    const why = e.stderr?.toString().trim() || e.message;
    return `bwrap cannot make the jail here: ${why.split("\n")[0] ?? why}`;
  }
  return jail;
}
