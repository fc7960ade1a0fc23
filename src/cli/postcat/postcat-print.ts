/*
 * postcat-print - print one queue file's records in Postfix's postcat format
 *
 * SYNOPSIS
 *   const out = new Output(process.stdout);
 *   const r = await printQueueFile(fh, "incoming/3F2A1C0B7D", flags, out);
 *   if (!r.ok) ... r.offset, r.reason
 *
 * DESCRIPTION
 *   Walks the records in file order (a Postern queue file has no pointer
 *   records, so file order is message order) with the state machine of
 *   Postfix's postcat: envelope records, then from the M record the
 *   primary header (until the first line that is neither a header nor a
 *   continuation), then the body, then from the X record the extracted
 *   envelope records, up to the E record. -e prints envelope records as
 *   "name: value" lines between the markers
 *     *** ENVELOPE RECORDS path ***      *** MESSAGE CONTENTS path ***
 *     *** HEADER EXTRACTED path ***      *** MESSAGE FILE END path ***
 *   -h the header lines, -b the body lines; -o puts the record offset
 *   (%9u) in front of each line, -d the decimal record type (%3d); -v
 *   names content records too. Content is written as raw bytes.
 *   The walk stops at the first bad record and reports its offset; what
 *   came before it has been printed.
 */
import type { Writable } from "node:stream";
import type { FileHandle } from "node:fs/promises";
import { REC, RecordScanner, type RecType } from "../../global/rec-codec.js";

export interface PrintFlags {
  envelope: boolean;
  header: boolean;
  body: boolean;
  offsets: boolean;
  decimal: boolean;
  verbose: boolean;
}

export type PrintResult = { ok: true } | { ok: false; offset: number; reason: string };

const RECORD_LIMIT = 1 << 20;
const FLUSH_AT = 65536;

const NAMES: Readonly<Record<RecType, string>> = {
  [REC.SIZE]: "message_size",
  [REC.TIME]: "message_arrival_time",
  [REC.FILTER]: "content_filter",
  [REC.SENDER]: "sender",
  [REC.ATTR]: "named_attribute",
  [REC.ORIG_RCPT]: "original_recipient",
  [REC.DSN_ORCPT]: "dsn_orig_rcpt",
  [REC.DSN_NOTIFY]: "dsn_notify_flags",
  [REC.RCPT]: "recipient",
  [REC.DONE]: "done_recipient",
  [REC.MESSAGE]: "message_content",
  [REC.LINE]: "regular_text",
  [REC.PART]: "unterminated_text",
  [REC.XTRA]: "extracted_info",
  [REC.END]: "message_end",
};

/** Buffered output to a stream, waiting when the stream is congested. */
export class Output {
  #stream: Writable;
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(stream: Writable) {
    this.#stream = stream;
  }

  /** Adds text or bytes. */
  put(data: string | Buffer): void {
    const b = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    this.#chunks.push(b);
    this.#size += b.length;
  }

  /** Writes when enough is buffered. */
  async maybeFlush(): Promise<void> {
    if (this.#size >= FLUSH_AT) await this.flush();
  }

  /** Writes what is buffered. */
  async flush(): Promise<void> {
    if (this.#size === 0) return;
    const data = Buffer.concat(this.#chunks);
    this.#chunks = [];
    this.#size = 0;
    if (this.#stream.write(data)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.#stream.off("drain", done);
        this.#stream.off("close", done);
        this.#stream.off("error", done);
        resolve();
      };
      this.#stream.on("drain", done);
      this.#stream.on("close", done);
      this.#stream.on("error", done);
    });
  }
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Formats a time as C's asctime(localtime()) does, without the newline: "Fri Nov  6 22:30:00 2026". */
export function asctime(d: Date): string {
  const two = (n: number): string => String(n).padStart(2, "0");
  return (
    `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]}${String(d.getDate()).padStart(3)} ` +
    `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())} ${d.getFullYear()}`
  );
}

/** True when a content line starts a header: printable name characters, then optional blanks and a colon. */
export function isHeaderLine(line: Buffer): boolean {
  let i = 0;
  for (; i < line.length && i < 1000; i++) {
    const c = line[i] ?? 0;
    if (c === 0x3a) return i > 0;
    if (c === 0x20 || c === 0x09) break;
    if (c < 0x21 || c > 0x7e) return false;
  }
  if (i === 0) return false;
  for (; i < line.length && (line[i] === 0x20 || line[i] === 0x09); i++);
  return line[i] === 0x3a;
}

/** The printed value of an envelope record. */
function envelopeValue(type: RecType, payload: Buffer): string {
  const text = payload.toString("utf8");
  if (type === REC.TIME) {
    const m = /^(\d{1,12})\.\d{1,6}$/.exec(text);
    return m ? asctime(new Date(Number(m[1]) * 1000)) : text;
  }
  return text;
}

type State = "envelope" | "header" | "body";

/** Prints the records of one file; stops at the first bad record. */
export async function printQueueFile(
  fh: FileHandle,
  name: string,
  flags: PrintFlags,
  out: Output,
): Promise<PrintResult> {
  const scan = new RecordScanner(fh, 0, RECORD_LIMIT);
  const prefix = (offset: number, type: number): void => {
    if (flags.offsets) out.put(`${String(offset).padStart(9)} `);
    if (flags.decimal) out.put(`${String(type).padStart(3)} `);
  };
  const marker = (offset: number, type: number, text: string): void => {
    prefix(offset, type);
    out.put(`*** ${text} ${name} ***\n`);
  };
  const lineEach = flags.offsets || flags.verbose;
  if (flags.envelope) out.put(`*** ENVELOPE RECORDS ${name} ***\n`);
  let state: State = "envelope";
  let doPrint = flags.envelope;
  let prev = 0;
  let ended = false;
  const endLine = (): void => {
    if (doPrint && prev === REC.PART && !lineEach) out.put("\n");
  };
  for (;;) {
    const r = await scan.next();
    if (!r.ok) {
      endLine();
      return r;
    }
    if (r.rec === null) {
      endLine();
      return ended
        ? { ok: true }
        : { ok: false, offset: scan.offset, reason: "file ends without an end record (truncated)" };
    }
    const { type, offset, payload } = r.rec;
    if (ended) return { ok: false, offset, reason: "data after the end record" };
    if ((type === REC.LINE || type === REC.PART) && state !== "envelope") {
      const folded = payload[0] === 0x20 || payload[0] === 0x09;
      if (state === "header" && prev !== REC.PART && !folded && !isHeaderLine(payload)) {
        state = "body";
        doPrint = flags.body;
      }
      if (doPrint) {
        prefix(offset, type);
        if (flags.verbose) out.put(`${NAMES[type]}: `);
        out.put(payload);
        if (type === REC.LINE || lineEach) out.put("\n");
      }
    } else if (type === REC.MESSAGE) {
      if (flags.envelope) marker(offset, type, "MESSAGE CONTENTS");
      state = "header";
      doPrint = flags.header;
    } else if (type === REC.XTRA) {
      endLine();
      if (flags.envelope) marker(offset, type, "HEADER EXTRACTED");
      state = "envelope";
      doPrint = flags.envelope;
    } else if (type === REC.END) {
      if (flags.envelope) marker(offset, type, "MESSAGE FILE END");
      ended = true;
    } else if (doPrint) {
      prefix(offset, type);
      out.put(`${NAMES[type]}: ${envelopeValue(type, payload)}\n`);
    }
    prev = type;
    await out.maybeFlush();
  }
}
