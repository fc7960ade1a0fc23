/*
 * maildrop - the maildrop file: how a local submission reaches pickup
 *
 * SYNOPSIS
 *   const w = await MaildropWriter.create(queueDir, { contentMax });  // or MaildropError
 *   w.attr("rewrite_context", "local"); w.sender("alice"); w.rcpt({ address: "bob@example" });
 *   w.beginContent(); await w.write(Buffer.from("Subject: hi"), true); ...; await w.commit();
 *
 * DESCRIPTION
 *   A maildrop file is a sequence of rec-codec.ts records, in this order:
 *     A*        attributes "name=value" (MAILDROP_ATTRS says which; each once)
 *     S         the envelope sender, exactly once ("" is the null sender)
 *     (n? R)*   recipients, each optionally preceded by its DSN NOTIFY mask
 *     M         start of the content
 *     (L* N)*   content lines without their line ending; a long line is
 *               split into L pieces and ends with an N record
 *     X         end of the content
 *     E         end of the file
 *   Every record payload is at most MAILDROP_RECORD_MAX bytes; an address
 *   is at most MAILDROP_ADDRESS_MAX bytes of UTF-8 without control
 *   characters. The file carries no identity: pickup takes the submitter's
 *   uid from the file's owner, which the kernel sets at creation.
 *
 *   The writer creates maildrop/<32 random hex digits> with O_EXCL and
 *   O_NOFOLLOW, mode 0600, so nobody else reads a file being written. The
 *   maildrop directory is mode 3733 (write and search for all, no listing,
 *   sticky, set-group-ID), so the new file's group is the mail_owner's
 *   group whoever creates it. commit() writes the end record, fsyncs, and
 *   only then turns on group read (0640): that bit tells pickup the file is
 *   complete and lets pickup, running as mail_owner, read it. Nobody else
 *   can read it (no permission), find it (no listing, unguessable name) or
 *   remove it (sticky directory).
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { lstat, open, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { REC, encodeRecord, type RecType } from "./rec-codec.js";

/** The largest payload of one maildrop record. */
export const MAILDROP_RECORD_MAX = 4096;
/** The longest address in a maildrop file, in bytes. */
export const MAILDROP_ADDRESS_MAX = 2048;
/** The size of the pieces a long content line is written in. */
export const MAILDROP_PIECE = 2048;
/** The mode of a complete maildrop file; group read is the "ready" mark. */
export const MAILDROP_READY_MODE = 0o640;
/** A maildrop file name: 128 random bits. */
export const MAILDROP_NAME_RE = /^[0-9a-f]{32}$/;

/** The attributes a maildrop file may carry, with the values each accepts. */
export const MAILDROP_ATTRS: Readonly<Record<string, RegExp>> = {
  rewrite_context: /^(local|remote)$/,
  // eslint-disable-next-line no-control-regex
  full_name: /^[^\x00-\x1f\x7f]{0,255}$/u,
  encoding: /^(7bit|8bit)$/,
  dsn_envid: /^[\x21-\x7e]{1,100}$/,
  dsn_ret: /^(full|hdrs)$/,
  extract: /^yes$/,
  // Trace flags a user may ask for: USR_VRFY (sendmail -bv) and RECORD (sendmail -v); never MTA_VRFY.
  trace_flags: /^[246]$/,
  /** sendmail -t -N: the NOTIFY mask (DSN_NOTIFY bits) of the recipients taken from the headers. */
  extract_dsn_notify: /^(1|2|4|6|8|10|12|14)$/,
};

export class MaildropError extends Error {
  readonly code: "ENOQUEUE" | "EACCES" | "ESETUP" | "EFBIG" | "EBADADDR" | "EIO";

  constructor(code: MaildropError["code"], message: string) {
    super(message);
    this.code = code;
  }
}

/** The reason an address cannot go into a maildrop file, or null when it can. */
export function maildropAddressProblem(address: string): string | null {
  if (Buffer.byteLength(address, "utf8") > MAILDROP_ADDRESS_MAX)
    return `address longer than ${MAILDROP_ADDRESS_MAX} bytes`;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f-\x9f]/.test(address)) return "control character in address";
  return null;
}

/** Turns a system error into a MaildropError with a message for the user. */
function systemError(err: unknown, dir: string): MaildropError {
  const e = err as NodeJS.ErrnoException;
  if (e.code === "ENOENT")
    return new MaildropError("ENOQUEUE", `${dir}: no such directory (is the mail system installed?)`);
  if (e.code === "EACCES" || e.code === "EPERM")
    return new MaildropError("EACCES", `${dir}: permission denied`);
  if (e.code === "EFBIG" || e.code === "ENOSPC" || e.code === "EDQUOT")
    return new MaildropError("EFBIG", `error writing queue file: ${e.message}`);
  return new MaildropError("EIO", `error writing queue file: ${e.message}`);
}

export interface MaildropOptions {
  /** The most content bytes accepted (message_size_limit; 0: no limit). */
  contentMax: number;
}

/** Writes one maildrop file; see the module comment for the protocol. */
export class MaildropWriter {
  readonly name: string;
  #fh: FileHandle;
  #path: string;
  #dir: string;
  #chunks: Buffer[] = [];
  #pending = 0;
  #offset = 0;
  #content = 0;
  #contentMax: number;
  #inContent = false;
  #done = false;

  private constructor(fh: FileHandle, dir: string, name: string, opts: MaildropOptions) {
    this.#fh = fh;
    this.#dir = dir;
    this.name = name;
    this.#path = join(dir, name);
    this.#contentMax = opts.contentMax;
  }

  /** Creates a new maildrop file under an unguessable name. */
  static async create(queueDir: string, opts: MaildropOptions): Promise<MaildropWriter> {
    const dir = join(queueDir, "maildrop");
    const name = randomBytes(16).toString("hex");
    let fh: FileHandle;
    try {
      fh = await open(
        join(dir, name),
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
    } catch (err) {
      throw systemError(err, dir);
    }
    const w = new MaildropWriter(fh, dir, name, opts);
    await w.#checkGroup();
    return w;
  }

  /** Fails when pickup could not read the file: the directory lacks its set-group-ID bit. */
  async #checkGroup(): Promise<void> {
    try {
      const [f, d] = await Promise.all([this.#fh.stat(), lstat(this.#dir)]);
      if (f.gid === d.gid || f.uid === d.uid) return;
    } catch (err) {
      await this.abort();
      throw systemError(err, this.#dir);
    }
    await this.abort();
    throw new MaildropError(
      "ESETUP",
      `${this.#dir}: the directory must have mode 3733 (set-group-ID) so that pickup can read submissions; "postern start" sets it`,
    );
  }

  /** Appends a record to the write buffer. */
  #put(type: RecType, payload: Buffer | string): void {
    const rec = encodeRecord(type, payload);
    this.#chunks.push(rec);
    this.#pending += rec.length;
  }

  /** Writes what is buffered. */
  async #flush(): Promise<void> {
    if (this.#pending === 0) return;
    const data = Buffer.concat(this.#chunks);
    this.#chunks = [];
    this.#pending = 0;
    try {
      await this.#fh.write(data, 0, data.length, this.#offset);
    } catch (err) {
      throw systemError(err, this.#dir);
    }
    this.#offset += data.length;
  }

  /** Records an attribute (one of MAILDROP_ATTRS). */
  attr(name: string, value: string): void {
    const re = MAILDROP_ATTRS[name];
    if (re === undefined || !re.test(value)) throw new RangeError(`bad maildrop attribute ${name}`);
    this.#put(REC.ATTR, `${name}=${value}`);
  }

  /** Records the envelope sender. */
  sender(address: string): void {
    const bad = maildropAddressProblem(address);
    if (bad !== null) throw new MaildropError("EBADADDR", `sender: ${bad}`);
    this.#put(REC.SENDER, address);
  }

  /** Records a recipient with its optional DSN NOTIFY mask. */
  rcpt(r: { address: string; notify?: number }): void {
    const bad = maildropAddressProblem(r.address);
    if (bad !== null) throw new MaildropError("EBADADDR", `recipient: ${bad}`);
    if (r.notify !== undefined) this.#put(REC.DSN_NOTIFY, String(r.notify));
    this.#put(REC.RCPT, r.address);
  }

  /** Starts the content. */
  beginContent(): void {
    this.#put(REC.MESSAGE, "");
    this.#inContent = true;
  }

  /** Writes one content line (without its line ending); complete false: a piece that goes on. */
  async write(data: Buffer, complete: boolean): Promise<void> {
    this.#content += data.length + (complete ? 1 : 0);
    if (this.#contentMax > 0 && this.#content > this.#contentMax)
      throw new MaildropError("EFBIG", "message file too big");
    let i = 0;
    for (; data.length - i > MAILDROP_PIECE; i += MAILDROP_PIECE)
      this.#put(REC.PART, data.subarray(i, i + MAILDROP_PIECE));
    if (complete) this.#put(REC.LINE, data.subarray(i));
    else if (i < data.length) this.#put(REC.PART, data.subarray(i));
    if (this.#pending >= 65536) await this.#flush();
  }

  /** Writes one complete content line. */
  line(text: Buffer): Promise<void> {
    return this.write(text, true);
  }

  /** Appends bytes as they are (postdrop copies a record stream it checks afterwards). */
  async raw(data: Buffer, max: number): Promise<void> {
    this.#content += data.length;
    if (this.#content > max) throw new MaildropError("EFBIG", "message file too big");
    this.#chunks.push(data);
    this.#pending += data.length;
    if (this.#pending >= 65536) await this.#flush();
  }

  /** Completes a raw file if check(path) finds nothing wrong with it; else removes it and returns the problem. */
  async commitRaw(check: (path: string) => Promise<string | null>): Promise<string | null> {
    try {
      await this.#flush();
      await this.#fh.sync();
      const problem = await check(this.#path);
      if (problem !== null) {
        await this.abort();
        return problem;
      }
      await this.#fh.chmod(MAILDROP_READY_MODE);
      await this.#fh.close();
    } catch (err) {
      await this.abort();
      throw err instanceof MaildropError ? err : systemError(err, this.#dir);
    }
    this.#done = true;
    return null;
  }

  /** Completes the file: end records, fsync, then the "ready" mode. */
  async commit(): Promise<void> {
    if (!this.#inContent) this.beginContent();
    this.#put(REC.XTRA, "");
    this.#put(REC.END, "");
    try {
      await this.#flush();
      await this.#fh.sync();
      await this.#fh.chmod(MAILDROP_READY_MODE);
      await this.#fh.close();
    } catch (err) {
      await this.abort();
      throw err instanceof MaildropError ? err : systemError(err, this.#dir);
    }
    this.#done = true;
  }

  /** Abandons the file. */
  async abort(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    await this.#fh.close().catch(() => undefined);
    await unlink(this.#path).catch(() => undefined);
  }
}
