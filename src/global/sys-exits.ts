/*
 * sys-exits - <sysexits.h> exit codes as delivery status
 *
 * SYNOPSIS
 *   import { sysExit, EX } from "./sys-exits.js";
 *   const d = sysExit(75);   // { dsn: "4.3.0", text: "temporary failure", known: true }
 *
 * DESCRIPTION
 *   Commands that take mail (procmail, maildrop, sendmail-compatible
 *   programs) report with the BSD <sysexits.h> codes. Each maps to an
 *   enhanced status code as Postfix's sys_exits table has it: EX_TEMPFAIL
 *   and EX_OSERR defer (4.3.0), EX_NOUSER bounces (5.1.1), and so on. A
 *   code outside 64..78 is "unknown mail system error N" with 5.3.0.
 */

export const EX = {
  OK: 0,
  USAGE: 64,
  DATAERR: 65,
  NOINPUT: 66,
  NOUSER: 67,
  NOHOST: 68,
  UNAVAILABLE: 69,
  SOFTWARE: 70,
  OSERR: 71,
  OSFILE: 72,
  CANTCREAT: 73,
  IOERR: 74,
  TEMPFAIL: 75,
  PROTOCOL: 76,
  NOPERM: 77,
  CONFIG: 78,
} as const;

const TABLE: ReadonlyArray<readonly [number, string, string]> = [
  [EX.USAGE, "5.3.0", "command line usage error"],
  [EX.DATAERR, "5.6.0", "data format error"],
  [EX.NOINPUT, "5.3.0", "cannot open input"],
  [EX.NOUSER, "5.1.1", "user unknown"],
  [EX.NOHOST, "5.1.2", "host name unknown"],
  [EX.UNAVAILABLE, "5.3.0", "service unavailable"],
  [EX.SOFTWARE, "5.3.0", "internal software error"],
  [EX.OSERR, "4.3.0", "system resource problem"],
  [EX.OSFILE, "5.3.0", "critical OS file missing"],
  [EX.CANTCREAT, "5.2.0", "can't create user output file"],
  [EX.IOERR, "5.3.0", "input/output error"],
  [EX.TEMPFAIL, "4.3.0", "temporary failure"],
  [EX.PROTOCOL, "5.5.0", "remote error in protocol"],
  [EX.NOPERM, "5.7.0", "permission denied"],
  [EX.CONFIG, "5.3.5", "local configuration error"],
];

export interface SysExitDetail {
  dsn: string;
  text: string;
  /** True for a <sysexits.h> code. */
  known: boolean;
}

/** The status and text of an exit code. */
export function sysExit(code: number): SysExitDetail {
  for (const [c, dsn, text] of TABLE) if (c === code) return { dsn, text, known: true };
  return { dsn: "5.3.0", text: `unknown mail system error ${code}`, known: false };
}
