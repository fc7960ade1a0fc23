/*
 * postscreen-misc - small helpers of postscreen: time formats, actions, printable text
 *
 * DESCRIPTION
 *   formatDelta() prints an elapsed time the way postscreen's log lines
 *   show it (two significant digits, at most two decimals: "0.1", "6",
 *   "1.2"). parseAction() reads an ignore/enforce/drop setting.
 *   printable() makes client bytes safe for the log (C-style escapes).
 */

export type PsAction = "ignore" | "enforce" | "drop";

/** Reads an action parameter; an unknown value is an error naming the parameter. */
export function parseAction(name: string, value: string): PsAction {
  const v = value.trim().toLowerCase();
  if (v === "ignore" || v === "enforce" || v === "drop") return v;
  throw new Error(`${name}: unknown action "${value}" (expected ignore, enforce or drop)`);
}

/** An elapsed time in milliseconds as postscreen logs it. */
export function formatDelta(ms: number): string {
  let sec = Math.floor(Math.max(0, ms) / 1000);
  let usec = Math.round((Math.max(0, ms) - sec * 1000) * 1000);
  let ures = 10_000;
  if (sec > 0) {
    let n = 1;
    while (sec >= n && n <= 10) n *= 10;
    ures = 10_000 * n;
  }
  if (ures > 1) {
    usec += ures / 2;
    if (usec >= 1_000_000) {
      sec += 1;
      usec -= 1_000_000;
    }
  }
  let out = String(sec);
  if (usec >= ures) {
    out += ".";
    for (let rem = usec, n = 100_000; rem >= ures && n > 0; n = Math.floor(n / 10)) {
      out += String(Math.floor(rem / n));
      rem %= n;
    }
  }
  return out;
}

const ESCAPES: Record<number, string> = { 0x0a: "\\n", 0x0d: "\\r", 0x09: "\\t", 0x5c: "\\\\" };

/** Client bytes as printable text for the log, at most `limit` characters. */
export function printable(data: Buffer, limit = 100): string {
  let out = "";
  for (const b of data) {
    if (out.length >= limit) break;
    const e = ESCAPES[b];
    if (e !== undefined) out += e;
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\${b.toString(8).padStart(3, "0")}`;
  }
  return out.slice(0, limit);
}
