/*
 * master-pid - one master per instance: the pid file and its lock
 *
 * DESCRIPTION
 *   master.pid in data_directory holds the pid of the running master. It is
 *   created with O_EXCL; a file left behind by a master that is gone (no such
 *   process, or a process that is not a Postern master) is taken over. A
 *   second master on the same instance fails with a clear message.
 *   readMasterPid() is what "postern status/stop/reload" use.
 */
import { closeSync, constants, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";

export const PID_FILE = "master.pid";

/** The pid of the running master of an instance, or null. */
export function readMasterPid(dataDir: string): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dataDir, PID_FILE), "utf8").trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !isMaster(pid)) return null;
  return pid;
}

/** True when pid is a live Postern master process. */
function isMaster(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("master");
  } catch {
    return true;
  }
}

/** Takes the instance lock; returns an error text when another master holds it. */
export function lockInstance(dataDir: string): string | null {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, PID_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
      writeSync(fd, `${String(process.pid).padStart(10)}\n`);
      closeSync(fd);
      return null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST")
        return `open lock file ${path}: ${(err as Error).message}`;
    }
    const other = readMasterPid(dataDir);
    if (other !== null)
      return `the Postern mail system is already running (master pid ${other}, lock ${path})`;
    try {
      unlinkSync(path);
    } catch {
      /* raced with another starter; try again */
    }
  }
  return `cannot take the lock ${path}`;
}

/** Removes the pid file if it is ours. */
export function unlockInstance(dataDir: string): void {
  try {
    const path = join(dataDir, PID_FILE);
    if (Number(readFileSync(path, "utf8").trim()) === process.pid) unlinkSync(path);
  } catch {
    /* already gone */
  }
}
