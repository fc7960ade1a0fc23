/*
 * postdrop - copy a message in maildrop format from standard input to the maildrop
 *
 * SYNOPSIS
 *   postdrop [-rv] [-c config_dir]
 *
 * DESCRIPTION
 *   postdrop creates a file in the maildrop directory and copies its
 *   standard input to it. The input must be a complete maildrop file
 *   (records in the format of global/maildrop.ts: attributes, sender,
 *   recipients, content, end). postdrop checks it exactly as pickup will
 *   (global/maildrop-reader.ts, with message_size_limit) and keeps it only
 *   when it is well-formed; then it wakes pickup.
 *   -r is accepted for compatibility (Postfix's sendmail talks to postdrop
 *   with it; Postern's sendmail writes the maildrop file itself, with the
 *   same code). -v logs more. -c or $MAIL_CONFIG selects the configuration.
 *
 * SECURITY
 *   Unlike Postfix's, this postdrop is not set-group-ID and needs no
 *   privilege: the maildrop directory is writable by everyone and pickup
 *   treats every file there as untrusted input (see README, Security).
 *   postdrop refuses users outside authorized_submit_users, and a sender
 *   that local_login_sender_maps does not give the user (as Postfix's
 *   postdrop does); pickup checks both again, since anyone can write the
 *   file without postdrop.
 *
 * DIAGNOSTICS
 *   One "postdrop: fatal: ..." line and a sysexits status: EX_NOPERM (not
 *   authorized, or "not authorized to use sender='...'"), EX_DATAERR (malformed or too big input), EX_UNAVAILABLE
 *   (no maildrop directory), EX_TEMPFAIL (write error). The file is
 *   removed when the input is incomplete or a signal arrives.
 */
import { open } from "node:fs/promises";
import { getopt } from "../../util/getopt.js";
import { msgInit } from "../../util/msg.js";
import { commandConfig, fatalStatus, runCommand } from "../../global/cmd-status.js";
import type { Config } from "../../global/config.js";
import { MaildropError, MaildropWriter } from "../../global/maildrop.js";
import { MaildropReader } from "../../global/maildrop-reader.js";
import { sendTrigger } from "../../global/qmgr-trigger.js";
import { EX } from "../../global/sys-exits.js";
import { checkUserAcl } from "../../global/user-acl.js";
import { checkLoginSender } from "../../global/login-sender.js";

const RCPT_MAX = 100_000;
const ENVELOPE_ALLOWANCE = 64 << 20;

interface Problem {
  status: number;
  text: string;
}

/** Reads the new file back with pickup's rules (and local_login_sender_maps); the problem, or null. */
async function check(cfg: Config, path: string, uid: number): Promise<Problem | null> {
  const fh = await open(path, "r");
  try {
    const reader = new MaildropReader(fh, { contentMax: cfg.int("message_size_limit"), rcptMax: RCPT_MAX });
    for (;;) {
      const s = await reader.next();
      if (!s.ok) return { status: EX.DATAERR, text: `malformed input: ${s.reason} (offset ${s.offset})` };
      if (s.ev === null) return null;
      if (s.ev.kind !== "sender") continue;
      const v = await checkLoginSender(cfg, uid, s.ev.address);
      if (v.status !== "permit")
        return { status: v.status === "deny" ? EX.NOPERM : EX.TEMPFAIL, text: v.reason };
    }
  } finally {
    await fh.close();
  }
}

/** Copies standard input to a maildrop file and wakes pickup. */
async function postdrop(argv: string[]): Promise<number> {
  const r = getopt(argv, "c:rv");
  if (!r.ok) fatalStatus(EX.USAGE, `${r.error}; usage: postdrop [-rv] [-c config_dir]`);
  if (r.args.length > 0) fatalStatus(EX.USAGE, "usage: postdrop [-rv] [-c config_dir]");
  msgInit({ verbose: r.opts.filter(([k]) => k === "v").length });
  const cfg = commandConfig(r.opts.find(([k]) => k === "c")?.[1]);
  const uid = process.getuid?.() ?? 0;
  const acl = await checkUserAcl(cfg, "authorized_submit_users", uid);
  if (acl.status === "deny") fatalStatus(EX.NOPERM, `User ${acl.name}(${uid}) is not allowed to submit mail`);
  if (acl.status === "tempfail") fatalStatus(EX.TEMPFAIL, `authorized_submit_users: ${acl.reason}`);
  const limit = cfg.int("message_size_limit");
  const max = limit > 0 ? 2 * limit + ENVELOPE_ALLOWANCE : Number.MAX_SAFE_INTEGER;
  let w: MaildropWriter | null = null;
  const sigs = ["SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM"] as const;
  const onSignal = (): void =>
    void (w?.abort() ?? Promise.resolve()).finally(() => process.exit(EX.TEMPFAIL));
  for (const s of sigs) process.on(s, onSignal);
  try {
    w = await MaildropWriter.create(cfg.get("queue_directory"), { contentMax: 0 });
    for await (const chunk of process.stdin) await w.raw(chunk as Buffer, max);
    const found: { problem: Problem | null } = { problem: null };
    const text = await w.commitRaw(async (path) => {
      found.problem = await check(cfg, path, uid);
      return found.problem?.text ?? null;
    });
    if (text !== null) fatalStatus(found.problem?.status ?? EX.DATAERR, `uid=${uid}: ${text}`);
  } catch (err) {
    await w?.abort();
    if (err instanceof MaildropError)
      fatalStatus(
        err.code === "EFBIG" ? EX.DATAERR : err.code === "ENOQUEUE" ? EX.UNAVAILABLE : EX.TEMPFAIL,
        `uid=${uid}: ${err.message}`,
      );
    throw err;
  }
  const err = await sendTrigger(
    cfg.get("queue_directory"),
    "public",
    cfg.get("pickup_service_name"),
    "W",
    cfg.time("trigger_timeout") * 1000,
  );
  if (err !== null && r.opts.some(([k]) => k === "v"))
    process.stderr.write(`postdrop: pickup wakeup: ${err}\n`);
  return EX.OK;
}

await runCommand("postdrop", () => postdrop(process.argv.slice(2)));
