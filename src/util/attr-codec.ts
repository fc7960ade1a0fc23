/*
 * attr-codec - framed attribute lists for daemon-to-daemon messages
 *
 * SYNOPSIS
 *   import { attrList, encodeFrame, FrameDecoder, attrString, attrInt } from "../util/attr-codec.js";
 *   const frame = encodeFrame({ queue_id: "4Fz2", count: 3 }, 65536);
 *   const dec = new FrameDecoder({ maxFrame: 65536 });
 *   const r = dec.push(chunk); // { ok: true, frames } | { ok: false, code, reason }
 *
 * DESCRIPTION
 *   The wire format of the internal protocol. A frame is a 4-byte big-endian
 *   payload length followed by the payload. The payload is a sequence of
 *   attributes, each
 *     1 byte   name length, 1..64
 *     n bytes  name, ASCII [a-z0-9_]
 *     4 bytes  value length, big-endian
 *     m bytes  value (opaque; strings are UTF-8, integers are decimal text)
 *   A frame holds at most ATTR_COUNT_MAX attributes; a name may occur once.
 *   An empty payload is a valid, empty list.
 *
 *   encodeFrame() is for local callers: it throws AttrCodecError (stable
 *   `code`) when the caller asks for something the format cannot carry.
 *   FrameDecoder is for peer input: it never throws; a bad frame is a typed
 *   failure, and a failed decoder stays failed (the stream is out of sync).
 *   The decoder rejects an announced length above maxFrame before it buffers
 *   any of the payload, and it holds at most maxFrame + 4 bytes.
 *
 * SEE ALSO
 *   attr-schema.ts (validation on receipt), attr-server.ts, attr-client.ts.
 */

import { isUtf8 } from "node:buffer";

/** Size of the length prefix of a frame. */
export const FRAME_HEADER_SIZE = 4;
/** Longest attribute name. */
export const ATTR_NAME_MAX = 64;
/** Default cap on the number of attributes in one frame. */
export const ATTR_COUNT_MAX = 1024;
/** Largest maxFrame that a codec accepts (1 GiB); real services use far less. */
export const FRAME_LIMIT_MAX = 1 << 30;

/** An attribute list as it travels: names to raw values. */
export type AttrList = Map<string, Buffer>;
/** A value accepted by attrList(): strings become UTF-8, integers decimal text. */
export type AttrValue = string | number | Buffer;
/** A plain object that attrList() turns into an AttrList. */
export type AttrInput = Readonly<Record<string, AttrValue>>;

/** Stable codes of codec failures. */
export type AttrCodecCode =
  "EFRAMETOOBIG" | "EMALFORMED" | "EDUPATTR" | "ETOOMANYATTRS" | "EBADNAME" | "EBADVALUE";
/** Codes that the decoder reports for bad peer input. */
export type FrameFailureCode = "EFRAMETOOBIG" | "EMALFORMED" | "EDUPATTR" | "ETOOMANYATTRS";
/** The decoder's typed failure. */
export type FrameFailure = { ok: false; code: FrameFailureCode; reason: string };
/** What one push() yields. */
export type PushResult = { ok: true; frames: AttrList[] } | FrameFailure;
/** What decodePayload() yields. */
export type PayloadResult = { ok: true; attrs: AttrList } | FrameFailure;

/** Thrown by the encoding side for a request that the format cannot carry. */
export class AttrCodecError extends Error {
  readonly code: AttrCodecCode;
  /** Records the stable code next to the message. */
  constructor(code: AttrCodecCode, message: string) {
    super(message);
    this.name = "AttrCodecError";
    this.code = code;
  }
}

const NAME_RE = /^[a-z0-9_]{1,64}$/;
const DECIMAL_RE = /^(0|-?[1-9][0-9]{0,15})$/;

/** True if `name` is a valid attribute name. */
export function isAttrName(name: string): boolean {
  return NAME_RE.test(name);
}

/** Throws RangeError unless maxFrame is an integer in 0..FRAME_LIMIT_MAX (a local bug). */
export function checkMaxFrame(maxFrame: number): void {
  if (!Number.isSafeInteger(maxFrame) || maxFrame < 0 || maxFrame > FRAME_LIMIT_MAX) {
    throw new RangeError(`bad maxFrame: ${maxFrame}`);
  }
}

/** Converts one value to its wire form; numbers must be safe integers. */
function valueBytes(name: string, value: AttrValue): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === "string") return Buffer.from(value, "utf8");
  if (!Number.isSafeInteger(value)) {
    throw new AttrCodecError("EBADVALUE", `attribute ${name}: ${value} is not a safe integer`);
  }
  return Buffer.from(String(value), "latin1");
}

/** Builds an AttrList from a plain object, checking names and values. */
export function attrList(input: AttrInput): AttrList {
  const out: AttrList = new Map();
  for (const [name, value] of Object.entries(input)) {
    if (!isAttrName(name))
      throw new AttrCodecError("EBADNAME", `bad attribute name: ${JSON.stringify(name)}`);
    out.set(name, valueBytes(name, value));
  }
  return out;
}

/** Size of the payload that `attrs` encodes to; throws for bad names or too many attributes. */
function payloadSize(attrs: AttrList): number {
  if (attrs.size > ATTR_COUNT_MAX) {
    throw new AttrCodecError("ETOOMANYATTRS", `${attrs.size} attributes, limit ${ATTR_COUNT_MAX}`);
  }
  let size = 0;
  for (const [name, value] of attrs) {
    if (!isAttrName(name))
      throw new AttrCodecError("EBADNAME", `bad attribute name: ${JSON.stringify(name)}`);
    size += 1 + name.length + 4 + value.length;
  }
  return size;
}

/** Encodes one frame (length prefix included); throws AttrCodecError if the payload exceeds maxFrame. */
export function encodeFrame(attrs: AttrList | AttrInput, maxFrame: number): Buffer {
  checkMaxFrame(maxFrame);
  const list = attrs instanceof Map ? attrs : attrList(attrs);
  const size = payloadSize(list);
  if (size > maxFrame)
    throw new AttrCodecError("EFRAMETOOBIG", `frame payload ${size} bytes, limit ${maxFrame}`);
  const buf = Buffer.allocUnsafe(FRAME_HEADER_SIZE + size);
  let off = buf.writeUInt32BE(size, 0);
  for (const [name, value] of list) {
    off = buf.writeUInt8(name.length, off);
    off += buf.write(name, off, "latin1");
    off = buf.writeUInt32BE(value.length, off);
    off += value.copy(buf, off);
  }
  return buf;
}

/** A failure result (helper). */
function failure(code: FrameFailureCode, reason: string): FrameFailure {
  return { ok: false, code, reason };
}

/** True if bytes [start, end) of buf are all in [a-z0-9_]. */
function nameBytesOk(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf.readUInt8(i);
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x5f)) return false;
  }
  return true;
}

/** Parses one payload into an AttrList; values are views into `payload`. Never throws. */
export function decodePayload(payload: Buffer, maxAttrs = ATTR_COUNT_MAX): PayloadResult {
  const attrs: AttrList = new Map();
  let off = 0;
  while (off < payload.length) {
    if (attrs.size >= maxAttrs) return failure("ETOOMANYATTRS", `more than ${maxAttrs} attributes`);
    const nameLen = payload.readUInt8(off);
    if (nameLen < 1 || nameLen > ATTR_NAME_MAX) return failure("EMALFORMED", `bad name length ${nameLen}`);
    const nameEnd = off + 1 + nameLen;
    if (nameEnd + 4 > payload.length) return failure("EMALFORMED", "truncated attribute");
    if (!nameBytesOk(payload, off + 1, nameEnd)) return failure("EMALFORMED", "bad attribute name");
    const name = payload.toString("latin1", off + 1, nameEnd);
    const valueLen = payload.readUInt32BE(nameEnd);
    const start = nameEnd + 4;
    if (valueLen > payload.length - start) return failure("EMALFORMED", `truncated value of ${name}`);
    if (attrs.has(name)) return failure("EDUPATTR", `duplicate attribute ${name}`);
    attrs.set(name, payload.subarray(start, start + valueLen));
    off = start + valueLen;
  }
  return { ok: true, attrs };
}

/** Reads a UTF-8 string attribute; undefined if absent or not valid UTF-8. */
export function attrString(attrs: AttrList, name: string): string | undefined {
  const raw = attrs.get(name);
  if (raw === undefined) return undefined;
  return isUtf8(raw) ? raw.toString("utf8") : undefined;
}

/** Parses strict decimal wire text ("0", "-12", no "+", no leading zeros) into a safe integer. */
export function parseDecimal(raw: Buffer): number | undefined {
  if (raw.length === 0 || raw.length > 17) return undefined;
  const text = raw.toString("latin1");
  if (!DECIMAL_RE.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Reads an integer attribute; undefined if absent or not a strict decimal safe integer. */
export function attrInt(attrs: AttrList, name: string): number | undefined {
  const raw = attrs.get(name);
  return raw === undefined ? undefined : parseDecimal(raw);
}

/** Streaming decoder: bytes in, complete attribute lists out, bounded memory. */
export class FrameDecoder {
  readonly maxFrame: number;
  readonly maxAttrs: number;
  #head = Buffer.alloc(FRAME_HEADER_SIZE);
  #headLen = 0;
  #want = -1; // announced payload length of the frame in progress, -1 while reading the header
  #parts: Buffer[] = [];
  #partsLen = 0;
  #failure: FrameFailure | null = null;

  /** maxFrame bounds the payload; maxAttrs bounds the attributes per frame. */
  constructor(opts: { maxFrame: number; maxAttrs?: number }) {
    checkMaxFrame(opts.maxFrame);
    this.maxFrame = opts.maxFrame;
    this.maxAttrs = opts.maxAttrs ?? ATTR_COUNT_MAX;
  }

  /** Bytes held for the frame in progress (never more than maxFrame + 4). */
  get buffered(): number {
    return this.#headLen + this.#partsLen;
  }

  /** True while part of a frame has arrived but not all of it. */
  get inFrame(): boolean {
    return this.buffered > 0 || this.#want >= 0;
  }

  /** The failure that ended this decoder, or null. */
  get failure(): FrameFailure | null {
    return this.#failure;
  }

  /** Consumes a chunk; returns the frames it completed, or the failure (sticky). */
  push(chunk: Buffer): PushResult {
    if (this.#failure !== null) return this.#failure;
    const frames: AttrList[] = [];
    let off = 0;
    while (off < chunk.length || this.#want === 0) {
      off = this.#want < 0 ? this.#takeHead(chunk, off) : this.#takeBody(chunk, off, frames);
      if (this.#failure !== null) return this.#failure;
    }
    return { ok: true, frames };
  }

  /** Reads length-prefix bytes; rejects a too-large announcement before buffering its payload. */
  #takeHead(chunk: Buffer, off: number): number {
    const n = Math.min(FRAME_HEADER_SIZE - this.#headLen, chunk.length - off);
    chunk.copy(this.#head, this.#headLen, off, off + n);
    this.#headLen += n;
    if (this.#headLen < FRAME_HEADER_SIZE) return off + n;
    const want = this.#head.readUInt32BE(0);
    if (want > this.maxFrame) {
      this.#failure = failure("EFRAMETOOBIG", `announced frame ${want} bytes, limit ${this.maxFrame}`);
      return chunk.length;
    }
    this.#want = want;
    return off + n;
  }

  /** Reads payload bytes; decodes the frame once it is complete. */
  #takeBody(chunk: Buffer, off: number, frames: AttrList[]): number {
    const n = Math.min(this.#want - this.#partsLen, chunk.length - off);
    let payload: Buffer;
    if (this.#partsLen === 0 && n === this.#want) {
      payload = Buffer.from(chunk.subarray(off, off + n)); // whole payload in this chunk: one copy
    } else {
      if (n > 0) this.#parts.push(Buffer.from(chunk.subarray(off, off + n))); // copy: never pin a chunk
      this.#partsLen += n;
      if (this.#partsLen < this.#want) return off + n;
      payload = Buffer.concat(this.#parts, this.#partsLen);
    }
    this.#reset();
    const r = decodePayload(payload, this.maxAttrs);
    if (r.ok) frames.push(r.attrs);
    else this.#failure = r;
    return off + n;
  }

  /** Forgets the frame just completed. */
  #reset(): void {
    this.#headLen = 0;
    this.#want = -1;
    this.#parts = [];
    this.#partsLen = 0;
  }
}
