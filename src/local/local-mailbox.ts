/*
 * local-mailbox - mailbox, Maildir, file and command deliveries with the user's rights
 *
 * DESCRIPTION
 *   deliverMailbox() delivers to a user found in the password database,
 *   after mailbox_transport_maps and mailbox_transport (handed to another
 *   transport) and before the unknown-user step: mailbox_command_maps or
 *   mailbox_command (a command, e.g. procmail), home_mailbox ending in "/"
 *   (Maildir under the home directory), mail_spool_directory ending in "/"
 *   (Maildir in the spool), else a UNIX mailbox: home_mailbox under the
 *   home directory, or mail_spool_directory/<user>.
 *
 *   All writing happens in a helper process with the user's uid and gid
 *   (deliver-helper-client.ts): for a mailbox in the spool directory the
 *   gid is the spool directory's group when that directory is
 *   group-writable (Debian's root:mail 2775), the user's own when it is
 *   world-writable (1777); a spool directory the user cannot write defers
 *   with a warning rather than write as root. Mailboxes get From_,
 *   Return-Path:, X-Original-To:, Delivered-To: (prepend_delivered_header
 *   "file") and ">From " quoting, with dotlock plus flock(1) locking
 *   (mailbox_delivery_lock) and truncation on failure; a mailbox not owned
 *   by the recipient defers (strict_mailbox_ownership). Maildir files get
 *   Return-Path:, X-Original-To: and Delivered-To:.
 *
 *   deliverFile() appends to /file/name (allow_mail_to_files), with a
 *   dotlock that may fail (directories the user cannot write) and the
 *   kernel lock; executable files are refused. deliverCommand() runs
 *   |command (pipe-command.ts) with the environment Postfix exports
 *   (HOME, USER, LOGNAME, SHELL, SENDER, RECIPIENT, LOCAL, DOMAIN,
 *   EXTENSION, ORIGINAL_RECIPIENT, ENVID, CLIENT_*), each value passed
 *   through command_expansion_filter, in command_execution_directory,
 *   within command_time_limit. Without user rights (uid 0), files and
 *   commands get default_privs, never root.
 */
import { stat } from "node:fs/promises";
import type { HelperReply } from "../global/deliver-helper-proto.js";
import { MAIL_COPY, mailCopy } from "../global/mail-copy.js";
import { pipeCommand } from "../global/pipe-command.js";
import { pwByName } from "../util/unix-passwd.js";
import { msg } from "../util/msg.js";
import { localExpand } from "./local-expand.js";
import { pass } from "./local-recipient.js";
import { DONE, HDR, type LocalRun, type MsgAttr, type UserAttr } from "./local-state.js";

/** The message bytes for a destination. */
function copy(run: LocalRun, a: MsgAttr, flags: number): AsyncGenerator<Buffer> {
  return mailCopy(run.content(), {
    flags,
    sender: a.sender,
    origRcpt: run.set.enableOrigRcpt ? a.rcpt.original : "",
    delivered: a.delivered ?? a.rcpt.address,
  });
}

/** A status for a helper failure, or for a damaged queue file (thrown by the message source). */
async function guarded(
  run: LocalRun,
  a: MsgAttr,
  work: () => Promise<HelperReply>,
): Promise<HelperReply | number> {
  try {
    return await work();
  } catch (err) {
    msg.warn(`${run.req.queueId}: ${err instanceof Error ? err.message : String(err)}`);
    return run.defer(a, "4.3.0", "error reading message: queue file read error");
  }
}

/** Uses default_privs when no rights were chosen. */
function orDefault(run: LocalRun, u: UserAttr): UserAttr {
  return u.uid === 0 ? { ...u, uid: run.set.defaultPrivs.uid, gid: run.set.defaultPrivs.gid } : u;
}

/** Delivers to a local user's mailbox; null when the user does not exist (see the module comment). */
export async function deliverMailbox(run: LocalRun, a0: MsgAttr, _u: UserAttr): Promise<number | null> {
  const a: MsgAttr = { ...a0, level: a0.level + 1 };
  const set = run.set;
  if (run.beenHere(`mailbox ${a.local}`)) return DONE;
  if (set.mailboxTransportMaps !== null) {
    const r = await set.mailboxTransportMaps(a.user, false);
    if (r.status === "found") return pass(run, a, r.value);
    if (r.status === "tempfail") return run.defer(a, "4.3.0", "table lookup failure");
  }
  if (set.mailboxTransport !== "") return pass(run, a, set.mailboxTransport);
  const pw = await pwByName(a.user);
  if (pw.status === "error") {
    msg.warn(`error looking up passwd info for ${a.user}: ${pw.reason}`);
    return run.defer(a, "4.0.0", "user lookup error");
  }
  if (pw.status === "notfound") return null;
  const u: UserAttr = {
    uid: pw.pw.uid,
    gid: pw.pw.gid,
    home: pw.pw.home,
    shell: pw.pw.shell,
    logname: pw.pw.name,
  };
  if (set.mailboxCommandMaps !== null) {
    const r = await set.mailboxCommandMaps(a.user, false);
    if (r.status === "found") return deliverCommand(run, a, u, r.value);
    if (r.status === "tempfail") return run.defer(a, "4.3.0", "table lookup failure");
  }
  if (set.mailboxCommand !== "") return deliverCommand(run, a, u, set.mailboxCommand);
  if (set.homeMailbox.endsWith("/")) return deliverMaildir(run, a, u, `${u.home ?? ""}/${set.homeMailbox}`);
  if (set.spoolDir.endsWith("/")) return deliverMaildir(run, a, u, `${set.spoolDir}${a.user}/`);
  return deliverMailboxFile(run, a, u);
}

/** The rights for a mailbox in the spool directory, or a deferral. */
async function spoolRights(run: LocalRun, a: MsgAttr, u: UserAttr): Promise<UserAttr | number> {
  const st = await stat(run.set.spoolDir).catch(() => null);
  if (st === null || (st.mode & 0o002) !== 0) return u;
  if ((st.mode & 0o020) !== 0) return { ...u, gid: st.gid };
  msg.warn(
    `mail_spool_directory ${run.set.spoolDir} is writable by neither the recipient nor its group: make it mode 1777, or group-writable by a group for mail (Debian: root:mail 2775)`,
  );
  return run.defer(a, "4.3.0", `cannot update mailbox for user ${a.user}: spool directory not writable`);
}

/** Appends to a UNIX mailbox. */
async function deliverMailboxFile(run: LocalRun, a0: MsgAttr, u: UserAttr): Promise<number> {
  const a: MsgAttr = { ...a0, level: a0.level + 1 };
  const set = run.set;
  if (!set.frozenDelivered) a.delivered = a.rcpt.address;
  const inHome = set.homeMailbox !== "";
  const mailbox = inHome
    ? `${u.home ?? ""}/${set.homeMailbox}`
    : `${set.spoolDir.replace(/\/+$/, "")}/${a.user}`;
  if (run.traceOnly) return run.sent(a, "delivers to mailbox");
  const rights = inHome ? u : await spoolRights(run, a, u);
  if (typeof rights === "number") return rights;
  const flags = set.deliverHdr & HDR.FILE ? MAIL_COPY.MBOX : MAIL_COPY.MBOX & ~MAIL_COPY.DELIVERED;
  const params = {
    path: mailbox,
    dotlock: set.dotlock,
    dotlockMayFail: false,
    kernelLock: set.kernelLock,
    attempts: set.lockAttempts,
    delayMs: set.lockDelayMs,
    staleSec: set.staleLockSec,
    sizeLimit: set.mailboxSizeLimit,
    strictOwner: set.strictOwner,
    refuseExec: false,
    mailbox: true,
    defDsn: "5.2.0",
  };
  const r = await guarded(run, a, () => run.pool.mbox(run.rights(rights), params, copy(run, a, flags)));
  if (typeof r === "number") return r;
  if (r.ok) return run.sent(a, "delivered to mailbox");
  if (r.why === "notfile") return run.bounce(a, "5.2.0", `destination ${mailbox} is not a regular file`);
  if (r.why === "owner") {
    msg.warn(`specify "strict_mailbox_ownership = no" to ignore mailbox ownership mismatch`);
    return run.defer(a, "4.2.0", `destination ${mailbox} is not owned by recipient`);
  }
  return run.fail(a, r.dsn, `cannot update mailbox ${mailbox} for user ${a.user}. ${r.text}`);
}

/** Writes a Maildir file. */
export async function deliverMaildir(run: LocalRun, a0: MsgAttr, u: UserAttr, path: string): Promise<number> {
  const a: MsgAttr = { ...a0, level: a0.level + 1 };
  if (!run.set.frozenDelivered) a.delivered = a.rcpt.address;
  if (run.traceOnly) return run.sent(a, "delivers to maildir");
  let flags = MAIL_COPY.RETURN_PATH | MAIL_COPY.ORIG_RCPT;
  if (run.set.deliverHdr & HDR.FILE) flags |= MAIL_COPY.DELIVERED;
  const params = { path, host: run.set.myhostname, sizeLimit: run.set.mailboxSizeLimit, defDsn: "5.2.0" };
  const r = await guarded(run, a, () => run.pool.maildir(run.rights(u), params, copy(run, a, flags)));
  if (typeof r === "number") return r;
  if (r.ok) return run.sent(a, "delivered to maildir");
  if (r.text.includes("Permission denied")) {
    msg.warn(`maildir access problem for UID/GID=${u.uid}/${u.gid}: ${r.text}`);
    msg.warn("perhaps you need to create the maildirs in advance");
  }
  return run.fail(a, r.dsn, `maildir delivery failed: ${r.text}`);
}

/** Delivers to /file/name (see the module comment). */
export async function deliverFile(run: LocalRun, a0: MsgAttr, u0: UserAttr, path: string): Promise<number> {
  const a: MsgAttr = { ...a0, level: a0.level + 1 };
  if (run.beenHere(`file ${u0.uid} ${path}`)) return DONE;
  if ((run.set.allowFiles & a.expType) === 0) return run.bounce(a, "5.7.1", "mail to file is restricted");
  const u = orDefault(run, u0);
  if (path.endsWith("/")) return deliverMaildir(run, a, u, path);
  if (run.traceOnly) return run.sent(a, `delivers to file: ${path}`);
  const flags = run.set.deliverHdr & HDR.FILE ? MAIL_COPY.MBOX : MAIL_COPY.MBOX & ~MAIL_COPY.DELIVERED;
  const params = {
    path,
    dotlock: run.set.dotlock,
    dotlockMayFail: true,
    kernelLock: run.set.kernelLock,
    attempts: run.set.lockAttempts,
    delayMs: run.set.lockDelayMs,
    staleSec: run.set.staleLockSec,
    sizeLimit: run.set.mailboxSizeLimit,
    strictOwner: false,
    refuseExec: true,
    mailbox: false,
    defDsn: "5.2.0",
  };
  const r = await guarded(run, a, () => run.pool.mbox(run.rights(u), params, copy(run, a, flags)));
  if (typeof r === "number") return r;
  if (r.ok) return run.sent(a, `delivered to file: ${path}`);
  if (r.why === "exec")
    return run.bounce(a, "5.7.1", `cannot append message to file ${path}: file is executable`);
  return run.fail(a, r.dsn, `cannot append message to file ${path}: ${r.text}`);
}

/** Replaces characters outside a filter with "_". */
function censor(value: string, filter: string): string {
  let out = "";
  for (const ch of value) out += filter.includes(ch) ? ch : "_";
  return out;
}

/** The environment of a command delivery. */
function commandVars(run: LocalRun, a: MsgAttr, u: UserAttr): Record<string, string> {
  const attrs = run.req.attrs;
  const pairs: Array<[string, string | null | undefined]> = [
    ["HOME", u.home],
    ["LOGNAME", a.user],
    ["USER", a.user],
    ["SENDER", a.sender],
    ["RECIPIENT", a.rcpt.address],
    ["LOCAL", a.local],
    ["SHELL", u.shell],
    ["DOMAIN", a.domain],
    ["EXTENSION", a.extension],
    ["ORIGINAL_RECIPIENT", a.rcpt.original || null],
    ["ENVID", attrs["dsn_envid"] || null],
    ["CLIENT_HOSTNAME", attrs["client_name"] || null],
    ["CLIENT_ADDRESS", attrs["client_address"] || null],
    ["CLIENT_HELO", attrs["helo"] || null],
    ["CLIENT_PROTOCOL", attrs["protocol"] || null],
  ];
  const env: Record<string, string> = {};
  for (const [k, v] of pairs) if (v !== null && v !== undefined) env[k] = censor(v, run.set.cmdFilter);
  return env;
}

/** Runs |command with the message on standard input (see the module comment). */
export async function deliverCommand(
  run: LocalRun,
  a0: MsgAttr,
  u0: UserAttr,
  command: string,
): Promise<number> {
  const a: MsgAttr = { ...a0, level: a0.level + 1 };
  if (run.beenHere(`command ${a.user}:${u0.uid} ${command}`)) return DONE;
  if (run.traceOnly) return run.sent(a, `delivers to command: ${command}`);
  const u = orDefault(run, u0);
  let flags = MAIL_COPY.FROM | MAIL_COPY.RETURN_PATH | MAIL_COPY.ORIG_RCPT;
  if (run.set.deliverHdr & HDR.CMD) flags |= MAIL_COPY.DELIVERED;
  const dir = localExpand(run.set.execDirectory, a, u, run.set, run.set.execFilter);
  if (!dir.ok) {
    msg.warn(`bad parameter value syntax for command_execution_directory: ${run.set.execDirectory}`);
    return run.defer(a, "4.3.5", "mail system configuration error");
  }
  const cwd = dir.value !== "" ? dir.value : undefined;
  if (cwd !== undefined) {
    const st = await run.pool.stat(run.rights(u), cwd);
    if (!st.ok || st.kind !== "dir") {
      msg.warn(
        `cannot change directory to "${cwd}" for uid=${u.uid} gid=${u.gid}: ${st.text || "Not a directory"}`,
      );
      return run.defer(a, "4.3.0", "mail system configuration error");
    }
  }
  let r;
  try {
    r = await pipeCommand({
      command,
      rights: run.rights(u),
      env: commandVars(run, a, u),
      exportNames: run.set.exportEnv,
      shell: run.set.commandShell,
      ...(cwd !== undefined ? { cwd } : {}),
      timeLimitMs: run.set.commandTimeMs,
      input: copy(run, a, flags),
    });
  } catch (err) {
    msg.warn(`${run.req.queueId}: ${err instanceof Error ? err.message : String(err)}`);
    return run.defer(a, "4.3.0", "error reading message: queue file read error");
  }
  if (r.status === "ok") return run.sent(a, `delivered to command: ${command}`);
  return r.status === "defer" ? run.defer(a, r.dsn, r.text) : run.bounce(a, r.dsn, r.text);
}
