/*
 * attr-schema - validation of attribute lists on receipt
 *
 * SYNOPSIS
 *   import { attr, attrSchema, type AttrValueOf } from "../util/attr-schema.js";
 *   const Req = attrSchema({
 *     queue_id: attr.str({ max: 32, pattern: /^[0-9A-Za-z]+$/ }),
 *     count: attr.int({ min: 0, max: 1000 }),
 *     flags: attr.optional(attr.int({ min: 0, max: 255 })),
 *     body: attr.bytes({ max: 4096 }),
 *     kind: attr.enumOf(["a", "b"]),
 *   });
 *   const r = Req.parse(attrs); // { ok: true, value } | { ok: false, error }
 *   const wire = Req.build({ queue_id: "4Fz2", count: 1, body: Buffer.alloc(0), kind: "a" });
 *
 * DESCRIPTION
 *   A daemon treats what another daemon says as gossip: it checks every
 *   attribute it uses. A schema maps attribute names to field types; parse()
 *   returns the typed value or an error naming the first bad attribute.
 *   Attributes the schema does not name are ignored, so a newer peer may add
 *   attributes without breaking an older one.
 *
 *   attr.str     UTF-8 text, `max` (and `min`) in bytes, optional `pattern`.
 *                Control characters (C0, DEL, C1) are rejected unless
 *                `allowControl` is true or a string listing the allowed ones.
 *   attr.int     a decimal integer ("0", "-12"; no "+", no leading zeros),
 *                within `min`..`max` (both required).
 *   attr.bytes   opaque bytes, `max` (and `min`) in bytes.
 *   attr.enumOf  one of the listed strings.
 *   attr.optional  the attribute may be absent (the property is then absent).
 *
 *   build() is the sender's side: it converts a typed value to an AttrList.
 *   It does not validate; the receiver does.
 *
 *   Error texts never echo the peer's value, only the attribute name and the
 *   rule it broke, so they are safe to log and to send back.
 */

import { isUtf8 } from "node:buffer";
import { type AttrList, isAttrName, parseDecimal } from "./attr-codec.js";

/** The result of checking one value or a whole list. */
export type Check<T> = { ok: true; value: T } | { ok: false; error: string };

/** One field type: how to check a raw value and how to write one. */
export interface AttrField<T, O extends boolean = boolean> {
  readonly optional: O;
  /** Checks a raw value; the error text does not name the attribute. */
  decode(raw: Buffer): Check<T>;
  /** Converts a value to its wire form. */
  encode(value: T): Buffer;
}

/** A schema's shape: attribute names to field types. */
export type AttrShape = Readonly<Record<string, AttrField<unknown>>>;

type FieldValue<F> = F extends AttrField<infer T> ? T : never;
type RequiredKeys<S> = { [K in keyof S]: S[K] extends AttrField<unknown, false> ? K : never }[keyof S];
type OptionalKeys<S> = Exclude<keyof S, RequiredKeys<S>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The typed value that a schema with shape S parses to. */
export type AttrValueOf<S extends AttrShape> = Simplify<
  { [K in RequiredKeys<S>]: FieldValue<S[K]> } & { [K in OptionalKeys<S>]?: FieldValue<S[K]> }
>;

/** A compiled schema. */
export interface AttrSchema<S extends AttrShape> {
  readonly shape: S;
  /** Checks a received list; unknown attributes are ignored. */
  parse(attrs: AttrList): Check<AttrValueOf<S>>;
  /** Converts a typed value to an AttrList for sending. */
  build(value: AttrValueOf<S>): AttrList;
}

/** Options of attr.str. */
export interface StrOptions {
  max: number;
  min?: number;
  pattern?: RegExp;
  allowControl?: boolean | string;
}

// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\x00-\x1f\x7f-\x9f]/g;

/** A successful check (helper). */
function ok<T>(value: T): Check<T> {
  return { ok: true, value };
}

/** A failed check (helper). */
function bad<T>(error: string): Check<T> {
  return { ok: false, error };
}

/** Throws RangeError for a bad length bound in a schema (a local bug). */
function checkBounds(min: number, max: number): void {
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min < 0 || min > max) {
    throw new RangeError(`bad schema bounds ${min}..${max}`);
  }
}

/** Checks a byte length against min..max. */
function lengthError(len: number, min: number, max: number): string | null {
  if (len > max) return `longer than ${max} bytes`;
  if (len < min) return `shorter than ${min} bytes`;
  return null;
}

/** Checks that text holds no control characters other than the allowed ones. */
function controlError(text: string, allow: boolean | string): string | null {
  if (allow === true) return null;
  const allowed = allow === false ? "" : allow;
  for (const m of text.matchAll(CONTROL_RE)) {
    if (!allowed.includes(m[0]))
      return `control character U+${m[0].charCodeAt(0).toString(16).padStart(4, "0")}`;
  }
  return null;
}

/** A copy of a pattern without the stateful g/y flags. */
function statelessPattern(re: RegExp): RegExp {
  return new RegExp(re.source, re.flags.replace(/[gy]/g, ""));
}

/** A UTF-8 text field. */
function str(opts: StrOptions): AttrField<string, false> {
  const min = opts.min ?? 0;
  checkBounds(min, opts.max);
  const pattern = opts.pattern === undefined ? null : statelessPattern(opts.pattern);
  const allow = opts.allowControl ?? false;
  return {
    optional: false,
    decode(raw: Buffer): Check<string> {
      const lenErr = lengthError(raw.length, min, opts.max);
      if (lenErr !== null) return bad(lenErr);
      if (!isUtf8(raw)) return bad("not valid UTF-8");
      const text = raw.toString("utf8");
      const ctlErr = controlError(text, allow);
      if (ctlErr !== null) return bad(ctlErr);
      if (pattern !== null && !pattern.test(text)) return bad(`does not match ${String(pattern)}`);
      return ok(text);
    },
    encode: (value: string): Buffer => Buffer.from(value, "utf8"),
  };
}

/** A decimal integer field within min..max. */
function int(opts: { min: number; max: number }): AttrField<number, false> {
  if (!Number.isSafeInteger(opts.min) || !Number.isSafeInteger(opts.max) || opts.min > opts.max) {
    throw new RangeError(`bad schema range ${opts.min}..${opts.max}`);
  }
  return {
    optional: false,
    decode(raw: Buffer): Check<number> {
      const n = parseDecimal(raw);
      if (n === undefined) return bad("not a decimal integer");
      if (n < opts.min || n > opts.max) return bad(`out of range ${opts.min}..${opts.max}`);
      return ok(n);
    },
    encode: (value: number): Buffer => Buffer.from(String(value), "latin1"),
  };
}

/** An opaque bytes field. */
function bytes(opts: { max: number; min?: number }): AttrField<Buffer, false> {
  const min = opts.min ?? 0;
  checkBounds(min, opts.max);
  return {
    optional: false,
    decode(raw: Buffer): Check<Buffer> {
      const lenErr = lengthError(raw.length, min, opts.max);
      return lenErr === null ? ok(raw) : bad(lenErr);
    },
    encode: (value: Buffer): Buffer => value,
  };
}

/** A field whose value is one of the listed strings. */
function enumOf<const V extends readonly [string, ...string[]]>(values: V): AttrField<V[number], false> {
  const wire = values.map((v) => Buffer.from(v, "utf8"));
  return {
    optional: false,
    decode(raw: Buffer): Check<V[number]> {
      const i = wire.findIndex((w) => w.equals(raw));
      const v = values[i];
      return v === undefined ? bad(`not one of ${values.join(", ")}`) : ok(v);
    },
    encode: (value: V[number]): Buffer => Buffer.from(value, "utf8"),
  };
}

/** Marks a field as optional: it may be absent. */
function optional<T>(field: AttrField<T, false>): AttrField<T, true> {
  return { optional: true, decode: (raw) => field.decode(raw), encode: (value) => field.encode(value) };
}

/** The field constructors. */
export const attr = { str, int, bytes, enumOf, optional };

/** Checks every attribute the shape names; returns the collected values or the first error. */
function parseShape(shape: AttrShape, attrs: AttrList): Check<Record<string, unknown>> {
  if (!(attrs instanceof Map)) return bad("not an attribute list");
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(shape)) {
    const raw = attrs.get(name);
    if (raw === undefined) {
      if (field.optional) continue;
      return bad(`missing attribute ${name}`);
    }
    const r = field.decode(raw);
    if (!r.ok) return bad(`attribute ${name}: ${r.error}`);
    out[name] = r.value;
  }
  return ok(out);
}

/** Writes the present properties of a value as an AttrList. */
function buildShape(shape: AttrShape, value: Readonly<Record<string, unknown>>): AttrList {
  const out: AttrList = new Map();
  for (const [name, field] of Object.entries(shape)) {
    const v = value[name];
    if (v !== undefined) out.set(name, field.encode(v));
  }
  return out;
}

/** Compiles a schema; throws RangeError for an attribute name the wire cannot carry. */
export function attrSchema<const S extends AttrShape>(shape: S): AttrSchema<S> {
  for (const name of Object.keys(shape)) {
    if (!isAttrName(name)) throw new RangeError(`bad attribute name in schema: ${JSON.stringify(name)}`);
  }
  return {
    shape,
    parse(attrs: AttrList): Check<AttrValueOf<S>> {
      // parseShape checked every field of S, so the record has exactly the promised type.
      return parseShape(shape, attrs) as Check<AttrValueOf<S>>;
    },
    build(value: AttrValueOf<S>): AttrList {
      return buildShape(shape, value);
    },
  };
}
