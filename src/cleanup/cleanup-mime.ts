/*
 * cleanup-mime - the MIME structure of a message, one line at a time
 *
 * SYNOPSIS
 *   const mime = new MimeState({ disable: false, nestingLimit: 100, boundaryLimit: 2048,
 *                                headerLimit: 102400, report: MIME_ERR.NESTING });
 *   mime.primaryHeader("Content-Type: multipart/mixed; boundary=x");   // each primary header
 *   for (const ev of mime.update(line, complete)) ...                  // each line after them
 *   for (const ev of mime.end()) ...
 *
 * DESCRIPTION
 *   A one-pass MIME parser in the manner of Postfix's mime_state(3). The
 *   primary headers are collected by cleanup-message.ts and shown to the
 *   parser with primaryHeader(); every line after them (starting with the
 *   one that ended them) goes to update(), which returns events:
 *     { t: "header", cls, text, mime }  a complete header of a body part:
 *         cls "multipart" after a --boundary line, "nested" at the start of
 *         an attached message/rfc822 (or message/global); mime is true for
 *         Content-* and MIME-Version headers. Folded lines are joined with
 *         "\n"; text beyond headerLimit is dropped.
 *     { t: "body", data, complete, offset }  a body line (boundary lines and
 *         the empty lines after header blocks included); offset counts
 *         bytes from the start of the current part.
 *     { t: "error", code, text }  a MIME_ERR_* problem that report asks for,
 *         at most once per kind.
 *   A primary header section that ends in a non-empty line is fixed by
 *   adding the empty line. Boundary strings are cut at boundaryLimit
 *   characters, and multipart nesting deeper than nestingLimit is not
 *   followed (MIME_ERR.NESTING). With disable, Content-* headers are
 *   ignored and everything after the primary headers is body.
 *   eightBit tells whether any header or body byte had the high bit set.
 */
import { isHeaderStart } from "./cleanup-message.js";

export const MIME_ERR = {
  NESTING: 1,
  TRUNC_HEADER: 2,
  BIT8_IN_HEADER: 4,
  BIT8_IN_7BIT_BODY: 8,
  ENCODING_DOMAIN: 16,
} as const;

/** The DSN and text of each error, in order of seriousness. */
export const MIME_ERR_DETAIL: readonly { code: number; dsn: string; text: string }[] = [
  { code: MIME_ERR.NESTING, dsn: "5.6.0", text: "MIME nesting exceeds safety limit" },
  { code: MIME_ERR.TRUNC_HEADER, dsn: "5.6.0", text: "message header length exceeds safety limit" },
  { code: MIME_ERR.BIT8_IN_HEADER, dsn: "5.6.0", text: "improper use of 8-bit data in message header" },
  { code: MIME_ERR.BIT8_IN_7BIT_BODY, dsn: "5.6.0", text: "improper use of 8-bit data in message body" },
  { code: MIME_ERR.ENCODING_DOMAIN, dsn: "5.6.0", text: "invalid message/* or multipart/* encoding domain" },
];

export type MimeEvent =
  | { t: "header"; cls: "multipart" | "nested"; text: string; mime: boolean }
  | { t: "body"; data: Buffer; complete: boolean; offset: number }
  | { t: "error"; code: number; text: string };

export interface MimeOptions {
  disable: boolean;
  nestingLimit: number;
  boundaryLimit: number;
  headerLimit: number;
  /** The MIME_ERR bits to report. */
  report: number;
}

type State = "primary" | "multipart" | "nested" | "body";
type Ctype = "text" | "message" | "multipart" | "other";
type Stype = "plain" | "rfc822" | "partial" | "external-body" | "global" | "other";
type Enc = "7bit" | "8bit" | "binary" | "base64" | "quoted-printable";

const ENCODINGS: Record<string, { enc: Enc; domain: Enc }> = {
  "7bit": { enc: "7bit", domain: "7bit" },
  "8bit": { enc: "8bit", domain: "8bit" },
  binary: { enc: "binary", domain: "binary" },
  base64: { enc: "base64", domain: "7bit" },
  "quoted-printable": { enc: "quoted-printable", domain: "7bit" },
};

const MIME_HEADERS = new Set([
  "content-description",
  "content-disposition",
  "content-id",
  "content-transfer-encoding",
  "content-type",
  "mime-version",
]);

/** True when a header (by name) is a MIME header. */
export function isMimeHeader(name: string): boolean {
  return MIME_HEADERS.has(name.trim().toLowerCase());
}

/** The name of a header text, lower case. */
function headerName(text: string): string {
  return text
    .slice(0, Math.max(0, text.indexOf(":")))
    .trim()
    .toLowerCase();
}

/** Splits a Content-Type value into RFC 2045 tokens; comments are skipped, quoted strings become tokens. */
function mimeTokens(s: string): { special: boolean; v: string }[] {
  const out: { special: boolean; v: string }[] = [];
  for (let i = 0; i < s.length && out.length < 1000;) {
    const c = s[i] ?? "";
    if (c === "(") {
      let level = 0;
      for (; i < s.length; i++) {
        const d = s[i];
        if (d === "\\") i++;
        else if (d === "(") level++;
        else if (d === ")" && --level === 0) break;
      }
      i++;
    } else if (c === '"') {
      let v = "";
      for (i++; i < s.length && s[i] !== '"'; i++) v += s[i] === "\\" ? (s[++i] ?? "") : s[i];
      out.push({ special: false, v });
      i++;
    } else if ("<>@,;:\\/[]?=".includes(c)) {
      out.push({ special: true, v: c });
      i++;
    } else if (c <= " ") {
      i++;
    } else {
      const m = /^[^\s()<>@,;:\\"/[\]?=]+/.exec(s.slice(i, i + 1000));
      const v = m?.[0] ?? c;
      out.push({ special: false, v });
      i += v.length;
    }
  }
  return out;
}

/** Parses a Content-Type value: type, subtype and the boundary parameters. */
function parseContentType(value: string): { type: string; sub: string; boundaries: string[] } {
  const toks = mimeTokens(value);
  const word = (i: number): string => {
    const t = toks[i];
    return t !== undefined && !t.special ? t.v.toLowerCase() : "";
  };
  const slash = toks[1]?.special === true && toks[1].v === "/";
  const boundaries: string[] = [];
  for (let i = 0; i + 2 < toks.length; i++) {
    const eq = toks[i + 1];
    const val = toks[i + 2];
    if (word(i) === "boundary" && eq?.special === true && eq.v === "=" && val !== undefined && !val.special)
      boundaries.push(val.v);
  }
  return { type: word(0), sub: slash ? word(2) : "", boundaries };
}

/** One open multipart: its boundary and the default type of its parts. */
interface Frame {
  boundary: Buffer;
  defCtype: Ctype;
  defStype: Stype;
}

export class MimeState {
  readonly #o: MimeOptions;
  #state: State = "primary";
  #ctype: Ctype = "text";
  #stype: Stype = "plain";
  #enc: Enc = "7bit";
  #domain: Enc = "7bit";
  #stack: Frame[] = [];
  #hdr: Buffer[] | null = null;
  #hdrLen = 0;
  #prevIncomplete = false;
  #bodyOffset = 0;
  #errors = 0;
  #eightBit = false;

  constructor(o: MimeOptions) {
    this.#o = o;
  }

  /** The MIME_ERR bits reported so far. */
  get errors(): number {
    return this.#errors;
  }

  /** Whether any 8-bit byte was seen in a header or the body. */
  get eightBit(): boolean {
    return this.#eightBit;
  }

  /** Sets the type of the current entity. */
  #set(state: State, ctype: Ctype, stype: Stype): void {
    this.#state = state;
    this.#ctype = ctype;
    this.#stype = stype;
    this.#enc = "7bit";
    this.#domain = "7bit";
    if (state === "body") this.#bodyOffset = 0;
  }

  /** Records an error when it is to be reported; returns the event or null. */
  #error(code: number, text: string, out: MimeEvent[]): void {
    if ((this.#o.report & code) === 0 || (this.#errors & code) !== 0) return;
    this.#errors |= code;
    out.push({ t: "error", code, text: text.slice(0, 100) });
  }

  /** Looks at one complete header (primary or not): Content-Type, Content-Transfer-Encoding, 8-bit data. */
  #inspect(text: string, out: MimeEvent[]): void {
    if (/[\x80-\xff]/.test(text)) {
      this.#eightBit = true;
      this.#error(MIME_ERR.BIT8_IN_HEADER, text, out);
    }
    if (this.#o.disable) return;
    const name = headerName(text);
    const value = text.slice(text.indexOf(":") + 1);
    if (name === "content-transfer-encoding") {
      const t = mimeTokens(value)[0];
      const e = t !== undefined && !t.special ? ENCODINGS[t.v.toLowerCase()] : undefined;
      if (e !== undefined) {
        this.#enc = e.enc;
        this.#domain = e.domain;
      }
    } else if (name === "content-type") {
      this.#contentType(value, text, out);
    }
  }

  /** Updates the type from a Content-Type value; a multipart pushes its boundaries. */
  #contentType(value: string, text: string, out: MimeEvent[]): void {
    const ct = parseContentType(value);
    if (ct.type === "text") {
      this.#ctype = "text";
      this.#stype = ct.sub === "plain" ? "plain" : "other";
    } else if (ct.type === "message") {
      this.#ctype = "message";
      const subs: Stype[] = ["rfc822", "partial", "external-body", "global"];
      this.#stype = subs.find((s) => s === ct.sub) ?? "other";
    } else if (ct.type === "multipart") {
      this.#ctype = "multipart";
      const digest = ct.sub === "digest";
      for (const b of ct.boundaries) {
        if (this.#stack.length - 1 > this.#o.nestingLimit) {
          this.#error(MIME_ERR.NESTING, text, out);
          continue;
        }
        this.#stack.unshift({
          boundary: Buffer.from(b.slice(0, this.#o.boundaryLimit), "latin1"),
          defCtype: digest ? "message" : "text",
          defStype: digest ? "rfc822" : "plain",
        });
      }
    } else {
      this.#ctype = "other";
      this.#stype = "other";
    }
  }

  /** Shows one primary header to the parser; returns error events. */
  primaryHeader(text: string): MimeEvent[] {
    const out: MimeEvent[] = [];
    this.#inspect(text, out);
    return out;
  }

  /** Takes one line after the primary headers (or a piece of a long one); returns events. */
  update(line: Buffer, complete: boolean): MimeEvent[] {
    const out: MimeEvent[] = [];
    if (this.#state !== "body" && this.#state !== "primary" && this.#header(line, complete, out)) {
      this.#prevIncomplete = !complete;
      return out;
    }
    if (this.#state !== "body") this.#endHeaderBlock(line, out);
    this.#body(line, complete, out);
    this.#prevIncomplete = !complete;
    return out;
  }

  /** Handles a line in a part's header block; true when it was taken as header text. */
  #header(line: Buffer, complete: boolean, out: MimeEvent[]): boolean {
    if (this.#hdr !== null) {
      const first = line[0];
      if (this.#prevIncomplete || first === 0x20 || first === 0x09) {
        this.#addHeader(line, !this.#prevIncomplete);
        return true;
      }
      this.#flushHeader(out);
    }
    if (!isHeaderStart(line)) return false;
    this.#hdr = [];
    this.#hdrLen = 0;
    this.#addHeader(line, false);
    return true;
  }

  /** Adds text to the pending header, up to the header limit. */
  #addHeader(piece: Buffer, newLine: boolean): void {
    const len = piece.length + (newLine ? 1 : 0);
    if (this.#hdr === null || this.#hdrLen + len > this.#o.headerLimit) return;
    this.#hdr.push(newLine ? Buffer.concat([Buffer.from("\n"), piece]) : piece);
    this.#hdrLen += len;
  }

  /** Emits the pending header of a body part. */
  #flushHeader(out: MimeEvent[]): void {
    if (this.#hdr === null) return;
    const text = Buffer.concat(this.#hdr).toString("latin1");
    this.#hdr = null;
    this.#inspect(text, out);
    const mime = isMimeHeader(headerName(text));
    out.push({ t: "header", cls: this.#state === "nested" ? "nested" : "multipart", text, mime });
  }

  /** Ends a header block at a non-header line: chooses the state of what follows. */
  #endHeaderBlock(line: Buffer, out: MimeEvent[]): void {
    this.#flushHeader(out);
    this.#checkDomain(out);
    if (line.length > 0) {
      if (this.#state === "primary")
        out.push({ t: "body", data: Buffer.alloc(0), complete: true, offset: 0 });
      this.#state = "body";
      this.#bodyOffset = 0;
      return;
    }
    if (this.#ctype === "message" && (this.#stype === "rfc822" || this.#stype === "global"))
      this.#set("nested", "text", "plain");
    else if (this.#ctype === "multipart") this.#set("body", "other", "other");
    else {
      this.#state = "body";
      this.#bodyOffset = 0;
    }
  }

  /** Reports a message/* or multipart/* entity with a transformation instead of a domain. */
  #checkDomain(out: MimeEvent[]): void {
    const bad =
      (this.#ctype === "message" &&
        (this.#stype === "partial" || this.#stype === "external-body") &&
        this.#domain !== "7bit") ||
      (((this.#ctype === "message" && this.#stype === "rfc822") || this.#ctype === "multipart") &&
        this.#enc !== this.#domain);
    if (bad) this.#error(MIME_ERR.ENCODING_DOMAIN, this.#enc, out);
  }

  /** Handles a body line: 8-bit data, boundaries, output. */
  #body(line: Buffer, complete: boolean, out: MimeEvent[]): void {
    if (line.some((b) => b >= 0x80)) {
      this.#eightBit = true;
      if (this.#enc === "7bit") this.#error(MIME_ERR.BIT8_IN_7BIT_BODY, line.toString("latin1"), out);
    }
    if (
      this.#stack.length > 0 &&
      !this.#prevIncomplete &&
      line.length > 2 &&
      line[0] === 0x2d &&
      line[1] === 0x2d
    )
      this.#boundary(line);
    out.push({ t: "body", data: line, complete, offset: this.#bodyOffset });
    this.#bodyOffset += line.length + 1;
  }

  /** Recognizes a --boundary or --boundary-- line of an open multipart. */
  #boundary(line: Buffer): void {
    for (let i = 0; i < this.#stack.length; i++) {
      const f = this.#stack[i];
      if (f === undefined) break;
      const b = f.boundary;
      if (line.length < 2 + b.length || !line.subarray(2, 2 + b.length).equals(b)) continue;
      this.#stack.splice(0, i);
      const close = line.length >= 4 + b.length && line[2 + b.length] === 0x2d && line[3 + b.length] === 0x2d;
      if (close) {
        this.#stack.shift();
        this.#set("body", "other", "other");
      } else {
        this.#set("multipart", f.defCtype, f.defStype);
      }
      return;
    }
  }

  /** Ends the content: a pending header is emitted. */
  end(): MimeEvent[] {
    const out: MimeEvent[] = [];
    this.#flushHeader(out);
    return out;
  }
}
