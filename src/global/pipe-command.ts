/*
 * pipe-command - run a command as a user with a message on its standard input
 *
 * SYNOPSIS
 *   import { pipeCommand } from "./pipe-command.js";
 *   const r = await pipeCommand({ command: "|procmail -a $EXT" ..., argv?, rights: { uid, gid },
 *                                 env, exportNames, timeLimitMs, input: chunks });
 *   r.status: "ok" | "defer" | "bounce"  with r.dsn and r.text (the command's output)
 *
 * DESCRIPTION
 *   As Postfix's pipe_command(). The command runs in a new session (its
 *   own process group, so the whole group can be killed) with the given
 *   uid and gid (Node's spawn sets them between fork and exec; primary
 *   group only, no supplementary groups). An argv runs directly; a command
 *   string runs directly when it has only harmless characters
 *   ([A-Za-z0-9!@%-_=+:,./] and spaces, split on white space) and
 *   otherwise, or when a bare name is not found (a shell built-in), as
 *   "/bin/sh -c command" (or local_command_shell). Either way the message
 *   is written to standard input: its content never reaches a command line.
 *
 *   The environment holds only the export_environment names (NAME keeps
 *   the agent's value, NAME=value sets one), PATH=/usr/bin:/bin, and the
 *   caller's variables. Up to 4096 bytes of standard output and error are
 *   kept, tabs and newlines made spaces and other control characters "_".
 *
 *   Outcome, as Postfix decides it: time limit exceeded (the process group
 *   is killed) bounces with 5.3.0; death by a signal defers with 4.3.0; a
 *   non-zero exit takes the status from output that starts with an
 *   enhanced status code ("4.2.2 mailbox full"), else from <sysexits.h>
 *   (EX_TEMPFAIL defers, EX_NOUSER bounces, ...), else bounces with 5.3.0
 *   "Command died with status N"; exit 0 is success, unless writing the
 *   message failed other than with EPIPE. A message source that fails (a
 *   damaged queue file) is thrown to the caller after the command ends.
 */
import { spawn } from "node:child_process";
import { errnoText } from "../util/errno-text.js";
import { sysExit } from "./sys-exits.js";

export interface PipeCommandOptions {
  /** The argument vector (pipe(8)), or ... */
  argv?: readonly string[];
  /** ... a command string (local(8) |command, mailbox_command). */
  command?: string;
  /** null: the agent's own rights (demo mode). */
  rights: { uid: number; gid: number } | null;
  /** Extra environment (HOME, USER, SENDER, ...). */
  env?: Readonly<Record<string, string>>;
  /** export_environment entries. */
  exportNames?: readonly string[];
  /** local_command_shell ("" or undefined: /bin/sh -c). */
  shell?: string;
  cwd?: string;
  timeLimitMs: number;
  input: AsyncIterable<Buffer> | Iterable<Buffer>;
}

export type PipeResult =
  { status: "ok"; output: string } | { status: "defer" | "bounce"; dsn: string; text: string };

const OUTPUT_MAX = 4096;
const DEF_PATH = "/usr/bin:/bin";
const SAFE = /^[A-Za-z0-9!@%\-_=+:,./ \t]*$/;

/** Builds the command's environment. */
export function commandEnv(
  exportNames: readonly string[],
  extra: Readonly<Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of exportNames) {
    const eq = e.indexOf("=");
    if (eq > 0) env[e.slice(0, eq)] = e.slice(eq + 1);
    else if (process.env[e] !== undefined) env[e] = process.env[e] ?? "";
  }
  env["PATH"] = DEF_PATH;
  return { ...env, ...extra };
}

/** Makes command output fit for a log line and a DSN. */
export function printableOutput(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\t\n]/g, " ").replace(/[\x00-\x1f\x7f]/g, "_");
}

/** The executable and arguments for a command string: direct when harmless, else a shell. */
function shellVector(command: string, shell: string | undefined): [string, string[]] {
  if (shell !== undefined && shell.trim() !== "") {
    const sh = shell.trim().split(/[ \t]+/);
    return [sh[0] ?? "/bin/sh", [...sh.slice(1), command]];
  }
  return ["/bin/sh", ["-c", command]];
}

interface RunOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  timedOut: boolean;
  writeError: NodeJS.ErrnoException | null;
  sourceError: Error | null;
  spawnError: NodeJS.ErrnoException | null;
}

/** Spawns once and feeds the input; resolves when the process has exited. */
function runOnce(file: string, args: readonly string[], o: PipeCommandOptions): Promise<RunOutcome> {
  return new Promise((resolve) => {
    const out: RunOutcome = {
      code: null,
      signal: null,
      output: "",
      timedOut: false,
      writeError: null,
      sourceError: null,
      spawnError: null,
    };
    const child = spawn(file, args, {
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
      env: commandEnv(o.exportNames ?? [], o.env ?? {}),
      ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
      ...(o.rights !== null && process.getuid?.() === 0 ? { uid: o.rights.uid, gid: o.rights.gid } : {}),
    });
    const keep = (d: Buffer): void => {
      if (out.output.length < OUTPUT_MAX)
        out.output += d.toString("utf8").slice(0, OUTPUT_MAX - out.output.length);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    const timer = setTimeout(() => {
      out.timedOut = true;
      killGroup(child.pid);
    }, o.timeLimitMs);
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(out);
    };
    child.on("error", (err: NodeJS.ErrnoException) => {
      out.spawnError ??= err;
      if (child.pid === undefined) finish();
    });
    child.on("close", (code, signal) => {
      out.code = code;
      out.signal = signal;
      finish();
    });
    if (child.pid === undefined) return;
    void feed(child.stdin, o.input, out);
  });
}

/** Kills a process group (and the process, should the group be gone). */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
}

/** Writes the message to the command's standard input. */
async function feed(
  stdin: NodeJS.WritableStream | null,
  input: AsyncIterable<Buffer> | Iterable<Buffer>,
  out: RunOutcome,
): Promise<void> {
  if (stdin === null) return;
  stdin.on("error", (err: NodeJS.ErrnoException) => {
    out.writeError ??= err;
  });
  try {
    for await (const chunk of input) {
      if (out.writeError !== null) break;
      if (!stdin.write(chunk))
        await new Promise<void>((r) => {
          const done = (): void => {
            stdin.removeListener("drain", done);
            stdin.removeListener("close", done);
            r();
          };
          stdin.on("drain", done);
          stdin.on("close", done);
        });
    }
  } catch (err) {
    out.sourceError = err instanceof Error ? err : new Error("message source failed");
  }
  stdin.end();
}

/** Runs a command with the message on its standard input (see the module comment). */
export async function pipeCommand(o: PipeCommandOptions): Promise<PipeResult> {
  const shown = o.command ?? o.argv?.[0] ?? "";
  let r: RunOutcome;
  if (o.argv !== undefined) {
    r = await runOnce(o.argv[0] ?? "", o.argv.slice(1), o);
  } else {
    const command = o.command ?? "";
    const direct = SAFE.test(command) && command.trim() !== "" && (o.shell ?? "").trim() === "";
    const words = command.trim().split(/[ \t]+/);
    r = direct
      ? await runOnce(words[0] ?? "", words.slice(1), o)
      : await runOnce(...shellVector(command, o.shell), o);
    if (direct && r.spawnError?.code === "ENOENT" && !(words[0] ?? "").includes("/"))
      r = await runOnce(...shellVector(command, o.shell), o);
  }
  if (r.sourceError !== null) throw r.sourceError;
  return judge(r, shown);
}

/** Turns what happened into a delivery status. */
function judge(r: RunOutcome, shown: string): PipeResult {
  const output = printableOutput(r.output).trim();
  const withOutput = output !== "" ? `. Command output: ${output}` : "";
  if (r.spawnError !== null && (r.code === null || r.code < 0) && r.signal === null)
    return { status: "defer", dsn: "4.3.0", text: `cannot execute "${shown}": ${errnoText(r.spawnError)}` };
  if (r.timedOut)
    return { status: "bounce", dsn: "5.3.0", text: `Command time limit exceeded: "${shown}"${withOutput}` };
  if (r.signal !== null)
    return {
      status: "defer",
      dsn: "4.3.0",
      text: `Command died with signal ${r.signal}: "${shown}"${withOutput}`,
    };
  const code = r.code ?? 0;
  if (code !== 0) {
    const m = /^([45])(\.\d{1,3}\.\d{1,3})(?:\s+|$)(.*)$/s.exec(output);
    if (m !== null)
      return { status: m[1] === "4" ? "defer" : "bounce", dsn: `${m[1]}${m[2] ?? ""}`, text: m[3] || output };
    const d = sysExit(code);
    if (d.known)
      return {
        status: d.dsn.startsWith("4") ? "defer" : "bounce",
        dsn: d.dsn,
        text: `${d.text}${withOutput}`,
      };
    return {
      status: "bounce",
      dsn: "5.3.0",
      text: `Command died with status ${code}: "${shown}"${withOutput}`,
    };
  }
  if (r.writeError !== null && r.writeError.code !== "EPIPE")
    return { status: "bounce", dsn: "5.3.0", text: `Command failed: ${errnoText(r.writeError)}: "${shown}"` };
  return { status: "ok", output };
}
