/*
 * postern-check - "postern check": everything that would stop a start
 *
 * DESCRIPTION
 *   Reports, without stopping at the first, every problem in main.cf and
 *   master.cf (syntax, parameter values, -o overrides), unknown parameters
 *   (as warnings), services whose daemon this build lacks, a missing
 *   mail_owner account when run as root, chroot=y services that cannot get
 *   their jail (a problem as root; as another user a warning, together
 *   with what that mode does not protect), and queue directories with
 *   wrong owners or modes (warnings: master sets them at start, so a
 *   Postfix spool or an empty queue directory is taken over as it is).
 *   Returns the problems and the warnings.
 */
import { Config, ConfigError } from "../../global/config.js";
import { daemonAvailable, isPosternDaemon } from "../../global/daemons.js";
import { closeSync, openSync, readSync } from "node:fs";
import { isBerkeleyDb } from "../../global/dict-bdb.js";
import { dbSuffix, foreignFormat, isPosternTable } from "../../global/dict-db.js";
import { probeJail } from "../../global/jail.js";
import { fileTables, valueOf } from "../../global/jail-files.js";
import { checkQueueTree } from "../../global/queue-dirs.js";
import { getUser } from "../../util/unix-users.js";

export interface CheckReport {
  problems: string[];
  warnings: string[];
}

/** Says whether the chroot=y services get their jail, and what it protects in this mode. */
function checkJail(cfg: Config, problems: string[], warnings: string[]): void {
  const jailed = cfg.master.entries.filter((e) => (e.chroot === "-" ? "n" : e.chroot) === "y");
  if (jailed.length === 0) return;
  const names = [...new Set(jailed.map((e) => e.service))].join(", ");
  const jail = probeJail();
  const root = process.getuid?.() === 0;
  if (typeof jail === "string") {
    if (root)
      problems.push(`chroot=y services (${names}) need a jail: ${jail}; or set their chroot column to n`);
    else warnings.push(`chroot=y services (${names}) would run without a jail: ${jail}`);
    return;
  }
  if (!root)
    warnings.push(
      `chroot=y services (${names}) run in a jail (a bwrap user namespace): they see the queue, the configuration, Postern's code and the few system files a resolver needs (docs/jail.md), nothing else; but a jailed daemon owns its jail, so it could reopen the directory that holds Node and start programs`,
    );
}

/**
 * Indexed tables whose file another program made and Postern cannot read
 * (LMDB; Postfix's Berkeley DB hash and btree files are read as they are):
 * every lookup would fail. Says which command rebuilds each (postalias for
 * alias tables).
 */
function checkTableFormats(cfg: Config, warnings: string[]): void {
  const seen = new Set<string>();
  for (const name of ["alias_maps", "alias_database", ...cfg.main.settings.keys()]) {
    for (const { type, path } of fileTables(valueOf(cfg, name))) {
      if (!["hash", "btree", "lmdb"].includes(type) || seen.has(`${type}:${path}`)) continue;
      seen.add(`${type}:${path}`);
      const file = path + dbSuffix(type);
      const head = fileHead(file);
      if (head === null || isPosternTable(head) || isBerkeleyDb(head) !== null) continue;
      const tool = name.startsWith("alias_") ? "postalias" : "postmap";
      warnings.push(
        `${type}:${path}: ${file} is not a Postern table (${foreignFormat(head)}): every lookup in it fails; rebuild it with "${tool} ${type}:${path}"`,
      );
    }
  }
}

/** The first bytes of a file, or null when it cannot be read. */
function fileHead(file: string): Buffer | null {
  try {
    const fd = openSync(file, "r");
    try {
      const head = Buffer.alloc(64);
      return head.subarray(0, readSync(fd, head, 0, 64, 0));
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
}

/** Checks an instance's configuration and queue tree. */
export function checkInstance(dir: string): CheckReport {
  const warnings: string[] = [];
  let cfg: Config;
  try {
    cfg = Config.load(dir);
  } catch (err) {
    if (err instanceof ConfigError) return { problems: [err.message], warnings };
    throw err;
  }
  if (!cfg.mainExists) return { problems: [`open ${cfg.mainPath}: no such file`], warnings };
  const problems = cfg.problems();
  warnings.push(...cfg.unusedWarnings());
  for (const e of cfg.master.entries) {
    if (isPosternDaemon(e.command) && !daemonAvailable(e.command)) {
      warnings.push(
        `${e.file}, line ${e.first}: service ${e.service}/${e.type}: the ${e.command} daemon is not part of this Postern build yet`,
      );
    }
  }
  for (const e of cfg.master.entries) {
    if (e.command === "cleanup" && e.type === "unix" && e.private === "n") {
      warnings.push(
        `${e.file}, line ${e.first}: service ${e.service}/unix is public: any local user could hand mail to cleanup directly; set the private column to "-" or "y"`,
      );
    }
  }
  if (problems.length > 0) return { problems, warnings };
  let owner: { uid: number; gid: number } | null = null;
  if (process.getuid?.() === 0) {
    const u = getUser(cfg.get("mail_owner"));
    if (u === null && cfg.get("mail_owner") !== "postern")
      problems.push(
        `mail_owner: unknown user "${cfg.get("mail_owner")}"; create the account or set mail_owner`,
      );
    else if (u === null)
      warnings.push(`mail_owner: the account postern does not exist yet; postern start creates it`);
    else owner = u;
  } else {
    warnings.push(
      `privilege separation is off: not running as root, so every service runs as uid ${process.getuid?.()}: the daemons are not protected from each other, and local delivery writes every mailbox as that uid`,
    );
  }
  checkJail(cfg, problems, warnings);
  checkTableFormats(cfg, warnings);
  // Missing directories, and the owners and modes of an existing tree (an empty queue directory
  // as a package leaves it, Postfix's own setgid-postdrop modes), are what master sets at start.
  for (const p of checkQueueTree(cfg.get("queue_directory"), owner)) {
    if (/not a directory/.test(p)) problems.push(p);
    else if (!/missing directory/.test(p)) warnings.push(`${p}; postern start sets it`);
  }
  return { problems, warnings };
}
