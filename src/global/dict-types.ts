/*
 * dict-types - lookup table ("dict") types, flags and small helpers
 *
 * SYNOPSIS
 *   import { DictFlag, type Dict, type DictResult, found, notFound, tempFail } from "./dict-types.js";
 *
 * DESCRIPTION
 *   Every Postern policy is a lookup table named "type:name". A table is a
 *   Dict: lookup(key) resolves to a DictResult, which keeps a temporary
 *   failure ("try again later") apart from "not found": a table that cannot
 *   be read must never look like a table without the key.
 *
 *   DictFlag keeps Postfix's flag names and bit values, so that flags can
 *   travel to a table server (proxymap) unchanged. The flags that change
 *   lookups are:
 *   FOLD_FIX  fold the key to lower case for fixed-string tables (hash, cdb,
 *             texthash, inline, ...): both the stored keys and the query;
 *   FOLD_MUL  fold the query for tables whose keys may mix case (regexp,
 *             pcre, servers); without it a regexp table sees the key as is;
 *   NO_REGSUB refuse $number substitution in regexp/pcre results;
 *   DUP_WARN, DUP_IGNORE, DUP_REPLACE  what building a table does with a
 *             repeated key (warn and keep the first, keep the first, keep
 *             the last).
 *   A table adds FIXED (its keys are plain strings: it can answer partial
 *   keys such as "@domain") or PATTERN (its keys are patterns: it only sees
 *   whole keys) to the flags it was opened with.
 *
 *   The case folding is ASCII-only, as in Postfix without SMTPUTF8; with
 *   UTF8_REQUEST, keys are folded with Unicode lower-casing.
 */

/** Postfix's dictionary flags, with Postfix's bit values. */
export const DictFlag = {
  NONE: 0,
  DUP_WARN: 1 << 0,
  DUP_IGNORE: 1 << 1,
  FIXED: 1 << 4,
  PATTERN: 1 << 5,
  DUP_REPLACE: 1 << 7,
  NO_REGSUB: 1 << 11,
  NO_PROXY: 1 << 12,
  NO_UNAUTH: 1 << 13,
  FOLD_FIX: 1 << 14,
  FOLD_MUL: 1 << 15,
  FOLD_ANY: (1 << 14) | (1 << 15),
  UTF8_REQUEST: 1 << 19,
} as const;

/** The flags used when the caller gives none: what Postfix daemons pass for their tables. */
export const DICT_DEFAULT_FLAGS = DictFlag.FOLD_FIX;

/** The outcome of one lookup. */
export type DictResult =
  { status: "found"; value: string } | { status: "notfound" } | { status: "tempfail"; reason: string };

/** An open lookup table. */
export interface Dict {
  /** The table type, e.g. "hash". */
  readonly type: string;
  /** The table name after "type:", e.g. "/etc/postfix/access". */
  readonly name: string;
  /** The open flags plus FIXED or PATTERN. */
  readonly flags: number;
  /** Looks up one key. Never rejects: failures are { status: "tempfail" }. */
  lookup(key: string): Promise<DictResult>;
  /** Stores a value, for the types that take updates from daemons (memcache); false when it failed. */
  update?: (key: string, value: string) => Promise<boolean>;
  /** Releases the table (reference counted when it came from dictOpen). */
  close(): void;
}

/** What a table type's open function returns: lookups may answer synchronously. */
export interface DictImpl {
  readonly type: string;
  readonly name: string;
  readonly flags: number;
  lookup(key: string): DictResult | Promise<DictResult>;
  update?: (key: string, value: string) => Promise<boolean>;
  close(): void;
}

/** A table type's open function: never throws for bad input, returns a failing table instead. */
export type DictOpenFn = (name: string, flags: number) => DictImpl;

/** A found result. */
export function found(value: string): DictResult {
  return { status: "found", value };
}

/** The shared not-found result. */
export const NOT_FOUND: DictResult = Object.freeze({ status: "notfound" });

/** A not-found result. */
export function notFound(): DictResult {
  return NOT_FOUND;
}

/** A temporary-failure result. */
export function tempFail(reason: string): DictResult {
  return { status: "tempfail", reason };
}

/** Lower-cases ASCII letters only, like Postfix's lowercase(). */
export function asciiLower(s: string): string {
  return /[A-Z]/.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s;
}

/** Folds a key as the flags ask for a table of the given kind ("fixed" or "pattern"). */
export function foldKey(key: string, flags: number, kind: "fixed" | "pattern"): string {
  const want = kind === "fixed" ? DictFlag.FOLD_FIX : DictFlag.FOLD_MUL;
  if ((flags & want) === 0) return key;
  return (flags & DictFlag.UTF8_REQUEST) !== 0 ? key.toLowerCase() : asciiLower(key);
}

/** The message text of an unknown thrown value. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Names the flags in a bit mask, for logs and tests ("fold_fix|fixed"). */
export function dictFlagNames(flags: number): string {
  const names: string[] = [];
  for (const [name, bit] of Object.entries(DictFlag)) {
    if (bit !== 0 && name !== "FOLD_ANY" && (flags & bit) === bit) names.push(name.toLowerCase());
  }
  return names.length > 0 ? names.join("|") : "none";
}
