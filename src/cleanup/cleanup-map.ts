/*
 * cleanup-map - canonical mapping, virtual alias expansion, masquerading
 *
 * SYNOPSIS
 *   const m = new AddressMapper(st, tables);
 *   const a = await m.map11(addr, maps, propagate);     // canonical: one to one
 *   const list = await m.map1n(addr);                   // virtual: one to many
 *   const b = await m.masquerade(addr);
 *
 * DESCRIPTION
 *   Addresses are in internal form; tables are searched with the external
 *   (quoted) form, in the order of Postfix's mail_addr_find (user+ext@domain,
 *   user@domain, user+ext and user for a local domain, @domain). A result
 *   that starts with "@" keeps the local part (without its extension). A
 *   result is an address list: each address is rewritten to standard form
 *   (local context) and, when propagate_unmatched_extensions names the
 *   mapping, gets the extension that the search removed.
 *
 *   map11 (canonical) follows results up to 10 times and stops when an
 *   address maps to itself; a multi-valued result uses the first address
 *   with a warning.
 *   map1n (virtual_alias_maps) expands recursively: an address that maps
 *   to itself (among others) is kept and not expanded again; more than
 *   virtual_alias_expansion_limit addresses, nesting deeper than
 *   virtual_alias_recursion_limit, or a result longer than
 *   virtual_alias_address_length_limit make the message a temporary
 *   failure ("4.6.0 Alias expansion error") and the address is left as it
 *   was. Loops end there too: a loop is unbounded nesting.
 *   masquerade strips the subdomains of masquerade_domains ("!domain"
 *   excludes one) unless the local part is in masquerade_exceptions.
 *
 *   A table that fails temporarily makes the message a temporary failure
 *   (never "not found"); the address is then left as it is.
 */
import { addrFind } from "../global/dict-search.js";
import { quote822Local, unquote822Local } from "../global/quote-822-local.js";
import { rewriteExternal } from "../global/rewrite-addr.js";
import { tok822AddrExternal, tok822Grep, tok822Parse } from "../global/tok822.js";
import type { CleanupState } from "./cleanup-state.js";
import type { CleanupTables, NamedMaps } from "./cleanup-tables.js";

const MAP11_RECURSION = 10;
const LOOKUP_FAILED = "4.3.0 Error: temporary lookup table failure";
const EXPANSION_FAILED = "4.6.0 Alias expansion error";

export type MapResult =
  { status: "found"; addrs: string[] } | { status: "notfound" } | { status: "tempfail" };

/** Inserts an extension before the last "@" (or at the end). */
function withExtension(addr: string, ext: string | undefined): string {
  if (ext === undefined) return addr;
  const at = addr.lastIndexOf("@");
  return at < 0 ? addr + ext : addr.slice(0, at) + ext + addr.slice(at);
}

export class AddressMapper {
  readonly #st: CleanupState;
  readonly #t: CleanupTables;

  constructor(st: CleanupState, t: CleanupTables) {
    this.#st = st;
    this.#t = t;
  }

  /** Looks an internal-form address up; the result is a list of internal-form addresses (mail_addr_map). */
  async lookup(maps: NamedMaps, addr: string, propagate: boolean): Promise<MapResult> {
    const ext = quote822Local(addr);
    const r = await addrFind(maps.lookup, ext, this.#t.find);
    if (r.status === "notfound") return r;
    if (r.status === "tempfail") {
      this.#st.tempfail(
        `${maps.title} map lookup problem for ${addr} -- message not accepted, try again later`,
        LOOKUP_FAILED,
      );
      return { status: "tempfail" };
    }
    let value = r.value;
    if (value.startsWith("@")) {
      const at = addr.lastIndexOf("@");
      let local = at < 0 ? addr : addr.slice(0, at);
      if (r.extension !== undefined) local = local.slice(0, local.length - r.extension.length);
      value = quote822Local(local + value);
    }
    if (value === "<>") value = '""';
    const addrs = tok822Grep(tok822Parse(value, this.#t.tokenLimit)).map((a) => {
      const canonical = rewriteExternal(this.#t.rewrite, "local", tok822AddrExternal(a));
      return withExtension(unquote822Local(canonical), propagate ? r.extension : undefined);
    });
    if (addrs.length === 0) {
      this.#st.tempfail(
        `${maps.title} lookup of ${addr} returns non-address result "${r.value}"`,
        LOOKUP_FAILED,
      );
      return { status: "tempfail" };
    }
    return { status: "found", addrs };
  }

  /** One-to-one mapping (canonical maps); returns the new address (the old one on failure). */
  async map11(addr: string, maps: NamedMaps, propagate: boolean): Promise<string> {
    let cur = addr;
    for (let n = 0; n < MAP11_RECURSION; n++) {
      const r = await this.lookup(maps, cur, propagate);
      if (r.status !== "found") return cur;
      if (r.addrs.length > 1) this.#st.warn(`multi-valued ${maps.title} entry for ${cur}`);
      const next = r.addrs[0] ?? cur;
      const self = next.toLowerCase() === cur.toLowerCase();
      cur = next;
      if (self) return cur;
    }
    this.#st.warn(
      `unreasonable ${maps.title} map nesting for ${addr} -- message not accepted, try again later`,
    );
    return cur;
  }

  /** Fails the message for an expansion problem and returns the address unexpanded. */
  #expansionError(warning: string, addr: string): string[] {
    this.#st.tempfail(warning, EXPANSION_FAILED);
    return [addr];
  }

  /** One-to-many mapping with recursion (virtual_alias_maps); returns the expansion. */
  async map1n(addr: string): Promise<string[]> {
    const maps = this.#t.virtual;
    if (maps === null) return [addr];
    const out = [addr];
    const self = new Set<string>();
    for (let i = 0; i < out.length; i++) {
      if (out.length > this.#t.virtualExpansionLimit)
        return this.#expansionError(`unreasonable ${maps.title} map expansion size for ${addr}`, addr);
      for (let depth = 0; ; depth++) {
        const cur = out[i] ?? "";
        if (self.has(cur.toLowerCase())) break;
        if (depth >= this.#t.virtualRecursionLimit)
          return this.#expansionError(`unreasonable ${maps.title} map nesting for ${addr}`, addr);
        const r = await this.lookup(maps, cur, this.#t.propagateVirtual);
        if (r.status === "tempfail") return [addr];
        if (r.status === "notfound") break;
        for (const [k, a] of r.addrs.entries()) {
          if (a.length > this.#t.virtualAddressLengthLimit)
            return this.#expansionError(`unreasonable ${maps.title} result ${a.slice(0, 300)}...`, addr);
          if (k === 0) out[i] = a;
          else out.push(a);
          if (a.toLowerCase() === cur.toLowerCase()) self.add(cur.toLowerCase());
        }
      }
    }
    return out;
  }

  /** Strips subdomains of masquerade_domains from an internal-form address. */
  async masquerade(addr: string): Promise<string> {
    const ext = quote822Local(addr);
    const at = ext.lastIndexOf("@");
    if (at < 0 || this.#t.masqDomains.length === 0) return addr;
    const domain = ext.slice(at + 1).toLowerCase();
    if (this.#t.masqException !== null) {
      try {
        if (await this.#t.masqException(ext.slice(0, at))) return addr;
      } catch (err) {
        this.#st.tempfail(`masquerade_exceptions lookup problem: ${(err as Error).message}`, LOOKUP_FAILED);
        return addr;
      }
    }
    for (const entry of this.#t.masqDomains) {
      const strip = (entry.length - entry.replace(/^!+/, "").length) % 2 === 0;
      const masq = entry.replace(/^!+/, "").toLowerCase();
      if (masq === "") continue;
      if (masq === domain) break;
      if (domain.length > masq.length && domain.endsWith(`.${masq}`)) {
        return strip ? unquote822Local(`${ext.slice(0, at + 1)}${masq}`) : addr;
      }
    }
    return addr;
  }
}
