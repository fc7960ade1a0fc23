/*
 * open-files - how many file descriptors this process may hold
 *
 * SYNOPSIS
 *   import { openFileLimit, parseOpenFileLimit } from "../util/open-files.js";
 *
 * DESCRIPTION
 *   openFileLimit() reads the soft "Max open files" limit (RLIMIT_NOFILE)
 *   of the running process from /proc/self/limits. Node raises the soft
 *   limit to the hard one when it starts, so this is the real budget. When
 *   the file cannot be read (not Linux) or the limit is "unlimited", the
 *   fallback is returned.
 */
import { readFileSync } from "node:fs";

const LIMITS_MAX = 16 * 1024;

/** The soft open-files limit in the text of /proc/self/limits; null when absent, Infinity when unlimited. */
export function parseOpenFileLimit(text: string): number | null {
  const m = /^Max open files\s+(\S+)/m.exec(text.slice(0, LIMITS_MAX));
  if (m === null || m[1] === undefined) return null;
  if (m[1] === "unlimited") return Infinity;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** The soft open-files limit of this process, or fallback when it is unknown or unlimited. */
export function openFileLimit(fallback: number): number {
  let text: string;
  try {
    text = readFileSync("/proc/self/limits", "latin1");
  } catch {
    return fallback;
  }
  const n = parseOpenFileLimit(text);
  return n === null || n === Infinity ? fallback : n;
}
