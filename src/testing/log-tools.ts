/*
 * log-tools - run Postfix's log tools (pflogsumm, fail2ban-regex) on a log
 *
 * SYNOPSIS
 *   pflogsummTotals(maillog).received
 *   fail2banMatched(maillog, "/etc/fail2ban/filter.d/postfix.conf").matched
 *
 * DESCRIPTION
 *   The Debian packages pflogsumm and fail2ban, as .ci/run installs them,
 *   with their stock settings: what tests need to check that these tools
 *   read a Postern log as they read Postfix's.
 */
import { spawnSync } from "node:child_process";

export const PFLOGSUMM = "/usr/sbin/pflogsumm";
export const FAIL2BAN_REGEX = "/usr/bin/fail2ban-regex";
export const FAIL2BAN_FILTER = "/etc/fail2ban/filter.d/postfix.conf";

/** Runs a tool; its exit status and output. */
export function runTool(cmd: string, args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 120_000, maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, out: r.stdout ?? "", err: `${r.stderr ?? ""}${r.error?.message ?? ""}` };
}

/** pflogsumm's Grand Totals of a log (-1 for a total it did not print), with its whole output. */
export function pflogsummTotals(maillog: string): {
  total: (what: string) => number;
  out: string;
  code: number;
} {
  const p = runTool(PFLOGSUMM, [maillog]);
  const totals = /^Grand Totals\n-+\n([\s\S]*?)\n\n\n/m.exec(p.out)?.[1] ?? "";
  return {
    total: (what) => Number(new RegExp(`^\\s*(\\d+)\\s+${what}\\b`, "m").exec(totals)?.[1] ?? -1),
    out: `${p.out}${p.err}`,
    code: p.code,
  };
}

/** How many lines of a log a fail2ban filter matches, and the output of fail2ban-regex --print-all-matched. */
export function fail2banMatched(
  maillog: string,
  filter: string,
): { matched: number; out: string; code: number } {
  const f = runTool(FAIL2BAN_REGEX, ["--print-all-matched", maillog, filter]);
  const matched = Number(/^Lines: \d+ lines, \d+ ignored, (\d+) matched, \d+ missed/m.exec(f.out)?.[1] ?? -1);
  return { matched, out: `${f.out}${f.err}`, code: f.code };
}
