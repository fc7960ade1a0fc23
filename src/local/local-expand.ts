/*
 * local-expand - $name expansion of forward_path, luser_relay and command_execution_directory
 *
 * SYNOPSIS
 *   const r = localExpand("$home/.forward${recipient_delimiter}${extension}", a, u, set, filter);
 *   if (r.ok && !r.undefinedUsed) ... r.value, r.extensionUsed
 *
 * DESCRIPTION
 *   The names are Postfix's: $user (the bare recipient name), $home and
 *   $shell (the recipient's account), $domain, $local and $mailbox (the
 *   whole local part), $recipient (the whole address), $extension (the
 *   address extension, undefined when there is none), and
 *   $recipient_delimiter (the delimiter the address used, else the first
 *   of recipient_delimiter, undefined when there is none). Values are
 *   inserted once, not expanded again; characters outside the filter
 *   become "_". extensionUsed tells whether $extension was inserted (a
 *   .forward+ext file then consumes the extension).
 */
import { macSubst } from "../util/mac-subst.js";
import type { LocalSettings, MsgAttr, UserAttr } from "./local-state.js";

export type LocalExpansion =
  { ok: true; value: string; undefinedUsed: boolean; extensionUsed: boolean } | { ok: false; error: string };

/** Expands a delivery-time pattern for a recipient. */
export function localExpand(
  pattern: string,
  a: MsgAttr,
  u: UserAttr,
  set: LocalSettings,
  filter: string | undefined,
): LocalExpansion {
  const lookup = (name: string): string | undefined => {
    switch (name) {
      case "user":
        return a.user;
      case "home":
        return u.home ?? undefined;
      case "shell":
        return u.shell ?? undefined;
      case "domain":
        return a.domain ?? undefined;
      case "local":
      case "mailbox":
        return a.local;
      case "recipient":
        return a.rcpt.address;
      case "extension":
        return a.extension ?? undefined;
      case "recipient_delimiter": {
        const used = a.local[a.user.length];
        const d = used !== undefined && used !== "" ? used : set.delimiter[0];
        return d === undefined || d === "" ? undefined : d;
      }
      default:
        return undefined;
    }
  };
  const r = macSubst(pattern, lookup, filter === undefined ? {} : { filter });
  if (!r.ok) return r;
  return { ok: true, value: r.value, undefinedUsed: r.undefinedUsed, extensionUsed: r.used.has("extension") };
}
