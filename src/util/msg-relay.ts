/*
 * msg-relay - the master's reader of a daemon child's log records
 *
 * SYNOPSIS
 *   import { relayChildLog } from "../util/msg-relay.js";
 *   relayChildLog(child.stderr, { tag: "postern/smtpd", pid: child.pid }, sink);
 *
 * DESCRIPTION
 *   A daemon child writes its log as records on its standard error (RecordSink in
 *   msg-sinks.ts), a pipe the master reads; the master is the single log writer.
 *   relayChildLog reads that pipe line by line and writes each record to the sink in
 *   the child's name: the tag and pid come from the master, never from the child.
 *   Any other line (a Node crash trace, a stray console.log) becomes a warning in the
 *   child's name; blank lines are skipped. Only a child started with onBehalf (the
 *   postlogd service, which logs for the postlog command) may name another tag and
 *   pid, in records of their own kind (encodeOnBehalf).
 *
 *   The child is not trusted with the master's memory: a line longer than maxLine
 *   bytes is cut there (the text ends in "...") and the rest of it is discarded up to
 *   the next newline; binary junk comes out as printable text; a last line without
 *   newline is delivered when the stream ends. Nothing here throws: a read error is
 *   one warning, and a sink that throws loses that line only.
 *
 * SEE ALSO
 *   msg-sinks.ts (the record format), msg.ts (the MsgSink interface)
 */

import type { Readable } from "node:stream";
import { decodeOnBehalf, decodeRecord } from "./msg-sinks.js";
import type { MsgLevel, MsgSink } from "./msg.js";

/** Default longest line, in bytes, taken from a child (a record of 4096 characters fits). */
export const RELAY_MAX_LINE = 16384;

/** Who the lines of a stream belong to. */
export interface ChildIdentity {
  tag: string;
  pid: number;
}

/** Splits bytes into lines of at most max bytes; over-long lines are cut, their rest discarded. */
class LineCutter {
  readonly #max: number;
  readonly #onLine: (line: Buffer, cut: boolean) => void;
  #parts: Buffer[] = [];
  #size = 0;
  #discarding = false;

  constructor(max: number, onLine: (line: Buffer, cut: boolean) => void) {
    this.#max = max;
    this.#onLine = onLine;
  }

  /** Takes one chunk; calls onLine for each line it completes. */
  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(0x0a, pos);
      const end = nl === -1 ? chunk.length : nl;
      if (!this.#discarding) this.#take(chunk.subarray(pos, end), nl !== -1);
      else if (nl !== -1) this.#discarding = false;
      if (nl === -1) return;
      pos = nl + 1;
    }
  }

  /** Delivers a last line that has no newline. */
  end(): void {
    if (this.#size > 0) this.#finish(false);
    this.#discarding = false;
  }

  /** Adds a piece of the current line; complete means a newline ended it. */
  #take(piece: Buffer, complete: boolean): void {
    const room = this.#max - this.#size;
    if (piece.length > room) {
      this.#add(piece.subarray(0, room));
      this.#finish(true);
      this.#discarding = !complete;
    } else if (complete) {
      this.#add(piece);
      this.#finish(false);
    } else if (piece.length > 0) {
      this.#add(Buffer.from(piece));
    }
  }

  /** Appends bytes to the current line. */
  #add(piece: Buffer): void {
    if (piece.length === 0) return;
    this.#parts.push(piece);
    this.#size += piece.length;
  }

  /** Hands the current line over and starts a new one. */
  #finish(cut: boolean): void {
    const parts = this.#parts;
    const line = parts.length === 1 && parts[0] !== undefined ? parts[0] : Buffer.concat(parts, this.#size);
    this.#parts = [];
    this.#size = 0;
    this.#onLine(line, cut);
  }
}

/** Writes one line to the sink, swallowing what the sink throws. */
function deliver(sink: MsgSink, who: ChildIdentity, level: MsgLevel, text: string): void {
  try {
    sink.write(level, who.tag, who.pid, text);
  } catch {
    /* that line is lost; the relay goes on */
  }
}

/** Turns one line from a child into a log line: a record as is, anything else as a warning. */
function relayLine(line: Buffer, cut: boolean, who: ChildIdentity, sink: MsgSink, onBehalf: boolean): void {
  const end = line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
  const raw = line.toString("utf8", 0, end);
  const other = onBehalf ? decodeOnBehalf(raw) : null;
  if (other !== null) return deliver(sink, other, other.level, other.text);
  const parsed = decodeRecord(raw);
  const text = cut && !parsed.text.endsWith("...") ? `${parsed.text}...` : parsed.text;
  if (parsed.record) deliver(sink, who, parsed.level, text);
  else if (text.trim() !== "") deliver(sink, who, "warning", text);
}

/** Reads a child's standard error and writes its records and other lines to sink; never throws. */
export function relayChildLog(
  stream: Readable,
  who: ChildIdentity,
  sink: MsgSink,
  opts: { maxLine?: number; onBehalf?: boolean } = {},
): void {
  const max = Math.max(16, opts.maxLine ?? RELAY_MAX_LINE);
  const onBehalf = opts.onBehalf === true;
  const cutter = new LineCutter(max, (line, cut) => relayLine(line, cut, who, sink, onBehalf));
  let failed = false;
  stream.on("data", (chunk: Buffer | string) => {
    try {
      cutter.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    } catch {
      /* relayLine does not throw; this is belt and braces */
    }
  });
  stream.on("end", () => cutter.end());
  stream.on("close", () => cutter.end());
  stream.on("error", (err: Error) => {
    if (failed) return;
    failed = true;
    cutter.end();
    const code = (err as NodeJS.ErrnoException).code ?? err.message;
    deliver(sink, who, "warning", `reading log records from this process: ${code}`);
  });
}
