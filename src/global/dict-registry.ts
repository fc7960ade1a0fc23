/*
 * dict-registry - table types, the per-process table cache, dictOpen
 *
 * SYNOPSIS
 *   import { dictRegister, dictOpen, dictSurrogate } from "./dict-registry.js";
 *   dictRegister("pgsql", (name, flags) => new PgsqlDict(name, flags));
 *   const d = dictOpen("hash:/etc/postfix/access", { flags: DictFlag.FOLD_FIX });
 *   const r = await d.lookup("example.com");
 *   d.close();
 *
 * DESCRIPTION
 *   dictRegister() adds a table type; new types (pgsql, ldap, proxy, ...)
 *   need no change here. dictOpen() splits "type:name" at the first colon,
 *   and returns the one shared instance for that name and those flags: a
 *   table is opened once per process, and close() releases a reference.
 *
 *   A table that cannot be opened (unknown type, bad syntax, unreadable
 *   file) is replaced by a surrogate that logs why and answers every lookup
 *   with a temporary failure, as Postfix does: a broken table defers mail,
 *   it never lets mail through as if the key were absent.
 *
 *   Every lookup of a shared table is guarded: an exception or a rejected
 *   promise from a table type becomes a temporary failure.
 *
 * DIAGNOSTICS
 *   dictOpen() with a name that lacks "type:" is a configuration error
 *   (msg.fatal). Registering a type twice is a bug (msg.panic).
 */
import { msg } from "../util/msg.js";
import {
  DICT_DEFAULT_FLAGS,
  DictFlag,
  errorText,
  tempFail,
  type Dict,
  type DictImpl,
  type DictOpenFn,
  type DictResult,
} from "./dict-types.js";

const types = new Map<string, DictOpenFn>();

/** Adds a table type; registering the same type twice is a bug. */
export function dictRegister(type: string, open: DictOpenFn): void {
  if (types.has(type)) msg.panic(`dictRegister: table type "${type}" is already registered`);
  types.set(type, open);
}

/** Whether a table type is known. */
export function dictTypeKnown(type: string): boolean {
  return types.has(type);
}

/** The known table types, sorted (what "postconf -m" prints). */
export function dictTypes(): string[] {
  return [...types.keys()].sort();
}

/** A table that logs why it is unusable and fails every lookup temporarily. */
export class SurrogateDict implements DictImpl {
  readonly type: string;
  readonly name: string;
  readonly flags: number;
  #reason: string;

  /** Logs the reason once now; every lookup logs it again, as the table stays broken. */
  constructor(type: string, name: string, flags: number, reason: string) {
    this.type = type;
    this.name = name;
    this.flags = flags | DictFlag.PATTERN;
    this.#reason = reason;
    msg.warn(`${type}:${name} is unavailable: ${reason}`);
  }

  /** Fails: the table could not be opened. */
  lookup(_key: string): DictResult {
    msg.warn(`${this.type}:${this.name} lookup error: table is unavailable: ${this.#reason}`);
    return tempFail(`${this.type}:${this.name}: ${this.#reason}`);
  }

  /** Nothing to release. */
  close(): void {}
}

/** Creates a surrogate table (see SurrogateDict). */
export function dictSurrogate(type: string, name: string, flags: number, reason: string): DictImpl {
  return new SurrogateDict(type, name, flags, reason);
}

/** Splits "type:name" at the first colon; null when there is no type or no name. */
export function dictSplitName(spec: string): { type: string; name: string } | null {
  const colon = spec.indexOf(":");
  if (colon <= 0 || colon === spec.length - 1) return null;
  return { type: spec.slice(0, colon), name: spec.slice(colon + 1) };
}

/** A shared, reference-counted, exception-proof view of a table. */
class SharedDict implements Dict {
  readonly type: string;
  readonly name: string;
  readonly flags: number;
  update?: (key: string, value: string) => Promise<boolean>;
  #impl: DictImpl;
  #key: string;
  #refs = 1;

  /** Wraps an open table that is cached under `key`. */
  constructor(impl: DictImpl, key: string) {
    this.type = impl.type;
    this.name = impl.name;
    this.flags = impl.flags;
    this.#impl = impl;
    this.#key = key;
    const update = impl.update?.bind(impl);
    if (update !== undefined)
      this.update = async (k, v) => {
        try {
          return await update(k, v);
        } catch (err) {
          msg.warn(`${this.type}:${this.name} update error for "${k}": ${errorText(err)}`);
          return false;
        }
      };
  }

  /** Looks up a key; an exception in the table becomes a temporary failure. */
  async lookup(key: string): Promise<DictResult> {
    try {
      return await this.#impl.lookup(key);
    } catch (err) {
      const why = errorText(err);
      msg.warn(`${this.type}:${this.name} lookup error for "${key}": ${why}`);
      return tempFail(`${this.type}:${this.name}: ${why}`);
    }
  }

  /** Adds a reference (another dictOpen of the same table). */
  retain(): this {
    this.#refs += 1;
    return this;
  }

  /** Drops every reference and closes the table. */
  closeAll(): void {
    if (this.#refs <= 0) return;
    this.#refs = 1;
    this.close();
  }

  /** Drops one reference; the last one closes the table. */
  close(): void {
    if (this.#refs <= 0) return;
    this.#refs -= 1;
    if (this.#refs > 0) return;
    if (cache.get(this.#key) === this) cache.delete(this.#key);
    try {
      this.#impl.close();
    } catch (err) {
      msg.warn(`${this.type}:${this.name}: close: ${errorText(err)}`);
    }
  }
}

const cache = new Map<string, SharedDict>();

/** Opens (or shares) the table "type:name"; never throws for a bad table, see SurrogateDict. */
export function dictOpen(spec: string, opts: { flags?: number } = {}): Dict {
  const flags = opts.flags ?? DICT_DEFAULT_FLAGS;
  const split = dictSplitName(spec);
  if (split === null) return msg.fatal(`open table: need "type:name" instead of "${spec}"`);
  const key = `${split.type}:${split.name}\0${flags}`;
  const shared = cache.get(key);
  if (shared !== undefined) return shared.retain();
  const open = types.get(split.type);
  let impl: DictImpl;
  if (open === undefined) {
    impl = dictSurrogate(split.type, split.name, flags, `unsupported table type: ${split.type}`);
  } else {
    try {
      impl = open(split.name, flags);
    } catch (err) {
      impl = dictSurrogate(split.type, split.name, flags, errorText(err));
    }
  }
  const dict = new SharedDict(impl, key);
  cache.set(key, dict);
  return dict;
}

/** Closes every cached table regardless of references (tests and process exit). */
export function dictCloseAll(): void {
  for (const d of [...cache.values()]) d.closeAll();
}
