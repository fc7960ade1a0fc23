/*
 * smtpd-sasl - SMTP AUTH in the SMTP server
 *
 * DESCRIPTION
 *   smtpdSasl() reads, once per process, smtpd_sasl_auth_enable,
 *   smtpd_sasl_type (the back end: sasl-server.ts), the security options
 *   (smtpd_sasl_security_options without TLS, smtpd_sasl_tls_security_options
 *   with it), smtpd_tls_auth_only, broken_sasl_auth_clients,
 *   smtpd_sasl_exceptions_networks, smtpd_sasl_response_limit,
 *   smtpd_sasl_authenticated_header and smtpd_sender_login_maps.
 *   offeredMechanisms() is what EHLO announces to this client now
 *   ("AUTH PLAIN LOGIN", and "AUTH=PLAIN LOGIN" for broken clients);
 *   authCommand() runs the AUTH command with Postfix's replies: 334
 *   challenges, "*" to abort (501 5.7.0), 235 2.7.0 on success, 535 5.7.8
 *   (or 454 4.7.0 when the back end could not answer) on failure, each
 *   failure logged as "SASL <mech> authentication failed: <reason>". A
 *   failure is an error reply, so smtpd_soft_error_limit slows a password
 *   guesser down and smtpd_hard_error_limit hangs up on it; anvil's
 *   smtpd_client_auth_rate_limit bounds AUTH commands per client and time
 *   unit across sessions (smtpd-anvil.ts).
 *   senderLoginCheck() is the reject_*sender_login_mismatch family:
 *   smtpd_sender_login_maps says which logins own a sender address (looked
 *   up as the address, then as @domain), and the reply is Postfix's
 *   "553 5.7.1 <sender>: Sender address rejected: not owned by user NAME"
 *   or "... not logged in".
 */
import { dictOpen } from "../global/dict.js";
import { DictFlag } from "../global/dict-types.js";
import type { Config } from "../global/config.js";
import { NamadrList } from "../global/namadr-list.js";
import {
  filterMechanisms,
  saslServerBackend,
  type SaslBackend,
  type SaslPeer,
} from "../global/sasl-server.js";
import { msg } from "../util/msg.js";
import { refuse, type CheckContext, type Stage, type Verdict } from "./smtpd-check.js";

export interface SmtpdSasl {
  enabled: boolean;
  backend: SaslBackend | null;
  authOnly: boolean;
  options: string[];
  tlsOptions: string[];
  broken: boolean;
  header: boolean;
  exceptions: NamadrList;
  responseLimit: number;
  service: string;
  loginMaps: string[];
}

/** Builds the SASL settings of the process (the back end is only made when AUTH is on). */
export function smtpdSasl(cfg: Config): SmtpdSasl {
  const enabled = cfg.bool("smtpd_sasl_auth_enable");
  let backend: SaslBackend | null = null;
  if (enabled) {
    const b = saslServerBackend(cfg, "smtpd");
    if ("error" in b) msg.warn(`${b.error}: SMTP AUTH is not offered`);
    else backend = b;
  }
  return {
    enabled,
    backend,
    authOnly: cfg.bool("smtpd_tls_auth_only"),
    options: cfg.list("smtpd_sasl_security_options"),
    tlsOptions: cfg.list("smtpd_sasl_tls_security_options"),
    broken: cfg.bool("broken_sasl_auth_clients"),
    header: cfg.bool("smtpd_sasl_authenticated_header"),
    exceptions: new NamadrList("smtpd_sasl_exceptions_networks", cfg.list("smtpd_sasl_exceptions_networks"), {
      parentStyle: cfg.list("parent_domain_matches_subdomains").includes("smtpd_sasl_exceptions_networks"),
    }),
    responseLimit: cfg.int("smtpd_sasl_response_limit"),
    service: cfg.get("smtpd_sasl_service"),
    loginMaps: cfg.list("smtpd_sender_login_maps"),
  };
}

/** The mechanisms this client may use now (empty: no AUTH). */
export async function offeredMechanisms(
  s: SmtpdSasl,
  tlsActive: boolean,
  client: { name: string; addr: string },
): Promise<string[]> {
  if (s.backend === null || (s.authOnly && !tlsActive)) return [];
  if ((await s.exceptions.match(client.name, client.addr)).status === "match") return [];
  const mechs = await s.backend.mechanisms();
  if ("error" in mechs) {
    msg.warn(mechs.error);
    return [];
  }
  return filterMechanisms(mechs, tlsActive ? s.tlsOptions : s.options).map((m) => m.name);
}

/** The EHLO keywords for a mechanism list. */
export function authKeywords(s: SmtpdSasl, mechs: readonly string[]): string[] {
  if (mechs.length === 0) return [];
  const list = mechs.join(" ");
  return s.broken ? [`AUTH ${list}`, `AUTH=${list}`] : [`AUTH ${list}`];
}

export interface AuthIo {
  client: string;
  peer: SaslPeer;
  reply(line: string): void;
  /** The next client line (cut at limit): null when the client went away. */
  read(limit: number): Promise<{ text: string; cut: boolean } | null>;
}

export type AuthOutcome =
  { kind: "ok"; user: string; method: string } | { kind: "error"; reply: string } | { kind: "lost" };

/** The refusal of an AUTH command before any exchange, or null. */
export function authRefusal(
  s: SmtpdSasl,
  st: {
    helo: boolean;
    heloRequired: boolean;
    inMail: boolean;
    tls: boolean;
    loggedIn: boolean;
    discarded: boolean;
  },
): string | null {
  if (st.heloRequired && !st.helo) return "503 5.5.1 Error: send HELO/EHLO first";
  if (s.backend === null || st.discarded) return "503 5.5.1 Error: authentication not enabled";
  if (st.inMail) return "503 5.5.1 Error: MAIL transaction in progress";
  if (s.authOnly && !st.tls) return "504 5.5.4 Encryption required for requested authentication mechanism";
  if (st.loggedIn) return "503 5.5.1 Error: already authenticated";
  return null;
}

/** Runs AUTH mechanism [initial-response] to its end. */
export async function authCommand(
  s: SmtpdSasl,
  io: AuthIo,
  arg: string,
  offered: readonly string[],
): Promise<AuthOutcome> {
  const words = arg.split(/\s+/).filter((w) => w !== "");
  if (words.length < 1 || words.length > 2 || s.backend === null)
    return { kind: "error", reply: "501 5.5.4 Syntax: AUTH mechanism" };
  const mech = (words[0] ?? "").toUpperCase();
  const conv = s.backend.conversation(io.peer);
  try {
    let step = offered.includes(mech)
      ? await conv.first(mech, words[1] ?? null)
      : ({ kind: "fail", reason: "Invalid authentication mechanism", temp: false } as const);
    while (step.kind === "more") {
      io.reply(`334 ${step.challenge}`);
      const line = await io.read(s.responseLimit);
      if (line === null) return { kind: "lost" };
      if (line.cut) return { kind: "error", reply: "500 5.5.6 SASL response limit exceeded" };
      if (line.text === "*") {
        msg.warn(`${io.client}: SASL ${mech} authentication aborted`);
        return { kind: "error", reply: "501 5.7.0 Authentication aborted" };
      }
      step = await conv.next(line.text.trim());
    }
    if (step.kind === "ok")
      return { kind: "ok", user: step.user.replace(/[^\x20-\x7e]/g, "?"), method: mech };
    const user = "user" in step && step.user !== undefined ? step.user : "(unavailable)";
    msg.warn(
      `${io.client}: SASL ${mech.slice(0, 100)} authentication failed: ${step.reason}, sasl_username=${user.slice(0, 100)}`,
    );
    return {
      kind: "error",
      reply: step.temp
        ? `454 4.7.0 Temporary authentication failure: ${step.reason}`
        : `535 5.7.8 Error: authentication failed: ${step.reason}`,
    };
  } finally {
    conv.close();
  }
}

/** Validates the AUTH= parameter of MAIL FROM (RFC 4954 section 5); returns an error reply or null. */
export function mailAuthParam(s: SmtpdSasl, value: string | undefined): string | null {
  if (value === undefined) return null;
  if (s.backend === null) return "503 5.7.4 Error: authentication disabled";
  if (value.length > 1024 || !/^(<>|[!-~]+)$/.test(value))
    return "501 5.5.4 Error: Bad AUTH parameter syntax";
  return null;
}

/** The comment line of the Received: header for an authenticated client, if asked for. */
export function authReceived(s: SmtpdSasl, user: string | null): string[] {
  if (!s.header || user === null) return [];
  return [`\t(Authenticated sender: ${user.replace(/[()\\\r\n\t]/g, "?")})`];
}

/** The logins that own a sender address, from smtpd_sender_login_maps; null when none is listed. */
async function owners(s: SmtpdSasl, sender: string): Promise<string[] | null | "tempfail"> {
  const addr = sender.toLowerCase();
  const at = addr.lastIndexOf("@");
  const keys = at > 0 ? [addr, addr.slice(at)] : [addr];
  for (const key of keys) {
    for (const map of s.loginMaps) {
      const r = await dictOpen(map, { flags: DictFlag.FOLD_FIX }).lookup(key);
      if (r.status === "tempfail") return "tempfail";
      if (r.status === "found") return r.value.split(/[\s,]+/).filter((w) => w !== "");
    }
  }
  return null;
}

/** reject_sender_login_mismatch and its three relatives. */
export async function senderLoginCheck(
  s: SmtpdSasl,
  ctx: CheckContext,
  name: string,
  _stage: Stage,
): Promise<Verdict> {
  const sender = ctx.sender ?? "";
  if (s.loginMaps.length === 0 || sender === "") return { kind: "dunno" };
  const user = ctx.saslUser;
  const checkAuth = name !== "reject_unauthenticated_sender_login_mismatch";
  const checkUnauth = name !== "reject_authenticated_sender_login_mismatch";
  if (user !== null && !checkAuth) return { kind: "dunno" };
  if (user === null && !checkUnauth) return { kind: "dunno" };
  const own = await owners(s, sender);
  if (own === "tempfail")
    return refuse(
      ctx,
      "sender",
      "defer",
      "451",
      "4.3.0",
      "Server configuration error (smtpd_sender_login_maps lookup)",
    );
  if (user === null)
    return own === null
      ? { kind: "dunno" }
      : refuse(ctx, "sender", "reject", "553", "5.7.1", "not logged in");
  if (own === null && name === "reject_known_sender_login_mismatch") return { kind: "dunno" };
  if (own !== null && own.some((o) => o.toLowerCase() === user.toLowerCase())) return { kind: "dunno" };
  return refuse(ctx, "sender", "reject", "553", "5.7.1", `not owned by user ${user}`);
}
