/*
 * dict-tcp - tcp: tables, the Postfix line-based lookup protocol
 *
 * SYNOPSIS
 *   dictOpen("tcp:127.0.0.1:9901")
 *   dictOpen("tcp:[::1]:9901")
 *
 * DESCRIPTION
 *   tcp_table(5): the client sends "get SPACE key NEWLINE" and the server
 *   answers one line of at most 4096 bytes including the newline:
 *     200 SPACE data    found
 *     500 SPACE text    not found
 *     400 SPACE text    temporary failure (the connection is closed)
 *   In requests and replies, "%", white space and every byte that is not
 *   printable ASCII are written as %XX (hexadecimal, any case); the client
 *   encodes every key, so a key can never break the line protocol.
 *
 *   The connection is reused between lookups and closed after 60 seconds
 *   without one. When the server cannot be reached, or the reply is cut
 *   short or too long, the lookup is tried again after a pause, up to 10
 *   times as in Postfix, and then fails temporarily; a malformed reply or
 *   an unknown status fails temporarily at once. Each attempt must finish
 *   within 100 seconds. dictTcpSetLimits() changes these numbers (tests).
 *   Keys are folded only with FOLD_MUL; this is a pattern table.
 */
import { msg, printable } from "../util/msg.js";
import { parseEndpoint } from "./dict-cf.js";
import { NetClient, NetError } from "./dict-netclient.js";
import { dictSurrogate } from "./dict-registry.js";
import { DictFlag, errorText, foldKey, found, NOT_FOUND, tempFail } from "./dict-types.js";
import type { DictImpl, DictResult } from "./dict-types.js";

/** The protocol limits (Postfix's defaults). */
const limits = { timeoutMs: 100_000, maxTries: 10, pauseMs: 1000, maxLine: 4096, idleMs: 60_000 };

/** Changes the protocol limits (tests). */
export function dictTcpSetLimits(l: Partial<typeof limits>): void {
  Object.assign(limits, l);
}

/** Encodes a string for the protocol: "%", white space and non-printable bytes become %XX. */
export function hexQuote(s: string): string {
  let out = "";
  for (const b of Buffer.from(s, "utf8")) {
    out +=
      b > 0x20 && b < 0x7f && b !== 0x25
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Decodes %XX sequences; null when a "%" is not followed by two hexadecimal digits. */
export function hexUnquote(s: string): string | null {
  const bytes: number[] = [];
  const raw = Buffer.from(s, "utf8");
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i] ?? 0;
    if (b !== 0x25) {
      bytes.push(b);
      continue;
    }
    const hex = raw.subarray(i + 1, i + 3).toString("latin1");
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
    bytes.push(parseInt(hex, 16));
    i += 2;
  }
  return Buffer.from(bytes).toString("utf8");
}

/** Sleeps. */
function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A tcp: table. */
class TcpDict implements DictImpl {
  readonly type = "tcp";
  readonly name: string;
  readonly flags: number;
  #client: NetClient;

  /** Keeps the endpoint; connects on the first lookup. */
  constructor(name: string, flags: number, client: NetClient) {
    this.name = name;
    this.flags = flags | DictFlag.PATTERN;
    this.#client = client;
  }

  /** Sends the request and reads the reply line, retrying as the protocol says. */
  async #ask(request: string): Promise<string | NetError> {
    let last: NetError = new NetError("IO", "no attempt");
    for (let tries = 0; tries < limits.maxTries; tries++) {
      if (tries > 0) await pause(limits.pauseMs);
      try {
        return await this.#client.exchange(limits.timeoutMs, async (conn, deadline) => {
          conn.write(request);
          return await conn.readLine(limits.maxLine - 1, deadline);
        });
      } catch (err) {
        last = err instanceof NetError ? err : new NetError("IO", errorText(err));
        msg.warn(`read TCP map reply from ${this.name}: ${last.message}`);
        if (last.code === "PROTOCOL") break;
      }
    }
    return last;
  }

  /** Looks up a key. */
  async lookup(rawKey: string): Promise<DictResult> {
    const key = foldKey(rawKey, this.flags, "pattern");
    const reply = await this.#ask(`get ${hexQuote(key)}\n`);
    if (reply instanceof NetError) return tempFail(`tcp:${this.name}: ${reply.message}`);
    const text = /^[0-9]{3}[ \t]/.test(reply) ? hexUnquote(reply.slice(4)) : null;
    if (text === null) {
      msg.warn(`read TCP map reply from ${this.name}: malformed reply: ${printable(reply, 100)}`);
      this.#client.drop();
      return tempFail(`tcp:${this.name}: malformed reply`);
    }
    switch (reply[0]) {
      case "2":
        return found(text);
      case "5":
        return NOT_FOUND;
      case "4":
        this.#client.drop();
        return tempFail(`tcp:${this.name}: server error: ${printable(text, 200)}`);
      default:
        msg.warn(`read TCP map reply from ${this.name}: bad status code: ${printable(reply, 100)}`);
        this.#client.drop();
        return tempFail(`tcp:${this.name}: bad status code`);
    }
  }

  /** Closes the connection. */
  close(): void {
    this.#client.close();
  }
}

/** Opens a tcp: table; the name is host:port. */
export function tcpOpen(name: string, flags: number): DictImpl {
  const ep = name.startsWith("unix:") ? null : parseEndpoint(name, null);
  if (ep === null) return dictSurrogate("tcp", name, flags, `bad name "tcp:${name}"; need "tcp:host:port"`);
  if ((flags & DictFlag.NO_UNAUTH) !== 0) {
    return dictSurrogate("tcp", name, flags, "tcp tables are not allowed for security-sensitive data");
  }
  const client = new NetClient(ep, {
    idleMs: limits.idleMs,
    maxAgeMs: Infinity,
    maxBuffer: limits.maxLine * 4,
  });
  return new TcpDict(name, flags, client);
}
