/*
 * maildrop-reader - read a maildrop file as untrusted input
 *
 * SYNOPSIS
 *   const r = new MaildropReader(fh, { contentMax, rcptMax });
 *   for (;;) { const s = await r.next(); if (!s.ok) reject(s.reason); if (s.ev === null) break; ... }
 *
 * DESCRIPTION
 *   Anyone may write a maildrop file, so pickup (and showq, qshape) read
 *   it as they would read a network peer: record by record, every payload
 *   bounded by MAILDROP_RECORD_MAX, every record checked against the order
 *   of maildrop.ts (A* S (n? R)* M (L* N)* X E, then nothing), every
 *   attribute against MAILDROP_ATTRS, every address for length, UTF-8 and
 *   control characters, the recipient count against rcptMax and the
 *   content size against contentMax. The first problem ends the reading
 *   with a failure that names the offset and the rule; the reader never
 *   throws on file content. Events come out as the records are read, so a
 *   caller can stream a large message without holding it.
 */
import { isUtf8 } from "node:buffer";
import type { FileHandle } from "node:fs/promises";
import { MAILDROP_ATTRS, MAILDROP_RECORD_MAX, maildropAddressProblem } from "./maildrop.js";
import { REC, RecordScanner, type Rec } from "./rec-codec.js";

export interface MaildropLimits {
  /** The most content bytes (lines plus one per line ending; 0: no limit). */
  contentMax: number;
  /** The most recipients. */
  rcptMax: number;
}

export type MaildropEvent =
  | { kind: "attr"; name: string; value: string }
  | { kind: "sender"; address: string }
  | { kind: "rcpt"; address: string; notify?: number }
  | { kind: "content" }
  | { kind: "line"; data: Buffer; complete: boolean }
  | { kind: "end" };

export type MaildropStep =
  { ok: true; ev: MaildropEvent | null } | { ok: false; offset: number; reason: string };

type Phase = "envelope" | "content" | "tail" | "done";

export class MaildropReader {
  #scan: RecordScanner;
  #limits: MaildropLimits;
  #phase: Phase = "envelope";
  #sender = false;
  #attrs = new Set<string>();
  #notify: number | null = null;
  #rcpts = 0;
  #content = 0;

  constructor(fh: FileHandle, limits: MaildropLimits) {
    this.#scan = new RecordScanner(fh, 0, MAILDROP_RECORD_MAX);
    this.#limits = limits;
  }

  /** The offset of the next record. */
  get offset(): number {
    return this.#scan.offset;
  }

  /** Reads the next event; ev is null after the end record. */
  async next(): Promise<MaildropStep> {
    if (this.#phase === "done") return { ok: true, ev: null };
    const r = await this.#scan.next();
    if (!r.ok) return r;
    if (r.rec === null) return this.#bad(this.#scan.offset, "file ends without an end record (truncated)");
    switch (this.#phase) {
      case "envelope":
        return this.#envelope(r.rec);
      case "content":
        return this.#contentRecord(r.rec);
      default:
        return this.#tail(r.rec);
    }
  }

  /** A failure. */
  #bad(offset: number, reason: string): MaildropStep {
    this.#phase = "done";
    return { ok: false, offset, reason };
  }

  /** Checks an address payload. */
  #address(rec: Rec, what: string): string | MaildropStep {
    if (!isUtf8(rec.payload)) return this.#bad(rec.offset, `${what}: not valid UTF-8`);
    const text = rec.payload.toString("utf8");
    const problem = maildropAddressProblem(text);
    return problem === null ? text : this.#bad(rec.offset, `${what}: ${problem}`);
  }

  /** A record of the envelope section. */
  #envelope(rec: Rec): MaildropStep | Promise<MaildropStep> {
    if (this.#notify !== null && rec.type !== REC.RCPT)
      return this.#bad(rec.offset, "DSN NOTIFY record not followed by a recipient");
    switch (rec.type) {
      case REC.ATTR:
        return this.#attr(rec);
      case REC.SENDER: {
        if (this.#sender) return this.#bad(rec.offset, "more than one sender record");
        const a = this.#address(rec, "sender");
        if (typeof a !== "string") return a;
        this.#sender = true;
        return { ok: true, ev: { kind: "sender", address: a } };
      }
      case REC.DSN_NOTIFY:
        return this.#dsnNotify(rec);
      case REC.RCPT:
        return this.#rcpt(rec);
      case REC.MESSAGE:
        if (!this.#sender) return this.#bad(rec.offset, "no sender record before the content");
        if (rec.payload.length !== 0) return this.#bad(rec.offset, "malformed start-of-content record");
        this.#phase = "content";
        return { ok: true, ev: { kind: "content" } };
      default:
        return this.#bad(
          rec.offset,
          `unexpected record type ${String.fromCharCode(rec.type)} in the envelope`,
        );
    }
  }

  /** An attribute record: a known name, once, with a valid value, before the sender. */
  #attr(rec: Rec): MaildropStep {
    if (this.#sender) return this.#bad(rec.offset, "attribute after the sender record");
    if (!isUtf8(rec.payload)) return this.#bad(rec.offset, "attribute: not valid UTF-8");
    const text = rec.payload.toString("utf8");
    const eq = text.indexOf("=");
    const name = eq > 0 ? text.slice(0, eq) : "";
    const value = text.slice(eq + 1);
    const re = Object.hasOwn(MAILDROP_ATTRS, name) ? MAILDROP_ATTRS[name] : undefined;
    if (re === undefined) return this.#bad(rec.offset, "unknown attribute");
    if (this.#attrs.has(name)) return this.#bad(rec.offset, `attribute ${name} given twice`);
    if (!re.test(value)) return this.#bad(rec.offset, `attribute ${name}: bad value`);
    this.#attrs.add(name);
    return { ok: true, ev: { kind: "attr", name, value } };
  }

  /** A DSN NOTIFY record: a mask 1..15 for the next recipient. */
  #dsnNotify(rec: Rec): MaildropStep | Promise<MaildropStep> {
    const t = rec.payload.toString("latin1");
    const n = Number(t);
    if (!/^\d{1,2}$/.test(t) || n < 1 || n > 15) return this.#bad(rec.offset, "malformed DSN NOTIFY record");
    this.#notify = n;
    return this.next();
  }

  /** A recipient record. */
  #rcpt(rec: Rec): MaildropStep {
    if (!this.#sender) return this.#bad(rec.offset, "recipient before the sender record");
    if (++this.#rcpts > this.#limits.rcptMax)
      return this.#bad(rec.offset, `more than ${this.#limits.rcptMax} recipients`);
    const a = this.#address(rec, "recipient");
    if (typeof a !== "string") return a;
    const ev: MaildropEvent = { kind: "rcpt", address: a };
    if (this.#notify !== null) ev.notify = this.#notify;
    this.#notify = null;
    return { ok: true, ev };
  }

  /** A record of the content section. */
  #contentRecord(rec: Rec): MaildropStep | Promise<MaildropStep> {
    if (rec.type === REC.XTRA) {
      if (rec.payload.length !== 0) return this.#bad(rec.offset, "malformed end-of-content record");
      this.#phase = "tail";
      return this.next();
    }
    if (rec.type !== REC.LINE && rec.type !== REC.PART)
      return this.#bad(rec.offset, `unexpected record type ${String.fromCharCode(rec.type)} in the content`);
    const complete = rec.type === REC.LINE;
    this.#content += rec.payload.length + (complete ? 1 : 0);
    if (this.#limits.contentMax > 0 && this.#content > this.#limits.contentMax)
      return this.#bad(rec.offset, `content larger than ${this.#limits.contentMax} bytes`);
    return { ok: true, ev: { kind: "line", data: rec.payload, complete } };
  }

  /** The end record, which must be the last thing in the file. */
  async #tail(rec: Rec): Promise<MaildropStep> {
    if (rec.type !== REC.END || rec.payload.length !== 0)
      return this.#bad(rec.offset, "expected the end record after the content");
    const after = await this.#scan.next();
    if (!after.ok || after.rec !== null) return this.#bad(rec.offset + 2, "data after the end record");
    this.#phase = "done";
    return { ok: true, ev: { kind: "end" } };
  }
}
