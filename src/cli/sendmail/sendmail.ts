/*
 * sendmail - the Sendmail-compatible mail posting interface
 *
 * SYNOPSIS
 *   sendmail [option ...] [recipient ...]
 *   mailq            (sendmail -bp)
 *   sendmail -bi     (newaliases)
 *
 * DESCRIPTION
 *   Programs that send mail (cron, PHP's mail(), logwatch, MUAs) run
 *   sendmail; Postern's behaves as Postfix's. By default it reads a message
 *   from standard input until EOF (or a line with only "." unless -i) and
 *   posts it to the maildrop directory for pickup (sendmail-enqueue.ts).
 *   The options are in sendmail-args.ts. Other modes run the command that
 *   does the work, as Postfix does: -bp and mailq run "postqueue -p", -q
 *   "postqueue -f", -qR "postqueue -s", -qI "postqueue -i", -bi and -I
 *   "newaliases" (or "postalias" with -oA), -bd "postern start"; -bs speaks
 *   SMTP on standard input and output (sendmail-smtp.ts).
 *
 *   -C or $MAIL_CONFIG selects the configuration directory; it is passed
 *   on to the commands run. The exit status is from sysexits: 0 when the
 *   message is queued, EX_USAGE, EX_DATAERR, EX_NOPERM, EX_TEMPFAIL,
 *   EX_UNAVAILABLE ... with one "sendmail: fatal: ..." line on standard
 *   error otherwise.
 *
 * SECURITY
 *   sendmail has no privileges and needs none (see README, Security). Like
 *   Postfix's, it does not police its own arguments: a program that passes
 *   user-supplied addresses must put them after "--".
 */
import { spawn } from "node:child_process";
import { basename, join } from "node:path";
import { commandConfig, fatalStatus, runCommand } from "../../global/cmd-status.js";
import type { Config } from "../../global/config.js";
import { installRoot } from "../../global/install-paths.js";
import { EX } from "../../global/sys-exits.js";
import { msg, msgInit } from "../../util/msg.js";
import { parseSendmailArgs, type SendmailOptions } from "./sendmail-args.js";
import { enqueue } from "./sendmail-enqueue.js";

/** Runs another Postern command with the same configuration; resolves to its exit status. */
function runTool(cfg: Config, tool: string, args: string[], background = false): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(installRoot(), "bin", tool), ...args], {
      stdio: background ? ["ignore", "ignore", "inherit"] : "inherit",
      env: { ...process.env, MAIL_CONFIG: cfg.dir },
    });
    child.on("error", (err) => {
      msg.error(`cannot run ${tool}: ${err.message}`);
      resolve(EX.UNAVAILABLE);
    });
    child.on("exit", (code, signal) => resolve(code ?? (signal !== null ? EX.SOFTWARE : 0)));
  });
}

/** Refuses recipients in a mode that takes none. */
function noRecipients(o: SendmailOptions, what: string): void {
  if (o.recipients.length > 0) fatalStatus(EX.USAGE, `${what} requires no recipient`);
}

/** newaliases, or postalias with the -oA table. */
function newaliases(cfg: Config, o: SendmailOptions): Promise<number> {
  noRecipients(o, "alias initialization mode");
  const verbose = new Array<string>(o.verbose).fill("-v");
  if (o.aliasMap !== undefined) return runTool(cfg, "postalias", [...verbose, "--", o.aliasMap]);
  return runTool(cfg, "newaliases", verbose);
}

/** Delivery mode: enqueue, or one of the flush requests of -qR and -qI. */
function delivery(cfg: Config, o: SendmailOptions): Promise<number> {
  const verbose = new Array<string>(o.verbose).fill("-v");
  if (o.siteToFlush !== undefined) {
    noRecipients(o, "flush site");
    return runTool(cfg, "postqueue", ["-s", o.siteToFlush, ...verbose]);
  }
  if (o.idToFlush !== undefined) {
    noRecipients(o, "flush queue_id");
    return runTool(cfg, "postqueue", ["-i", o.idToFlush, ...verbose]);
  }
  return enqueue(cfg, o, process.stdin);
}

/** Runs sendmail with argv under the given program name. */
export async function sendmailMain(argv: string[], program: string): Promise<number> {
  const r = parseSendmailArgs(argv, program);
  if (!r.ok)
    fatalStatus(
      r.status,
      r.status === EX.USAGE ? `${r.error}; usage: ${program} [options] [recipient ...]` : r.error,
    );
  const o = r.opts;
  msgInit({ verbose: Math.max(0, o.verbose - 1) });
  msg.debug(`mode ${o.mode}`);
  for (const w of o.warnings) msg.warn(w);
  const cfg = commandConfig(o.configDir);
  const verbose = new Array<string>(o.verbose).fill("-v");
  switch (o.mode) {
    case "enqueue":
      return delivery(cfg, o);
    case "mailq":
      noRecipients(o, "display queue mode");
      return runTool(cfg, "postqueue", ["-p", ...verbose]);
    case "flush":
      noRecipients(o, "flush queue mode");
      return runTool(cfg, "postqueue", ["-f", ...verbose]);
    case "newaliases":
      return newaliases(cfg, o);
    case "daemon":
      noRecipients(o, "daemon mode");
      return runTool(cfg, "postern", ["-c", cfg.dir, ...verbose, "start"], true);
    case "smtp":
      noRecipients(o, "stand-alone mode");
      // Loaded only here: the usual submission does not need it.
      return (await import("./sendmail-smtp.js")).smtpSession(cfg, process.stdin, process.stdout);
    case "ignore":
      return EX.OK;
  }
}

const program = basename(process.argv[1] ?? "sendmail");
await runCommand(program === "mailq" ? "mailq" : "sendmail", () =>
  sendmailMain(process.argv.slice(2), program),
);
