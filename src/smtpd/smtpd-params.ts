/*
 * smtpd-params - the arguments of MAIL FROM and RCPT TO
 *
 * DESCRIPTION
 *   Parses "FROM:<address> [ESMTP parameters]" and "TO:<address> [...]"
 *   as RFC 5321 and its extensions define them: SIZE, BODY
 *   (7BIT, 8BITMIME; BINARYMIME is not offered, as in Postfix), SMTPUTF8, RET (FULL, HDRS), ENVID
 *   (xtext), AUTH (accepted and ignored without SASL), NOTIFY (NEVER or
 *   SUCCESS, FAILURE, DELAY), ORCPT (addr-type;xtext). Postfix's leniency:
 *   white space after the colon and a missing <> around a plain address
 *   are accepted. Every failure carries the reply Postfix gives.
 */

export interface MailArgs {
  address: string;
  size?: number;
  body?: "7BIT" | "8BITMIME" | "BINARYMIME";
  smtputf8: boolean;
  ret?: "FULL" | "HDRS";
  envid?: string;
}

export interface RcptArgs {
  address: string;
  notify?: number;
  orcpt?: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; reply: string };

const NOTIFY_BITS: Record<string, number> = { NEVER: 1, SUCCESS: 2, FAILURE: 4, DELAY: 8 };

/** Decodes xtext (RFC 3461): "+HH" escapes. */
export function xtextDecode(s: string): string | null {
  if (!/^([!-*,-<>-~]|\+[0-9A-F]{2})*$/.test(s)) return null;
  return s.replace(/\+([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** Splits "KEY:<addr> params" into the address and the parameter words. */
function splitPath(arg: string, key: string): { address: string; params: string[] } | null {
  const m = new RegExp(`^${key}:\\s*(.*)$`, "i").exec(arg);
  if (m === null) return null;
  const rest = m[1] ?? "";
  if (rest.startsWith("<")) {
    const end = rest.indexOf(">");
    if (end < 0) return null;
    const inner = rest.slice(1, end);
    const after = rest.slice(end + 1);
    if (after !== "" && !/^\s/.test(after)) return null;
    return {
      address: stripRoute(inner),
      params: after
        .trim()
        .split(/\s+/)
        .filter((p) => p !== ""),
    };
  }
  const [address = "", ...params] = rest.trim().split(/\s+/);
  if (address === "" || /[<>]/.test(address)) return null;
  return { address, params };
}

/** Drops an RFC 821 source route ("@a,@b:user@c" becomes "user@c"). */
function stripRoute(addr: string): string {
  const m = /^@[^:]+:(.*)$/.exec(addr);
  return m ? (m[1] ?? "") : addr;
}

/** Turns an address argument into internal form (quotes around the local part removed). */
function internal(address: string): string | null {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(address)) return null;
  const m = /^"((?:[^"\\]|\\.)*)"(@.*)?$/.exec(address);
  if (m) return (m[1] ?? "").replace(/\\(.)/g, "$1") + (m[2] ?? "");
  return address;
}

/** An ASCII host name, or one with UTF-8 labels (SMTPUTF8), or an address literal. */
const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;
const UTF8_LABEL = /^[\p{L}\p{N}](?:[\p{L}\p{N}\p{M}-]*[\p{L}\p{N}\p{M}])?$/u;

/**
 * Whether an address's domain is one Postfix's SMTP server would take: a
 * host name (labels of letters, digits and hyphens; U-labels only with
 * SMTPUTF8) or an address literal. A local address (no "@") is fine.
 */
export function validDomain(address: string, utf8: boolean): boolean {
  const at = address.lastIndexOf("@");
  if (at < 0) return true;
  const domain = address.slice(at + 1).replace(/\.$/, "");
  if (/^\[[^[\]\s]+\]$/.test(domain)) return true;
  const label = utf8 ? UTF8_LABEL : HOST_LABEL;
  return (
    domain.length > 0 &&
    domain.length <= 255 &&
    domain.split(".").every((l) => l.length <= 63 && label.test(l))
  );
}

/** Parses the MAIL FROM argument. */
export function parseMail(arg: string, sizeLimit: number): Parsed<MailArgs> {
  const p = splitPath(arg, "FROM");
  // "FROM:" with an address that does not parse is bad address syntax, as in Postfix; no "FROM:" is bad command syntax.
  if (p === null && /^\s*FROM:\s*\S/i.test(arg))
    return { ok: false, reply: "501 5.1.7 Bad sender address syntax" };
  if (p === null) return { ok: false, reply: "501 5.5.4 Syntax: MAIL FROM:<address>" };
  const address = internal(p.address);
  if (address === null) return { ok: false, reply: "501 5.1.7 Bad sender address syntax" };
  const out: MailArgs = { address, smtputf8: false };
  for (const word of p.params) {
    const [k = "", raw] = splitKv(word);
    const v = k === "BODY" || k === "RET" ? raw?.toUpperCase() : raw;
    if (k === "SIZE" && v !== undefined && /^\d+$/.test(v)) {
      // As Postfix: a size no file could have is refused as too big, not as bad syntax.
      if (v.length > 15)
        return { ok: false, reply: "552 5.3.4 Message size exceeds file system imposed limit" };
      out.size = Number(v);
      if (sizeLimit > 0 && out.size > sizeLimit)
        return { ok: false, reply: "552 5.3.4 Message size exceeds fixed limit" };
    } else if (k === "BODY" && (v === "7BIT" || v === "8BITMIME")) out.body = v;
    else if (k === "SMTPUTF8" && v === undefined) out.smtputf8 = true;
    else if (k === "RET") {
      if (out.ret !== undefined || (v !== "FULL" && v !== "HDRS"))
        return { ok: false, reply: "501 5.5.4 Bad RET parameter syntax" };
      out.ret = v;
    } else if (k === "ENVID") {
      const id = v !== undefined && v !== "" ? xtextDecode(v) : null;
      if (out.envid !== undefined || id === null)
        return { ok: false, reply: "501 5.5.4 Bad ENVID parameter syntax" };
      out.envid = id;
    } else if (k === "AUTH" && v !== undefined) continue;
    else return { ok: false, reply: `555 5.5.4 Unsupported option: ${word}` };
  }
  if (!validDomain(address, out.smtputf8)) return { ok: false, reply: "501 5.1.7 Bad sender address syntax" };
  return { ok: true, value: out };
}

/** Parses the RCPT TO argument (utf8: the transaction is SMTPUTF8). */
export function parseRcpt(arg: string, utf8 = false): Parsed<RcptArgs> {
  const p = splitPath(arg, "TO");
  if (p === null && /^\s*TO:\s*\S/i.test(arg))
    return { ok: false, reply: "501 5.1.3 Bad recipient address syntax" };
  if (p === null) return { ok: false, reply: "501 5.5.4 Syntax: RCPT TO:<address>" };
  const address = internal(p.address);
  if (address === null || address === "" || !validDomain(address, utf8))
    return { ok: false, reply: "501 5.1.3 Bad recipient address syntax" };
  const out: RcptArgs = { address };
  for (const word of p.params) {
    const [k = "", v] = splitKv(word);
    if (k === "NOTIFY" && v !== undefined) {
      if (out.notify !== undefined)
        return { ok: false, reply: "501 5.5.4 Error: Bad NOTIFY parameter syntax" };
      const bits = v
        .toUpperCase()
        .split(",")
        .map((n) => NOTIFY_BITS[n]);
      if (bits.some((b) => b === undefined) || (bits.includes(1) && bits.length > 1))
        return { ok: false, reply: "501 5.5.4 Error: Bad NOTIFY parameter syntax" };
      out.notify = bits.reduce<number>((a, b) => a | (b ?? 0), 0);
    } else if (k === "ORCPT" && v !== undefined) {
      const m = /^([A-Za-z0-9-]+);(.*)$/.exec(v);
      const decoded = m ? xtextDecode(m[2] ?? "") : null;
      if (m === null || decoded === null || out.orcpt !== undefined)
        return { ok: false, reply: "501 5.5.4 Error: Bad ORCPT parameter syntax" };
      out.orcpt = `${(m[1] ?? "").toLowerCase()};${decoded}`;
    } else return { ok: false, reply: `555 5.5.4 Unsupported option: ${word}` };
  }
  return { ok: true, value: out };
}

/** Splits "KEY=value" (key upper-cased). */
function splitKv(word: string): [string, string | undefined] {
  const eq = word.indexOf("=");
  return eq < 0 ? [word.toUpperCase(), undefined] : [word.slice(0, eq).toUpperCase(), word.slice(eq + 1)];
}
