/*
 * dict-union - tables made of tables: unionmap and pipemap
 *
 * SYNOPSIS
 *   dictOpen("unionmap:{ hash:/etc/postfix/a, inline:{x=y} }")
 *   dictOpen("pipemap:{ regexp:/etc/postfix/first, hash:/etc/postfix/second }")
 *
 * DESCRIPTION
 *   unionmap: sends each query to every table and joins the results that
 *   were found with commas, in table order; not found when no table finds
 *   the key.
 *   pipemap: sends the query to the first table, and each result becomes
 *   the query for the next table; the last table's result is the answer,
 *   and the chain stops (not found) at the first table that has no result.
 *   For both, a temporary failure of any table is the answer.
 *
 *   The member tables are opened with the same flags through dictOpen, so
 *   they are shared with other users. The first member decides whether the
 *   whole is a fixed-string or a pattern table.
 */
import { dictOpen, dictSurrogate } from "./dict-registry.js";
import { braceTokens, stripBraces } from "./dict-parse.js";
import { DictFlag, found, NOT_FOUND, type Dict, type DictImpl, type DictResult } from "./dict-types.js";

/** Parses "{ type:name, ... }" into member specs, or explains what is wrong. */
function memberSpecs(type: string, name: string): string[] | { error: string } {
  const body = stripBraces(name, false);
  const specs = "error" in body ? [] : braceTokens(body.text);
  const bad = `bad syntax: "${type}:${name}"; need "${type}:{type:name...}"`;
  if (specs.length === 0) return { error: bad };
  for (const s of specs) if (s.indexOf(":") <= 0) return { error: bad };
  return specs;
}

/** unionmap (all results, joined with commas) or pipemap (each result is the next query). */
class MultiDict implements DictImpl {
  readonly type: "unionmap" | "pipemap";
  readonly name: string;
  readonly flags: number;
  #members: Dict[];

  /** Opens the members. */
  constructor(type: "unionmap" | "pipemap", name: string, flags: number, specs: string[]) {
    this.type = type;
    this.name = name;
    this.#members = specs.map((s) => dictOpen(s, { flags }));
    const first = this.#members[0];
    const match = first === undefined ? DictFlag.PATTERN : first.flags & (DictFlag.FIXED | DictFlag.PATTERN);
    this.flags = flags | match;
  }

  /** Looks up a key as the type says. */
  lookup(key: string): Promise<DictResult> {
    return this.type === "unionmap" ? this.#union(key) : this.#pipe(key);
  }

  /** Queries every member in order and joins what they find. */
  async #union(key: string): Promise<DictResult> {
    const values: string[] = [];
    for (const m of this.#members) {
      const r = await m.lookup(key);
      if (r.status === "tempfail") return r;
      if (r.status === "found") values.push(r.value);
    }
    return values.length > 0 ? found(values.join(",")) : NOT_FOUND;
  }

  /** Passes the query down the chain of members. */
  async #pipe(key: string): Promise<DictResult> {
    let query = key;
    for (const m of this.#members) {
      const r = await m.lookup(query);
      if (r.status !== "found") return r;
      query = r.value;
    }
    return found(query);
  }

  /** Releases the members. */
  close(): void {
    for (const m of this.#members) m.close();
  }
}

/** Opens a unionmap: table. */
export function unionmapOpen(name: string, flags: number): DictImpl {
  const specs = memberSpecs("unionmap", name);
  if (!Array.isArray(specs)) return dictSurrogate("unionmap", name, flags, specs.error);
  return new MultiDict("unionmap", name, flags, specs);
}

/** Opens a pipemap: table. */
export function pipemapOpen(name: string, flags: number): DictImpl {
  const specs = memberSpecs("pipemap", name);
  if (!Array.isArray(specs)) return dictSurrogate("pipemap", name, flags, specs.error);
  return new MultiDict("pipemap", name, flags, specs);
}
