/*
 * dict-inline - tables given in their name: inline, static, randmap, environ, fail
 *
 * SYNOPSIS
 *   dictOpen("inline:{ key=value, { key = value with spaces } }")
 *   dictOpen("static:value")            dictOpen("static:{ value with spaces }")
 *   dictOpen("randmap:{ a, b, b }")     dictOpen("environ:")     dictOpen("fail:why")
 *
 * DESCRIPTION
 *   inline:  name=value pairs separated by commas or whitespace; a pair in
 *            "{ }" may contain whitespace around "=" and in the value. A
 *            later pair replaces an earlier one. Fixed-string keys, folded
 *            with FOLD_FIX.
 *   static:  every lookup finds the name itself ("{ }" strips the braces and
 *            the whitespace inside them). A fixed-string table: it also
 *            answers partial keys.
 *   randmap: every lookup finds one of the listed results at random; a
 *            result given twice is twice as likely. A pattern table.
 *   environ: the key is the name of a process environment variable.
 *   fail:    every lookup fails temporarily; the name is only for logging.
 *
 * DIAGNOSTICS
 *   A bad name makes the table unusable (a surrogate that fails every
 *   lookup temporarily) and is logged as a warning.
 */
import { dictSurrogate } from "./dict-registry.js";
import { braceTokens, splitNameValue, stripBraces } from "./dict-parse.js";
import {
  DictFlag,
  foldKey,
  found,
  NOT_FOUND,
  tempFail,
  type DictImpl,
  type DictResult,
} from "./dict-types.js";

/** An in-memory fixed-string table. */
class MapDict implements DictImpl {
  readonly type: string;
  readonly name: string;
  readonly flags: number;
  #map: Map<string, string>;

  /** Wraps a map whose keys are already folded as the flags ask. */
  constructor(type: string, name: string, flags: number, map: Map<string, string>) {
    this.type = type;
    this.name = name;
    this.flags = flags | DictFlag.FIXED;
    this.#map = map;
  }

  /** Finds a key. */
  lookup(key: string): DictResult {
    const v = this.#map.get(foldKey(key, this.flags, "fixed"));
    return v === undefined ? NOT_FOUND : found(v);
  }

  /** Nothing to release. */
  close(): void {}
}

/** Parses the body of an inline: table name into a map. */
export function parseInline(name: string, flags: number): Map<string, string> | { error: string } {
  const body = stripBraces(name, false);
  if ("error" in body) return { error: `${body.error}; need "inline:{name=value...}"` };
  const map = new Map<string, string>();
  for (let tok of braceTokens(body.text)) {
    if (tok.startsWith("{")) {
      const inner = stripBraces(tok, true);
      if ("error" in inner) return inner;
      tok = inner.text;
    }
    const nv = splitNameValue(tok);
    if ("error" in nv) return { error: `${nv.error}; need "inline:{name=value...}"` };
    map.set(foldKey(nv.name, flags | DictFlag.FIXED, "fixed"), nv.value);
  }
  if (map.size === 0) return { error: `empty table; need "inline:{name=value...}"` };
  return map;
}

/** Opens an inline: table. */
export function inlineOpen(name: string, flags: number): DictImpl {
  const map = parseInline(name, flags);
  if (!(map instanceof Map)) return dictSurrogate("inline", name, flags, map.error);
  return new MapDict("inline", name, flags, map);
}

/** A table whose every lookup finds one value. */
class StaticDict implements DictImpl {
  readonly type = "static";
  readonly name: string;
  readonly flags: number;
  #value: string;

  /** Remembers the value. */
  constructor(name: string, flags: number, value: string) {
    this.name = name;
    this.flags = flags | DictFlag.FIXED;
    this.#value = value;
  }

  /** Finds the value, whatever the key. */
  lookup(_key: string): DictResult {
    return found(this.#value);
  }

  /** Nothing to release. */
  close(): void {}
}

/** Opens a static: table. */
export function staticOpen(name: string, flags: number): DictImpl {
  if (!name.startsWith("{")) return new StaticDict(name, flags, name);
  const v = stripBraces(name, true);
  if ("error" in v) return dictSurrogate("static", name, flags, `bad static:name syntax: ${v.error}`);
  return new StaticDict(name, flags, v.text);
}

/** A table that picks one of its results at random. */
class RandomDict implements DictImpl {
  readonly type = "randmap";
  readonly name: string;
  readonly flags: number;
  #values: string[];

  /** Remembers the results. */
  constructor(name: string, flags: number, values: string[]) {
    this.name = name;
    this.flags = flags | DictFlag.PATTERN;
    this.#values = values;
  }

  /** Finds a random result. */
  lookup(_key: string): DictResult {
    return found(this.#values[Math.floor(Math.random() * this.#values.length)] ?? "");
  }

  /** Nothing to release. */
  close(): void {}
}

/** Opens a randmap: table. */
export function randmapOpen(name: string, flags: number): DictImpl {
  const body = stripBraces(name, false);
  const values = "error" in body ? [] : braceTokens(body.text);
  if (values.length === 0) {
    return dictSurrogate("randmap", name, flags, `bad syntax: "randmap:${name}"; need "randmap:{value...}"`);
  }
  return new RandomDict(name, flags, values);
}

/** The process environment as a table. */
class EnvironDict implements DictImpl {
  readonly type = "environ";
  readonly name: string;
  readonly flags: number;

  /** Nothing to load. */
  constructor(name: string, flags: number) {
    this.name = name;
    this.flags = flags | DictFlag.FIXED;
  }

  /** Finds an environment variable. */
  lookup(key: string): DictResult {
    const v = process.env[foldKey(key, this.flags, "fixed")];
    return v === undefined ? NOT_FOUND : found(v);
  }

  /** Nothing to release. */
  close(): void {}
}

/** Opens an environ: table. */
export function environOpen(name: string, flags: number): DictImpl {
  return new EnvironDict(name, flags);
}

/** A table that always fails temporarily. */
class FailDict implements DictImpl {
  readonly type = "fail";
  readonly name: string;
  readonly flags: number;

  /** Nothing to load. */
  constructor(name: string, flags: number) {
    this.name = name;
    this.flags = flags | DictFlag.PATTERN;
  }

  /** Fails. */
  lookup(_key: string): DictResult {
    return tempFail(`fail:${this.name}: table fails every lookup`);
  }

  /** Nothing to release. */
  close(): void {}
}

/** Opens a fail: table. */
export function failOpen(name: string, flags: number): DictImpl {
  return new FailDict(name, flags);
}
