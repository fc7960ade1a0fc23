/*
 * smtp-peers - real SMTP/LMTP servers on loopback for the smtp/lmtp agent tests
 *
 * SYNOPSIS
 *   const sink = await startSmtpSink(t, { addr: "127.0.0.2", args: ["-8"] });  // Postfix smtp-sink
 *   const aio = await startAiosmtpd(t, { addr: "127.0.0.3" });                 // Python aiosmtpd
 *   const dc = await startDovecot(t);                                          // Dovecot LMTP
 *   const stall = await startStallServer(t, "rcpt");                           // a peer that hangs
 *   const inst = await relayInstance(t, main);                                 // Postern with smtp/lmtp
 *
 * DESCRIPTION
 *   Each starter checks that its program is installed and throws an error
 *   naming the Debian package when it is not; each server is stopped after
 *   the test. smtp-sink writes one dump file per transaction (X-Mail-Args,
 *   X-Rcpt-Args, then the message) and, with -c, counts sessions. aiosmtpd
 *   runs aio-sink.py: it logs every command and answers recipients by
 *   their local part (soft-* 450, hard-* 550). The stall server is a tiny
 *   Node SMTP server that stops answering at a chosen point, for the
 *   timeout tests.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CleanupClient } from "../global/cleanup-client.js";
import { installRoot } from "../global/install-paths.js";
import type { Recipient } from "../global/queue-file.js";
import { freePort, shippedEntries, sleep, startInstance, type Instance } from "./instance.js";

type TestContext = { after: (fn: () => Promise<void> | void) => void };

/** Fails with the package to install when a program is missing. */
function need(path: string, pkg: string): void {
  assert.ok(existsSync(path), `${path} is missing: install the Debian package ${pkg}`);
}

/** Waits until a TCP port accepts connections. */
async function waitPort(addr: string, port: number, what: string): Promise<void> {
  const { connect } = await import("node:net");
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, addr);
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${what} did not listen on ${addr}:${port}`);
}

/** Stops a child process and waits a little for it. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  await Promise.race([gone, sleep(3000)]);
}

export interface SinkDump {
  /** X-Client-Addr: the client's address as the sink saw it. */
  client: string;
  mailArgs: string;
  rcptArgs: string[];
  helo: string;
  /** The message as received (after the sink's own headers). */
  body: string;
}

export interface SmtpSink {
  addr: string;
  port: number;
  dir: string;
  dumps(): SinkDump[];
}

/** Starts Postfix's smtp-sink (package postfix) with extra options. */
export async function startSmtpSink(
  t: TestContext,
  opts: { addr?: string; port?: number; args?: string[] } = {},
): Promise<SmtpSink> {
  need("/usr/sbin/smtp-sink", "postfix");
  const addr = opts.addr ?? "127.0.0.2";
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "postern-sink-"));
  chmodSync(dir, 0o777);
  const root = process.getuid?.() === 0 ? ["-u", "nobody"] : [];
  const child = spawn(
    "/usr/sbin/smtp-sink",
    [...root, "-d", `${dir}/%M.`, ...(opts.args ?? []), `${addr}:${port}`, "100"],
    {
      stdio: "ignore",
    },
  );
  t.after(async () => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  });
  await waitPort(addr, port, "smtp-sink");
  return {
    addr,
    port,
    dir,
    dumps: () => readDumps(dir),
  };
}

/** Reads smtp-sink's dump files. */
function readDumps(dir: string): SinkDump[] {
  const out: SinkDump[] = [];
  for (const f of readdirSync(dir).sort()) {
    const text = readFileSync(join(dir, f), "latin1");
    const lines = text.split("\n");
    const d: SinkDump = { client: "", mailArgs: "", rcptArgs: [], helo: "", body: "" };
    let i = 0;
    for (; i < lines.length; i++) {
      const l = lines[i] ?? "";
      if (l.startsWith("X-Client-Addr: ")) d.client = l.slice(15);
      else if (l.startsWith("X-Mail-Args: ")) d.mailArgs = l.slice(13);
      else if (l.startsWith("X-Rcpt-Args: ")) d.rcptArgs.push(l.slice(13));
      else if (l.startsWith("X-Helo-Args: ")) d.helo = l.slice(13);
      else if (l.startsWith("Received: ")) {
        i += 3;
        break;
      }
    }
    d.body = lines.slice(i).join("\n");
    out.push(d);
  }
  return out;
}

export interface Aiosmtpd {
  addr: string;
  port: number;
  dir: string;
  /** The commands it received, one per line ("MAIL a@b SIZE=12", "DATA-COMMAND", ...). */
  commands(): string[];
  /** The messages it accepted (X-Mail-From and X-Rcpt-To lines, then the content). */
  messages(): string[];
  /** Its connection log: "open PORT MS", "mail PORT SENDER", "close PORT MS" (PORT: the client's). */
  connections(): string[];
}

/** Starts aiosmtpd (package python3-aiosmtpd) with Postern's test handler. */
export async function startAiosmtpd(
  t: TestContext,
  opts: {
    addr?: string;
    port?: number;
    sizeLimit?: number;
    idleTimeout?: number;
    /** Offer STARTTLS with this certificate (maxVersion caps the protocol; wrapper: implicit TLS instead; refusal: answer STARTTLS with this reply). */
    tls?: { cert: string; key: string; maxVersion?: "TLSv1.2"; wrapper?: boolean; refusal?: string };
    /** Speak LMTP (one reply after DATA: one recipient per message). */
    lmtp?: boolean;
  } = {},
): Promise<Aiosmtpd> {
  need("/usr/bin/python3", "python3");
  const probe = spawnSync("/usr/bin/python3", ["-c", "import aiosmtpd"]);
  assert.equal(probe.status, 0, "Python's aiosmtpd is missing: install the Debian package python3-aiosmtpd");
  const addr = opts.addr ?? "127.0.0.3";
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "postern-aio-"));
  const script = join(installRoot(), "src", "testing", "aio-sink.py");
  const child = spawn(
    "/usr/bin/python3",
    [script, addr, String(port), dir, String(opts.sizeLimit ?? 33554432), String(opts.idleTimeout ?? 300)],
    {
      stdio: ["pipe", "pipe", "inherit"],
      env: {
        ...process.env,
        AIO_TLS_CERT: opts.tls?.cert ?? "",
        AIO_TLS_KEY: opts.tls?.key ?? "",
        AIO_TLS_MAXVER: opts.tls?.maxVersion ?? "",
        AIO_TLS_WRAPPER: opts.tls?.wrapper === true ? "1" : "",
        AIO_LMTP: opts.lmtp === true ? "1" : "",
        AIO_STARTTLS_REPLY: opts.tls?.refusal ?? "",
      },
    },
  );
  t.after(async () => {
    child.stdin?.end();
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  });
  await waitPort(addr, port, "aiosmtpd");
  const read = (f: string): string => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), "utf8") : "");
  return {
    addr,
    port,
    dir,
    commands: () =>
      read("commands.log")
        .split("\n")
        .filter((l) => l !== ""),
    connections: () =>
      read("conns.log")
        .split("\n")
        .filter((l) => l !== ""),
    messages: () =>
      readdirSync(dir)
        .filter((f) => /^msg-\d+\.eml$/.test(f))
        .sort((a, b) => Number(a.slice(4, -4)) - Number(b.slice(4, -4)))
        .map((f) => read(f)),
  };
}

export type StallPoint =
  "connect" | "greeting" | "helo" | "mail" | "rcpt" | "data" | "body" | "dot" | "quit" | "second-mail";

export interface StallServer {
  addr: string;
  port: number;
  /** Lines the server received. */
  received: string[];
  /** When the client sent QUIT and when it closed the connection (ms since the epoch). */
  quitAt: number;
  closedAt: number;
}

/**
 * Starts a Node SMTP server on 127.0.0.4 that stops answering at one point:
 * "connect" never accepts (a full listen queue), "greeting" never greets,
 * "helo"/"mail"/"rcpt"/"data" never answer that command, "body" stops
 * reading after the 354 reply, "dot" never answers the final dot, "quit"
 * never answers QUIT, "second-mail" answers one transaction per session
 * and then falls silent (a stale session).
 */
export async function startStallServer(t: TestContext, at: StallPoint): Promise<StallServer> {
  const addr = "127.0.0.4";
  const received: string[] = [];
  if (at === "connect") return stallConnect(t, addr, received);
  const socks = new Set<Socket>();
  const out: StallServer = { addr, port: 0, received, quitAt: 0, closedAt: 0 };
  const server = createServer((sock) => {
    socks.add(sock);
    sock.on("error", () => undefined);
    sock.on("close", () => {
      socks.delete(sock);
      out.closedAt = Date.now();
    });
    if (at !== "greeting") sock.write("220 stall.example.test ESMTP\r\n");
    let buf = "";
    let inData = false;
    let stalled = false;
    let mails = 0;
    sock.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      let nl: number;
      while (!stalled && (nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, "");
        buf = buf.slice(nl + 1);
        if (inData) {
          if (line === ".") {
            inData = false;
            received.push(".");
            if (at !== "dot") sock.write("250 2.0.0 Ok: queued as STALL\r\n");
            else stalled = true;
          }
          continue;
        }
        received.push(line);
        const cmd = line.slice(0, 4).toUpperCase();
        const stall = { EHLO: "helo", HELO: "helo", MAIL: "mail", RCPT: "rcpt", DATA: "data", QUIT: "quit" }[
          cmd
        ];
        if (cmd === "QUIT") out.quitAt = Date.now();
        if (cmd === "MAIL") mails++;
        if (stall === at || (at === "second-mail" && mails > 1)) {
          // From here on the server says nothing at all.
          stalled = true;
          continue;
        }
        if (cmd === "EHLO") sock.write("250-stall.example.test\r\n250 PIPELINING\r\n");
        else if (cmd === "DATA") {
          sock.write("354 go ahead\r\n");
          if (at === "body") {
            sock.pause();
            return;
          }
          inData = true;
        } else if (cmd === "QUIT") sock.end("221 2.0.0 Bye\r\n");
        else sock.write("250 2.0.0 Ok\r\n");
      }
    });
  });
  out.port = await freePort();
  await new Promise<void>((resolve) => server.listen(out.port, addr, resolve));
  t.after(async () => {
    for (const s of socks) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return out;
}

/** A listener whose accept queue is full, so that new connections hang (Python, never accepts). */
async function stallConnect(t: TestContext, addr: string, received: string[]): Promise<StallServer> {
  const port = await freePort();
  const code = [
    "import socket,sys,time",
    "s=socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(0)",
    "fill=[socket.socket() for _ in range(4)]",
    "[f.setblocking(False) or f.connect_ex((sys.argv[1], int(sys.argv[2]))) for f in fill]",
    "time.sleep(0.3)",
    "print('ready', flush=True)",
    "sys.stdin.read()",
  ].join("\n");
  const child = spawn("/usr/bin/python3", ["-c", code, addr, String(port)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  t.after(async () => {
    child.stdin?.end();
    await stopChild(child);
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once("data", () => resolve());
    child.once("exit", () => reject(new Error("the stalled listener did not start")));
  });
  return { addr, port, received, quitAt: 0, closedAt: 0 };
}

export interface Dovecot {
  port: number;
  /** The LMTP Unix socket. */
  socket: string;
  dir: string;
  /** The messages in a user's Maildir/new. */
  mailbox(user: string): string[];
}

/** Starts Dovecot's LMTP server (packages dovecot-core, dovecot-lmtpd) for alice@ and bob@example.test. */
export async function startDovecot(t: TestContext): Promise<Dovecot> {
  need("/usr/sbin/dovecot", "dovecot-core");
  need("/usr/lib/dovecot/lmtp", "dovecot-lmtpd");
  const dir = mkdtempSync(join(tmpdir(), "postern-dovecot-"));
  chmodSync(dir, 0o755);
  for (const d of ["run", "state", "mail"]) mkdirSync(join(dir, d));
  if (process.getuid?.() === 0) spawnSync("chown", ["nobody:nogroup", join(dir, "mail")]);
  const port = await freePort();
  const uid = process.getuid?.() === 0 ? "65534:65534" : `${process.getuid?.()}:${process.getgid?.()}`;
  writeFileSync(
    join(dir, "users"),
    ["alice", "bob"]
      .map((u) => `${u}@example.test:{PLAIN}secret:${uid}::${dir}/mail/${u}@example.test::\n`)
      .join(""),
  );
  const conf = [
    "protocols = lmtp",
    `base_dir = ${dir}/run`,
    `state_dir = ${dir}/state`,
    `log_path = ${dir}/dovecot.log`,
    "listen = 127.0.0.1",
    "ssl = no",
    "first_valid_uid = 1",
    "mail_location = maildir:~/Maildir",
    "recipient_delimiter = +",
    "lmtp_rcpt_check_quota = no",
    `passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u ${dir}/users\n}`,
    `userdb {\n  driver = passwd-file\n  args = username_format=%u ${dir}/users\n}`,
    `service lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = ${port}\n  }\n  unix_listener lmtp {\n    mode = 0666\n  }\n}`,
    "service auth {\n  unix_listener auth-client {\n    mode = 0666\n  }\n}",
    ...(process.getuid?.() === 0 ? [] : [`default_internal_user = ${process.env["USER"] ?? "nobody"}`]),
    "",
  ].join("\n");
  writeFileSync(join(dir, "dovecot.conf"), conf);
  const child = spawn("/usr/sbin/dovecot", ["-c", join(dir, "dovecot.conf"), "-F"], { stdio: "ignore" });
  t.after(async () => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  });
  await waitPort("127.0.0.1", port, "dovecot lmtp");
  const socket = join(dir, "run", "lmtp");
  return {
    port,
    socket,
    dir,
    mailbox: (user) => {
      const nd = join(dir, "mail", user, "Maildir", "new");
      return existsSync(nd) ? readdirSync(nd).map((f) => readFileSync(join(nd, f), "utf8")) : [];
    },
  };
}

/** The names of shipped entries that a test's own master.cf text does not define again. */
function overridable(names: string[], own: string): string[] {
  const defined = new Set(
    own
      .split("\n")
      .filter((l) => /^\S/.test(l) && !l.startsWith("#"))
      .map((l) => {
        const [svc, type] = l.split(/\s+/);
        return type === "unix" ? (svc ?? "") : `${svc}/${type}`;
      }),
  );
  return names.filter((n) => !defined.has(n.replace(/\/unix$/, "")) && !defined.has(n));
}

/** Starts a Postern instance with cleanup, qmgr, trivial-rewrite, smtp and lmtp (plus extra main.cf). */
export async function relayInstance(t: TestContext, main: string, master = ""): Promise<Instance> {
  const inst = await startInstance(t, {
    main: [
      "myhostname = postern.example.test",
      "mydestination =",
      "relay_domains =",
      "queue_run_delay = 1s",
      "minimal_backoff_time = 1s",
      "maximal_backoff_time = 2s",
      "smtp_connect_timeout = 5s",
      main,
    ].join("\n"),
    // The shipped entries of the delivery path, with their columns (jailed smtp and lmtp agents);
    // an entry of the test's own for the same service replaces the shipped one.
    master: [
      shippedEntries(...overridable(["cleanup", "qmgr", "rewrite", "smtp/unix", "lmtp", "error"], master)),
      master,
      "",
    ].join("\n"),
  });
  return inst;
}

export interface TestMessage {
  sender?: string;
  rcpts: Array<string | Recipient>;
  /** Message attributes (dsn_envid, dsn_ret, ...). */
  attrs?: Record<string, string>;
  content: string | Buffer;
}

/** Submits a message through cleanup (with DSN attributes when given); returns its queue ID. */
export async function submitMessage(inst: Instance, m: TestMessage): Promise<string> {
  const c = await CleanupClient.open(inst.spool);
  assert.ok(c.ok, c.ok ? "" : c.reason);
  // As smtpd hands over a remote client's message (unless the test says otherwise): queued as it came.
  const attrs = { rewrite_context: "remote", ...m.attrs };
  for (const [k, v] of Object.entries(attrs)) await c.client.attr(k, v);
  await c.client.sender(m.sender ?? "sender@example.org");
  for (const r of m.rcpts) {
    const rc = typeof r === "string" ? { address: r, original: r } : r;
    await c.client.rcpt(rc);
  }
  await c.client.data(typeof m.content === "string" ? Buffer.from(m.content) : m.content);
  const r = await c.client.end();
  assert.equal(r.status, "ok", JSON.stringify(r));
  return c.client.queueId;
}
