/*
 * milter-conf - a milter's settings, what it can answer, and the parsing of its settings
 *
 * SYNOPSIS
 *   import { parseProtocol, milterEndpoint, defaultVerdict, type MilterConf } from "./milter-conf.js";
 *
 * DESCRIPTION
 *   The vocabulary shared by the milter client (milter-client.ts), the
 *   milter chain (milter-chain.ts) and their users in smtpd and cleanup:
 *     MilterConf       one milter's settings (service name, default
 *                      action, timeouts, milter_protocol, macro lists);
 *     Verdict          what the MTA does after an event;
 *     MilterEdit       a modification asked for at end of message;
 *     parseProtocol    milter_protocol: a version (2, 3, 4, 6), optionally
 *                      with no_header_reply;
 *     milterEndpoint   "inet:host:port", "inet:port@host", "unix:/path";
 *     defaultVerdict   what milter_default_action means after a
 *                      communication error.
 */

export type DefaultAction = "accept" | "reject" | "tempfail" | "quarantine" | "shutdown";

/** Macro name lists per stage (milter_*_macros). */
export interface MacroLists {
  connect: string;
  helo: string;
  mail: string;
  rcpt: string;
  data: string;
  eoh: string;
  eom: string;
  unknown: string;
}

export interface MilterConf {
  /** "inet:host:port", "unix:/path" (the service name as configured). */
  name: string;
  defaultAction: DefaultAction;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  contentTimeoutMs: number;
  /** milter_protocol: a version (2, 3, 4, 6), optionally with no_header_reply. */
  protocol: string;
  macros: MacroLists;
}

/** What the MTA does after an event. */
export type Verdict =
  | { kind: "continue" }
  | { kind: "accept" }
  | { kind: "reject"; reply: string }
  | { kind: "discard" }
  | { kind: "hold"; reason: string }
  | { kind: "shutdown"; reply: string };

/** A modification asked for at end of message. */
export type MilterEdit =
  | { op: "addheader"; name: string; value: string }
  | { op: "insheader"; index: number; name: string; value: string }
  | { op: "chgheader"; index: number; name: string; value: string }
  | { op: "addrcpt"; address: string; args: string }
  | { op: "delrcpt"; address: string }
  | { op: "chgfrom"; address: string; args: string }
  | { op: "replbody"; data: Buffer };

export interface EomResult {
  verdict: Verdict;
  edits: MilterEdit[];
}

/** Gives a macro's value, or undefined when it has none. */
export type MacroSource = (name: string) => string | undefined;

/** Go on with the next event. */
export const CONTINUE: Verdict = { kind: "continue" };
export const TEMPFAIL_DEFAULT = "451 4.7.1 Service unavailable - try again later";

/** Parses milter_protocol: the version and whether headers get no reply. */
export function parseProtocol(p: string): { version: number; noHeaderReply: boolean } | null {
  let version = 0;
  let noHeaderReply = false;
  for (const w of p.split(/[\s,]+/).filter((x) => x !== "")) {
    if (w === "no_header_reply") noHeaderReply = true;
    else if (["2", "3", "4", "6"].includes(w) && version === 0) version = Number(w);
    else return null;
  }
  return version === 0 ? null : { version, noHeaderReply };
}

/** Splits "inet:host:port" / "unix:/path" into something net.connect takes. */
export function milterEndpoint(
  name: string,
): { ok: true; opts: { host: string; port: number } | { path: string } } | { ok: false; why: string } {
  const i = name.indexOf(":");
  const type = i < 0 ? "" : name.slice(0, i);
  const rest = i < 0 ? "" : name.slice(i + 1);
  if (type === "" || rest === "")
    return { ok: false, why: `Milter service needs transport:endpoint instead of "${name}"` };
  if (type === "unix" || type === "local") return { ok: true, opts: { path: rest } };
  if (type !== "inet")
    return { ok: false, why: `invalid transport name: ${type} in Milter service: ${name}` };
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(rest) ?? /^(\d{1,5})@(.+)$/.exec(rest);
  if (m === null) return { ok: false, why: `bad inet endpoint in Milter service: ${name}` };
  const [host, port] = m[3] !== undefined ? [m[1] ?? m[2] ?? "", m[3]] : [m[2] ?? "", m[1] ?? ""];
  const n = Number(port);
  if (!(n > 0 && n < 65536)) return { ok: false, why: `bad port in Milter service: ${name}` };
  return { ok: true, opts: { host: host === "" ? "localhost" : host, port: n } };
}

/** The verdict of milter_default_action after a communication error. */
export function defaultVerdict(a: DefaultAction): Verdict {
  switch (a) {
    case "accept":
      return CONTINUE;
    case "reject":
      return { kind: "reject", reply: "550 5.5.0 Service unavailable" };
    case "shutdown":
      return { kind: "shutdown", reply: "421 4.7.1 Service unavailable - try again later" };
    case "quarantine":
      return { kind: "hold", reason: "default_action" };
    default:
      return { kind: "reject", reply: TEMPFAIL_DEFAULT };
  }
}
