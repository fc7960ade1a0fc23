/*
 * jail-files - the files a jailed daemon reads that live outside the queue
 *
 * SYNOPSIS
 *   import { jailReadFiles } from "../global/jail-files.js";
 *   jailReadFiles(serviceConfig)  -> ["/etc/ssl/private/mail.key", "/etc/aliases.db", ...]
 *
 * DESCRIPTION
 *   Postfix opens a daemon's tables and reads its TLS keys and certificates
 *   before it enters the chroot jail. Postern's jail is a mount namespace
 *   that exists from the daemon's first instruction, so what the daemon
 *   would have opened first must be visible inside it (read-only). This
 *   module names those files from the service's configuration (every
 *   parameter Postern knows and every name main.cf sets, as the service
 *   sees it with its master.cf -o overrides):
 *     - every parameter whose name ends in _file, _files, _CAfile or
 *       _CApath (certificates, keys, CA files and directories, bounce
 *       templates), except maillog_file, which only master writes;
 *     - every file-backed table named as type:/path anywhere in a value,
 *       with its compiled forms (path.db, path.lmdb, path.cdb); proxy:
 *       tables are left out, since proxymap opens those outside the jail;
 *     - the /file/name entries of list parameters that take them, and
 *       the file of "myorigin = /etc/mailname" (Debian's setting).
 *   Only paths that exist are named; a regular file or, for *_CApath, a
 *   directory. Unix permissions still apply inside the jail: a daemon
 *   reads a root-only key while it is root (its pre-init step), and can no
 *   longer once it has dropped to mail_owner.
 */
import { statSync } from "node:fs";
import { isAbsolute } from "node:path";
import type { Config } from "./config.js";
import { PARAM_TABLE, paramDef } from "./params-table.js";

/** Table types whose name is not a file of theirs (sockets, servers, literal values). */
const NOT_FILE_TYPES = new Set(["proxy", "unix", "inet", "tcp", "socketmap", "static", "inline", "fail"]);
/** The compiled forms of an indexed table (dict-db.ts, dict-cdb.ts). */
const COMPILED_SUFFIXES = ["", ".db", ".lmdb", ".cdb"];
/** type:/path tokens inside a value (also inside unionmap:{...} and pipemap:{...}). */
const TABLE_RE = /(^|[\s,{])([a-z0-9_]+):(\/[^\s,{}]+)/g;

/** True when path exists and is a regular file (or a directory, when dirOk). */
function exists(path: string, dirOk: boolean): boolean {
  try {
    const st = statSync(path);
    return st.isFile() || (dirOk && st.isDirectory());
  } catch {
    return false;
  }
}

/** The expanded value of a parameter, or "" when it cannot be expanded (reported elsewhere). */
export function valueOf(cfg: Config, name: string): string {
  try {
    return cfg.get(name);
  } catch {
    return "";
  }
}

/** The file-backed type:/path tables named in a value (proxy: ones left out). */
export function fileTables(value: string): Array<{ type: string; path: string }> {
  const out: Array<{ type: string; path: string }> = [];
  for (const m of value.matchAll(TABLE_RE)) {
    const type = m[2] ?? "";
    if (!NOT_FILE_TYPES.has(type)) out.push({ type, path: m[3] ?? "" });
  }
  return out;
}

/** The files behind the type:/path tables named in a value. */
function tableFiles(value: string): string[] {
  return fileTables(value).flatMap(({ path }) => COMPILED_SUFFIXES.map((suffix) => path + suffix));
}

/** The absolute paths named by a file-valued parameter. */
function fileParamPaths(value: string): string[] {
  return value.split(/[\s,]+/).filter((p) => isAbsolute(p));
}

/** The outside files that a daemon with this configuration reads (see above). */
export function jailReadFiles(cfg: Config): string[] {
  const found = new Set<string>();
  const add = (path: string, dirOk: boolean): void => {
    if (!found.has(path) && exists(path, dirOk)) found.add(path);
  };
  const names = new Set([...PARAM_TABLE.map((d) => d.name), ...cfg.main.settings.keys()]);
  for (const name of names) {
    const value = valueOf(cfg, name);
    if (value === "") continue;
    if (/_(files?|CAfile|CApath)$/.test(name) && name !== "maillog_file")
      for (const p of fileParamPaths(value)) add(p, name.endsWith("_CApath"));
    for (const p of tableFiles(value)) add(p, false);
    if (paramDef(name)?.fileEntries === true)
      for (const p of value.split(/[\s,]+/)) if (p.startsWith("/")) add(p, false);
  }
  // Debian's "myorigin = /etc/mailname": the value is read from the file.
  const origin = cfg.raw("myorigin");
  if (origin !== undefined) {
    const path = (() => {
      try {
        return cfg.expand(origin);
      } catch {
        return "";
      }
    })();
    if (path.startsWith("/")) add(path, false);
  }
  return [...found].sort();
}
