/*
 * unix-passwd - account and group lookups that tell "no such user" from "lookup failed"
 *
 * SYNOPSIS
 *   import { pwByName, pwByUid, grByName } from "../util/unix-passwd.js";
 *   const r = await pwByName("alice");
 *   if (r.status === "found") r.pw.uid; else if (r.status === "error") defer(r.reason);
 *
 * DESCRIPTION
 *   Node has no getpwnam(). A delivery agent must not confuse a broken
 *   name service with an unknown user (one defers, the other bounces), so
 *   these lookups return three outcomes. They read /etc/passwd (or
 *   /etc/group) first and then ask getent(1), which consults every name
 *   service in nsswitch.conf (LDAP, SSSD, ...). getent's exit status 2
 *   means "not found"; any other failure is an error. The lookups are
 *   asynchronous (a daemon serving many clients must not block), bounded
 *   in time, and read at most PASSWD_FILE_MAX bytes of a file; a file is
 *   read again only when its inode, size or modification time change.
 */
import { execFile } from "node:child_process";
import { open, stat } from "node:fs/promises";

export interface Passwd {
  name: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
}

export type PwResult =
  { status: "found"; pw: Passwd } | { status: "notfound" } | { status: "error"; reason: string };

export type GrResult =
  { status: "found"; gid: number } | { status: "notfound" } | { status: "error"; reason: string };

const PASSWD_FILE_MAX = 16 << 20;
const GETENT_TIMEOUT_MS = 10_000;

const cache = new Map<string, { stamp: string; text: string }>();

/** Reads a small system file, reusing the last read while its inode, size and mtime are unchanged; null when it does not exist. */
async function readSmall(path: string): Promise<string | null> {
  const st = await stat(path).catch(() => null);
  if (st === null) return null;
  const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
  const hit = cache.get(path);
  if (hit !== undefined && hit.stamp === stamp) return hit.text;
  const text = await readFresh(path);
  if (text !== null) cache.set(path, { stamp, text });
  return text;
}

/** Reads a small system file; null when it does not exist. */
async function readFresh(path: string): Promise<string | null> {
  let fh;
  try {
    fh = await open(path, "r");
  } catch {
    return null;
  }
  try {
    const buf = Buffer.alloc(Math.min((await fh.stat()).size, PASSWD_FILE_MAX));
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString("utf8");
  } finally {
    await fh.close();
  }
}

/** Parses one passwd line. */
function parsePasswd(line: string): Passwd | null {
  const f = line.split(":");
  if (f.length < 7) return null;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!/^\d+$/.test(f[2] ?? "") || !/^\d+$/.test(f[3] ?? "")) return null;
  return { name: f[0] ?? "", uid, gid, gecos: f[4] ?? "", home: f[5] ?? "", shell: f[6] ?? "" };
}

/** Runs getent; the matching lines, null for "not found", or an error text. */
function getent(db: string, key: string): Promise<{ lines: string[] } | null | string> {
  return new Promise((resolve) => {
    execFile(
      "getent",
      [db, key],
      { timeout: GETENT_TIMEOUT_MS, maxBuffer: 1 << 20, env: { PATH: "/usr/bin:/bin" } },
      (err, stdout) => {
        if (err === null) return resolve({ lines: stdout.split("\n").filter((l) => l !== "") });
        const code: unknown = (err as { code?: unknown }).code;
        if (code === 2) return resolve(null);
        resolve(`getent ${db} ${key}: ${err.message.split("\n")[0] ?? ""}`);
      },
    );
  });
}

/** Finds an account by a field test: the file first, then getent. */
async function pwFind(key: string, test: (pw: Passwd) => boolean): Promise<PwResult> {
  if (key === "" || key.includes(":") || key.includes("\n") || key.startsWith("-"))
    return { status: "notfound" };
  const text = await readSmall("/etc/passwd");
  for (const line of text?.split("\n") ?? []) {
    const pw = parsePasswd(line);
    if (pw !== null && test(pw)) return { status: "found", pw };
  }
  const r = await getent("passwd", key);
  if (r === null) return { status: "notfound" };
  if (typeof r === "string") return { status: "error", reason: r };
  for (const line of r.lines) {
    const pw = parsePasswd(line);
    if (pw !== null && test(pw)) return { status: "found", pw };
  }
  return { status: "notfound" };
}

/** Looks an account up by name. */
export function pwByName(name: string): Promise<PwResult> {
  return pwFind(name, (pw) => pw.name === name);
}

/** Looks an account up by uid. */
export function pwByUid(uid: number): Promise<PwResult> {
  if (!Number.isSafeInteger(uid) || uid < 0) return Promise.resolve({ status: "notfound" });
  return pwFind(String(uid), (pw) => pw.uid === uid);
}

/** Looks a group id up by name. */
export async function grByName(name: string): Promise<GrResult> {
  if (name === "" || name.includes(":") || name.startsWith("-")) return { status: "notfound" };
  const scan = (lines: string[]): number | null => {
    for (const line of lines) {
      const f = line.split(":");
      if (f[0] === name && /^\d+$/.test(f[2] ?? "")) return Number(f[2]);
    }
    return null;
  };
  const hit = scan((await readSmall("/etc/group"))?.split("\n") ?? []);
  if (hit !== null) return { status: "found", gid: hit };
  const r = await getent("group", name);
  if (r === null) return { status: "notfound" };
  if (typeof r === "string") return { status: "error", reason: r };
  const g = scan(r.lines);
  return g === null ? { status: "notfound" } : { status: "found", gid: g };
}
