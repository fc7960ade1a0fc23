/*
 * cleanup-checks - header_checks and body_checks actions
 *
 * SYNOPSIS
 *   const r = await contentCheck(st, tables.headerChecks, "Subject: hello", "header");
 *   if (r.drop) ...; else if (r.replace !== undefined) ...; if (r.prepend !== undefined) ...
 *
 * DESCRIPTION
 *   Looks the text up in the tables (the whole header, folded lines joined
 *   with newlines, or one body line) and carries out the action found,
 *   as header_checks(5) describes:
 *     REJECT [text]   reject the message; text may start with a 4.X.Y or
 *                     5.X.Y code (default "5.7.1 message content rejected");
 *                     a 4.X.Y code makes it a temporary failure
 *     DISCARD [text]  accept the message and throw it away
 *     HOLD [text]     queue the message in the hold queue
 *     WARN [text], INFO [text]   log and go on
 *     FILTER transport:destination   send the message there after queueing
 *     REDIRECT user@domain   send the message there instead of to the
 *                     recipients
 *     BCC user@domain add a copy recipient
 *     PREPEND text    put a header (or body line) before this one
 *     REPLACE text    put a header (or body line) in place of this one
 *     IGNORE          delete this header or line; STRIP [text] likewise,
 *                     with a log line
 *     PASS [text]     skip the remaining header and body checks
 *     DUNNO, OK       go on
 *   REJECT, DISCARD, REDIRECT and PASS turn off further checks. Each action
 *   that Postfix logs is logged in Postfix's format (cleanup-state.ts);
 *   a bad argument is a warning and the action is skipped. A table that
 *   fails temporarily makes the message a temporary failure.
 */
import { CLEANUP_FLAG } from "../global/cleanup-proto.js";
import type { CleanupState } from "./cleanup-state.js";
import type { NamedMaps } from "./cleanup-tables.js";

export type CheckClass = "header" | "body";

/** What becomes of the inspected text. */
export interface CheckResult {
  drop: boolean;
  replace?: string;
  prepend?: string;
}

const KEEP: CheckResult = { drop: false };
const DEFAULT_REJECT = "5.7.1 message content rejected";

/** True for "name: value" header text. */
export function isHeaderText(text: string): boolean {
  return /^[!-9;-~]+[ \t]*:/.test(text);
}

/** Prepends a default DSN code unless the text starts with one (dsn_prepend). */
export function dsnPrepend(def: string, text: string): string {
  return /^[245]\.\d{1,3}\.\d{1,3}(\s|$)/.test(text) ? text : `${def} ${text}`;
}

/** Turns off further checks. */
function stopChecks(st: CleanupState): void {
  st.flags &= ~CLEANUP_FLAG.FILTER;
}

/** REJECT: a permanent or temporary failure of the message. */
function reject(st: CleanupState, cls: string, text: string, arg: string, title: string): CheckResult {
  let reason = arg !== "" ? dsnPrepend("5.7.1", arg) : DEFAULT_REJECT;
  if (!reason.startsWith("4") && !reason.startsWith("5")) {
    st.warn(`bad DSN action in ${arg} -- need 4.x.x or 5.x.x (${title})`);
    reason = `4${reason.slice(1)}`;
  }
  stopChecks(st);
  st.act("reject", cls, text, reason);
  const sp = reason.indexOf(" ");
  const dsn = sp < 0 ? reason : reason.slice(0, sp);
  if (reason.startsWith("4")) st.fail({ kind: "tempfail", reason });
  else st.fail({ kind: "reject", code: `550 ${dsn}`, reason: sp < 0 ? "" : reason.slice(sp + 1) });
  return KEEP;
}

/** PREPEND and REPLACE: checks the text; returns the result or null after a warning. */
function newText(
  st: CleanupState,
  cls: string,
  text: string,
  arg: string,
  verb: string,
  title: string,
): string | null {
  if (arg === "") {
    st.warn(`${verb} action without text in ${title} map`);
    return null;
  }
  if (cls === "header" && !isHeaderText(arg)) {
    st.warn(`bad ${verb} header text "${arg}" in ${title} map -- need "headername: headervalue"`);
    return null;
  }
  st.act(verb.toLowerCase(), cls, text, arg);
  return arg;
}

/** An action that needs user@domain: checks the argument; false after a warning. */
function needAddress(st: CleanupState, arg: string, what: string, title: string): boolean {
  if (arg.includes("@")) return true;
  st.warn(`bad ${what} "${arg}" in ${title} map -- need user@domain`);
  return false;
}

/** Carries out one table result (see the module comment). */
export function cleanupAct(
  st: CleanupState,
  cls: CheckClass,
  text: string,
  value: string,
  title: string,
): CheckResult {
  const m = /^(\S*)\s*([\s\S]*)$/.exec(value);
  const command = (m?.[1] ?? "").toUpperCase();
  const arg = m?.[2] ?? "";
  switch (command) {
    case "REJECT":
      return reject(st, cls, text, arg, title);
    case "WARN":
      st.act("warning", cls, text, arg);
      return KEEP;
    case "INFO":
      st.act("info", cls, text, arg);
      return KEEP;
    case "FILTER":
      if (arg === "") st.warn(`missing FILTER command argument in ${title} map`);
      else if (!arg.includes(":"))
        st.warn(`bad FILTER command ${arg} in ${title} -- need transport:destination`);
      else {
        st.filter = arg;
        st.act("filter", cls, text, arg);
      }
      return KEEP;
    case "PASS":
      st.act("pass", cls, text, arg);
      stopChecks(st);
      return KEEP;
    case "DISCARD":
      st.act("discard", cls, text, arg);
      stopChecks(st);
      st.fail({ kind: "discard" });
      return KEEP;
    case "HOLD":
      if (!st.hold) {
        st.act("hold", cls, text, arg);
        st.hold = true;
      }
      return KEEP;
    case "PREPEND": {
      const t = newText(st, cls, text, arg, "PREPEND", title);
      return t === null ? KEEP : { drop: false, prepend: t };
    }
    case "REPLACE": {
      const t = newText(st, cls, text, arg, "REPLACE", title);
      return t === null ? KEEP : { drop: false, replace: t };
    }
    case "REDIRECT":
      if (needAddress(st, arg, "REDIRECT target", title)) {
        st.redirect = arg;
        st.act("redirect", cls, text, arg);
        stopChecks(st);
      }
      return KEEP;
    case "BCC":
      if (needAddress(st, arg, "BCC address", title)) {
        st.bcc.push(arg);
        st.act("bcc", cls, text, arg);
      }
      return KEEP;
    case "STRIP":
      st.act("strip", cls, text, arg);
      return { drop: true };
    case "IGNORE":
      return { drop: true };
    case "DUNNO":
    case "OK":
      return KEEP;
    default:
      st.warn(`unknown command in ${title} map: ${value}`);
      return KEEP;
  }
}

/** Looks the text up in check tables and carries out the action found. */
export async function contentCheck(
  st: CleanupState,
  maps: NamedMaps | null,
  text: string,
  cls: CheckClass,
): Promise<CheckResult> {
  if (maps === null || (st.flags & CLEANUP_FLAG.FILTER) === 0 || st.failure !== null) return KEEP;
  const r = await maps.lookup(text, false);
  if (r.status === "found") return cleanupAct(st, cls, text, r.value, maps.title);
  if (r.status === "tempfail")
    st.tempfail(
      `${maps.title} map lookup problem -- message not accepted, try again later`,
      "4.3.0 Error: temporary lookup table failure",
    );
  return KEEP;
}
