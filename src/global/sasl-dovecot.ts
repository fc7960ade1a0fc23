/*
 * sasl-dovecot - Dovecot's authentication protocol, client side (smtpd_sasl_type = dovecot)
 *
 * SYNOPSIS
 *   smtpd_sasl_type = dovecot
 *   smtpd_sasl_path = private/auth          (a Unix socket under queue_directory)
 *   smtpd_sasl_path = inet:127.0.0.1:12345  (TCP)
 *
 * DESCRIPTION
 *   Speaks version 1 of Dovecot's auth client protocol: the client says
 *   "VERSION 1 2" and "CPID <pid>"; the server answers with its VERSION,
 *   one MECH line per mechanism (name and flags: plaintext, anonymous,
 *   dictionary, active, forward-secrecy, mutual-auth), SPID, CUID, COOKIE
 *   and DONE. A conversation is "AUTH <id> <mech> service=smtp nologin
 *   lip=<server address> rip=<client address> [secured] [resp=<base64>]",
 *   answered by "CONT <id> <base64>" (a challenge; the client's answer goes
 *   back as "CONT <id> <base64>"), "OK <id> user=<name> ..." or "FAIL <id>
 *   [reason=<text>] [temp]". Fields are separated by tabs.
 *   Each conversation has its own connection; the mechanism list is asked
 *   for at most once a minute per process. Lines are limited to 64 KB,
 *   every read to 30 seconds; a back end that cannot be reached, or that
 *   breaks the protocol, is a temporary failure.
 */
import { connect, type Socket } from "node:net";
import { isAbsolute, join } from "node:path";
import {
  mechanism,
  type SaslBackend,
  type SaslConversation,
  type SaslMechanism,
  type SaslPeer,
  type SaslStep,
} from "./sasl-types.js";

const LINE_MAX = 65536;
const TIMEOUT_MS = 30_000;
const MECH_CACHE_MS = 60_000;

/** A line-at-a-time connection to the auth server. */
class AuthConn {
  #sock: Socket;
  #buf = "";
  #closed = false;
  #error: string | null = null;
  #wake: (() => void) | null = null;

  constructor(sock: Socket) {
    this.#sock = sock;
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      this.#buf += d;
      if (this.#buf.length > LINE_MAX && !this.#buf.includes("\n")) {
        this.#error = "line too long";
        sock.destroy();
      }
      this.#wake?.();
    });
    const end = (): void => {
      this.#closed = true;
      this.#wake?.();
    };
    sock.on("close", end);
    sock.on("error", (err) => {
      this.#error ??= err.message;
      end();
    });
  }

  /** Opens a connection to "inet:host:port" or a socket path. */
  static open(path: string, queueDir: string): Promise<AuthConn> {
    return new Promise((resolve, reject) => {
      const inet = /^inet:(.*):(\d{1,5})$/.exec(path);
      const unixPath = path.replace(/^unix:/, "");
      const sock = inet
        ? connect({ host: (inet[1] ?? "").replace(/^\[|\]$/g, ""), port: Number(inet[2]) })
        : connect({ path: isAbsolute(unixPath) ? unixPath : join(queueDir, unixPath) });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`connect to ${path}: timed out`));
      }, TIMEOUT_MS);
      sock.once("connect", () => {
        clearTimeout(timer);
        resolve(new AuthConn(sock));
      });
      sock.once("error", (err) => {
        clearTimeout(timer);
        reject(new Error(`connect to ${path}: ${err.message}`, { cause: err }));
      });
    });
  }

  /** The next line without its newline; throws when the connection ends first. */
  async line(): Promise<string> {
    const deadline = Date.now() + TIMEOUT_MS;
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const l = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        return l;
      }
      if (this.#closed) throw new Error(this.#error ?? "Connection lost to authentication server");
      if (Date.now() > deadline) throw new Error("timeout while reading from the authentication server");
      await new Promise<void>((r) => {
        const t = setTimeout(r, 1000);
        this.#wake = () => {
          clearTimeout(t);
          this.#wake = null;
          r();
        };
      });
    }
  }

  send(text: string): void {
    this.#sock.write(text);
  }

  close(): void {
    this.#sock.destroy();
  }
}

/** Says hello and reads the server's handshake up to DONE; returns the mechanisms. */
async function handshake(conn: AuthConn): Promise<SaslMechanism[]> {
  conn.send(`VERSION\t1\t2\nCPID\t${process.pid}\n`);
  const mechs: SaslMechanism[] = [];
  for (let i = 0; i < 1000; i++) {
    const f = (await conn.line()).split("\t");
    if (f[0] === "VERSION" && f[1] !== "1")
      throw new Error(`authentication server protocol version ${f[1] ?? ""} is not 1`);
    if (f[0] === "MECH" && f[1] !== undefined && /^[A-Za-z0-9_-]{1,40}$/.test(f[1]))
      mechs.push(mechanism(f[1], f.slice(2)));
    if (f[0] === "DONE") return mechs;
  }
  throw new Error("the authentication server's handshake does not end");
}

/** Makes a value safe for a tab-separated protocol field. */
function field(v: string): string {
  return v.replace(/[\t\n\r\0]/g, "?");
}

/** One AUTH exchange with Dovecot. */
class DovecotConversation implements SaslConversation {
  #path: string;
  #queueDir: string;
  #peer: SaslPeer;
  #conn: AuthConn | null = null;
  #user: string | undefined;

  constructor(path: string, queueDir: string, peer: SaslPeer) {
    this.#path = path;
    this.#queueDir = queueDir;
    this.#peer = peer;
  }

  /** Reads the answer to request 1. */
  async #answer(): Promise<SaslStep> {
    const conn = this.#conn;
    if (conn === null)
      return { kind: "fail", reason: "Connection lost to authentication server", temp: true };
    for (let i = 0; i < 100; i++) {
      const f = (await conn.line()).split("\t");
      if (f[1] !== "1") continue;
      const args = f.slice(2);
      const get = (k: string): string | undefined =>
        args
          .find((a) => a.startsWith(`${k}=`))
          ?.slice(k.length + 1)
          .replace(/[^\x20-\x7e]/g, "?");
      this.#user = get("user") ?? this.#user;
      if (f[0] === "CONT") return { kind: "more", challenge: args[0] ?? "" };
      if (f[0] === "OK") {
        if (this.#user === undefined)
          return { kind: "fail", reason: "Authentication backend error", temp: false };
        return { kind: "ok", user: this.#user };
      }
      if (f[0] === "FAIL")
        return {
          kind: "fail",
          reason: get("reason") ?? "(reason unavailable)",
          temp: args.includes("temp"),
          ...(this.#user !== undefined ? { user: this.#user } : {}),
        };
    }
    return { kind: "fail", reason: "Authentication backend error", temp: true };
  }

  async first(mech: string, initial: string | null): Promise<SaslStep> {
    if (initial !== null && !/^[A-Za-z0-9+/=]*$/.test(initial))
      return { kind: "fail", reason: "Invalid base64 data in initial response", temp: false };
    try {
      this.#conn = await AuthConn.open(this.#path, this.#queueDir);
      const mechs = await handshake(this.#conn);
      if (!mechs.some((m) => m.name === mech.toUpperCase()))
        return { kind: "fail", reason: "Invalid authentication mechanism", temp: false };
      const p = this.#peer;
      let req = `AUTH\t1\t${field(mech.toUpperCase())}\tservice=${field(p.service)}\tnologin\tlip=${field(p.localAddr)}\trip=${field(p.clientAddr)}`;
      if (p.secured) req += "\tsecured";
      if (initial !== null) req += `\tresp=${initial}`;
      this.#conn.send(`${req}\n`);
      return await this.#answer();
    } catch (err) {
      return { kind: "fail", reason: (err as Error).message, temp: true };
    }
  }

  async next(response: string): Promise<SaslStep> {
    if (!/^[A-Za-z0-9+/=]*$/.test(response))
      return { kind: "fail", reason: "Invalid base64 data in continued response", temp: false };
    try {
      this.#conn?.send(`CONT\t1\t${response}\n`);
      return await this.#answer();
    } catch (err) {
      return { kind: "fail", reason: (err as Error).message, temp: true };
    }
  }

  close(): void {
    this.#conn?.close();
    this.#conn = null;
  }
}

/** The Dovecot back end of a process. */
export class DovecotBackend implements SaslBackend {
  #path: string;
  #queueDir: string;
  #cache: { at: number; mechs: SaslMechanism[] } | null = null;

  constructor(path: string, queueDir: string) {
    this.#path = path;
    this.#queueDir = queueDir;
  }

  async mechanisms(): Promise<SaslMechanism[] | { error: string }> {
    if (this.#cache !== null && Date.now() - this.#cache.at < MECH_CACHE_MS) return this.#cache.mechs;
    let conn: AuthConn | null = null;
    try {
      conn = await AuthConn.open(this.#path, this.#queueDir);
      const mechs = await handshake(conn);
      this.#cache = { at: Date.now(), mechs };
      return mechs;
    } catch (err) {
      return { error: `SASL: ${(err as Error).message}` };
    } finally {
      conn?.close();
    }
  }

  conversation(peer: SaslPeer): SaslConversation {
    return new DovecotConversation(this.#path, this.#queueDir, peer);
  }
}
