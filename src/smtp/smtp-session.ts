/*
 * smtp-session - one SMTP or LMTP connection: connect, read replies, greet
 *
 * SYNOPSIS
 *   const s = await SmtpSession.open(server, opts);    // or a SessionFailure
 *   const r = await s.command("MAIL FROM:<a@b>", timeouts.mail, "sending MAIL FROM");
 *
 * DESCRIPTION
 *   A session owns a socket and a reply reader (smtp-reply.ts). Every wait has a time limit
 *   named by the caller; when it runs out, or the peer goes away, the
 *   session throws a SessionError whose text is Postfix's ("conversation
 *   with HOST[ADDR] timed out while sending RCPT TO", "lost connection with
 *   HOST[ADDR] while receiving the initial server greeting"), dsn 4.4.2.
 *
 *   open() connects (smtp_connect_timeout, smtp_bind_address), reads the
 *   greeting and sends EHLO (or LHLO), falling back to HELO when EHLO is
 *   refused, and records the extensions the server offers (PIPELINING,
 *   SIZE, 8BITMIME, DSN, SMTPUTF8, ENHANCEDSTATUSCODES, STARTTLS).
 *
 *   With a TLS policy (smtp-tls.ts) the session sends STARTTLS right after
 *   the EHLO reply when the level is "may" or above and the server offers
 *   it, runs the handshake and says EHLO again (the extensions are read
 *   afresh); with smtp_tls_wrappermode the handshake comes before the
 *   greeting. When the level requires TLS and the server does not offer
 *   it, refuses STARTTLS, or the handshake or the certificate check fails,
 *   open() throws, and nothing of the mail is sent in plaintext.
 */
import { connect, isIP, type Socket } from "node:net";
import { msg } from "../util/msg.js";
import type { Server } from "./smtp-addr.js";
import { AUTH_MECHS_MAX, ReplyReader, authKeyword, type Reply } from "./smtp-reply.js";
import {
  startClientTls,
  tlsRequired,
  type ClientTlsInfo,
  type ClientTlsSettings,
  type TlsPolicy,
} from "./smtp-tls.js";

export { authKeyword, parseReply, replyDsn, type Reply } from "./smtp-reply.js";

export interface Features {
  esmtp: boolean;
  pipelining: boolean;
  /** SIZE offered: the limit (0 = no fixed limit), or null when not offered. */
  size: number | null;
  eightBitMime: boolean;
  dsn: boolean;
  smtputf8: boolean;
  /** The XFORWARD attribute names the server offers (upper case); empty when not offered. */
  xforward: Set<string>;
  starttls: boolean;
  /** The AUTH mechanisms offered (upper case), or null when AUTH was not announced. */
  auth: string[] | null;
}

/** The TLS side of a session: the settings, the delivery's policy, and its next hop. */
export interface SessionTls {
  settings: ClientTlsSettings;
  policy: TlsPolicy;
  nexthop: string;
}

export interface Timeouts {
  connect: number;
  helo: number;
  mail: number;
  rcpt: number;
  dataInit: number;
  dataXfer: number;
  dataDone: number;
  quit: number;
  rset: number;
}

export interface SessionOptions {
  lmtp: boolean;
  heloName: string;
  timeouts: Timeouts;
  bindAddress: string;
  bindAddress6: string;
  skip5xxGreeting: boolean;
  neverSendEhlo: boolean;
  /** smtp_tls_note_starttls_offer: log servers that offer STARTTLS when TLS is off. */
  tlsNoteOffer?: boolean;
}

/** A failure that ends the session: the text is the DSN text and the log text. */
export class SessionError extends Error {
  readonly dsn: string;
  /** The failure is the server's (no connection, no greeting): counts for qmgr's dead-site detection. */
  readonly siteFail: boolean;
  /** A permanent failure (e.g. 5xx greeting without smtp_skip_5xx_greeting). */
  readonly permanent: boolean;
  /** An opportunistic TLS handshake failed: the same server may be tried again in plaintext. */
  retryPlain = false;
  constructor(text: string, dsn: string, siteFail: boolean, permanent = false) {
    super(text);
    this.dsn = dsn;
    this.siteFail = siteFail;
    this.permanent = permanent;
  }
}

let connectionCounter = 0;

export class SmtpSession {
  readonly server: Server;
  readonly opts: SessionOptions;
  readonly features: Features = {
    esmtp: false,
    pipelining: false,
    size: null,
    eightBitMime: false,
    dsn: false,
    smtputf8: false,
    xforward: new Set(),
    starttls: false,
    auth: null,
  };
  readonly created: number;
  readonly id = ++connectionCounter;
  /** How many transactions this session has carried. */
  uses = 0;
  /** The TLS policy the session was opened under (null: plaintext only). */
  readonly tlsCtx: SessionTls | null;
  /** The TLS layer once it is up. */
  tls: ClientTlsInfo | null = null;
  /** Whether the session is encrypted, and the server certificate verified (SASL's security options read it). */
  get tlsState(): { encrypted: boolean; verified: boolean } {
    return { encrypted: this.tls !== null, verified: this.tls?.kind === "Verified" };
  }
  /** The SASL user name this session logged in as (smtp-sasl.ts), or null. */
  saslUsername: string | null = null;
  /** The AUTH= parameter for MAIL FROM (smtp_send_dummy_mail_auth), or null. */
  mailAuth: string | null = null;
  #sock: Socket;
  #reader: ReplyReader;
  #broken = false;

  private constructor(
    sock: Socket,
    server: Server,
    opts: SessionOptions,
    tls: SessionTls | null,
    created = Date.now(),
  ) {
    this.created = created;
    this.#sock = sock;
    this.#reader = new ReplyReader(sock);
    this.server = server;
    this.opts = opts;
    this.tlsCtx = tls !== null && tls.policy.level !== "none" ? tls : null;
  }

  /** "host[addr]:port" (or the socket path) as relay= and DSN texts name the server. */
  get name(): string {
    const s = this.server;
    return s.path !== undefined ? `${s.host}[${s.addr}]` : `${s.host}[${s.addr}]:${s.port}`;
  }

  /** "host[addr]" for "host X said" texts. */
  get hostAddr(): string {
    return `${this.server.host}[${this.server.addr}]`;
  }

  /** True while the connection can carry another command. */
  get usable(): boolean {
    return !this.#broken && !this.#sock.destroyed;
  }

  /** Connects, reads the greeting, says EHLO/LHLO (HELO when EHLO is refused), STARTTLS as the policy asks, then logs in (SASL). */
  static async open(
    server: Server,
    opts: SessionOptions,
    tls: SessionTls | null = null,
    login?: (s: SmtpSession) => Promise<void>,
  ): Promise<SmtpSession> {
    const sock = await connectTo(server, opts);
    const s = new SmtpSession(sock, server, opts, tls);
    try {
      if (s.tlsCtx?.settings.wrapper === true) await s.#startTls();
      await s.#greet();
      await s.#starttls();
      // SMTP AUTH (smtp-sasl.ts) comes after the handshake and STARTTLS.
      if (login !== undefined) await login(s);
      return s;
    } catch (err) {
      s.close();
      throw err;
    }
  }

  /**
   * Continues a session that was set up elsewhere (another agent process,
   * through the connection cache): no greeting and no EHLO, the server's
   * extensions as they were recorded.
   */
  static adopt(
    sock: Socket,
    server: Server,
    opts: SessionOptions,
    saved: { features: Features; created: number; uses: number; mailAuth?: string | null },
  ): SmtpSession {
    sock.setNoDelay(true);
    const s = new SmtpSession(sock, server, opts, null, saved.created);
    Object.assign(s.features, saved.features, { xforward: new Set(saved.features.xforward) });
    s.uses = saved.uses;
    s.mailAuth = saved.mailAuth ?? null;
    return s;
  }

  /**
   * Stops reading and gives up the socket, for another process to go on
   * with: null (and the session stays as it is) when the server sent
   * something that was not read yet, which the next owner would miss.
   */
  handOff(): Socket | null {
    if (!this.usable) return null;
    type Handle = { readStop?: () => number; readStart?: () => number; reading?: boolean };
    const handle = (this.#sock as unknown as { _handle?: Handle })._handle;
    handle?.readStop?.();
    if (handle !== undefined) handle.reading = false;
    if (!this.#reader.drained) {
      handle?.readStart?.();
      if (handle !== undefined) handle.reading = true;
      return null;
    }
    this.#broken = true;
    return this.#sock;
  }

  /** Greeting and EHLO/HELO/LHLO. */
  async #greet(): Promise<void> {
    const t = this.opts.timeouts.helo;
    const g = await this.read(t, "receiving the initial server greeting", true);
    if (g.code !== 220) {
      const perm = g.code >= 500 && !this.opts.skip5xxGreeting;
      throw new SessionError(
        `host ${this.hostAddr} refused to talk to me: ${g.text}`,
        perm ? g.dsn : `4${g.dsn.slice(1)}`,
        true,
        perm,
      );
    }
    await this.#hello();
  }

  /** EHLO/HELO or LHLO, recording the extensions. */
  async #hello(): Promise<void> {
    const t = this.opts.timeouts.helo;
    if (this.opts.lmtp) {
      const r = await this.command(`LHLO ${this.opts.heloName}`, t, "performing the LHLO handshake");
      if (r.code !== 250) throw this.said(r, "LHLO", r.code >= 500);
      return this.#extensions(r);
    }
    if (!this.opts.neverSendEhlo) {
      const r = await this.command(`EHLO ${this.opts.heloName}`, t, "performing the EHLO handshake");
      if (r.code === 250) return this.#extensions(r);
    }
    const h = await this.command(`HELO ${this.opts.heloName}`, t, "performing the HELO handshake");
    if (h.code !== 250) throw this.said(h, "HELO", h.code >= 500);
  }

  /** STARTTLS after EHLO, as the policy asks; throws when TLS is required and cannot be had. */
  async #starttls(): Promise<void> {
    const ctx = this.tlsCtx;
    const offered = this.features.starttls;
    if (ctx === null) {
      if (offered && this.opts.tlsNoteOffer === true)
        msg.info(`Host offered STARTTLS: [${this.server.host}]`);
      return;
    }
    if (this.tls !== null) return;
    const required = tlsRequired(ctx.policy.level);
    if (offered) {
      const r = await this.command(
        "STARTTLS",
        ctx.settings.handshakeTimeout,
        "receiving the STARTTLS response",
      );
      if (r.code >= 200 && r.code < 300) {
        await this.#startTls();
        this.#resetFeatures();
        await this.#hello();
        return;
      }
      if (required)
        throw new SessionError(
          `TLS is required, but host ${this.hostAddr} refused to start TLS: ${r.text}`,
          `4${r.dsn.slice(1)}`,
          true,
        );
      return;
    }
    if (required)
      throw new SessionError(`TLS is required, but was not offered by host ${this.hostAddr}`, "4.7.4", true);
  }

  /** Runs the TLS handshake on the connection and reads through TLS from then on. */
  async #startTls(): Promise<void> {
    const ctx = this.tlsCtx;
    if (ctx === null) return;
    this.#reader.detach();
    const r = await startClientTls(ctx.settings, ctx.policy, this.#sock, {
      host: this.server.host,
      addr: this.server.addr,
      port: this.server.port,
      name: `${this.server.host}[${this.server.addr}]:${this.server.port}`,
      nexthop: ctx.nexthop,
    });
    if (!r.ok) {
      this.#broken = true;
      this.#sock.destroy();
      const err = new SessionError(r.text, r.dsn, tlsRequired(ctx.policy.level) && !r.retryPlain);
      err.retryPlain = r.retryPlain;
      throw err;
    }
    this.#sock = r.sock;
    this.#reader = new ReplyReader(r.sock);
    this.tls = r.info;
  }

  /** Forgets the extensions (they are read again after STARTTLS). */
  #resetFeatures(): void {
    const f = this.features;
    f.esmtp = f.pipelining = f.eightBitMime = f.dsn = f.smtputf8 = f.starttls = false;
    f.size = null;
    f.xforward.clear();
  }

  /** Records the extensions of an EHLO/LHLO reply. */
  #extensions(r: Reply): void {
    const f = this.features;
    f.esmtp = true;
    f.auth = null;
    for (const line of r.lines.slice(1)) {
      const auth = authKeyword(line.slice(4));
      if (auth !== null) f.auth = [...new Set([...(f.auth ?? []), ...auth])].slice(0, AUTH_MECHS_MAX);
      const [kw = "", arg, ...more] = line.slice(4).trim().toUpperCase().split(/\s+/);
      if (kw === "XFORWARD") for (const a of [arg, ...more]) if (a !== undefined) f.xforward.add(a);
      if (kw === "PIPELINING") f.pipelining = true;
      else if (kw === "SIZE") f.size = arg !== undefined && /^\d{1,15}$/.test(arg) ? Number(arg) : 0;
      else if (kw === "8BITMIME") f.eightBitMime = true;
      else if (kw === "DSN") f.dsn = true;
      else if (kw === "SMTPUTF8") f.smtputf8 = true;
      else if (kw === "STARTTLS") f.starttls = true;
    }
  }

  /** A "host X said: ..." error for a reply. */
  said(r: Reply, inReplyTo: string, permanent: boolean): SessionError {
    return new SessionError(
      `host ${this.hostAddr} said: ${r.text} (in reply to ${inReplyTo} command)`,
      permanent ? r.dsn : r.dsn.replace(/^5/, "4"),
      false,
      permanent,
    );
  }

  /** Writes one command line (no reply awaited). */
  send(line: string): void {
    if (this.#sock.destroyed) return;
    this.#sock.write(line + "\r\n", "latin1");
  }

  /** Writes raw bytes; resolves when the socket can take more (bounded by the transfer time limit). */
  async write(data: Buffer | string, timeoutSec: number, where: string): Promise<void> {
    if (this.#sock.destroyed) throw this.#lost(where);
    if (this.#sock.write(data)) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        this.#broken = true;
        reject(this.#timedOut(where));
      }, timeoutSec * 1000);
      const onDrain = (): void => {
        cleanup();
        resolve();
      };
      const onClose = (): void => {
        cleanup();
        reject(this.#lost(where));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.#sock.off("drain", onDrain);
        this.#sock.off("close", onClose);
      };
      this.#sock.on("drain", onDrain);
      this.#sock.on("close", onClose);
    });
  }

  /** Reads one reply within the time limit (seconds); throws a SessionError on timeout or loss. */
  async read(timeoutSec: number, where: string, siteFail = false): Promise<Reply> {
    const r = await this.#reader.reply(timeoutSec * 1000);
    if (typeof r !== "string") return r;
    this.#broken = true;
    if (r === "timeout") throw this.#timedOut(where, siteFail);
    if (r === "bad")
      throw new SessionError(
        `host ${this.hostAddr} sent a malformed reply while ${where}`,
        "4.4.2",
        siteFail,
      );
    throw this.#lost(where, siteFail);
  }

  /** Sends a command and reads its reply. */
  async command(line: string, timeoutSec: number, where: string): Promise<Reply> {
    this.send(line);
    return this.read(timeoutSec, where);
  }

  #timedOut(where: string, siteFail = false): SessionError {
    return new SessionError(`conversation with ${this.hostAddr} timed out while ${where}`, "4.4.2", siteFail);
  }

  #lost(where: string, siteFail = false): SessionError {
    return new SessionError(`lost connection with ${this.hostAddr} while ${where}`, "4.4.2", siteFail);
  }

  /** RSET: true when the session is fit for another transaction. */
  async reset(): Promise<boolean> {
    try {
      const r = await this.command("RSET", this.opts.timeouts.rset, "sending RSET probe");
      return r.code === 250;
    } catch {
      return false;
    }
  }

  /** QUIT (waiting for the reply unless told not to), then close. */
  async quit(waitReply: boolean): Promise<void> {
    if (this.usable) {
      this.send("QUIT");
      if (waitReply) await this.read(this.opts.timeouts.quit, "sending QUIT").catch(() => undefined);
    }
    this.close();
  }

  /** Closes the socket. */
  close(): void {
    this.#broken = true;
    this.#sock.end();
    this.#sock.destroySoon();
    setTimeout(() => this.#sock.destroy(), 1000).unref();
  }

  /** Lets the caller observe the socket closing (for idle sessions in the cache). */
  onClose(fn: () => void): void {
    this.#sock.once("close", fn);
  }
}

/** Opens the TCP or Unix connection within smtp_connect_timeout (0: the system's limit). */
function connectTo(server: Server, opts: SessionOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const v6 = isIP(server.addr) === 6;
    const bind = v6 ? opts.bindAddress6 : opts.bindAddress;
    const sock =
      server.path !== undefined
        ? connect({ path: server.path })
        : connect({ host: server.addr, port: server.port, ...(bind !== "" ? { localAddress: bind } : {}) });
    const where =
      server.path !== undefined
        ? `connect to ${server.path}`
        : `connect to ${server.host}[${server.addr}]:${server.port}`;
    const limit = opts.timeouts.connect;
    const timer =
      limit > 0
        ? setTimeout(() => {
            sock.destroy();
            reject(new SessionError(`${where}: Connection timed out`, "4.4.1", true));
          }, limit * 1000)
        : null;
    sock.once("connect", () => {
      if (timer !== null) clearTimeout(timer);
      sock.removeAllListeners("error");
      sock.on("error", () => undefined);
      sock.setNoDelay(true);
      resolve(sock);
    });
    sock.once("error", (err: NodeJS.ErrnoException) => {
      if (timer !== null) clearTimeout(timer);
      sock.destroy();
      reject(new SessionError(`${where}: ${errnoText(err)}`, "4.4.1", true));
    });
  });
}

/** The strerror()-style text of a socket error. */
function errnoText(err: NodeJS.ErrnoException): string {
  const texts: Record<string, string> = {
    ECONNREFUSED: "Connection refused",
    ETIMEDOUT: "Connection timed out",
    EHOSTUNREACH: "No route to host",
    ENETUNREACH: "Network is unreachable",
    ENOENT: "No such file or directory",
    EACCES: "Permission denied",
    EADDRNOTAVAIL: "Cannot assign requested address",
    ECONNRESET: "Connection reset by peer",
  };
  return texts[err.code ?? ""] ?? err.message;
}
