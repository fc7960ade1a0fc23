/*
 * login-sender - local_login_sender_maps: which envelope senders a local user may use
 *
 * SYNOPSIS
 *   const v = await checkLoginSender(cfg, uid, "alice@example.com");
 *   if (v.status === "deny") refuse(v.reason);   // "not authorized to use sender='...'"
 *   loginSenderMatch(patterns, "alice+ext@example.com", { delims: "+" })   // true
 *
 * DESCRIPTION
 *   local_login_sender_maps (default static:*) is searched with the login
 *   name of the submitting uid ("uid:N" when the uid has no account); the
 *   result is a list of sender patterns separated by commas or white space
 *   (a double-quoted pattern is kept whole). The envelope sender is
 *   allowed when one pattern matches:
 *     *         any sender
 *     <>        the null sender (empty_address_local_login_sender_maps_lookup_key)
 *     @domain   a sender in that domain (case-insensitive)
 *     address   the sender without its address extension (recipient_delimiter),
 *               in external (quoted) form, compared case-insensitively
 *   A login name that the tables do not have may use no sender at all.
 *   A table or account lookup that fails is a temporary failure. As in
 *   Postfix, the default "static:*" allows everything without a lookup.
 *   postdrop and sendmail check this for a clear error message; pickup
 *   enforces it, because anyone can write a maildrop file without them.
 */
import { pwByUid } from "../util/unix-passwd.js";
import type { Config } from "./config.js";
import { DictFlag, dictOpen } from "./dict.js";
import { mapsLookup, stripExtension } from "./dict-search.js";
import { quote822Local } from "./quote-822-local.js";
import { jailedLookup } from "./user-acl.js";

export const LOGIN_SENDER_DEFAULT = "static:*";

export type LoginSenderVerdict =
  { status: "permit" } | { status: "deny"; reason: string } | { status: "tempfail"; reason: string };

/** Splits a pattern list on commas and white space, keeping "double quoted" parts whole. */
export function splitPatterns(text: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && (ch === "," || /\s/.test(ch))) {
      if (cur !== "") out.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (cur !== "") out.push(cur);
  return out;
}

/** True when one of the patterns allows the sender (internal form). */
export function loginSenderMatch(
  patterns: readonly string[],
  sender: string,
  o: { delims: string; nullSender: string; wildcard?: string },
): boolean {
  let stripped: string | null = null;
  for (const p of patterns) {
    const lp = p.toLowerCase();
    if (p.startsWith("@")) {
      const at = sender.lastIndexOf("@");
      if (at >= 0 && sender.slice(at).toLowerCase() === lp) return true;
    } else if (lp === (o.wildcard ?? "*")) return true;
    else if (lp === o.nullSender.toLowerCase()) {
      if (sender === "") return true;
    } else {
      stripped ??= quote822Local(stripExtension(sender, o.delims)?.bare ?? sender).toLowerCase();
      if (lp === stripped) return true;
    }
  }
  return false;
}

/** The login name of a uid, "uid:N" when it has no account, or an error. */
async function loginOf(uid: number): Promise<{ name: string } | { error: string }> {
  try {
    const r = await pwByUid(uid);
    if (r.status === "found") return { name: r.pw.name };
    if (r.status === "notfound") return { name: `uid:${uid}` };
    return {
      error: jailedLookup(
        `account lookup for uid ${uid}: ${r.reason}`,
        "with local_login_sender_maps set, pickup needs chroot = n in master.cf",
      ),
    };
  } catch (err) {
    return { error: `account lookup for uid ${uid}: ${(err as Error).message}` };
  }
}

/** Checks whether a uid may submit with an envelope sender (internal form). */
export async function checkLoginSender(
  cfg: Config,
  uid: number,
  sender: string,
): Promise<LoginSenderVerdict> {
  const maps = cfg.get("local_login_sender_maps").trim();
  if (maps === LOGIN_SENDER_DEFAULT) return { status: "permit" };
  const who = await loginOf(uid);
  if ("error" in who) return { status: "tempfail", reason: who.error };
  const dicts = cfg.list("local_login_sender_maps").map((s) => dictOpen(s, { flags: DictFlag.FOLD_FIX }));
  try {
    const r = await mapsLookup(dicts, "local_login_sender_maps")(who.name, false);
    if (r.status === "tempfail")
      return { status: "tempfail", reason: `local_login_sender_maps table lookup error for '${maps}'` };
    const ok =
      r.status === "found" &&
      loginSenderMatch(splitPatterns(r.value), sender, {
        delims: cfg.get("recipient_delimiter"),
        nullSender: cfg.get("empty_address_local_login_sender_maps_lookup_key"),
      });
    return ok ? { status: "permit" } : { status: "deny", reason: `not authorized to use sender='${sender}'` };
  } finally {
    for (const d of dicts) d.close();
  }
}
