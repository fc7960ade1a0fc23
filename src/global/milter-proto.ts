/*
 * milter-proto - the Sendmail milter protocol (versions 2 to 6): packets and replies
 *
 * SYNOPSIS
 *   const pkt = encodePacket(SMFIC.HELO, cstr("client.example"));
 *   const dec = new PacketDecoder(MILTER_PACKET_MAX); dec.push(bytes) -> packets | failure
 *   const r = decodeReply(pkt);   // a typed reply or { kind: "bad", why }
 *
 * DESCRIPTION
 *   Every packet is a 4-byte big-endian length (the command byte
 *   included), one command byte and the data. Strings are NUL-terminated,
 *   numbers are 32-bit big-endian. The MTA sends commands (SMFIC_*); the
 *   milter answers with replies (SMFIR_*). This module knows the bytes and
 *   nothing of sessions: milter-client.ts drives the conversation.
 *
 *   A packet announced longer than the cap (MILTER_PACKET_MAX), a zero
 *   length, a reply whose data does not fit its type (missing NUL, short
 *   number, trailing bytes, an SMTP reply that is not 4xx/5xx) is a
 *   failure, never an exception: a milter is a peer, not a trusted module.
 */

/** Commands the MTA sends. */
export const SMFIC = {
  ABORT: 0x41, // A
  BODY: 0x42, // B
  CONNECT: 0x43, // C
  MACRO: 0x44, // D
  BODYEOB: 0x45, // E
  HELO: 0x48, // H
  QUIT_NC: 0x4b, // K
  HEADER: 0x4c, // L
  MAIL: 0x4d, // M
  EOH: 0x4e, // N
  OPTNEG: 0x4f, // O
  QUIT: 0x51, // Q
  RCPT: 0x52, // R
  DATA: 0x54, // T
  UNKNOWN: 0x55, // U
} as const;

/** Replies the milter sends. */
export const SMFIR = {
  ADDRCPT: 0x2b, // +
  DELRCPT: 0x2d, // -
  ADDRCPT_PAR: 0x32, // 2
  SHUTDOWN: 0x34, // 4
  ACCEPT: 0x61, // a
  REPLBODY: 0x62, // b
  CONTINUE: 0x63, // c
  DISCARD: 0x64, // d
  CHGFROM: 0x65, // e
  CONN_FAIL: 0x66, // f
  ADDHEADER: 0x68, // h
  INSHEADER: 0x69, // i
  SETSYMLIST: 0x6c, // l
  CHGHEADER: 0x6d, // m
  PROGRESS: 0x70, // p
  QUARANTINE: 0x71, // q
  REJECT: 0x72, // r
  SKIP: 0x73, // s
  TEMPFAIL: 0x74, // t
  REPLYCODE: 0x79, // y
  OPTNEG: 0x4f, // O
} as const;

/** Modifications the milter may ask for (the actions of the option negotiation). */
export const SMFIF = {
  ADDHDRS: 0x01,
  CHGBODY: 0x02,
  ADDRCPT: 0x04,
  DELRCPT: 0x08,
  CHGHDRS: 0x10,
  QUARANTINE: 0x20,
  CHGFROM: 0x40,
  ADDRCPT_PAR: 0x80,
  SETSYMLIST: 0x100,
} as const;

/** Every action this MTA carries out. */
export const MY_ACTIONS = 0x1ff;

/** Protocol flags: events the milter does not want, replies it will not send, extensions. */
export const SMFIP = {
  NOCONNECT: 1 << 0,
  NOHELO: 1 << 1,
  NOMAIL: 1 << 2,
  NORCPT: 1 << 3,
  NOBODY: 1 << 4,
  NOHDRS: 1 << 5,
  NOEOH: 1 << 6,
  NR_HDR: 1 << 7,
  NOUNKNOWN: 1 << 8,
  NODATA: 1 << 9,
  SKIP: 1 << 10,
  RCPT_REJ: 1 << 11,
  NR_CONN: 1 << 12,
  NR_HELO: 1 << 13,
  NR_MAIL: 1 << 14,
  NR_RCPT: 1 << 15,
  NR_DATA: 1 << 16,
  NR_UNKN: 1 << 17,
  NR_EOH: 1 << 18,
  NR_BODY: 1 << 19,
  HDR_LEADSPC: 1 << 20,
} as const;

/** The events that a "don't send" flag can suppress. */
export const NOSEND_MASK =
  SMFIP.NOCONNECT |
  SMFIP.NOHELO |
  SMFIP.NOMAIL |
  SMFIP.NORCPT |
  SMFIP.NOBODY |
  SMFIP.NOHDRS |
  SMFIP.NOEOH |
  SMFIP.NOUNKNOWN |
  SMFIP.NODATA;

/** The "no reply" flags. */
export const NOREPLY_MASK =
  SMFIP.NR_CONN |
  SMFIP.NR_HELO |
  SMFIP.NR_MAIL |
  SMFIP.NR_RCPT |
  SMFIP.NR_DATA |
  SMFIP.NR_UNKN |
  SMFIP.NR_HDR |
  SMFIP.NR_EOH |
  SMFIP.NR_BODY;

const V2_MASK =
  SMFIP.NOCONNECT | SMFIP.NOHELO | SMFIP.NOMAIL | SMFIP.NORCPT | SMFIP.NOBODY | SMFIP.NOHDRS | SMFIP.NOEOH;
const V3_MASK = V2_MASK | SMFIP.NOUNKNOWN;
const V4_MASK = V3_MASK | SMFIP.NODATA;
const V6_MASK = V4_MASK | SMFIP.SKIP | SMFIP.RCPT_REJ | NOREPLY_MASK | SMFIP.HDR_LEADSPC;

/** The protocol flags each version defines (versions 2, 3, 4 and 6; 5 was never released). */
export function versionMask(version: number): number {
  if (version >= 6) return V6_MASK;
  if (version >= 4) return V4_MASK;
  if (version === 3) return V3_MASK;
  return V2_MASK;
}

/** Macro stages of the option negotiation's symbol lists (SMFIM_*). */
export const SMFIM = { CONNECT: 0, HELO: 1, ENVFROM: 2, ENVRCPT: 3, DATA: 4, EOM: 5, EOH: 6 } as const;

/** The largest packet accepted from a milter (a body chunk is at most 64 KiB; 1 MiB leaves room). */
export const MILTER_PACKET_MAX = (1 << 20) + 64;
/** The largest body chunk sent to a milter. */
export const MILTER_CHUNK = 65535;

/** One packet: command or reply byte and its data. */
export interface Packet {
  cmd: number;
  data: Buffer;
}

/** A NUL-terminated string. */
export function cstr(s: string | Buffer): Buffer {
  const b = typeof s === "string" ? Buffer.from(s, "latin1") : s;
  return Buffer.concat([b, Buffer.alloc(1)]);
}

/** A 32-bit big-endian number. */
export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** Builds a packet from a command and its data parts. */
export function encodePacket(cmd: number, ...parts: Buffer[]): Buffer {
  const data = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(data.length + 1);
  head[4] = cmd;
  return Buffer.concat([head, data]);
}

/** Splits a byte stream into packets, refusing lengths of 0 or above the cap. */
export class PacketDecoder {
  #max: number;
  #buf: Buffer = Buffer.alloc(0);
  failed: string | null = null;

  constructor(max: number) {
    this.#max = max;
  }

  /** Adds bytes; returns the packets now complete, or a failure text. */
  push(chunk: Buffer): { ok: true; packets: Packet[] } | { ok: false; why: string } {
    if (this.failed !== null) return { ok: false, why: this.failed };
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: Packet[] = [];
    while (this.#buf.length >= 4) {
      const len = this.#buf.readUInt32BE(0);
      if (len === 0) return this.#fail("bad packet length: 0");
      if (len > this.#max) return this.#fail(`unreasonable packet length: ${len} > ${this.#max}`);
      if (this.#buf.length < 4 + len) break;
      out.push({ cmd: this.#buf[4] ?? 0, data: Buffer.from(this.#buf.subarray(5, 4 + len)) });
      this.#buf = this.#buf.subarray(4 + len);
    }
    return { ok: true, packets: out };
  }

  /** Records a failure. */
  #fail(why: string): { ok: false; why: string } {
    this.failed = why;
    this.#buf = Buffer.alloc(0);
    return { ok: false, why };
  }
}

/** What a milter said, decoded. */
export type Reply =
  | { kind: "optneg"; version: number; actions: number; protocol: number; symlists: Map<number, string> }
  | { kind: "accept" }
  | { kind: "continue" }
  | { kind: "discard" }
  | { kind: "reject" }
  | { kind: "tempfail" }
  | { kind: "shutdown" }
  | { kind: "conn_fail" }
  | { kind: "skip" }
  | { kind: "progress" }
  | { kind: "replycode"; reply: string }
  | { kind: "quarantine"; reason: string }
  | { kind: "addheader"; name: string; value: string }
  | { kind: "insheader"; index: number; name: string; value: string }
  | { kind: "chgheader"; index: number; name: string; value: string }
  | { kind: "addrcpt"; address: string; args: string }
  | { kind: "delrcpt"; address: string }
  | { kind: "chgfrom"; address: string; args: string }
  | { kind: "replbody"; data: Buffer }
  | { kind: "setsymlist"; stage: number; macros: string }
  | { kind: "bad"; why: string };

/** Reads NUL-terminated strings and numbers from packet data, remembering the first error. */
class Fields {
  #d: Buffer;
  #i = 0;
  error: string | null = null;

  constructor(d: Buffer) {
    this.#d = d;
  }

  /** A 32-bit number. */
  num(): number {
    if (this.#i + 4 > this.#d.length) {
      this.error ??= "packet too short for network long";
      return 0;
    }
    const n = this.#d.readUInt32BE(this.#i);
    this.#i += 4;
    return n;
  }

  /** A NUL-terminated string. */
  str(): string {
    const end = this.#d.indexOf(0, this.#i);
    if (end < 0) {
      this.error ??= "missing string null terminator";
      this.#i = this.#d.length;
      return "";
    }
    const s = this.#d.subarray(this.#i, end).toString("latin1");
    this.#i = end + 1;
    return s;
  }

  /** True when every byte was read. */
  get done(): boolean {
    return this.#i >= this.#d.length;
  }
}

/** An SMTP reply a milter may give: 4xx or 5xx, an optional enhanced code, text; multi-line allowed. */
export function validSmtpReply(s: string): boolean {
  if (s.length > 4096 || !/^[45]\d\d[ -]/.test(s)) return false;
  const lines = s.split(/\r?\n/);
  const code = s.slice(0, 3);
  return lines.every(
    (l, i) =>
      l.startsWith(code) &&
      (l[3] === (i === lines.length - 1 ? " " : "-") || (i === lines.length - 1 && l.length === 3)) &&
      // eslint-disable-next-line no-control-regex
      !/[\x00-\x08\x0a-\x1f\x7f]/.test(l),
  );
}

/** Decodes a reply packet (see the module comment for what fails). */
export function decodeReply(p: Packet): Reply {
  const f = new Fields(p.data);
  const empty = (kind: "accept" | "continue" | "discard" | "reject" | "tempfail" | "shutdown"): Reply =>
    p.data.length === 0
      ? { kind }
      : { kind: "bad", why: `reply "${kind}" followed by ${p.data.length} bytes` };
  let r: Reply;
  switch (p.cmd) {
    case SMFIR.ACCEPT:
      return empty("accept");
    case SMFIR.CONTINUE:
      return empty("continue");
    case SMFIR.DISCARD:
      return empty("discard");
    case SMFIR.REJECT:
      return empty("reject");
    case SMFIR.TEMPFAIL:
      return empty("tempfail");
    case SMFIR.SHUTDOWN:
      return empty("shutdown");
    case SMFIR.CONN_FAIL:
      return { kind: "conn_fail" };
    case SMFIR.SKIP:
      return { kind: "skip" };
    case SMFIR.PROGRESS:
      return { kind: "progress" };
    case SMFIR.REPLBODY:
      return { kind: "replbody", data: p.data };
    case SMFIR.OPTNEG:
      return decodeOptneg(f);
    case SMFIR.REPLYCODE: {
      const reply = f.str().replace(/\r?\n$/, "");
      if (f.error === null && !validSmtpReply(reply))
        return { kind: "bad", why: `malformed reply: ${reply.slice(0, 100)}` };
      r = { kind: "replycode", reply };
      break;
    }
    case SMFIR.QUARANTINE:
      r = { kind: "quarantine", reason: f.str() };
      break;
    case SMFIR.ADDHEADER:
      r = { kind: "addheader", name: f.str(), value: f.str() };
      break;
    case SMFIR.INSHEADER:
      r = { kind: "insheader", index: f.num(), name: f.str(), value: f.str() };
      break;
    case SMFIR.CHGHEADER:
      r = { kind: "chgheader", index: f.num(), name: f.str(), value: f.str() };
      break;
    case SMFIR.ADDRCPT:
      r = { kind: "addrcpt", address: f.str(), args: "" };
      break;
    case SMFIR.ADDRCPT_PAR: {
      const address = f.str();
      r = { kind: "addrcpt", address, args: f.done ? "" : f.str() };
      break;
    }
    case SMFIR.DELRCPT:
      r = { kind: "delrcpt", address: f.str() };
      break;
    case SMFIR.CHGFROM: {
      const address = f.str();
      r = { kind: "chgfrom", address, args: f.done ? "" : f.str() };
      break;
    }
    case SMFIR.SETSYMLIST:
      r = { kind: "setsymlist", stage: f.num(), macros: f.str() };
      break;
    default:
      return { kind: "bad", why: `unknown reply code 0x${p.cmd.toString(16)}` };
  }
  if (f.error !== null) return { kind: "bad", why: f.error };
  if (!f.done) return { kind: "bad", why: `reply ${String.fromCharCode(p.cmd)} has trailing data` };
  return checkFields(r);
}

/** Checks the fields of a header or address reply. */
function checkFields(r: Reply): Reply {
  if ((r.kind === "addheader" || r.kind === "insheader" || r.kind === "chgheader") && !validName(r.name))
    return { kind: "bad", why: `bad header name: ${r.name.slice(0, 100)}` };
  if ((r.kind === "addrcpt" || r.kind === "delrcpt" || r.kind === "chgfrom") && r.address.length > 2048)
    return { kind: "bad", why: "address too long" };
  return r;
}

/** A header name: printable ASCII without colon or space. */
function validName(name: string): boolean {
  return /^[!-9;-~]{1,256}$/.test(name);
}

/** Decodes the option negotiation reply with its optional macro lists. */
function decodeOptneg(f: Fields): Reply {
  const version = f.num();
  const actions = f.num();
  const protocol = f.num();
  const symlists = new Map<number, string>();
  while (f.error === null && !f.done && symlists.size < 16) {
    const stage = f.num();
    const list = f.str();
    if (f.error === null) symlists.set(stage, list);
  }
  if (f.error !== null) return { kind: "bad", why: f.error };
  if (!f.done) return { kind: "bad", why: "too many macro lists" };
  return { kind: "optneg", version, actions, protocol, symlists };
}
