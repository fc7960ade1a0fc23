/*
 * mbox-conf - the mailbox locking methods of mailbox_delivery_lock and virtual_mailbox_lock
 *
 * SYNOPSIS
 *   import { mboxLockMethods } from "./mbox-conf.js";
 *   const { dotlock, kernelLock } = mboxLockMethods(cfg, "mailbox_delivery_lock");
 *
 * DESCRIPTION
 *   The names are Postfix's: "dotlock" (path.lock, created with O_EXCL),
 *   "flock" and "fcntl" (kernel locks). Postern takes the kernel lock with
 *   flock(1) for both: Node has no fcntl(), and util-linux's flock(1)
 *   before 2.40 has no fcntl mode. On Linux flock() and fcntl() locks do
 *   not see each other, so a reader that takes only fcntl() locks is kept
 *   out by the dotlock, which the usual mbox readers (mutt, Dovecot,
 *   procmail, mailx) take as well. An unknown name, or none at all, is a
 *   fatal configuration error.
 */
import { msg } from "../util/msg.js";
import type { Config } from "./config.js";

/** The lock method names Postern accepts (postconf -l lists them). */
export const MBOX_LOCK_METHODS: readonly string[] = ["dotlock", "fcntl", "flock"];

/** The lock methods a locking parameter asks for. */
export function mboxLockMethods(cfg: Config, param: string): { dotlock: boolean; kernelLock: boolean } {
  let dotlock = false;
  let kernelLock = false;
  for (const n of cfg.list(param)) {
    const name = n.toLowerCase();
    if (!MBOX_LOCK_METHODS.includes(name))
      return msg.fatal(`parameter ${param}: unknown mailbox lock method "${n}"`);
    if (name === "dotlock") dotlock = true;
    else kernelLock = true;
  }
  if (!dotlock && !kernelLock)
    return msg.fatal(`parameter ${param} specifies no applicable mailbox locking method`);
  return { dotlock, kernelLock };
}
