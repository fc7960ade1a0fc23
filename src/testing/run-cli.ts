/*
 * run-cli - run a Postern command as a real process in tests
 *
 * SYNOPSIS
 *   const r = await runCli("postconf", ["-c", dir, "-n"]);
 *   r.code, r.stdout, r.stderr
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { installRoot } from "../global/install-paths.js";

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs bin/<tool> with arguments, optional environment additions, standard input, user and directory. */
export function runCli(
  tool: string,
  args: string[],
  opts: {
    env?: Record<string, string>;
    input?: string;
    timeoutMs?: number;
    uid?: number;
    gid?: number;
    cwd?: string;
  } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(installRoot(), "bin", tool), ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
      timeout: opts.timeoutMs ?? 30_000,
      ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid ?? opts.uid } : {}),
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? "");
  });
}
