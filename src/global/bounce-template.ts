/*
 * bounce-template - the text of delivery status notifications (bounce(5) format)
 *
 * SYNOPSIS
 *   const ts = loadTemplates(cfg);                       // built-in, or bounce_template_file
 *   const x = expandTemplate(ts.failure, cfg);           // { ok, lines, warnings }
 *   dumpTemplates(ts, cfg)  expandTemplates(ts, cfg)     // postconf -t, postconf -b
 *
 * DESCRIPTION
 *   A notice has four templates: failure (undeliverable mail), delay
 *   (delayed mail), success (delivered, relayed, expanded) and verify
 *   (address verification and what-if reports). Each has a Charset, a
 *   From (in header_from_format's standard or obsolete form unless the
 *   template sets one), a Subject, a Postmaster-Subject (failure and
 *   delay only) and message text.
 *
 *   A template file overrides any of them:
 *     # comment
 *     failure_template = <<EOF
 *     Charset: us-ascii
 *     Subject: ...
 *
 *     text with $name expansions
 *     EOF
 *   Outside a << block, empty lines, blank lines and lines starting with
 *   "#" are ignored; a line that is not "name = value" is an error (the
 *   whole file is refused). Inside, every line is literal up to the line
 *   that equals the end marker; a missing end marker is a warning. The
 *   value is a template: header lines (Charset, From, Subject,
 *   Postmaster-Subject, any case, one line each, ASCII, not empty), blank
 *   lines, then the text. A template with a bad header, no text, or 8-bit
 *   text with Charset us-ascii draws a warning and the built-in one is
 *   used instead; an unknown template name draws a warning.
 *
 *   The text is expanded line by line: $name, ${name}, the conditional
 *   forms, and "$$" for "$". A name is a main.cf parameter (its value,
 *   expanded; control characters become "_"), or one of
 *   delay_warning_time_UNIT and maximal_queue_lifetime_UNIT, the
 *   parameter's value divided by UNIT (seconds, minutes, hours, days,
 *   weeks) and rounded down. With smtputf8_enable, $myhostname and
 *   $mydomain show their UTF-8 form. An unknown name or bad syntax fails
 *   the expansion.
 */
import { readFileSync, statSync } from "node:fs";
import { domainToUnicode } from "node:url";
import { macExpand } from "../util/mac-expand.js";
import { ConfigError, type Config } from "./config.js";

export type TemplateClass = "failure" | "delay" | "success" | "verify";

export const TEMPLATE_CLASSES: readonly TemplateClass[] = ["failure", "delay", "success", "verify"];

export interface BounceTemplate {
  readonly class: TemplateClass;
  /** "[built-in]" or the file it came from. */
  readonly origin: string;
  readonly charset: string;
  /** "8bit" when the text has non-ASCII characters. */
  readonly encoding: "7bit" | "8bit";
  /** The From: value for header_from_format = standard and obsolete (the same when a template sets it). */
  readonly stdFrom: string;
  readonly obsFrom: string;
  readonly subject: string;
  /** Failure and delay templates only. */
  readonly postmasterSubject: string | null;
  /** The message text, unexpanded, one element per line. */
  readonly text: readonly string[];
}

export type BounceTemplates = Readonly<Record<TemplateClass, BounceTemplate>>;

export class TemplateError extends Error {
  readonly code = "ETEMPLATE";
}

/** The largest template file read. */
export const TEMPLATE_FILE_LIMIT = 1 << 20;

const BUILTIN_FROM = {
  stdFrom: "Mail Delivery System <MAILER-DAEMON>",
  obsFrom: "MAILER-DAEMON (Mail Delivery System)",
};

const SIGNATURE = ["", "                   The mail system"];
const ASSISTANCE = [
  "For further assistance, please send mail to postmaster.",
  "",
  "If you do so, please include this problem report. You can",
  "delete your own text from the attached returned message.",
];

/** One built-in template. */
function builtin(
  cls: TemplateClass,
  subject: string,
  pmSubject: string | null,
  body: string[],
): BounceTemplate {
  return {
    class: cls,
    origin: "[built-in]",
    charset: "us-ascii",
    encoding: "7bit",
    ...BUILTIN_FROM,
    subject,
    postmasterSubject: pmSubject,
    text: ["This is the mail system at host $myhostname.", "", ...body, ...SIGNATURE],
  };
}

export const BUILTIN_TEMPLATES: BounceTemplates = {
  failure: builtin("failure", "Undelivered Mail Returned to Sender", "Postmaster Copy: Undelivered Mail", [
    "I'm sorry to have to inform you that your message could not",
    "be delivered to one or more recipients. It's attached below.",
    "",
    ...ASSISTANCE,
  ]),
  delay: builtin("delay", "Delayed Mail (still being retried)", "Postmaster Warning: Delayed Mail", [
    "####################################################################",
    "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #",
    "####################################################################",
    "",
    "Your message could not be delivered for more than $delay_warning_time_hours hour(s).",
    "It will be retried until it is $maximal_queue_lifetime_days day(s) old.",
    "",
    ...ASSISTANCE,
  ]),
  success: builtin("success", "Successful Mail Delivery Report", null, [
    "Your message was successfully delivered to the destination(s)",
    "listed below. If the message was delivered to mailbox you will",
    "receive no further notifications. Otherwise you may still receive",
    "notifications of mail delivery errors from other systems.",
  ]),
  verify: builtin("verify", "Mail Delivery Status Report", null, [
    "Enclosed is the mail delivery report that you requested.",
  ]),
};

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

/** The length of a header label ("Subject" in "Subject : x"), or 0 when the line is not a header. */
function headerLabel(line: string): number {
  const m = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/.exec(line);
  return m?.[1]?.length ?? 0;
}

/** Parses one template's value; warnings say why the built-in one is kept instead. */
function parseTemplate(
  def: BounceTemplate,
  origin: string,
  value: string,
  warn: (text: string) => void,
): BounceTemplate {
  const lines = value.split("\n");
  const t: { -readonly [K in keyof BounceTemplate]: BounceTemplate[K] } = { ...def, origin, text: [] };
  const refuse = (why: string): BounceTemplate => {
    warn(`${origin}: ${why} in ${def.class} template -- ignoring this template`);
    return def;
  };
  let i = 0;
  for (; i < lines.length; i++) {
    const line = lines[i] ?? "";
    const len = headerLabel(line);
    if (len === 0) break;
    const label = line.slice(0, len);
    const hval = line.slice(len).replace(/^[:\s]+/, "");
    if (hval === "") return refuse(`empty "${label}" header value`);
    if (!ASCII.test(hval) || hval.includes("\0")) return refuse(`non-ASCII "${label}" header value`);
    const lower = label.toLowerCase();
    if (lower === "charset") t.charset = hval;
    else if (lower === "from") t.stdFrom = t.obsFrom = hval;
    else if (lower === "subject") t.subject = hval;
    else if (lower === "postmaster-subject") {
      if (def.postmasterSubject === null) return refuse(`inapplicable "${label}" header label`);
      t.postmasterSubject = hval;
    } else return refuse(`unknown "${label}" header label`);
  }
  while (i < lines.length && /^\s*$/.test(lines[i] ?? "")) i++;
  if (i >= lines.length) return refuse("missing message text");
  t.text = lines.slice(i);
  if (t.text.some((l) => !ASCII.test(l))) {
    if (t.charset.toLowerCase() === "us-ascii") {
      warn(`${origin}: 8-bit message text in ${def.class} template`);
      warn("please specify a charset value other than us-ascii");
      warn("-- ignoring this template for now");
      return def;
    }
    t.encoding = "8bit";
  }
  return t;
}

/** Splits "name = value" as Postfix does; an error text when the line has no "=". */
function splitNameval(line: string): { name: string; value: string } | string {
  const m = /^\s*([^\s=]*)\s*(=?)\s*(.*?)\s*$/.exec(line);
  if (m === null || m[1] === "") return "missing attribute name";
  if (m[2] !== "=") return "missing '=' after attribute name";
  return { name: m[1] ?? "", value: m[3] ?? "" };
}

/** Parses a template file's text over the built-in templates; TemplateError for a syntax error. */
export function parseTemplates(
  text: string,
  origin: string,
  warn: (text: string) => void,
  base: BounceTemplates = BUILTIN_TEMPLATES,
): BounceTemplates {
  const out: Record<TemplateClass, BounceTemplate> = { ...base };
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    const lineno = i + 1;
    if (/^\s*(#|$)/.test(line)) continue;
    const nv = splitNameval(line);
    if (typeof nv === "string") throw new TemplateError(`${origin}, line ${lineno}: ${nv}: "${line}"`);
    let { value } = nv;
    if (value.startsWith("<<")) {
      const marker = value.slice(2).trimStart();
      if (marker === "") throw new TemplateError(`${origin}, line ${lineno}: missing end marker after <<`);
      if (!/^[A-Za-z0-9]/.test(marker))
        throw new TemplateError(`${origin}, line ${lineno}: malformed end marker after <<`);
      const body: string[] = [];
      let closed = false;
      for (i++; i < lines.length; i++) {
        if (lines[i] === marker) {
          closed = true;
          break;
        }
        body.push(lines[i] ?? "");
      }
      if (!closed) warn(`${origin}, line ${Math.min(i, lines.length) + 1}: missing "${marker}" end marker`);
      value = body.join("\n");
    }
    const cls = TEMPLATE_CLASSES.find((c) => nv.name === `${c}_template`);
    if (cls === undefined) {
      warn(`${origin}, line ${lineno}: unknown template name: ${nv.name} -- ignoring this template`);
      continue;
    }
    out[cls] = parseTemplate(BUILTIN_TEMPLATES[cls], origin, value, warn);
  }
  return out;
}

/** Reads a template file (bounded); TemplateError when it cannot be read or parsed. */
export function readTemplateFile(path: string, warn: (text: string) => void): BounceTemplates {
  let text: string;
  try {
    if (statSync(path).size > TEMPLATE_FILE_LIMIT)
      throw new TemplateError(`${path}: file is larger than ${TEMPLATE_FILE_LIMIT} bytes`);
    text = readFileSync(path, "utf8");
  } catch (err) {
    if (err instanceof TemplateError) throw err;
    throw new TemplateError(`open ${path}: ${(err as Error).message}`);
  }
  return parseTemplates(text, path, warn);
}

/** The templates that a configuration selects: bounce_template_file's, or the built-in ones. */
export function loadTemplates(cfg: Config, warn: (text: string) => void): BounceTemplates {
  const path = cfg.get("bounce_template_file");
  return path === "" ? BUILTIN_TEMPLATES : readTemplateFile(path, warn);
}

const TIME_PARAMS = ["delay_warning_time", "maximal_queue_lifetime"];
const DIVISORS: Record<string, number> = {
  seconds: 1,
  minutes: 60,
  hours: 3600,
  days: 86400,
  weeks: 604800,
};

/** Looks up a $name in a template; may warn about an ill-chosen time unit. */
function lookupName(
  t: BounceTemplate,
  cfg: Config,
  key: string,
  warn: (text: string) => void,
): string | undefined {
  for (const p of TIME_PARAMS) {
    if (!key.startsWith(`${p}_`)) continue;
    const suffix = key.slice(p.length + 1);
    const div = DIVISORS[suffix];
    if (div === undefined)
      throw new TemplateError(`${t.origin}: unrecognized suffix "${suffix}" in parameter "${key}"`);
    const secs = cfg.time(p);
    const result = Math.floor(secs / div);
    if (result > 999 && div < 86400) {
      warn(
        `${t.origin}: excessive result "${result}" in ${t.class} template conversion of parameter "${key}"`,
      );
      warn(`please increase time unit "${suffix}" of "${key}" in ${t.class} template`);
      warn("for instructions see the bounce(5) manual");
    } else if (result === 0 && secs > 0 && div > 1) {
      warn(`${t.origin}: zero result in ${t.class} template conversion of parameter "${key}"`);
      warn(`please reduce time unit "${suffix}" of "${key}" in ${t.class} template`);
      warn("for instructions see the bounce(5) manual");
    }
    return String(result);
  }
  if (cfg.raw(key) === undefined) return undefined;
  let value = cfg.get(key);
  if ((key === "myhostname" || key === "mydomain") && cfg.bool("smtputf8_enable") && ASCII.test(value)) {
    const utf8 = domainToUnicode(value);
    if (utf8 !== "") value = utf8;
  }
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\x00-\x1f\x7f]/g, "_");
}

export type ExpandResult = { ok: true; lines: string[]; warnings: string[] } | { ok: false; error: string };

/** Expands a template's text against a configuration. */
export function expandTemplate(t: BounceTemplate, cfg: Config): ExpandResult {
  const warnings: string[] = [];
  const lines: string[] = [];
  try {
    for (const line of t.text) {
      const r = macExpand(line, (n) => lookupName(t, cfg, n, (w) => warnings.push(w)), { recurse: false });
      if (!r.ok) return { ok: false, error: `${t.origin}: bad $name syntax in ${t.class} template: ${line}` };
      if (r.undefinedUsed)
        return { ok: false, error: `${t.origin}: undefined $name in ${t.class} template: ${line}` };
      lines.push(r.value);
    }
  } catch (err) {
    if (err instanceof TemplateError) return { ok: false, error: err.message };
    throw err;
  }
  return { ok: true, lines, warnings };
}

/** The From: value that header_from_format selects; ConfigError for a value that is neither form. */
export function templateFrom(t: BounceTemplate, cfg: Config): string {
  const f = cfg.get("header_from_format").toLowerCase();
  if (f !== "standard" && f !== "obsolete")
    throw new ConfigError(`${cfg.where("header_from_format")}: invalid header_from_format value: "${f}"`);
  return f === "obsolete" ? t.obsFrom : t.stdFrom;
}

/** postconf -t: the templates in the file format, unexpanded. */
export function dumpTemplates(ts: BounceTemplates, cfg: Config): string {
  return TEMPLATE_CLASSES.map((c) => {
    const t = ts[c];
    let s = `${c}_template = <<EOF\nCharset: ${t.charset}\nFrom: ${templateFrom(t, cfg)}\nSubject: ${t.subject}\n`;
    if (t.postmasterSubject !== null) s += `Postmaster-Subject: ${t.postmasterSubject}\n`;
    return `${s}\n${t.text.map((l) => `${l}\n`).join("")}EOF\n`;
  }).join("\n");
}

/** postconf -b: the expanded text of each template; TemplateError when one does not expand. */
export function expandTemplates(ts: BounceTemplates, cfg: Config, warn: (text: string) => void): string {
  return TEMPLATE_CLASSES.map((c) => {
    const r = expandTemplate(ts[c], cfg);
    if (!r.ok) throw new TemplateError(r.error);
    r.warnings.forEach(warn);
    return `expanded_${c}_text = <<EOF\n${r.lines.map((l) => `${l}\n`).join("")}EOF\n`;
  }).join("\n");
}
