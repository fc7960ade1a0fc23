/*
 * postern-sasl - "postern sasl-passwd": users of the built-in SASL type
 *
 * SYNOPSIS
 *   postern [-c config_dir] sasl-passwd add USER     (password on standard input)
 *   postern [-c config_dir] sasl-passwd delete USER
 *
 * DESCRIPTION
 *   Edits the first table of postern_sasl_password_maps (sasl-passwd.ts):
 *   "add" stores an scrypt hash of the password read from standard input
 *   (the first line; on a terminal it is asked for without echo), "delete"
 *   removes the user. smtpd processes read the table at each AUTH, so no
 *   reload is needed.
 */
import type { Config } from "../../global/config.js";
import { deletePassword, setPassword } from "../../global/sasl-passwd.js";
import { msg } from "../../util/msg.js";

const USAGE = "usage: postern [-c config_dir] sasl-passwd add|delete USER";

/** Reads a password: without echo on a terminal, else the first line of standard input. */
async function readPassword(): Promise<string> {
  const stdin = process.stdin;
  if (stdin.isTTY) process.stderr.write("Password: ");
  if (stdin.isTTY) stdin.setRawMode(true);
  let text = "";
  try {
    for await (const chunk of stdin) {
      text += (chunk as Buffer).toString("utf8");
      if (/[\r\n]/.test(text) || text.length > 4096) break;
    }
  } finally {
    if (stdin.isTTY) {
      stdin.setRawMode(false);
      process.stderr.write("\n");
    }
  }
  return text.split(/\r?\n|\r/)[0] ?? "";
}

/** Runs the sasl-passwd command; returns the exit status. */
export async function saslPasswd(cfg: Config, args: readonly string[]): Promise<number> {
  const [op, user, ...extra] = args;
  if ((op !== "add" && op !== "delete") || user === undefined || extra.length > 0) return msg.fatal(USAGE);
  const map = cfg.list("postern_sasl_password_maps")[0];
  if (map === undefined) return msg.fatal("postern_sasl_password_maps is empty: set it to a table first");
  try {
    if (op === "add") {
      const had = await setPassword(map, user, await readPassword());
      process.stderr.write(`postern: ${had ? "changed the password of" : "added"} ${user} in ${map}\n`);
    } else if (!deletePassword(map, user)) {
      process.stderr.write(`postern: ${user} is not in ${map}\n`);
      return 1;
    }
  } catch (err) {
    return msg.fatal((err as Error).message);
  }
  return 0;
}
