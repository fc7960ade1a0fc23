/*
 * tls - STARTTLS handshakes per second and messages per second over STARTTLS, Postern next to Postfix
 *
 * SYNOPSIS
 *   npm run build && node dist/bench/tls.js [--handshakes N] [--messages N] [--clients N] [--budget S]
 *   (Postfix part as root)
 *
 * DESCRIPTION
 *   Both servers get the same RSA 2048 certificate (made with the openssl
 *   command), smtpd_tls_security_level = may and their default protocols and
 *   ciphers, with cleanup and trivial-rewrite behind smtpd and no queue
 *   manager (mail stays in incoming/). Postfix also runs tlsmgr, which
 *   gives its smtpd processes their session-ticket keys.
 *
 *   Handshakes: --clients (default 10) concurrent Node clients open N
 *   sessions in all (default 1,000): greeting, EHLO, STARTTLS, a full
 *   handshake, EHLO, QUIT. Then the same with the session of each client's
 *   first handshake offered again (resumption; the column says how many
 *   were resumed). Messages: --clients sessions, each after STARTTLS, send
 *   N messages in all (default 5,000) of 2 KB, one recipient each; the
 *   figure counts messages queued (250 after the final dot) per second.
 *
 *   The clients run in this process, on the same CPUs as the servers, for
 *   both systems alike. Each part stops after --budget seconds (default 60)
 *   with what it got done. Instances and directories are removed at the end.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { freePort } from "../src/testing/instance.js";
import { makeTestCerts, type TestCerts } from "../src/testing/tls-certs.js";
import { option, startPostern, startPostfix } from "./bench-common.js";
import { postfixMissing } from "./bench-sut.js";

/** A reply reader over a socket that may be swapped for its TLS layer. */
class Replies {
  #buf = "";
  #wake: (() => void) | null = null;
  #closed = false;
  sock: Socket | TLSSocket;

  constructor(sock: Socket) {
    this.sock = sock;
    this.#listen(sock);
  }

  #listen(s: Socket): void {
    s.setEncoding("latin1");
    s.on("data", (d: string) => {
      this.#buf += d;
      this.#wake?.();
    });
    s.on("close", () => {
      this.#closed = true;
      this.#wake?.();
    });
    s.on("error", () => undefined);
  }

  /** The code of the next final reply line. */
  async code(): Promise<string> {
    for (;;) {
      const m = /^(\d{3}) [^\n]*\n/m.exec(this.#buf);
      if (m !== null) {
        this.#buf = this.#buf.slice(m.index + m[0].length);
        return m[1] ?? "";
      }
      if (this.#closed) throw new Error("connection closed");
      await new Promise<void>((r) => (this.#wake = r));
    }
  }

  async cmd(line: string, want: string): Promise<void> {
    this.sock.write(`${line}\r\n`);
    const c = await this.code();
    if (!c.startsWith(want)) throw new Error(`"${line.slice(0, 30)}": ${c}`);
  }

  /** STARTTLS and the handshake; the reader then reads through TLS. */
  async starttls(session: Buffer | undefined): Promise<TLSSocket> {
    await this.cmd("STARTTLS", "220");
    const raw = this.sock;
    raw.removeAllListeners("data");
    raw.removeAllListeners("close");
    raw.pause();
    const t = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({
        socket: raw,
        rejectUnauthorized: false,
        servername: "mx.example.org",
        ...(session ? { session } : {}),
      });
      s.once("secureConnect", () => resolve(s));
      s.once("error", reject);
    });
    this.sock = t;
    this.#listen(t);
    return t;
  }
}

/** Opens a plain connection and reads the greeting. */
async function open(port: number): Promise<Replies> {
  const sock = await new Promise<Socket>((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
  const r = new Replies(sock);
  if ((await r.code()) !== "220") throw new Error("no greeting");
  return r;
}

/** Runs jobs on `clients` workers until n are done or the deadline passes; returns done count and seconds. */
async function run(
  clients: number,
  n: number,
  budgetMs: number,
  job: (worker: number) => Promise<void>,
): Promise<{ done: number; secs: number; err: string }> {
  const t0 = Date.now();
  let next = 0;
  let done = 0;
  let err = "";
  await Promise.all(
    Array.from({ length: clients }, async (_, w) => {
      while (next < n && Date.now() - t0 < budgetMs && err === "") {
        next++;
        try {
          await job(w);
          done++;
        } catch (e) {
          err = (e as Error).message;
        }
      }
    }),
  );
  return { done, secs: (Date.now() - t0) / 1000, err };
}

/** Handshakes per second, full and (with sessions offered again) resumed. */
async function handshakes(
  port: number,
  clients: number,
  n: number,
  budgetMs: number,
): Promise<[string, string]> {
  const sessions: Array<Buffer | undefined> = [];
  let resumed = 0;
  const one = async (w: number, reuse: boolean): Promise<void> => {
    const r = await open(port);
    await r.cmd("EHLO bench.example.org", "250");
    const t = await r.starttls(reuse ? sessions[w] : undefined);
    if (t.isSessionReused()) resumed++;
    await r.cmd("EHLO bench.example.org", "250");
    if (!reuse) sessions[w] ??= t.getSession();
    await r.cmd("QUIT", "221");
    t.destroy();
  };
  const full = await run(clients, n, budgetMs, (w) => one(w, false));
  const res = await run(clients, n, budgetMs, (w) => one(w, true));
  const fmt = (x: { done: number; secs: number; err: string }, extra = ""): string =>
    `${x.done} in ${x.secs.toFixed(2)} s, ${(x.done / x.secs).toFixed(0)}/s${extra}${x.err ? ` (stopped: ${x.err})` : ""}`;
  return [fmt(full), fmt(res, `, ${resumed} resumed`)];
}

/** Messages per second over STARTTLS sessions. */
async function messages(port: number, clients: number, n: number, budgetMs: number): Promise<string> {
  const body = `Subject: tls bench\r\n\r\n${"x".repeat(76)}\r\n`.repeat(26);
  const sessions: Replies[] = [];
  for (let i = 0; i < clients; i++) {
    const r = await open(port);
    await r.cmd("EHLO bench.example.org", "250");
    await r.starttls(undefined);
    await r.cmd("EHLO bench.example.org", "250");
    sessions.push(r);
  }
  const x = await run(clients, n, budgetMs, async (w) => {
    const r = sessions[w];
    if (r === undefined) return;
    await r.cmd("MAIL FROM:<bench@example.org>", "250");
    await r.cmd("RCPT TO:<bob@example.org>", "250");
    await r.cmd("DATA", "354");
    await r.cmd(`${body}.`, "250");
  });
  for (const r of sessions) r.sock.destroy();
  return `${x.done} msgs in ${x.secs.toFixed(2)} s, ${(x.done / x.secs).toFixed(0)} msg/s${x.err ? ` (stopped: ${x.err})` : ""}`;
}

interface Figures {
  full: string;
  resumed: string;
  msgs: string;
}

/** Runs the three measures against a port. */
async function measure(
  port: number,
  o: { clients: number; hs: number; msgs: number; budgetMs: number },
): Promise<Figures> {
  const [full, resumed] = await handshakes(port, o.clients, o.hs, o.budgetMs);
  const msgs = await messages(port, o.clients, o.msgs, o.budgetMs);
  return { full, resumed, msgs };
}

const MAIN = [
  "myhostname = mx.bench.example",
  "mydestination = $myhostname, example.org",
  "local_recipient_maps =",
  "smtpd_peername_lookup = no",
  "mynetworks = 192.0.2.0/24",
  "smtpd_client_connection_count_limit = 0",
  "smtpd_client_connection_rate_limit = 0",
  "smtpd_tls_security_level = may",
];

/** Postern with the certificate. */
async function postern(certs: TestCerts, o: Parameters<typeof measure>[1]): Promise<Figures> {
  const port = await freePort();
  const pn = await startPostern(
    [...MAIN, `smtpd_tls_cert_file = ${certs.rsaCert}`, `smtpd_tls_key_file = ${certs.rsaKey}`],
    [`${port} inet n - n - - smtpd`],
  );
  try {
    return await measure(port, o);
  } finally {
    await pn.stop();
  }
}

/** Postfix with the same certificate. */
async function postfix(dir: string, certs: TestCerts, o: Parameters<typeof measure>[1]): Promise<Figures> {
  const port = await freePort();
  const pf = await startPostfix(
    dir,
    [...MAIN, `smtpd_tls_cert_file = ${certs.rsaCert}`, `smtpd_tls_key_file = ${certs.rsaKey}`],
    [`127.0.0.1:${port} inet n - n - - smtpd`, "tlsmgr unix - - n 1000? 1 tlsmgr"],
  );
  try {
    return await measure(port, o);
  } finally {
    pf.stop();
  }
}

/** Runs the benchmark and prints the table. */
async function main(): Promise<void> {
  const o = {
    clients: option("clients", 10),
    hs: option("handshakes", 1000),
    msgs: option("messages", 5000),
    budgetMs: option("budget", 60) * 1000,
  };
  const dir = mkdtempSync(join(tmpdir(), "postern-bench-tls-"));
  chmodSync(dir, 0o755);
  try {
    const certs = makeTestCerts(dir);
    const show = (k: string, v: string): void => console.log(k.padEnd(52) + v);
    show("measure", "result");
    const p = await postern(certs, o);
    show(`Postern: STARTTLS full handshakes, ${o.clients} clients`, p.full);
    show(`Postern: STARTTLS resumed handshakes`, p.resumed);
    show(`Postern: ${o.msgs} x 2 KB over STARTTLS, ${o.clients} sessions`, p.msgs);
    const why = postfixMissing();
    if (why !== null) {
      show("Postfix", why);
      return;
    }
    const f = await postfix(dir, certs, o);
    show(`Postfix: STARTTLS full handshakes, ${o.clients} clients`, f.full);
    show(`Postfix: STARTTLS resumed handshakes`, f.resumed);
    show(`Postfix: ${o.msgs} x 2 KB over STARTTLS, ${o.clients} sessions`, f.msgs);
    const rate = (s: string): number => Number(/, (\d+)(?: msg)?\/s/.exec(s)?.[1] ?? NaN);
    const ratio = (a: string, b: string): string => (rate(b) > 0 ? (rate(a) / rate(b)).toFixed(2) : "n/a");
    show("ratio Postern / Postfix: full handshakes/s", ratio(p.full, f.full));
    show("ratio Postern / Postfix: resumed handshakes/s", ratio(p.resumed, f.resumed));
    show("ratio Postern / Postfix: msg/s", ratio(p.msgs, f.msgs));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
