/*
 * smtpd-xclient - XCLIENT and XFORWARD, and the HAProxy PROXY protocol
 *
 * DESCRIPTION
 *   ehloExtensions() is the EHLO keyword list (less smtpd_discard_ehlo_keywords).
 *   XCLIENT (for smtpd_authorized_xclient_hosts) lets a trusted proxy
 *   say who the real client is: NAME, REVERSE_NAME, ADDR, PORT, PROTO,
 *   HELO, LOGIN, DESTADDR, DESTPORT, each xtext-encoded, NAME and
 *   REVERSE_NAME also [UNAVAILABLE] or [TEMPUNAVAIL]. The session then
 *   starts over as that client (a new 220 greeting). XFORWARD (for
 *   smtpd_authorized_xforward_hosts) records NAME, ADDR, PORT, PROTO,
 *   HELO, IDENT and SOURCE for the next message only: the queue file gets
 *   the forwarded client, the Received: header the real one. Neither is
 *   allowed inside a mail transaction. Replies are Postfix's.
 *
 *   readProxyHeader() reads the HAProxy PROXY protocol header (version 1
 *   text or version 2 binary) that an upstream proxy sends before any
 *   SMTP (smtpd_upstream_proxy_protocol = haproxy), within
 *   smtpd_upstream_proxy_timeout; LOCAL and UNKNOWN keep the real peer.
 */
import { isIP } from "node:net";
import type { PeerNames, SmtpdEnv } from "./smtpd-env.js";
import type { SmtpReader } from "./smtpd-reader.js";
import { xtextDecode } from "./smtpd-params.js";

export const XCLIENT_ATTRS = [
  "NAME",
  "ADDR",
  "PORT",
  "PROTO",
  "HELO",
  "LOGIN",
  "DESTADDR",
  "DESTPORT",
  "REVERSE_NAME",
];
export const XFORWARD_ATTRS = ["NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"];

export type XParse = { ok: true; attrs: Map<string, string> } | { ok: false; reply: string };

const UNAVAILABLE = "[UNAVAILABLE]";
const TEMPUNAVAIL = "[TEMPUNAVAIL]";

/** The EHLO keywords for this client: the standard ones less the discarded, plus the X commands it may use. */
export function ehloExtensions(env: SmtpdEnv, xclient: boolean, xforward: boolean): string[] {
  const ext = [
    "PIPELINING",
    `SIZE ${env.sizeLimit > 0 ? env.sizeLimit : ""}`.trim(),
    "VRFY",
    "ETRN",
    "ENHANCEDSTATUSCODES",
    "8BITMIME",
    "DSN",
    "SMTPUTF8",
    "CHUNKING",
  ];
  if (xclient) ext.push(`XCLIENT ${XCLIENT_ATTRS.join(" ")}`);
  if (xforward) ext.push(`XFORWARD ${XFORWARD_ATTRS.join(" ")}`);
  return ext.filter(
    (e) => !env.discardEhlo.has(e.split(" ")[0] ?? "") && !(e === "VRFY" && env.vrfyDisabled),
  );
}

/** An address argument without "IPV6:", or null when it is not an address. */
function plainAddr(v: string): string | null {
  const a = v.replace(/^IPV6:/i, "");
  return isIP(a) !== 0 ? a.toLowerCase() : null;
}

/** Checks one attribute's value; the reply for a bad one, else null. */
function badValue(verb: string, name: string, v: string): string | null {
  const special = v === UNAVAILABLE || v === TEMPUNAVAIL;
  const ok =
    special ||
    (name === "ADDR" || name === "DESTADDR"
      ? plainAddr(v) !== null
      : name === "PORT" || name === "DESTPORT"
        ? /^\d{1,5}$/.test(v) && Number(v) <= 65535
        : name === "PROTO"
          ? verb === "XFORWARD" || /^E?SMTP$/i.test(v)
          : name === "NAME" || name === "REVERSE_NAME"
            ? /^[A-Za-z0-9._-]{1,255}$/.test(v)
            : v.length <= 255);
  return ok ? null : `501 5.5.4 Bad ${name} syntax: ${v}`;
}

/** Parses "NAME=value ..." for XCLIENT or XFORWARD. */
export function parseXattrs(verb: "XCLIENT" | "XFORWARD", arg: string): XParse {
  const allowed = verb === "XCLIENT" ? XCLIENT_ATTRS : XFORWARD_ATTRS;
  const words = arg.split(/\s+/).filter((w) => w !== "");
  if (words.length === 0) return { ok: false, reply: `501 5.5.4 Syntax: ${verb} attribute=value...` };
  const attrs = new Map<string, string>();
  for (const w of words) {
    const eq = w.indexOf("=");
    if (eq <= 0) return { ok: false, reply: `501 5.5.4 Syntax: ${verb} attribute=value...` };
    const name = w.slice(0, eq).toUpperCase();
    if (!allowed.includes(name)) return { ok: false, reply: `501 5.5.4 Bad ${verb} attribute name: ${name}` };
    const value = xtextDecode(w.slice(eq + 1));
    if (value === null) return { ok: false, reply: `501 5.5.4 Bad ${name} syntax: ${w.slice(eq + 1)}` };
    const bad = badValue(verb, name, value);
    if (bad !== null) return { ok: false, reply: bad };
    attrs.set(name, value);
  }
  return { ok: true, attrs };
}

/** A NAME value as a name and its lookup status. */
export function xName(v: string): { name: string; code: "ok" | "perm" | "temp" } {
  if (v === UNAVAILABLE) return { name: "unknown", code: "perm" };
  if (v === TEMPUNAVAIL) return { name: "unknown", code: "temp" };
  return { name: v.toLowerCase(), code: "ok" };
}

/** An ADDR value as a plain address (null for [UNAVAILABLE] and the like). */
export function xAddr(v: string): string | null {
  return plainAddr(v);
}

export type ProxyHeader = { ok: true; addr: string | null; port: number } | { ok: false; reason: string };

const V2_SIG = Buffer.from("0d0a0d0a000d0a515549540a", "hex");

/** Reads exactly n bytes, or null. */
async function take(r: SmtpReader, n: number, timeoutMs: number): Promise<Buffer | null> {
  const parts: Buffer[] = [];
  const ok = await r.bytes(n, timeoutMs, (p) => {
    parts.push(p);
    return Promise.resolve();
  });
  return ok ? Buffer.concat(parts) : null;
}

/** Reads a PROXY protocol v1 or v2 header. */
export async function readProxyHeader(r: SmtpReader, timeoutMs: number): Promise<ProxyHeader> {
  const head = await take(r, 5, timeoutMs);
  if (head === null) return { ok: false, reason: "lost connection while reading the proxy header" };
  if (head.toString("latin1") === "PROXY") {
    const line = await r.line(107, timeoutMs);
    if (line === null || line.cut || line.end !== "crlf") return { ok: false, reason: "bad v1 proxy header" };
    const f = line.text.toString("latin1").trim().split(" ");
    if (f[0] === "UNKNOWN") return { ok: true, addr: null, port: 0 };
    const addr = f[1] ?? "";
    const fam = f[0] === "TCP4" ? 4 : f[0] === "TCP6" ? 6 : 0;
    const port = Number(f[3]);
    if (f.length !== 5 || isIP(addr) !== fam || fam === 0 || !/^\d{1,5}$/.test(f[3] ?? "") || port > 65535)
      return { ok: false, reason: `bad v1 proxy header: ${line.text.toString("latin1").slice(0, 107)}` };
    return { ok: true, addr, port };
  }
  const rest = await take(r, V2_SIG.length - head.length, timeoutMs);
  if (rest === null || !Buffer.concat([head, rest]).equals(V2_SIG))
    return { ok: false, reason: "bad proxy header" };
  const meta = await take(r, 4, timeoutMs);
  if (meta === null) return { ok: false, reason: "lost connection while reading the proxy header" };
  const [verCmd = 0, fam = 0] = meta;
  const len = meta.readUInt16BE(2);
  const body = len > 0 ? await take(r, len, timeoutMs) : Buffer.alloc(0);
  if (body === null || verCmd >> 4 !== 2) return { ok: false, reason: "bad v2 proxy header" };
  if ((verCmd & 0xf) === 0) return { ok: true, addr: null, port: 0 };
  if (fam === 0x11 && len >= 12)
    return { ok: true, addr: [...body.subarray(0, 4)].join("."), port: body.readUInt16BE(8) };
  if (fam === 0x21 && len >= 36) {
    const words: string[] = [];
    for (let i = 0; i < 16; i += 2) words.push(body.readUInt16BE(i).toString(16));
    const addr = new URL(`http://[${words.join(":")}]/`).hostname.replace(/^\[|\]$/g, "");
    return { ok: true, addr, port: body.readUInt16BE(32) };
  }
  if (fam === 0x00) return { ok: true, addr: null, port: 0 };
  return { ok: false, reason: `unsupported v2 proxy address family ${fam}` };
}

/** Who the client is, as XCLIENT can change it. */
export interface XIdentity {
  peer: PeerNames;
  addr: string;
  helo: string;
  esmtp: boolean;
  login: string | null;
}

/** The identity after an XCLIENT command's attributes. */
export function xclientApply(cur: XIdentity, a: Map<string, string>): XIdentity {
  let peer = cur.peer;
  const name = a.get("NAME");
  if (name !== undefined) {
    const n = xName(name);
    peer = { ...peer, name: n.name, nameCode: n.code, reverseName: n.name, reverseCode: n.code };
  }
  const rev = a.get("REVERSE_NAME");
  if (rev !== undefined) {
    const n = xName(rev);
    peer = { ...peer, reverseName: n.name, reverseCode: n.code };
  }
  const addr = a.get("ADDR");
  const helo = a.get("HELO");
  const proto = a.get("PROTO");
  const login = a.get("LOGIN");
  const known = (v: string | undefined): v is string =>
    v !== undefined && v !== UNAVAILABLE && v !== TEMPUNAVAIL;
  return {
    peer,
    addr: addr === undefined ? cur.addr : (xAddr(addr) ?? "unknown"),
    helo: known(helo) ? helo : "",
    esmtp: proto === undefined ? cur.esmtp : proto.toUpperCase() === "ESMTP",
    login: known(login) ? login : login === undefined ? cur.login : null,
  };
}

/** The queue file's client attributes and the log's "client=" text, with XFORWARD values where given. */
export function forwarded(
  fwd: Map<string, string>,
  real: { name: string; addr: string; helo: string; proto: string },
): { name: string; addr: string; helo: string; proto: string; log: string } {
  const get = (k: string): string | undefined => {
    const v = fwd.get(k);
    return v === undefined || v === UNAVAILABLE || v === TEMPUNAVAIL ? undefined : v;
  };
  const name = get("NAME") ?? real.name;
  const addrRaw = get("ADDR");
  const addr = addrRaw === undefined ? real.addr : (xAddr(addrRaw) ?? real.addr);
  let log = `client=${real.name}[${real.addr}]`;
  const ident = get("IDENT");
  if (ident !== undefined) log += `, orig_queue_id=${ident}`;
  if (fwd.has("NAME") || fwd.has("ADDR")) log += `, orig_client=${name}[${addr}]`;
  return { name, addr, helo: get("HELO") ?? real.helo, proto: get("PROTO") ?? real.proto, log };
}
