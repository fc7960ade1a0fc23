/*
 * dict-netclient - a bounded, time-limited stream client for the small table protocols
 *
 * SYNOPSIS
 *   import { NetClient, NetError } from "./dict-netclient.js";
 *   const c = new NetClient(endpoint, { idleMs: 10000, maxAgeMs: 100000, maxBuffer: 200000 });
 *   const reply = await c.exchange(timeoutMs, async (conn, deadline) => {
 *     conn.write("get key\n");
 *     return await conn.readLine(4096, deadline);
 *   });
 *
 * DESCRIPTION
 *   memcache, socketmap and tcp tables talk to their servers over one TCP
 *   or UNIX-domain connection, one request at a time. NetClient keeps that
 *   connection open between lookups (closing it after idleMs without use,
 *   and after a request once it is older than maxAgeMs), runs requests one
 *   after another, and opens a new connection when the old one broke.
 *
 *   NetConn reads lines, exact byte counts and netstrings with a deadline
 *   per request and a size limit per read; it never buffers more than
 *   maxBuffer bytes from the server. Every failure is a NetError whose code
 *   is EOF (the server closed the connection), TIMEOUT, TOOLONG (a read
 *   limit), PROTOCOL (malformed data) or IO (connect or socket error);
 *   the connection is then closed.
 */
import { connect, type Socket } from "node:net";
import type { Endpoint } from "./dict-cf.js";

/** A failure talking to a table server. */
export class NetError extends Error {
  readonly code: "EOF" | "TIMEOUT" | "TOOLONG" | "PROTOCOL" | "IO";

  /** Creates an error with a stable code. */
  constructor(code: NetError["code"], text: string) {
    super(text);
    this.code = code;
  }
}

/** Describes an endpoint for messages. */
export function endpointText(ep: Endpoint): string {
  return ep.kind === "unix" ? `unix:${ep.path}` : `inet:${ep.host}:${ep.port}`;
}

/** One connection to a table server. */
export class NetConn {
  #sock: Socket;
  #buf: Buffer = Buffer.alloc(0);
  #failure: NetError | null = null;
  #wake: (() => void) | null = null;
  #maxBuffer: number;
  readonly born = Date.now();
  /** How many requests this connection has served. */
  uses = 0;

  /** Wraps a connected socket. */
  private constructor(sock: Socket, maxBuffer: number) {
    this.#sock = sock;
    this.#maxBuffer = maxBuffer;
    sock.on("data", (chunk: Buffer) => {
      if (this.#buf.length + chunk.length > this.#maxBuffer) {
        this.#fail(new NetError("TOOLONG", `server sent more than ${this.#maxBuffer} bytes`));
        return;
      }
      this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
      this.#notify();
    });
    sock.on("end", () => this.#fail(new NetError("EOF", "server closed the connection")));
    sock.on("error", (err) => this.#fail(new NetError("IO", err.message)));
    sock.on("close", () => this.#fail(new NetError("EOF", "connection closed")));
  }

  /** Connects within timeoutMs. */
  static open(ep: Endpoint, timeoutMs: number, maxBuffer: number): Promise<NetConn> {
    return new Promise((resolve, reject) => {
      const sock =
        ep.kind === "unix" ? connect({ path: ep.path }) : connect({ host: ep.host, port: ep.port });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new NetError("TIMEOUT", `connect to ${endpointText(ep)}: timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      sock.once("error", (err) => {
        clearTimeout(timer);
        sock.destroy();
        reject(new NetError("IO", `connect to ${endpointText(ep)}: ${err.message}`));
      });
      sock.once("connect", () => {
        clearTimeout(timer);
        sock.removeAllListeners("error");
        sock.setNoDelay(true);
        resolve(new NetConn(sock, maxBuffer));
      });
    });
  }

  /** Whether the connection can still be used. */
  get alive(): boolean {
    return this.#failure === null;
  }

  /** Records the first failure, closes the socket and wakes a waiting reader. */
  #fail(err: NetError): void {
    if (this.#failure === null) this.#failure = err;
    this.#sock.destroy();
    this.#notify();
  }

  /** Wakes a waiting reader. */
  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  /** Waits for more data, a failure or the deadline. */
  #more(deadline: number): Promise<void> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const left = deadline - Date.now();
      const timer = setTimeout(
        () => {
          this.#wake = null;
          const err = new NetError("TIMEOUT", "timed out waiting for the server");
          this.#fail(err);
          reject(err);
        },
        Math.max(left, 0),
      );
      this.#wake = () => {
        clearTimeout(timer);
        if (this.#failure !== null && this.#buf.length === 0) reject(this.#failure);
        else resolve();
      };
    });
  }

  /** Takes n bytes from the buffer. */
  #take(n: number): Buffer {
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /** Sends bytes. */
  write(data: string | Buffer): void {
    if (this.#failure !== null) throw this.#failure;
    this.#sock.write(data);
  }

  /** Reads through the next byte `stop` (returned without it); at most `max` bytes before it. */
  async readUntil(stop: number, max: number, deadline: number): Promise<Buffer> {
    for (;;) {
      const at = this.#buf.indexOf(stop);
      if (at >= 0 && at <= max) {
        const out = this.#take(at);
        this.#take(1);
        return out;
      }
      if (at > max || this.#buf.length > max) {
        const err = new NetError("TOOLONG", `server reply is longer than ${max} bytes`);
        this.#fail(err);
        throw err;
      }
      await this.#more(deadline);
    }
  }

  /** Reads one line (without "\n" and a "\r" before it) of at most `max` bytes. */
  async readLine(max: number, deadline: number): Promise<string> {
    const line = await this.readUntil(0x0a, max, deadline);
    const end = line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
    return line.subarray(0, end).toString("utf8");
  }

  /** Reads exactly n bytes. */
  async readExact(n: number, deadline: number): Promise<Buffer> {
    while (this.#buf.length < n) await this.#more(deadline);
    return Buffer.from(this.#take(n));
  }

  /** Reads a netstring ("len:data,") of at most `max` data bytes. */
  async readNetstring(max: number, deadline: number): Promise<Buffer> {
    const digits = (await this.readUntil(0x3a, 10, deadline)).toString("latin1");
    if (!/^[0-9]+$/.test(digits)) throw this.protocol(`bad netstring length "${digits.slice(0, 20)}"`);
    const len = Number(digits);
    if (len > max) {
      const err = new NetError("TOOLONG", `netstring of ${len} bytes is longer than ${max}`);
      this.#fail(err);
      throw err;
    }
    const data = await this.readExact(len, deadline);
    const comma = await this.readExact(1, deadline);
    if (comma[0] !== 0x2c) throw this.protocol("netstring does not end in a comma");
    return data;
  }

  /** Fails the connection with a PROTOCOL error and returns the error. */
  protocol(text: string): NetError {
    const err = new NetError("PROTOCOL", text);
    this.#fail(err);
    return err;
  }

  /** Closes the connection. */
  close(): void {
    this.#fail(new NetError("EOF", "connection closed by the client"));
  }
}

/** Encodes a netstring. */
export function netstring(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${data.length}:`, "latin1"), data, Buffer.from(",", "latin1")]);
}

/** How long a client keeps connections. */
export interface NetClientOptions {
  idleMs: number;
  maxAgeMs: number;
  maxBuffer: number;
}

/** A reused connection to one server, with requests run one at a time. */
export class NetClient {
  readonly endpoint: Endpoint;
  #opts: NetClientOptions;
  #conn: NetConn | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #idle: NodeJS.Timeout | null = null;
  #closed = false;

  /** No connection is made until the first request. */
  constructor(endpoint: Endpoint, opts: NetClientOptions) {
    this.endpoint = endpoint;
    this.#opts = opts;
  }

  /** Runs one request on the connection (opened if needed); a failure closes the connection. */
  exchange<T>(timeoutMs: number, fn: (conn: NetConn, deadline: number) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.#closed) throw new NetError("IO", "table is closed");
      if (this.#idle !== null) clearTimeout(this.#idle);
      const deadline = Date.now() + timeoutMs;
      if (this.#conn === null || !this.#conn.alive) {
        this.#conn = await NetConn.open(this.endpoint, timeoutMs, this.#opts.maxBuffer);
      }
      const conn = this.#conn;
      try {
        const out = await fn(conn, deadline);
        conn.uses += 1;
        if (Date.now() - conn.born > this.#opts.maxAgeMs) this.drop();
        else this.#armIdle();
        return out;
      } catch (err) {
        this.drop();
        throw err;
      }
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  /** Whether the next request will reuse an open connection. */
  get connected(): boolean {
    return this.#conn !== null && this.#conn.alive;
  }

  /** Closes the connection after idleMs without requests. */
  #armIdle(): void {
    this.#idle = setTimeout(() => this.drop(), this.#opts.idleMs);
    this.#idle.unref();
  }

  /** Closes the current connection (the next request opens a new one). */
  drop(): void {
    if (this.#idle !== null) clearTimeout(this.#idle);
    this.#idle = null;
    this.#conn?.close();
    this.#conn = null;
  }

  /** Closes the connection for good. */
  close(): void {
    this.#closed = true;
    this.drop();
  }
}
