/*
 * cmd-status - fatal errors with <sysexits.h> status for the mail commands
 *
 * SYNOPSIS
 *   fatalStatus(EX.NOPERM, "User bob(1001) is not allowed to submit mail");  // throws
 *   await runCommand("sendmail", async () => { ...; return EX.OK; });
 *   const cfg = commandConfig(dirFlag);   // -c / MAIL_CONFIG, or fatal EX_CONFIG
 *
 * DESCRIPTION
 *   Scripts that call sendmail, mailq or postqueue look at the exit status,
 *   so those commands fail as Postfix's msg_fatal_status() does: one line
 *   "name: fatal: text" on standard error and a status from sysexits
 *   (global/sys-exits.ts). fatalStatus() throws a CommandFatal; runCommand()
 *   prints it, turns configuration errors into EX_CONFIG and anything
 *   unexpected into EX_SOFTWARE, and sets the exit status.
 */
import { msg, msgInit } from "../util/msg.js";
import { Config, ConfigError } from "./config.js";
import { configDirectory } from "./install-paths.js";
import { EX } from "./sys-exits.js";

export class CommandFatal extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** Ends the command with a sysexits status and a message. */
export function fatalStatus(status: number, text: string): never {
  throw new CommandFatal(status, text);
}

/** Loads the configuration of -c DIR, else $MAIL_CONFIG, else the default; a bad one is EX_CONFIG. */
export function commandConfig(dirFlag: string | undefined): Config {
  try {
    const cfg = Config.load(configDirectory(dirFlag));
    const first = cfg.main.problems[0];
    if (first !== undefined) fatalStatus(EX.CONFIG, `${first.file}, line ${first.line}: ${first.text}`);
    return cfg;
  } catch (err) {
    if (err instanceof ConfigError) fatalStatus(EX.CONFIG, err.message);
    throw err;
  }
}

/** Runs a command's main function and sets the process exit status. */
export async function runCommand(name: string, main: () => Promise<number>): Promise<void> {
  msgInit({ tag: name });
  try {
    process.exitCode = await main();
  } catch (err) {
    if (err instanceof CommandFatal) {
      process.stderr.write(`${name}: fatal: ${err.message}\n`);
      process.exitCode = err.status;
    } else if (err instanceof ConfigError) {
      process.stderr.write(`${name}: fatal: ${err.message}\n`);
      process.exitCode = EX.CONFIG;
    } else {
      msg.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
      process.exitCode = EX.SOFTWARE;
    }
  }
}
