/*
 * resolve-host - is a recipient domain a valid host name or address literal?
 *
 * SYNOPSIS
 *   import { validHostname, validMailhostLiteral, validHostaddr, mailhostAddr } from "./resolve-host.js";
 *   validHostname("mx.example.com", smtputf8)   // true
 *   validMailhostLiteral("[IPv6:2001:db8::1]")  // true
 *   mailhostAddr("IPv6:2001:db8::1")            // "2001:db8::1" (or null)
 *
 * DESCRIPTION
 *   The checks that Postfix's resolver makes on the domain of a resolved
 *   recipient (valid_hostname, valid_utf8_hostname, valid_mailhost_literal,
 *   valid_hostaddr):
 *
 *   validHostname: labels of letters, digits, "_" and "-" (not at the
 *   start or end of a label), at most 63 characters each, separated by
 *   single dots, at most 255 characters, not all-numeric. With smtputf8
 *   enabled a non-ASCII name is checked in its IDNA (A-label) form.
 *
 *   validMailhostLiteral: "[1.2.3.4]" or "[IPv6:...]", nothing after "]".
 *   mailhostAddr: the bare address of what is inside the brackets, or null.
 *   validHostaddr: a bare IPv4 or IPv6 address (resolve_numeric_domain).
 *   IPv4 addresses have four decimal octets of at most 255; "0.x.y.z" is
 *   refused unless it is all zeros, as in Postfix.
 */
import { domainToASCII } from "node:url";
import { parseIpv6 } from "./dict-ipaddr.js";

const LABEL_MAX = 63;
const HOSTNAME_MAX = 255;

/** Checks an ASCII host name (valid_hostname). */
function validAsciiHostname(name: string): boolean {
  if (name === "" || name.length > HOSTNAME_MAX) return false;
  let label = 0;
  let nonNumeric = false;
  for (let i = 0; i < name.length; i++) {
    const ch = name[i] ?? "";
    const next = name[i + 1];
    if (/[A-Za-z0-9_]/.test(ch)) {
      if (++label > LABEL_MAX) return false;
      if (!/[0-9]/.test(ch)) nonNumeric = true;
    } else if (ch === ".") {
      if (label === 0 || next === undefined) return false;
      label = 0;
    } else if (ch === "-") {
      nonNumeric = true;
      if (++label === 1 || next === undefined || next === ".") return false;
    } else {
      return false;
    }
  }
  return nonNumeric;
}

/** Checks a host name; with utf8, non-ASCII names are checked in their A-label form. */
export function validHostname(name: string, utf8: boolean): boolean {
  if (name === "") return false;
  // eslint-disable-next-line no-control-regex
  if (utf8 && /[^\x00-\x7f]/.test(name)) {
    const ascii = domainToASCII(name);
    return ascii !== "" && validAsciiHostname(ascii);
  }
  return validAsciiHostname(name);
}

/** Checks a dotted-quad IPv4 address as Postfix does (valid_ipv4_hostaddr). */
export function validIpv4(addr: string): boolean {
  const parts = addr.split(".");
  if (parts.length !== 4) return false;
  if (!parts.every((p) => /^[0-9]+$/.test(p) && Number(p) <= 255)) return false;
  return !(Number(parts[0]) === 0 && /[^0.]/.test(addr));
}

/** Checks a bare IPv6 address. */
export function validIpv6(addr: string): boolean {
  return parseIpv6(addr) !== null;
}

/** A bare IPv4 or IPv6 address (valid_hostaddr). */
export function validHostaddr(addr: string): boolean {
  return addr.includes(":") ? validIpv6(addr) : validIpv4(addr);
}

/** The bare address of an address-literal body ("1.2.3.4", "IPv6:::1"), or null (valid_mailhost_addr). */
export function mailhostAddr(body: string): string | null {
  if (body.slice(0, 5).toLowerCase() === "ipv6:") {
    const bare = body.slice(5);
    return validIpv6(bare) ? bare : null;
  }
  return validIpv4(body) ? body : null;
}

/** Checks "[address]" (valid_mailhost_literal). */
export function validMailhostLiteral(literal: string): boolean {
  if (!literal.startsWith("[")) return false;
  const close = literal.indexOf("]");
  if (close < 0 || close !== literal.length - 1) return false;
  return mailhostAddr(literal.slice(1, close)) !== null;
}
