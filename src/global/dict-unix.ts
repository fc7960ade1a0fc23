/*
 * dict-unix - the unix: table type (the system's account database)
 *
 * SYNOPSIS
 *   import "../global/dict-unix.js";          // registers the unix: type
 *   dictOpen("unix:passwd.byname").lookup("alice")
 *       -> found "alice:*:1000:1000:Alice:/home/alice:/bin/sh"
 *   dictOpen("unix:group.byname").lookup("staff") -> found "staff:*:50:"
 *
 * DESCRIPTION
 *   As Postfix's dict_unix: passwd.byname finds an account by login name
 *   and answers its passwd(5) line (the password field hidden), and
 *   group.byname finds a group by name. Lookups read /etc/passwd or
 *   /etc/group and then ask getent(1), so every name service in
 *   nsswitch.conf counts (util/unix-passwd.ts). A failing name service is
 *   a temporary failure, never "not found". Keys are folded to lower case
 *   (FOLD_FIX); names with characters no account name has are not found
 *   without asking anyone. Any other map name makes a table that fails
 *   every lookup (with a warning).
 */
import { grByName, pwByName } from "../util/unix-passwd.js";
import { dictRegister, dictSurrogate, dictTypeKnown } from "./dict-registry.js";
import {
  DictFlag,
  foldKey,
  found,
  NOT_FOUND,
  tempFail,
  type DictImpl,
  type DictResult,
} from "./dict-types.js";

const NAME_RE = /^[a-z0-9_][a-z0-9_.-]{0,63}\$?$/i;

/** A unix:passwd.byname or unix:group.byname table. */
class UnixDict implements DictImpl {
  readonly type = "unix";
  readonly name: string;
  readonly flags: number;

  /** Opens the named map ("passwd.byname" or "group.byname"). */
  constructor(name: string, flags: number) {
    this.name = name;
    this.flags = flags | DictFlag.FIXED;
  }

  /** Looks a login or group name up. */
  async lookup(key: string): Promise<DictResult> {
    const name = foldKey(key, this.flags, "fixed");
    if (!NAME_RE.test(name)) return NOT_FOUND;
    if (this.name === "passwd.byname") {
      const r = await pwByName(name);
      if (r.status === "error") return tempFail(r.reason);
      if (r.status === "notfound") return NOT_FOUND;
      const pw = r.pw;
      return found(`${pw.name}:*:${pw.uid}:${pw.gid}:${pw.gecos}:${pw.home}:${pw.shell}`);
    }
    const g = await grByName(name);
    if (g.status === "error") return tempFail(g.reason);
    return g.status === "notfound" ? NOT_FOUND : found(`${name}:*:${g.gid}:`);
  }

  /** Nothing to release. */
  close(): void {}
}

/** The unix: open function. */
export function unixOpen(name: string, flags: number): DictImpl {
  if (name !== "passwd.byname" && name !== "group.byname")
    return dictSurrogate("unix", name, flags, `unknown table: unix:${name}`);
  return new UnixDict(name, flags);
}

if (!dictTypeKnown("unix")) dictRegister("unix", unixOpen);
