/*
 * local-recipient - the delivery switch: aliases, .forward, mailbox, unknown users
 *
 * DESCRIPTION
 *   deliverRecipient() checks one address (nesting limit, duplicates,
 *   Delivered-To loops), splits it into local part, user, extension and
 *   domain (folded to lower case), and runs the switch, in Postfix's order
 *   of precedence:
 *     1. the alias of the whole local part, then of the bare user name;
 *     2. when an owner- alias or a .forward file is in charge, or the
 *        address came from an :include: file, the address is forwarded
 *        (resubmitted as new mail, see local-forward.ts);
 *     3. the user's .forward file (forward_path);
 *     4. the mailbox (mailbox_transport, mailbox_command, Maildir, mbox);
 *     5. an unknown user: fallback_transport, luser_relay, or a bounce
 *        ("unknown user"); postmaster and MAILER-DAEMON without an alias
 *        are discarded with a warning.
 *   deliverResolve() takes an address from an alias, include or .forward
 *   file: it is rewritten and resolved as qmgr would; an address that this
 *   transport delivers goes through the switch again, any other is
 *   forwarded. The unmatched address extension is spliced back in
 *   (propagate_unmatched_extensions).
 */
import { deliverPass } from "../global/deliver-pass.js";
import { deliveredKey } from "../global/mail-copy.js";
import { stripExtension } from "../global/dict-search.js";
import { RESOLVE_FLAG } from "../global/rewrite-proto.js";
import { pwByName } from "../util/unix-passwd.js";
import { msg } from "../util/msg.js";
import { deliverAlias } from "./local-alias.js";
import { deliverDotForward } from "./local-token.js";
import { deliverMailbox } from "./local-mailbox.js";
import { forwardAppend } from "./local-forward.js";
import { localExpand } from "./local-expand.js";
import { DONE, EXPAND, casefold, type LocalRun, type MsgAttr, type UserAttr } from "./local-state.js";

const NESTING_LIMIT = 100;

/** Delivers to one address (see the module comment). */
export async function deliverRecipient(run: LocalRun, a0: MsgAttr, u: UserAttr): Promise<number> {
  const a: MsgAttr = { ...a0, level: a0.level + 1 };
  if (a.level > NESTING_LIMIT) {
    msg.warn(`recipient nesting limit exceeded for ${a.rcpt.address}`);
    return run.bounce(a, "5.4.6", "recipient nesting limit exceeded");
  }
  if (run.beenHere(`recipient ${a.level} ${a.rcpt.address}`)) return DONE;
  if (run.loop.has(deliveredKey(a.rcpt.address)))
    return run.bounce(a, "5.4.6", `mail forwarding loop for ${a.rcpt.address}`);
  a.delivered ??= a.rcpt.address;
  const folded = casefold(a.rcpt.address);
  const at = folded.lastIndexOf("@");
  if (at < 0) msg.warn(`no @ in recipient address: ${folded}`);
  a.local = at < 0 ? folded : folded.slice(0, at);
  a.domain = at < 0 ? null : folded.slice(at + 1);
  a.user = a.local;
  a.extension = null;
  const split = stripExtension(a.local, run.set.delimiter, {
    ownerRequestSpecial: run.set.ownerRequestSpecial,
  });
  if (split !== null) {
    const ext = split.ext.slice(1);
    if (ext.includes("/")) {
      msg.warn(`${run.req.queueId}: address with illegal extension: ${a.local}`);
      a.local = split.bare;
    } else a.extension = ext;
    a.user = split.bare;
  }
  a.unmatched = a.extension;
  if (a.user === "") return run.bounce(a, "5.1.3", `null username in "${a.rcpt.address}"`);
  return deliverSwitch(run, a, u);
}

/** Runs the delivery switch for a prepared address. */
async function deliverSwitch(run: LocalRun, a0: MsgAttr, u: UserAttr): Promise<number> {
  const a: MsgAttr = { ...a0, level: a0.level + 1, unmatched: null };
  if (a.rcpt.address.startsWith("\\")) {
    const b: MsgAttr = { ...a, rcpt: { ...a.rcpt, address: a.rcpt.address.slice(1) } };
    b.local = b.local.replace(/^\\/, "");
    b.user = b.user.replace(/^\\/, "");
    const m = await deliverMailbox(run, b, u);
    return m ?? deliverUnknown(run, b, u);
  }
  const full = await deliverAlias(run, a, u, a.local);
  if (full !== null) return full;
  if (a.extension !== null) {
    if (run.set.propagate & EXPAND.ALIAS) a.unmatched = a.extension;
    const bare = await deliverAlias(run, a, u, a.user);
    if (bare !== null) return bare;
    a.unmatched = a.extension;
  }
  if (a.owner !== null && casefold(a.owner) !== a.user) return deliverIndirect(run, a);
  if (a.expType === EXPAND.INCL) return deliverIndirect(run, a);
  if (run.set.requireHome) {
    const home = await checkHome(run, a);
    if (home !== DONE) return home;
  }
  const fwd = await deliverDotForward(run, a, u);
  if (fwd !== null) return fwd;
  const mbox = await deliverMailbox(run, a, u);
  return mbox ?? deliverUnknown(run, a, u);
}

/** require_home_directory: defers when the recipient's home directory cannot be reached. */
async function checkHome(run: LocalRun, a: MsgAttr): Promise<number> {
  const pw = await pwByName(a.user);
  if (pw.status === "error") {
    msg.warn(`error looking up passwd info for ${a.user}: ${pw.reason}`);
    return run.defer(a, "4.0.0", "user lookup error");
  }
  if (pw.status === "notfound") return DONE;
  const st = await run.pool.stat(run.rights({ ...pw.pw, logname: pw.pw.name }), pw.pw.home || "/");
  if (st.ok && st.kind === "dir") return DONE;
  return run.defer(a, "4.3.0", `cannot access home directory ${pw.pw.home}: ${st.text || "Not a directory"}`);
}

/** Forwards an address by resubmitting the message (see local-forward.ts). */
export function deliverIndirect(run: LocalRun, a: MsgAttr): number {
  if (run.beenHere(`indirect ${a.rcpt.address}`)) return DONE;
  if (run.traceOnly) return run.sent(a, `forwards to ${a.rcpt.address}`);
  forwardAppend(run, a);
  return DONE;
}

/** Splices the unmatched extension back into an address. */
function splice(address: string, a: MsgAttr): string {
  if (a.unmatched === null) return address;
  const delim = a.local[a.user.length] ?? "";
  const at = address.lastIndexOf("@");
  return at < 0
    ? `${address}${delim}${a.unmatched}`
    : `${address.slice(0, at)}${delim}${a.unmatched}${address.slice(at)}`;
}

/** Rewrites and resolves an address from an expansion, then delivers or forwards it. */
export async function deliverResolve(
  run: LocalRun,
  a0: MsgAttr,
  u: UserAttr,
  address: string,
): Promise<number> {
  const a: MsgAttr = { ...a0, level: a0.level + 1 };
  const rw = await run.rewrite.rewrite("local", address);
  if (!rw.ok) return run.defer(a, "4.3.0", "address resolver failure");
  const rs = await run.rewrite.resolve(a.sender, rw.value);
  if (!rs.ok) return run.defer(a, "4.3.0", "address resolver failure");
  if (rs.value.flags & RESOLVE_FLAG.FLAG_ERROR)
    return run.bounce(a, "5.1.3", `bad recipient address syntax: ${rs.value.recipient}`);
  a.rcpt = { ...a.rcpt, address: splice(rs.value.recipient, a) };
  if (rs.value.transport === run.service) return deliverRecipient(run, a, u);
  return deliverIndirect(run, a);
}

/** Delivery for users found neither in the aliases nor in the password database. */
export async function deliverUnknown(run: LocalRun, a0: MsgAttr, u: UserAttr): Promise<number> {
  const a: MsgAttr = { ...a0, level: a0.level + 1 };
  const set = run.set;
  if (run.beenHere(`deliver_unknown ${a.local}`)) return DONE;
  if (set.fallbackTransportMaps !== null) {
    const r = await set.fallbackTransportMaps(a.user, false);
    if (r.status === "found") return pass(run, a, r.value);
    if (r.status === "tempfail") return run.defer(a, "4.3.0", "table lookup failure");
  }
  if (set.fallbackTransport !== "") return pass(run, a, set.fallbackTransport);
  if (set.luserRelay !== "") {
    const x = localExpand(set.luserRelay, { ...a, unmatched: null }, u, set, undefined);
    if (!x.ok) {
      msg.warn(`bad luser_relay value: ${x.error}`);
      return run.defer(a, "4.3.5", "mail system configuration error");
    }
    const relay = x.value.includes("@") ? x.value : `${x.value}@${set.myorigin}`;
    if (casefold(relay) === casefold(a.rcpt.address))
      return run.bounce(a, "5.1.1", `unknown user: "${a.user}"`);
    return deliverResolve(run, { ...a, unmatched: null }, u, x.value);
  }
  if (a.user === "mailer-daemon" || a.user === "postmaster") {
    msg.warn(`required alias not found: ${a.user}`);
    return run.sent(a, "discarded");
  }
  return run.bounce(a, "5.1.1", `unknown user: "${a.user}"`);
}

/**
 * Gives the recipient to another transport (mailbox_transport, fallback_transport).
 * The other agent marks the queue-file recipient done when it succeeds, so only the
 * queue-file recipient itself is passed; an address that came from an expansion is
 * forwarded instead (a new queue file, whose recipient is then passed).
 */
export async function pass(run: LocalRun, a: MsgAttr, spec: string): Promise<number> {
  if (a.rcpt.address !== run.top.address) return deliverIndirect(run, a);
  const r = await deliverPass(run.set.queueDir, spec, run.req, { ...run.top }, run.set.ipcTimeoutMs);
  if (r.status === "sent") return run.sent(a, r.text, r.dsn);
  if (r.status === "bounced") return run.bounce(a, r.dsn, r.text);
  return run.defer(a, r.dsn, r.text);
}
