/*
 * unix-users - look up accounts and groups by name
 *
 * DESCRIPTION
 *   Node has no getpwnam(). These functions read /etc/passwd and /etc/group
 *   and, for names not found there, ask getent(1) so that accounts from
 *   other name services are found too. Only programs that may run child
 *   processes (master, command-line tools) call them.
 */
import { existsSync, readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";

export interface UnixUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** Finds the colon-separated entry for a name in a file's text or getent's answer. */
function findEntry(db: "passwd" | "group", file: string, name: string): string[] | null {
  const match = (text: string): string[] | null => {
    for (const line of text.split("\n")) {
      const f = line.split(":");
      if (f[0] === name) return f;
    }
    return null;
  };
  try {
    const hit = match(readFileSync(file, "utf8"));
    if (hit !== null) return hit;
  } catch {
    /* fall through to getent */
  }
  try {
    return match(
      execFileSync("getent", [db, name], {
        encoding: "utf8",
        timeout: 5000,
        stdio: ["ignore", "pipe", "ignore"],
      }),
    );
  } catch {
    return null;
  }
}

/** Looks up an account by name (or #uid); null when there is none. */
export function getUser(name: string): UnixUser | null {
  const f = findEntry("passwd", "/etc/passwd", name);
  if (f === null || f.length < 7) return null;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return null;
  return { name, uid, gid, home: f[5] ?? "/", shell: f[6] ?? "" };
}

/** Looks up a group id by name; null when there is none. */
export function getGroupId(name: string): number | null {
  const f = findEntry("group", "/etc/group", name);
  const gid = Number(f?.[2]);
  return f !== null && Number.isInteger(gid) ? gid : null;
}

/**
 * Creates a system account with its own group, no home directory and no
 * login shell (useradd, as distributions' packages do for their daemons).
 * Returns null on success, else why it failed.
 */
export function createSystemAccount(name: string, home: string): string | null {
  const useradd = ["/usr/sbin/useradd", "/sbin/useradd"].find((p) => existsSync(p));
  if (useradd === undefined) return "useradd was not found";
  const shell = ["/usr/sbin/nologin", "/sbin/nologin"].find((p) => existsSync(p)) ?? "/bin/false";
  try {
    execFileSync(
      useradd,
      ["--system", "--user-group", "--home-dir", home, "--no-create-home", "--shell", shell, name],
      { timeout: 30_000, stdio: ["ignore", "ignore", "pipe"] },
    );
    return null;
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    return e.stderr?.toString().trim() || e.message;
  }
}
