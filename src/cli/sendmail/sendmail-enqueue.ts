/*
 * sendmail-enqueue - post one message from standard input to the maildrop
 *
 * SYNOPSIS
 *   const status = await enqueue(cfg, opts, process.stdin);
 *
 * DESCRIPTION
 *   What "sendmail [options] [recipient ...]" does in delivery mode, as in
 *   Postfix: authorized_submit_users and local_login_sender_maps are
 *   checked (pickup checks them again: this check only gives a clear
 *   message early); the sender is -f/-r (the
 *   first address of it) or the login name of the real uid; the full name
 *   is -F, else $NAME, else the account's GECOS name. Each command-line
 *   recipient is parsed like a header's address list, so "a, b" and
 *   "Name <a>" work. With -t the maildrop file asks cleanup to take the
 *   recipients from To:, Cc: and Bcc: (or the Resent- ones) and to drop
 *   Bcc:; -N sets the NOTIFY of every recipient, those on the command line
 *   and those from the headers, and -V the message's ENVID; this program reads the headers too, only to refuse a message
 *   that would have no recipient at all. The message lines are read by
 *   MessageLines (sendmail-input.ts) and written to a maildrop file
 *   (global/maildrop.ts); then pickup is woken. With -bv the file carries
 *   the trace flag USR_VRFY (nothing is delivered: the sender gets a "Mail
 *   Delivery Status Report" saying what would happen to each recipient);
 *   with one -v it carries RECORD (mail is delivered and the sender gets a
 *   report of what happened).
 *
 *   Every failure is on standard error with a sysexits status, and the
 *   partial file is removed: the input is too big (EX_DATAERR), no
 *   recipient (EX_USAGE), the queue cannot be written (EX_TEMPFAIL or
 *   EX_UNAVAILABLE), the user is not authorized (EX_NOPERM). HUP, INT,
 *   QUIT and TERM also remove the file.
 */
import type { Readable } from "node:stream";
import { msg } from "../../util/msg.js";
import { pwByUid } from "../../util/unix-passwd.js";
import { CommandFatal, fatalStatus } from "../../global/cmd-status.js";
import type { Config } from "../../global/config.js";
import { MaildropError, MaildropWriter, MAILDROP_PIECE } from "../../global/maildrop.js";
import { sendTrigger } from "../../global/qmgr-trigger.js";
import { EX } from "../../global/sys-exits.js";
import { DEL_REQ_FLAG, TRACE_FLAGS_ATTR } from "../../global/deliver-proto.js";
import { tok822Grep, tok822Internalize, tok822Parse } from "../../global/tok822.js";
import type { SendmailOptions } from "./sendmail-args.js";
import { LineSource, MessageLines, type FixEol, type Line } from "./sendmail-input.js";

/** The internal forms of the addresses in an address-list text. */
export function addressList(text: string, tokenLimit = 10240): string[] {
  return tok822Grep(tok822Parse(text, tokenLimit)).map((a) => tok822Internalize(a.toks));
}

/** Finds the recipients that cleanup will take from the headers (sendmail -t). */
export class HeaderRecipients {
  #inHeaders = true;
  #cur: Buffer[] = [];
  #curLen = 0;
  #midLine = false;
  #plain = 0;
  #resent = 0;
  #sizeMax: number;
  #tokenLimit: number;

  constructor(sizeMax: number, tokenLimit: number) {
    this.#sizeMax = sizeMax;
    this.#tokenLimit = tokenLimit;
  }

  /** How many recipients the headers name (the Resent- ones when there are any). */
  get count(): number {
    return this.#resent > 0 ? this.#resent : this.#plain;
  }

  /** Takes one content line or piece. */
  take(l: Line): void {
    if (!this.#inHeaders) return;
    if (this.#midLine) {
      this.#append(l.data, false);
      this.#midLine = !l.complete;
      return;
    }
    const first = l.data[0];
    const continuation = (first === 0x20 || first === 0x09) && this.#cur.length > 0;
    if (!continuation) {
      this.#flushHeader();
      if (!/^[\x21-\x39\x3b-\x7e]+:/.test(l.data.subarray(0, 1000).toString("latin1"))) {
        this.#inHeaders = false;
        return;
      }
    }
    this.#append(l.data, continuation);
    this.#midLine = !l.complete;
  }

  /** Ends the input (a message of headers only). */
  end(): void {
    if (this.#inHeaders) this.#flushHeader();
    this.#inHeaders = false;
  }

  /** Adds a line to the header being collected, up to header_size_limit. */
  #append(data: Buffer, newLine: boolean): void {
    if (this.#curLen + data.length + 1 > this.#sizeMax) return;
    this.#cur.push(newLine ? Buffer.concat([Buffer.from(" "), data]) : data);
    this.#curLen += data.length + 1;
  }

  /** Counts the addresses of a complete recipient header. */
  #flushHeader(): void {
    if (this.#cur.length === 0) return;
    const text = Buffer.concat(this.#cur).toString("utf8");
    this.#cur = [];
    this.#curLen = 0;
    const colon = text.indexOf(":");
    const name = text.slice(0, colon).trim().toLowerCase();
    const isPlain = name === "to" || name === "cc" || name === "bcc";
    const isResent = name === "resent-to" || name === "resent-cc" || name === "resent-bcc";
    if (!isPlain && !isResent) return;
    const n = addressList(text.slice(colon + 1), this.#tokenLimit).length;
    if (isResent) this.#resent += n;
    else this.#plain += n;
  }
}

/** The envelope sender: the first address of -f, or the login name. */
async function envelopeSender(o: SendmailOptions, uid: number): Promise<string> {
  if (o.sender !== undefined) {
    const addrs = addressList(o.sender);
    if (addrs.length > 1) msg.warn(`-f option specified malformed sender: ${o.sender}`);
    return addrs[0] ?? "";
  }
  const r = await pwByUid(uid).catch((err: Error) => ({ status: "error" as const, reason: err.message }));
  if (r.status === "found") return r.pw.name;
  return fatalStatus(EX.OSERR, `no login name found for user ID ${uid}`);
}

/** The full name: -F, else $NAME, else the GECOS field of the account. */
async function fullName(o: SendmailOptions, uid: number): Promise<string | undefined> {
  if (o.fullName !== undefined) return o.fullName;
  const env = process.env["NAME"];
  if (env !== undefined && env !== "") return env;
  const r = await pwByUid(uid).catch(() => null);
  if (r === null || r.status !== "found") return undefined;
  const gecos = r.pw.gecos.split(",")[0] ?? "";
  const name = r.pw.name;
  return gecos.replace(/&/g, name.slice(0, 1).toUpperCase() + name.slice(1)) || undefined;
}

/**
 * Checks authorized_submit_users for the real uid. A static: list (the default, static:anyone)
 * lets everyone submit, as checkUserAcl() says; only another list loads the table code, which
 * would otherwise be most of sendmail's start-up.
 */
export async function checkSubmitter(cfg: Config, uid: number): Promise<void> {
  if (cfg.get("authorized_submit_users").trim().startsWith("static:")) return;
  const { checkUserAcl } = await import("../../global/user-acl.js");
  const v = await checkUserAcl(cfg, "authorized_submit_users", uid);
  if (v.status === "deny") fatalStatus(EX.NOPERM, `User ${v.name}(${uid}) is not allowed to submit mail`);
  if (v.status === "tempfail") fatalStatus(EX.TEMPFAIL, `authorized_submit_users: ${v.reason}`);
}

/** Maps a maildrop failure to a sysexits status. */
export function maildropStatus(err: MaildropError): number {
  if (err.code === "EFBIG") return EX.DATAERR;
  if (err.code === "EBADADDR") return EX.DATAERR;
  if (err.code === "ENOQUEUE" || err.code === "ESETUP") return EX.UNAVAILABLE;
  if (err.code === "EACCES") return EX.NOPERM;
  return EX.TEMPFAIL;
}

/** Removes the file when a signal ends the program. */
function onSignals(w: MaildropWriter): () => void {
  const handler = (): void => {
    void w.abort().finally(() => process.exit(EX.TEMPFAIL));
  };
  const sigs = ["SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM"] as const;
  for (const s of sigs) process.on(s, handler);
  return () => sigs.forEach((s) => process.off(s, handler));
}

/** Wakes pickup; a failure is not an error (pickup's timer finds the file). */
export async function wakePickup(cfg: Config): Promise<void> {
  const err = await sendTrigger(
    cfg.get("queue_directory"),
    "public",
    cfg.get("pickup_service_name"),
    "W",
    cfg.time("trigger_timeout") * 1000,
  );
  if (err !== null) msg.debug(`pickup wakeup: ${err}`);
}

/** Writes the message to the maildrop file; returns the number of header recipients. */
async function copyMessage(
  cfg: Config,
  o: SendmailOptions,
  w: MaildropWriter,
  input: Readable,
): Promise<number> {
  const headers = new HeaderRecipients(cfg.int("header_size_limit"), cfg.int("header_address_token_limit"));
  const fixEol = cfg.get("sendmail_fix_line_endings");
  if (!["always", "strict", "never"].includes(fixEol))
    fatalStatus(EX.USAGE, `invalid sendmail_fix_line_endings value: ${fixEol}`);
  const lines = new MessageLines(new LineSource(input, MAILDROP_PIECE * 32), {
    dotEnds: o.dotEnds,
    fixEol: fixEol as FixEol,
  });
  w.beginContent();
  for (let l = await lines.next(); l !== null; l = await lines.next()) {
    if (o.extract) headers.take(l);
    await w.write(l.data, l.complete);
  }
  headers.end();
  return headers.count;
}

/** local_login_sender_maps: its default (static:*, as LOGIN_SENDER_DEFAULT) permits without loading the table code. */
async function loginSender(
  cfg: Config,
  uid: number,
  sender: string,
): Promise<{ status: "permit" } | { status: "deny" | "tempfail"; reason: string }> {
  if (cfg.get("local_login_sender_maps").trim() === "static:*") return { status: "permit" };
  const { checkLoginSender } = await import("../../global/login-sender.js");
  return checkLoginSender(cfg, uid, sender);
}

/** Posts one message (see the module comment); returns the exit status. */
export async function enqueue(cfg: Config, o: SendmailOptions, input: Readable): Promise<number> {
  const uid = process.getuid?.() ?? 0;
  await checkSubmitter(cfg, uid);
  const trace = o.verify ? DEL_REQ_FLAG.USR_VRFY : o.verbose === 1 ? DEL_REQ_FLAG.RECORD : 0;
  const sender = await envelopeSender(o, uid);
  const who = `${sender}(${uid})`;
  const lsm = await loginSender(cfg, uid, sender);
  if (lsm.status === "deny") fatalStatus(EX.NOPERM, `${who}: ${lsm.reason}`);
  if (lsm.status === "tempfail") fatalStatus(EX.TEMPFAIL, `${who}: ${lsm.reason}`);
  const rcpts = o.recipients.flatMap((r) => {
    const a = addressList(r);
    return a.length > 0 ? a : [""];
  });
  const name = await fullName(o, uid);
  let w: MaildropWriter | null = null;
  let off = (): void => undefined;
  try {
    w = await MaildropWriter.create(cfg.get("queue_directory"), {
      contentMax: cfg.int("message_size_limit"),
    });
    off = onSignals(w);
    w.attr("rewrite_context", o.rewriteContext);
    // eslint-disable-next-line no-control-regex
    if (name !== undefined) w.attr("full_name", name.replace(/[\x00-\x1f\x7f]/g, " ").slice(0, 255));
    if (o.encoding !== undefined) w.attr("encoding", o.encoding);
    if (o.dsnEnvid !== undefined) w.attr("dsn_envid", o.dsnEnvid);
    if (o.dsnRet !== undefined) w.attr("dsn_ret", o.dsnRet);
    if (o.extract) w.attr("extract", "yes");
    if (trace !== 0) w.attr(TRACE_FLAGS_ATTR, String(trace));
    if (o.extract && o.dsnNotify !== undefined) w.attr("extract_dsn_notify", String(o.dsnNotify));
    w.sender(sender);
    for (const r of rcpts)
      w.rcpt({ address: r, ...(o.dsnNotify !== undefined ? { notify: o.dsnNotify } : {}) });
    const fromHeaders = await copyMessage(cfg, o, w, input);
    if (rcpts.length + fromHeaders === 0)
      fatalStatus(
        EX.USAGE,
        o.extract
          ? `${who}: No recipient addresses found in message header`
          : `${who}: Recipient addresses must be specified on the command line or via the -t option`,
      );
    await w.commit();
  } catch (err) {
    await w?.abort();
    if (err instanceof MaildropError) fatalStatus(maildropStatus(err), `${who}: ${err.message}`);
    if (typeof (err as NodeJS.ErrnoException).code === "string" && !(err instanceof CommandFatal))
      fatalStatus(EX.DATAERR, `${who}: error reading input: ${(err as Error).message}`);
    throw err;
  } finally {
    off();
  }
  await wakePickup(cfg);
  if (trace !== 0) process.stdout.write(`Mail Delivery Status Report will be mailed to <${sender}>.\n`);
  return EX.OK;
}
