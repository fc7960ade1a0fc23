/*
 * smtpd-space - queue_minfree: refuse mail when the queue file system is nearly full
 *
 * SYNOPSIS
 *   const reply = await queueSpaceCheck(space);    // null, or "452 4.3.1 Insufficient system storage"
 *   spaceWarning(cfg)                              // the start-up advice, or null
 *
 * DESCRIPTION
 *   At MAIL FROM, after the restrictions, smtpd looks at the free space
 *   (for unprivileged users) of the file system that holds the queue
 *   directory, in blocks, as Postfix does: mail is refused with "452 4.3.1
 *   Insufficient system storage" when the free blocks are no more than
 *   queue_minfree's, or when 1.5 times message_size_limit would not fit.
 *   A refusal is also logged as a warning that gives the free bytes. The
 *   client retries later; nothing is accepted that could not be stored.
 *   When the file system cannot be examined, mail is accepted (cleanup
 *   still fails safe on a write error). At start, smtpd advises when
 *   queue_minfree is smaller than 1.5 times message_size_limit.
 */
import { statfsSync } from "node:fs";
import { msg } from "../util/msg.js";
import type { Config } from "../global/config.js";

/** How many message_size_limits must fit in the free space. */
export const SPACE_MULTIPLIER = 1.5;

export const NO_SPACE_REPLY = "452 4.3.1 Insufficient system storage";

export interface SpaceSettings {
  queueDir: string;
  /** queue_minfree in bytes (0: none). */
  minFree: number;
  /** message_size_limit in bytes (0: no limit). */
  sizeLimit: number;
}

const cache = new WeakMap<Config, SpaceSettings>();

/** The settings from a configuration (read once per configuration). */
export function spaceSettings(cfg: Config): SpaceSettings {
  let s = cache.get(cfg);
  if (s === undefined) {
    s = {
      queueDir: cfg.get("queue_directory"),
      minFree: cfg.int("queue_minfree"),
      sizeLimit: cfg.int("message_size_limit"),
    };
    cache.set(cfg, s);
  }
  return s;
}

/** True when a file system with these free blocks is too full (Postfix's block arithmetic). */
export function tooFull(s: SpaceSettings, blockSize: number, blocksFree: number): boolean {
  const blocks = (bytes: number): number => Math.floor(bytes / blockSize);
  return blocks(s.minFree) >= blocksFree || blocks(s.sizeLimit) >= blocksFree / SPACE_MULTIPLIER;
}

/** Checks the queue file system; the reply to refuse MAIL with, or null. */
export function queueSpaceCheck(s: SpaceSettings): Promise<string | null> {
  return Promise.resolve(spaceCheckNow(s));
}

/** queueSpaceCheck(), synchronously. */
function spaceCheckNow(s: SpaceSettings): string | null {
  let st: { bsize: number; bavail: number };
  try {
    // A direct call, as Postfix's fsspace(): statfs does not wait for the disk, and a trip through
    // libuv's thread pool for every MAIL costs more than the call.
    st = statfsSync(s.queueDir);
  } catch (err) {
    msg.warn(`statfs ${s.queueDir}: ${(err as Error).message}`);
    return null;
  }
  if (st.bsize <= 0 || !tooFull(s, st.bsize, st.bavail)) return null;
  msg.warn(
    `not enough free space in mail queue: ${st.bavail * st.bsize} bytes < ${SPACE_MULTIPLIER}*message size limit`,
  );
  return NO_SPACE_REPLY;
}

/** The start-up advice about queue_minfree and message_size_limit, or null. */
export function spaceWarning(s: SpaceSettings): string | null {
  if (s.minFree > 0 && s.sizeLimit > 0 && s.minFree / SPACE_MULTIPLIER < s.sizeLimit)
    return `queue_minfree(${s.minFree}) should be at least ${SPACE_MULTIPLIER}*message_size_limit(${s.sizeLimit})`;
  return null;
}
