/*
 * local-token - alias values, :include: files and .forward files
 *
 * DESCRIPTION
 *   An alias value, an :include: file and a .forward file are read as RFC
 *   822 address lists (one list per line in files; "#" lines are
 *   comments). Each address is
 *     /file/name    delivery to a file (a name ending in "/" is a Maildir)
 *     ~/file/name   a file under the rights owner's home directory
 *     |command      delivery to a command
 *     :include:/p   the addresses in another file
 *     anything else an address, rewritten and resolved (local-recipient.ts)
 *   allow_mail_to_commands and allow_mail_to_files say in which of alias,
 *   forward and include expansions commands and files are allowed.
 *
 *   :include: files must be absolute, regular and not world-writable.
 *   They are read with the current rights (root's for a root-owned alias
 *   table: then the file's owner, unless root, becomes the rights for its
 *   files and commands, so an include file never lends default_privs to
 *   its owner). The addresses in them are always forwarded as new mail.
 *
 *   A .forward file (the first forward_path entry that exists, after $name
 *   expansion) is read with the recipient's rights by a helper process
 *   running as the recipient; it is ignored with a warning unless it is a
 *   regular file owned by the recipient (or root) and not world-writable,
 *   and then the mailbox is used. An empty .forward file means no
 *   forwarding. A user listed in their own .forward is delivered to their
 *   mailbox. A forward_path entry that the agent itself does not find
 *   (lstat: no such file) is skipped without asking the helper, which
 *   spares most deliveries a round trip: the recipient cannot see a file
 *   that root (or the agent's own rights, in demo mode) does not.
 */
import { lstatSync } from "node:fs";
import { HELPER_READ_MAX, type HelperReply } from "../global/deliver-helper-proto.js";
import { readSmallFile } from "../global/deliver-helper-ops.js";
import { tok822Grep, tok822Internalize, tok822Parse } from "../global/tok822.js";
import { pwByName, pwByUid } from "../util/unix-passwd.js";
import { msg } from "../util/msg.js";
import { deliverCommand, deliverFile } from "./local-mailbox.js";
import { localExpand } from "./local-expand.js";
import { deliverResolve } from "./local-recipient.js";
import { DEFER, DONE, EXPAND, type LocalRun, type MsgAttr, type UserAttr } from "./local-state.js";

const NESTING_LIMIT = 100;

/** Delivers every address in one alias value or file line. */
export async function deliverTokenString(
  run: LocalRun,
  a: MsgAttr,
  u: UserAttr,
  text: string,
  count: { n: number } | null,
): Promise<number> {
  let status = DONE;
  for (const addr of tok822Grep(tok822Parse(text))) {
    if (count !== null) count.n++;
    status |= await deliverToken(run, a, u, tok822Internalize(addr.toks));
  }
  return status;
}

/** Delivers the addresses of a file, line by line, stopping at the first deferral. */
async function deliverTokenStream(
  run: LocalRun,
  a: MsgAttr,
  u: UserAttr,
  text: string,
  count: { n: number } | null,
): Promise<number> {
  const limit = Math.max(1, run.set.lineLimit);
  for (const whole of text.split("\n")) {
    for (let i = 0; i < Math.max(1, whole.length); i += limit) {
      const line = whole.slice(i, i + limit);
      if (line.startsWith("#")) continue;
      const status = await deliverTokenString(run, a, u, line, count);
      if (status !== DONE) return status;
    }
  }
  return DONE;
}

/** Delivers to one address of an expansion. */
async function deliverToken(run: LocalRun, a: MsgAttr, u: UserAttr, addr: string): Promise<number> {
  if (addr.startsWith("/")) return deliverFile(run, a, u, addr);
  if (addr.startsWith("~")) return deliverTokenHome(run, a, u, addr);
  if (addr.startsWith("|")) {
    if ((run.set.allowCommands & a.expType) === 0)
      return run.bounce(a, "5.7.1", "mail to command is restricted");
    return deliverCommand(run, a, u, addr.slice(1));
  }
  if (addr.toLowerCase().startsWith(":include:")) return deliverInclude(run, a, u, addr.slice(9));
  return deliverResolve(run, a, u, addr);
}

/** Delivers to ~/file: a file under the home directory of whose rights apply. */
async function deliverTokenHome(run: LocalRun, a: MsgAttr, u: UserAttr, addr: string): Promise<number> {
  if (addr[1] !== "/") {
    msg.warn(`bad home directory syntax for: ${addr}`);
    return run.bounce(a, "5.3.5", "mail system configuration error");
  }
  if (u.home === null) {
    msg.warn(`unknown home directory for: ${addr}`);
    return run.bounce(a, "5.3.5", "mail system configuration error");
  }
  return deliverFile(run, a, u, u.home === "/" ? addr.slice(1) : u.home + addr.slice(1));
}

/** Reads a small file with the given rights: a helper for a user, the agent itself for none (root). */
function readAs(run: LocalRun, u: UserAttr, path: string, follow: boolean): Promise<HelperReply> {
  if (u.uid === 0 || !run.set.asRoot) return readSmallFile(path, HELPER_READ_MAX, follow);
  return run.pool.read(run.rights(u), path, HELPER_READ_MAX, follow);
}

/** Delivers to the addresses in an :include: file (see the module comment). */
async function deliverInclude(run: LocalRun, a0: MsgAttr, u0: UserAttr, path: string): Promise<number> {
  const a: MsgAttr = { ...a0, level: a0.level + 1 };
  let u = u0;
  const config = (why: string): number => {
    msg.warn(why);
    return run.bounce(a, "5.3.5", "mail system configuration error");
  };
  if (a.level > NESTING_LIMIT) return config(`:include: nesting limit exceeded for ${path}`);
  if (run.beenHere(`include ${u.uid} ${path}`)) return DONE;
  a.expFrom = a.local;
  if (!path.startsWith("/")) return config(`:include:${path} uses a relative path`);
  const f = await readAs(run, u, path, true);
  if (f.kind === undefined) return config(`unable to lookup :include: file ${path}: ${f.text}`);
  if (f.kind !== "file") return config(`:include: file ${path} is not a regular file`);
  if (((f.mode ?? 0) & 0o002) !== 0) return config(`:include: file ${path} is world writable`);
  if (!f.ok || f.data === undefined) return config(`cannot open include file ${path}: ${f.text}`);
  a.expType = EXPAND.INCL;
  if (u.uid === 0) {
    const pw = await pwByUid(f.uid ?? -1);
    if (pw.status !== "found") {
      msg.warn(`${path}: cannot find :include: file owner username (uid ${f.uid ?? "?"})`);
      return run.defer(a, "4.3.5", "mail system configuration error");
    }
    if (pw.pw.uid !== 0)
      u = { uid: pw.pw.uid, gid: pw.pw.gid, home: pw.pw.home, shell: pw.pw.shell, logname: pw.pw.name };
  }
  a.owner ??= a.rcpt.address;
  if ((run.set.propagate & EXPAND.INCL) === 0) a.unmatched = null;
  return deliverTokenStream(run, a, u, f.data.toString("utf8"), null);
}

/**
 * True when the agent itself sees nothing at a path (lstat: ENOENT): the recipient, who sees no
 * more than root or than the agent's own rights, would see nothing either, so the helper is not
 * asked. Any other answer, an error included, leaves the look to the helper.
 */
function surelyAbsent(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false }) === undefined;
  } catch {
    return false;
  }
}

/** Expands the user's .forward file; null when there is none to use (see the module comment). */
export async function deliverDotForward(run: LocalRun, a0: MsgAttr, _u: UserAttr): Promise<number | null> {
  const a: MsgAttr = { ...a0, level: a0.level + 1 };
  if (run.set.forwardPath.length === 0) return null;
  const pw = await pwByName(a.user);
  if (pw.status === "error") {
    msg.warn(`error looking up passwd info for ${a.user}: ${pw.reason}`);
    return run.defer(a, "4.0.0", "user lookup error");
  }
  if (pw.status === "notfound") return null;
  if (!run.set.frozenDelivered) a.delivered = a.rcpt.address;
  const u: UserAttr = {
    uid: pw.pw.uid,
    gid: pw.pw.gid,
    home: pw.pw.home,
    shell: pw.pw.shell,
    logname: pw.pw.name,
  };
  a.expType = EXPAND.FWD;
  a.owner = a.user;
  let found: { path: string; f: HelperReply } | null = null;
  for (const pattern of run.set.forwardPath) {
    const x = localExpand(pattern, a, u, run.set, run.set.fwdFilter);
    if (!x.ok || x.undefinedUsed) continue;
    if (surelyAbsent(x.value)) continue;
    const f = await run.pool.read(run.rights(u), x.value, HELPER_READ_MAX, false);
    if (f.kind === undefined) continue;
    if (x.extensionUsed || (run.set.propagate & EXPAND.FWD) === 0) a.unmatched = null;
    found = { path: x.value, f };
    break;
  }
  if (found === null) return null;
  const { path, f } = found;
  if (run.beenHere(`forward ${path}`)) return run.beenHereCheck(`forward-done ${path}`) ? DONE : null;
  a.expFrom = a.local;
  if (run.mtaVerify && f.kind === "file") return run.sent(a, `forward via file: ${path}`);
  if (f.kind !== "file") msg.warn(`file ${path} is not a regular file`);
  else if (f.uid !== 0 && f.uid !== u.uid) msg.warn(`file ${path} has bad owner uid ${f.uid ?? "?"}`);
  else if (((f.mode ?? 0) & 0o002) !== 0) msg.warn(`file ${path} is world writable`);
  else if (!f.ok || f.data === undefined) {
    if (f.why === "toolarge") return run.defer(a, "4.3.0", `error reading forwarding file: ${f.text}`);
    msg.warn(`cannot open file ${path}: ${f.text}`);
  } else {
    const notify = a.rcpt.notify;
    if (notify !== undefined) a.rcpt = { ...a.rcpt, notify: notify === 2 ? 1 : notify & ~2 };
    const count = { n: 0 };
    const status = await deliverTokenStream(run, a, u, f.data.toString("utf8"), count);
    if (count.n > 0) {
      run.beenHere(`forward-done ${path}`);
      return status;
    }
    return status === DEFER ? DEFER : null;
  }
  return null;
}
