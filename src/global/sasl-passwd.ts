/*
 * sasl-passwd - edit the password table of the built-in SASL type
 *
 * SYNOPSIS
 *   await setPassword("texthash:/etc/postern/sasl_passwd", "alice", "secret");
 *   deletePassword("hash:/etc/postern/sasl_passwd", "alice");
 *
 * DESCRIPTION
 *   The table is the first entry of postern_sasl_password_maps; it must
 *   be a file: texthash:FILE (read as it is) or an indexed type built by
 *   postmap (hash, btree, lmdb, cdb), whose source FILE is edited and the
 *   table rebuilt. The source is rewritten atomically (a new file renamed
 *   into place), mode 0600 for a new file, the old mode and owner otherwise
 *   (so that mail_owner can still read it). A user
 *   line is "name<TAB>$scrypt$...", the name folded to lower case (the
 *   lookup folds too); a user already present is replaced.
 */
import { chmodSync, chownSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dictBuild, ONDISK_TYPES } from "./dict-mkmap.js";
import { hashPassword } from "./sasl-postern.js";

/** The source file and type of a password table, or an Error. */
function tableFile(map: string): { type: string; file: string } {
  const m = /^([a-z]+):(\/.+)$/.exec(map.trim());
  if (m === null || (m[1] !== "texthash" && !ONDISK_TYPES.includes(m[1] ?? "")))
    throw new Error(`${map}: not a file table (use texthash:/path or hash:/path)`);
  return { type: m[1] ?? "", file: m[2] ?? "" };
}

/** Checks a user name (no white space, no control characters). */
function checkUser(user: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/^[^\s\x00-\x1f\x7f#]{1,255}$/.test(user)) throw new Error(`bad user name "${user}"`);
  return user.toLowerCase();
}

/** Rewrites the source file without the user's line, plus an optional new line; rebuilds an indexed table. */
function rewrite(map: string, user: string, line: string | null): boolean {
  const { type, file } = tableFile(map);
  const old = existsSync(file) ? readFileSync(file, "utf8") : "";
  let found = false;
  const kept = old
    .split("\n")
    .filter((l) => l !== "")
    .filter((l) => {
      const key = /^\s*([^\s#]\S*)/.exec(l)?.[1]?.toLowerCase();
      if (key === user) found = true;
      return key !== user;
    });
  if (line !== null) kept.push(line);
  const st = existsSync(file) ? statSync(file) : null;
  const mode = st !== null ? st.mode & 0o7777 : 0o600;
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, kept.map((l) => `${l}\n`).join(""), { mode });
  chmodSync(tmp, mode);
  if (st !== null && process.getuid?.() === 0) chownSync(tmp, st.uid, st.gid);
  renameSync(tmp, file);
  if (type !== "texthash") dictBuild(type, file);
  return found;
}

/** Adds or replaces a user's password; true when the user was there before. */
export async function setPassword(map: string, user: string, password: string): Promise<boolean> {
  if (password === "" || password.length > 1024)
    throw new Error("the password must have 1 to 1024 characters");
  const name = checkUser(user);
  return rewrite(map, name, `${name}\t${await hashPassword(password)}`);
}

/** Removes a user; true when the user was there. */
export function deletePassword(map: string, user: string): boolean {
  return rewrite(map, checkUser(user), null);
}
