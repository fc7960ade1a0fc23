/*
 * params - the typed parameter model: definitions and value parsing
 *
 * SYNOPSIS
 *   import { paramDef, parseTime, parseBool, ... } from "../global/params.js";
 *
 * DESCRIPTION
 *   Every configuration parameter that Postern reads is defined once, in
 *   params-table.ts, with its Postfix name, type, Postfix default and a
 *   one-line description. A default that depends on compatibility_level is
 *   written as Postfix writes it, an expression such as
 *   "${{$compatibility_level} <level {2} ? {subnet} : {host}}", so that
 *   postconf -d shows it and expansion picks it. This module holds the types
 *   of that table and the parsers that turn an
 *   (already expanded) value into a typed one. Parse failures are results
 *   that say what was expected; callers add file, line and parameter.
 */

export type ParamType = "str" | "bool" | "int" | "long" | "time" | "list";
export type TimeUnit = "s" | "m" | "h" | "d" | "w";

export interface ParamDef {
  name: string;
  type: ParamType;
  /** The default, raw: may contain $name and compatibility_level expressions. */
  def: string;
  desc: string;
  /** Default time unit for "time" parameters. */
  unit?: TimeUnit;
  min?: number;
  max?: number;
  /** List entries of the form /file/name are replaced by the file's contents. */
  fileEntries?: boolean;
  /** The default is computed at run time (host name, directories). */
  runtime?: boolean;
}

type Extra = Partial<Pick<ParamDef, "min" | "max" | "fileEntries" | "runtime">> & { unit?: TimeUnit };

/** Builds one parameter table entry. */
export function param(name: string, type: ParamType, def: string, desc: string, extra: Extra = {}): ParamDef {
  return { name, type, def, desc, ...extra };
}

/** A default that is one value below a compatibility level and another from it on (Postfix's form). */
export function belowLevel(level: string, legacy: string, current: string): string {
  return `\${{$compatibility_level} <level {${level}} ? {${legacy}} : {${current}}}`;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; expected: string };

const UNIT_SECONDS: Record<TimeUnit, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** Returns true when a compatibility level is well-formed ("0", "1", "2", "3.6", "3.6.1"). */
export function validLevel(level: string): boolean {
  return /^\d+(\.\d+){0,2}$/.test(level);
}

/** Parses a time value with an optional unit; returns seconds. */
export function parseTime(
  value: string,
  unit: TimeUnit = "s",
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): Parsed<number> {
  const m = /^\s*(\d+)\s*([smhdw]?)\s*$/.exec(value);
  const expected = `a time: a number with an optional unit s, m, h, d or w (default unit ${unit})`;
  if (m === null) return { ok: false, expected };
  const secs = Number(m[1]) * UNIT_SECONDS[(m[2] || unit) as TimeUnit];
  if (!Number.isSafeInteger(secs)) return { ok: false, expected };
  return inRange(secs, min, max, "s");
}

/** Parses yes/no (any case), as Postfix does. */
export function parseBool(value: string): Parsed<boolean> {
  const v = value.trim().toLowerCase();
  if (v === "yes") return { ok: true, value: true };
  if (v === "no") return { ok: true, value: false };
  return { ok: false, expected: "yes or no" };
}

/** Parses a decimal integer within a range. */
export function parseInt10(value: string, min = 0, max = Number.MAX_SAFE_INTEGER): Parsed<number> {
  const m = /^\s*(-?\d+)\s*$/.exec(value);
  if (m === null) return { ok: false, expected: rangeText(min, max, "") };
  const n = Number(m[1]);
  if (!Number.isSafeInteger(n)) return { ok: false, expected: rangeText(min, max, "") };
  return inRange(n, min, max, "");
}

/** Checks a range and says what was expected when out of it. */
function inRange(n: number, min: number, max: number, suffix: string): Parsed<number> {
  if (n < min || n > max) return { ok: false, expected: rangeText(min, max, suffix) };
  return { ok: true, value: n };
}

/** Describes an integer range for error messages. */
function rangeText(min: number, max: number, suffix: string): string {
  if (max >= Number.MAX_SAFE_INTEGER) return `an integer >= ${min}${suffix}`;
  return `an integer from ${min}${suffix} to ${max}${suffix}`;
}

/**
 * Splits a list value on commas and white space, keeping "{ ... }" groups
 * (such as inline:{ a=b, c=d }) together, as Postfix does. Unbalanced braces
 * are reported.
 */
export function splitList(value: string): Parsed<string[]> {
  const out: string[] = [];
  let cur = "";
  let depth = 0;
  for (const ch of value) {
    if (ch === "{") depth++;
    else if (ch === "}" && --depth < 0) return { ok: false, expected: "balanced { and }" };
    if (depth === 0 && (ch === "," || ch === " " || ch === "\t" || ch === "\n" || ch === "\r")) {
      if (cur !== "") out.push(cur);
      cur = "";
    } else {
      cur += ch;
    }
  }
  if (depth !== 0) return { ok: false, expected: "balanced { and } (missing '}')" };
  if (cur !== "") out.push(cur);
  return { ok: true, value: out };
}
