/*
 * postern-check - "postern check": everything that would stop a start
 *
 * DESCRIPTION
 *   Reports, without stopping at the first, every problem in main.cf and
 *   master.cf (syntax, parameter values, -o overrides), unknown parameters
 *   (as warnings), services whose daemon this build lacks, a missing
 *   mail_owner account when run as root, and queue directories with wrong
 *   owners or modes. Returns the problems and the warnings.
 */
import { Config, ConfigError } from "../../global/config.js";
import { daemonAvailable, isPosternDaemon } from "../../global/daemons.js";
import { checkQueueTree } from "../../global/queue-dirs.js";
import { getUser } from "../../util/unix-users.js";
import { existsSync } from "node:fs";

export interface CheckReport {
  problems: string[];
  warnings: string[];
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
    if (u === null)
      problems.push(
        `mail_owner: unknown user "${cfg.get("mail_owner")}"; create the account or set mail_owner`,
      );
    else owner = u;
  } else {
    warnings.push(
      `privilege separation is off: not running as root, so every service would run as uid ${process.getuid?.()}`,
    );
  }
  problems.push(
    ...checkQueueTree(cfg.get("queue_directory"), owner).filter(
      (p) => !/missing directory/.test(p) || existsSync(cfg.get("queue_directory")),
    ),
  );
  return { problems, warnings };
}
