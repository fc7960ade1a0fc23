/*
 * smtp-mime - 8-bit to 7-bit MIME conversion for servers without 8BITMIME
 *
 * SYNOPSIS
 *   for await (const line of downgrade(lines)) ...
 *
 * DESCRIPTION
 *   As Postfix does when the server does not offer 8BITMIME (unless
 *   disable_mime_output_conversion = yes): the message is read as MIME,
 *   line by line, and every body part whose Content-Transfer-Encoding is
 *   8bit or binary is sent quoted-printable, with its encoding header
 *   rewritten; a multipart or message part declared 8bit or binary is
 *   declared 7bit (its parts are converted instead). Headers and parts
 *   that are already 7bit, quoted-printable or base64 pass unchanged.
 *   Multipart boundaries and message/rfc822 attachments are followed up
 *   to MAX_NESTING levels; deeper structure is passed as body text of the
 *   part that holds it (and converted if that part is 8-bit).
 */

const MAX_NESTING = 20;
const QP_LINE = 76;

type Cte = "7bit" | "8bit" | "binary" | "quoted-printable" | "base64" | "other";

interface Entity {
  type: string;
  boundary: string | null;
  cte: Cte;
}

/** The value of one Content-Type parameter (quoted or not), or null. */
function param(value: string, name: string): string | null {
  const re = new RegExp(`;\\s*${name}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^\\s;]+))`, "i");
  const m = re.exec(value);
  if (m === null) return null;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : (m[2] ?? null);
}

/** Reads what matters from an entity's header lines. */
function entityOf(header: string[], defaultType: string): Entity {
  let type = defaultType;
  let boundary: string | null = null;
  let cte: Cte = "7bit";
  for (const h of header) {
    const colon = h.indexOf(":");
    if (colon < 0) continue;
    const name = h.slice(0, colon).trim().toLowerCase();
    const value = h
      .slice(colon + 1)
      .replace(/\r?\n/g, " ")
      .trim();
    if (name === "content-type") {
      const m = /^([A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+)/.exec(value);
      if (m) type = (m[1] ?? defaultType).toLowerCase();
      boundary = param(value, "boundary");
    } else if (name === "content-transfer-encoding") {
      const v = value.toLowerCase().split(/[\s;(]/)[0] ?? "";
      cte =
        v === "7bit" || v === "8bit" || v === "binary" || v === "quoted-printable" || v === "base64"
          ? v
          : "other";
    }
  }
  return { type, boundary, cte };
}

/** Quoted-printable lines for one line of 8-bit text. */
export function qpEncodeLine(line: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let cur = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as number;
    const last = i === line.length - 1;
    let piece: string;
    if ((c === 0x20 || c === 0x09) && last) piece = "=" + c.toString(16).toUpperCase().padStart(2, "0");
    else if ((c >= 33 && c <= 126 && c !== 0x3d) || c === 0x20 || c === 0x09) piece = String.fromCharCode(c);
    else piece = "=" + c.toString(16).toUpperCase().padStart(2, "0");
    if (cur.length + piece.length > QP_LINE - 1) {
      out.push(Buffer.from(cur + "=", "latin1"));
      cur = "";
    }
    cur += piece;
  }
  out.push(Buffer.from(cur, "latin1"));
  return out;
}

/** True when a part of this type holds other parts. */
function composite(type: string): boolean {
  return type.startsWith("multipart/") || type === "message/rfc822";
}

/** Writes an entity's header with the encoding header rewritten as needed; says whether the body is converted. */
function* emitHeader(header: string[], e: Entity, nested: boolean): Generator<Buffer, boolean> {
  const eightBit = e.cte === "8bit" || e.cte === "binary";
  const holds = nested && composite(e.type);
  for (const h of header) {
    if (eightBit && /^content-transfer-encoding\s*:/i.test(h)) continue;
    for (const l of h.split("\n")) yield Buffer.from(l, "latin1");
  }
  if (eightBit) yield Buffer.from(`Content-Transfer-Encoding: ${holds ? "7bit" : "quoted-printable"}`);
  return eightBit && !holds;
}

/** Converts a message's content lines so that every line is 7-bit. */
export async function* downgrade(lines: AsyncIterable<Buffer> | Iterable<Buffer>): AsyncGenerator<Buffer> {
  const boundaries: string[] = [];
  let header: string[] | null = [];
  let defaultType = "text/plain";
  let convert = false;
  for await (const line of lines) {
    const text = line.toString("latin1");
    if (header !== null) {
      const cont = /^[ \t]/.test(text) && header.length > 0;
      if (cont) {
        header[header.length - 1] += "\n" + text;
        continue;
      }
      if (text !== "" && /^[\x21-\x39\x3b-\x7e]+:/.test(text)) {
        header.push(text);
        continue;
      }
      const e = entityOf(header, defaultType);
      const nested = boundaries.length < MAX_NESTING;
      convert = yield* emitHeader(header, e, nested);
      header = null;
      if (nested && e.type.startsWith("multipart/") && e.boundary !== null) boundaries.push(e.boundary);
      if (nested && e.type === "message/rfc822") {
        header = [];
        defaultType = "text/plain";
        if (text !== "") header.push(text);
        else yield line;
        continue;
      }
      if (text === "") {
        yield line;
        continue;
      }
      // A body that starts without the empty line: this line is body text.
    } else {
      const b = boundaryOf(text, boundaries);
      if (b !== null) {
        yield line;
        if (b.close) {
          boundaries.length = b.depth;
          convert = false;
        } else {
          boundaries.length = b.depth + 1;
          header = [];
          defaultType = "text/plain";
          convert = false;
        }
        continue;
      }
    }
    if (header === null && convert) yield* qpEncodeLine(line);
    else if (header === null) yield line;
  }
  if (header !== null) for (const h of header) for (const l of h.split("\n")) yield Buffer.from(l, "latin1");
}

/** Whether a line is a boundary of an open multipart, and which. */
function boundaryOf(text: string, boundaries: string[]): { depth: number; close: boolean } | null {
  if (!text.startsWith("--")) return null;
  for (let d = boundaries.length - 1; d >= 0; d--) {
    const b = boundaries[d] as string;
    if (!text.startsWith("--" + b)) continue;
    const rest = text.slice(2 + b.length);
    if (/^--\s*$/.test(rest)) return { depth: d, close: true };
    if (/^\s*$/.test(rest)) return { depth: d, close: false };
  }
  return null;
}
