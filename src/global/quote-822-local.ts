/*
 * quote-822-local - convert an address between internal and external form
 *
 * SYNOPSIS
 *   import { quote822Local, unquote822Local } from "./quote-822-local.js";
 *   quote822Local('john doe@example.com')      // '"john doe"@example.com'
 *   unquote822Local('"john doe"@example.com')  // 'john doe@example.com'
 *
 * DESCRIPTION
 *   Inside the mail system an address is kept in internal form: the local
 *   part without RFC 5322 quoting. Message headers, SMTP commands and
 *   lookup-table keys use the external form, in which a local part that is
 *   not a dot-atom is written as a quoted string.
 *
 *   quote822Local() looks at the local part (the text before the last "@",
 *   after a source route "@a,@b:" if there is one). When it is a dot-atom it
 *   is kept as is; otherwise it becomes a quoted string, with a backslash
 *   before '"', '\' and CR. 8-bit characters need no quoting (RFC 6531).
 *   The empty address becomes '""'.
 *
 *   unquote822Local() removes the quotes and backslashes of the local part;
 *   the text after the last unquoted "@" and a source route are copied as
 *   they are. For every internal-form address a,
 *   unquote822Local(quote822Local(a)) === a.
 */

// eslint-disable-next-line no-control-regex
const NEEDS_QUOTE = /[\x00-\x20\x7f()<>@,;:\\".[\]]/;

/** True when a local part is an RFC 5322 dot-atom (8-bit characters allowed). */
function isDotAtom(local: string): boolean {
  if (local === "" || local.startsWith(".") || local.endsWith(".") || local.includes("..")) return false;
  for (const word of local.split(".")) if (NEEDS_QUOTE.test(word)) return false;
  return true;
}

/** Where the local part starts: after a source route "@a,@b:", else 0. */
function localStart(addr: string): number {
  if (!addr.startsWith("@")) return 0;
  const colon = addr.indexOf(":");
  return colon < 0 ? 0 : colon + 1;
}

/** Options of quote822Local. */
export interface QuoteOptions {
  /** The whole address is a local part (no domain to split off). */
  bareLocalPart?: boolean;
}

/** Quotes a local part (no route, no domain) unless it is a dot-atom. */
export function quote822LocalPart(local: string): string {
  return isDotAtom(local) ? local : `"${local.replace(/["\\\r]/g, (c) => `\\${c}`)}"`;
}

/** Internal to external form: quotes the local part when it is not a dot-atom. */
export function quote822Local(addr: string, opts: QuoteOptions = {}): string {
  const start = localStart(addr);
  const at = opts.bareLocalPart === true ? -1 : addr.lastIndexOf("@");
  const end = at >= start ? at : addr.length;
  return `${addr.slice(0, start)}${quote822LocalPart(addr.slice(start, end))}${addr.slice(end)}`;
}

/** External to internal form: removes the quoting of the local part. */
export function unquote822Local(addr: string): string {
  const start = localStart(addr);
  let out = addr.slice(0, start);
  let inQuote = false;
  let bareAtOut = -1;
  let bareAtIn = -1;
  for (let i = start; i < addr.length; i++) {
    const c = addr[i] ?? "";
    if (c === '"') {
      inQuote = !inQuote;
      continue;
    }
    if (c === "@" && !inQuote) {
      bareAtOut = out.length;
      bareAtIn = i;
    } else if (c === "\\") {
      if (i + 1 >= addr.length) continue;
      i++;
      out += addr[i] ?? "";
      continue;
    }
    out += c;
  }
  return bareAtOut < 0 ? out : out.slice(0, bareAtOut) + addr.slice(bareAtIn);
}
