/*
 * bench-common - what the benchmarks share: options and a plain SMTP sender
 *
 * DESCRIPTION
 *   option() reads a numeric "--name N" argument. smtpSend() delivers n
 *   messages over one SMTP session (used to fill Postfix's queue through its
 *   own smtpd); message(i) gives the recipient(s) and the content (LF line
 *   ends, converted and dot-stuffed here).
 */
import { connect } from "node:net";

/** A numeric option "--name N", or the default. */
export function option(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive number`);
  return v;
}

/** Sends n messages over one SMTP session on 127.0.0.1:port. */
export async function smtpSend(
  port: number,
  n: number,
  message: (i: number) => { rcpt: string | string[]; content: string },
): Promise<void> {
  const sock = connect(port, "127.0.0.1");
  let buf = "";
  const waiters: Array<() => void> = [];
  sock.setEncoding("utf8");
  sock.on("data", (d: string) => {
    buf += d;
    waiters.splice(0).forEach((w) => w());
  });
  const reply = async (): Promise<string> => {
    for (;;) {
      const m = /^(\d{3}) [^\n]*\n/m.exec(buf);
      if (m !== null) {
        buf = buf.slice(m.index + m[0].length);
        return m[1] ?? "";
      }
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  const cmd = async (line: string, want: string): Promise<void> => {
    sock.write(`${line}\r\n`);
    const code = await reply();
    if (!code.startsWith(want)) throw new Error(`SMTP "${line.slice(0, 40)}": ${code}`);
  };
  if (!(await reply()).startsWith("2")) throw new Error("no SMTP greeting");
  await cmd("EHLO bench.example.org", "2");
  for (let i = 0; i < n; i++) {
    const m = message(i);
    await cmd("MAIL FROM:<bench@example.org>", "2");
    for (const r of typeof m.rcpt === "string" ? [m.rcpt] : m.rcpt) await cmd(`RCPT TO:<${r}>`, "2");
    await cmd("DATA", "3");
    await cmd(`${m.content.replace(/\n/g, "\r\n").replace(/^\./gm, "..")}.`, "2");
  }
  await cmd("QUIT", "2");
  sock.destroy();
}
