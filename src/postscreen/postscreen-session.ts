/*
 * postscreen-session - one client connection: the tests before the banner, the verdict, the hand-off
 *
 * DESCRIPTION
 *   A session logs "CONNECT from [addr]:port to [addr]:port", applies the
 *   per-client connection limit and postscreen_access_list (DENYLISTED,
 *   ALLOWLISTED), and looks the client up in the cache: a client whose
 *   enabled tests have all not expired passes at once (PASS OLD). Otherwise
 *   the tests that are due run:
 *     pregreet  postscreen sends the first line of a multi-line greeting
 *               ("220-" postscreen_greet_banner) and listens for
 *               postscreen_greet_wait; a client that talks now is logged
 *               ("PREGREET 11 after 0.1 from [addr]:port: EHLO ...");
 *     dnsbl     the DNS lists are queried at the same time; what has come
 *               in when the wait ends is the score ("DNSBL rank 3 for").
 *   Each failed test is then handled by its action: ignore (go on, test
 *   again next time), enforce (the client meets postscreen's own SMTP
 *   engine, which rejects its recipients with 550), drop (a 521 reply and
 *   the connection is closed). A client that passed everything it had to do
 *   is logged "PASS NEW" and handed to smtpd through master on the same
 *   TCP connection; smtpd's "220 " banner then ends the greeting the
 *   teaser began. Deep protocol tests (postscreen-smtpd.ts) happen in
 *   postscreen's engine, after which the client must come back.
 *   The cache is updated with the expiry time of every passed test.
 *   A client that reaches a server address outside
 *   postscreen_allowlist_interfaces (a backup MX address) is logged
 *   "ALLOWLIST VETO" and never handed to smtpd (unless the access list
 *   permits it): it can pass tests there, but only meets postscreen's
 *   engine, whose replies to its recipients are 450 4.3.2.
 *   Every 4XX and 5XX reply gets postscreen_reject_footer
 *   (postscreen-footer.ts).
 */
import type { Socket } from "node:net";
import { msg } from "../util/msg.js";
import { passConnection } from "../master/mail-server.js";
import { PASS_DATA_MAX, type PeerInfo } from "../master/master-proto.js";
import { parseProxy, type ProxyParse } from "./postscreen-haproxy.js";
import { dnsblScore } from "./postscreen-dnsbl.js";
import {
  T_BARLF,
  T_DNSBL,
  T_NSMTP,
  T_PIPEL,
  T_PREGR,
  TESTS,
  underStress,
  type PsEnv,
} from "./postscreen-env.js";
import { formatDelta, printable } from "./postscreen-misc.js";
import { psSmtpd } from "./postscreen-smtpd.js";

const N = TESTS.length;
/** The failure bit of the permanent deny list (not a cached test). */
const F_DENY = 1 << N;
/** The failure bit of a server address not in postscreen_allowlist_interfaces (not a cached test). */
const F_VETO = 1 << (N + 1);
/** The tests that run in postscreen's SMTP engine. */
export const DEEP_TESTS = (1 << T_PIPEL) | (1 << T_NSMTP) | (1 << T_BARLF);

/** Parses a cache entry into expiry times (null when malformed). */
export function parseStamps(value: string): number[] | null {
  const parts = value.split(";");
  if (parts.length !== N || parts.some((p) => !/^\d{1,12}$/.test(p))) return null;
  return parts.map(Number);
}

export class PsSession {
  readonly env: PsEnv;
  readonly sock: Socket;
  addr: string;
  port: string;
  /** The endpoints a PROXY header named (handed on to smtpd), else null. */
  peer: PeerInfo | null = null;
  readonly start = Date.now();
  /** Expiry time of each test (seconds; 0 never passed, 1 disabled). */
  stamps: number[] = new Array<number>(N).fill(0);
  todo = 0;
  passed = 0;
  failed = 0;
  updated = false;
  isNew = true;
  noforward = false;
  hungUp = false;
  finalReply = "";
  rcptReply = "450 4.3.2 Service currently unavailable";
  testName = "tests before SMTP handshake";
  teaserSent = false;
  /** What the client sent that postscreen read (handed to smtpd with the connection). */
  preread: Buffer[] = [];
  prereadSize = 0;

  constructor(env: PsEnv, sock: Socket) {
    this.env = env;
    this.sock = sock;
    this.addr = (sock.remoteAddress ?? "unknown").replace(/^::ffff:(?=\d+\.)/, "");
    this.port = String(sock.remotePort ?? 0);
    sock.setNoDelay(true);
    sock.pause();
  }

  /** "[addr]:port" for the log. */
  get client(): string {
    return `[${this.addr}]:${this.port}`;
  }

  /** Whether test i must run in this session and has not passed or failed yet. */
  due(i: number): boolean {
    const bit = 1 << i;
    return (this.todo & bit) !== 0 && ((this.passed | this.failed) & bit) === 0;
  }

  /** Marks test i passed until now + ttl seconds. */
  pass(i: number, ttl: number): void {
    this.passed |= 1 << i;
    this.stamps[i] = Math.floor(Date.now() / 1000) + ttl;
    this.updated = true;
  }

  /** Marks test i failed. */
  fail(i: number): void {
    this.failed |= 1 << i;
  }

  /** Clears a failure (action ignore: the test runs again next time). */
  unfail(i: number): void {
    this.failed &= ~(1 << i);
  }

  /** Sends a reply (CRLF at the end), with postscreen_reject_footer when it is 4XX or 5XX; false when the client is gone. */
  async write(text: string): Promise<boolean> {
    if (/^[45]/.test(text) && !this.env.footer.empty) {
      const ctx = { addr: this.addr, port: this.port, myhostname: this.env.myhostname };
      text = `${await this.env.footer.apply(text.replace(/\r\n$/, ""), ctx)}\r\n`;
    }
    return new Promise((resolve) => {
      if (this.sock.destroyed || !this.sock.writable) return resolve(false);
      this.sock.write(text, (err) => resolve(err === undefined || err === null));
    });
  }

  /** Notes what the client sent, for smtpd; false when it is more than can be handed on. */
  keep(d: Buffer): boolean {
    this.prereadSize += d.length;
    if (this.prereadSize > PASS_DATA_MAX) return false;
    this.preread.push(d);
    return true;
  }

  /** Runs the session to its end (closed, or handed to smtpd). */
  async run(): Promise<void> {
    const env = this.env;
    if (env.proxyProtocol === "haproxy" && !(await this.#readProxy())) return;
    const server =
      this.peer !== null
        ? `[${this.peer.serverAddr}]:${this.peer.serverPort}`
        : `[${(this.sock.localAddress ?? "").replace(/^::ffff:(?=\d+\.)/, "")}]:${this.sock.localPort ?? 0}`;
    msg.info(`CONNECT from ${this.client} to ${server}`);
    const count = (env.perClient.get(this.addr) ?? 0) + 1;
    env.perClient.set(this.addr, count);
    try {
      await this.#screen(count);
    } finally {
      const left = (env.perClient.get(this.addr) ?? 1) - 1;
      if (left <= 0) env.perClient.delete(this.addr);
      else env.perClient.set(this.addr, left);
    }
  }

  /** Reads the PROXY header that names the real client; false when the session ends. */
  async #readProxy(): Promise<boolean> {
    const sock = this.sock;
    let buf: Buffer = Buffer.alloc(0);
    const r = await new Promise<ProxyParse>((resolve) => {
      const timer = setTimeout(
        () => done({ status: "bad", reason: "time limit exceeded" }),
        this.env.proxyTimeoutMs,
      );
      const onData = (d: Buffer): void => {
        buf = Buffer.concat([buf, d]);
        const p = parseProxy(buf);
        if (p.status !== "need") done(p);
      };
      const onClose = (): void => done({ status: "bad", reason: "lost connection" });
      function done(p: ProxyParse): void {
        clearTimeout(timer);
        sock.off("data", onData);
        sock.off("close", onClose);
        sock.pause();
        resolve(p);
      }
      sock.on("data", onData);
      sock.on("close", onClose);
      sock.resume();
    });
    if (r.status !== "ok") {
      msg.warn(`haproxy read: ${r.status === "bad" ? r.reason : "incomplete header"} from ${this.client}`);
      if (!sock.destroyed) sock.end("421 4.3.2 No system resources\r\n");
      return false;
    }
    if (r.used < buf.length) sock.unshift(buf.subarray(r.used));
    if (r.endpoints !== null) {
      this.peer = r.endpoints;
      this.addr = r.endpoints.addr;
      this.port = String(r.endpoints.port);
    }
    return true;
  }

  /** The decisions before any test: limits, access list, cache. */
  async #screen(count: number): Promise<void> {
    const env = this.env;
    if (env.cconnLimit > 0 && count > env.cconnLimit) {
      msg.info(`NOQUEUE: reject: CONNECT from ${this.client}: too many connections`);
      return this.#drop("421 4.7.0 Error: too many connections");
    }
    if (env.postQueueLimit > 0 && env.postQueue >= env.postQueueLimit) {
      msg.info(`NOQUEUE: reject: CONNECT from ${this.client}: all server ports busy`);
      return this.#drop("421 4.3.2 All server ports are busy");
    }
    const acl = env.acl !== null ? await env.acl.eval(this.addr) : "dunno";
    if (acl === "reject") {
      msg.info(`DENYLISTED ${this.client}`);
      this.failed |= F_DENY;
      if (env.denyAction === "drop") return this.#drop("521 5.3.2 Service currently unavailable");
      if (env.denyAction === "enforce") this.#enforce("550 5.3.2 Service currently unavailable");
      else this.failed &= ~F_DENY;
    } else if (acl === "permit") {
      msg.info(`ALLOWLISTED ${this.client}`);
      return this.conclude();
    }
    await this.#plan(count);
    if (!(await this.#allowlistInterface())) {
      this.failed |= F_VETO;
      this.noforward = true;
      msg.info(`ALLOWLIST VETO ${this.client}`);
    }
    if (this.failed === 0 && this.todo === 0) {
      msg.info(`PASS OLD ${this.client}`);
      return this.conclude();
    }
    if (env.preQueueLimit > 0 && env.screening - env.postQueue >= env.preQueueLimit) {
      msg.info(`reject: connect from ${this.client}: all screening ports busy`);
      return this.#drop("421 4.3.2 All screening ports are busy");
    }
    if ((this.todo & ((1 << T_PREGR) | (1 << T_DNSBL))) !== 0) return this.#early();
    return this.smtpdTests();
  }

  /**
   * True when the server address the client reached (the PROXY header's, else
   * the socket's) is in postscreen_allowlist_interfaces; a table that fails
   * counts as not (fail closed, as Postfix does).
   */
  async #allowlistInterface(): Promise<boolean> {
    const server = (this.peer?.serverAddr ?? this.sock.localAddress ?? "").replace(/^::ffff:(?=\d+\.)/, "");
    const r = await this.env.allowIf.match(server, server);
    if (r.status === "tempfail") msg.warn(`postscreen_allowlist_interfaces: ${r.reason}`);
    return r.status === "match";
  }

  /** Works out which tests are due, from the cache (only for a client's only connection). */
  async #plan(count: number): Promise<void> {
    const env = this.env;
    const now = Math.floor(Date.now() / 1000);
    const useCache = env.cache !== null && count === 1 && this.failed === 0;
    const cached = useCache ? await env.cache?.get(this.addr) : undefined;
    const stamps = cached !== undefined ? parseStamps(cached) : null;
    if (stamps !== null) this.stamps = stamps;
    this.isNew = false;
    this.todo = 0;
    for (let i = 0; i < N; i++) {
      if (!env.enabled[i]) {
        this.stamps[i] = 1;
        continue;
      }
      const s = this.stamps[i] ?? 0;
      if (s <= 1) this.isNew = true;
      if (s <= now) this.todo |= 1 << i;
    }
  }

  /** Sends a reply and closes: the client is not served. */
  async #drop(reply: string): Promise<void> {
    this.noforward = true;
    this.finalReply = reply;
    return this.conclude();
  }

  /** From now on the client only meets postscreen's engine, which rejects its mail with this reply. */
  #enforce(reply: string): void {
    this.noforward = true;
    this.finalReply = reply;
    this.rcptReply = reply;
  }

  /** Handles a failed test by its action; true when the session ends now (drop). */
  async failWith(i: number, action: string, enforceReply: string, dropReply: string): Promise<boolean> {
    this.fail(i);
    if (action === "drop") {
      await this.#drop(dropReply);
      return true;
    }
    if (action === "enforce") this.#enforce(enforceReply);
    else this.unfail(i);
    return false;
  }

  /** The pregreet and DNSBL tests, run together for postscreen_greet_wait. */
  async #early(): Promise<void> {
    const env = this.env;
    const pregr = this.due(T_PREGR);
    if (pregr && env.greetBanner !== "") {
      this.teaserSent = true;
      if (!(await this.write(`220-${env.greetBanner}\r\n`))) return this.hangup();
    }
    const dn = this.due(T_DNSBL) ? dnsblScore(env.dns, env.sites, this.addr) : null;
    const waitMs = underStress(env) ? env.greetWaitMs.stress : env.greetWaitMs.normal;
    let pregreet = false;
    let dnsDone = dn === null;
    let gone = false;
    let overflow = false;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(finish, waitMs);
      const sock = this.sock;
      function finish(): void {
        clearTimeout(timer);
        sock.off("data", onData);
        sock.off("close", onClose);
        resolve();
      }
      const onData = (d: Buffer): void => {
        if (!this.keep(d)) {
          overflow = true;
          return finish();
        }
        if (pregreet) return;
        pregreet = true;
        msg.info(
          `PREGREET ${d.length} after ${formatDelta(Date.now() - this.start)} from ${this.client}: ${printable(d)}`,
        );
        if (env.greetAction === "drop" || dnsDone) finish();
      };
      const onClose = (): void => {
        gone = true;
        finish();
      };
      sock.on("close", onClose);
      if (pregr) {
        sock.on("data", onData);
        sock.resume();
      }
      void dn?.done.then(() => {
        dnsDone = true;
        const allowed = env.allowThreshold < 0 && dn.result.score <= env.allowThreshold;
        if (!pregr || pregreet || allowed) finish();
      });
    });
    this.sock.pause();
    if (gone || overflow) return this.hangup();
    if (pregreet) {
      if (
        await this.failWith(T_PREGR, env.greetAction, "550 5.5.1 Protocol error", "521 5.5.1 Protocol error")
      )
        return;
    } else if (pregr) this.pass(T_PREGR, env.ttl[T_PREGR] ?? 0);
    if (dn !== null && (await this.#dnsblVerdict(dn.result))) return;
    if (this.noforward || (this.todo & ~this.passed & DEEP_TESTS) !== 0) return this.smtpdTests();
    return this.conclude();
  }

  /** Applies the DNSBL score; true when the session ended (drop). */
  async #dnsblVerdict(r: { score: number; name: string; listed: boolean }): Promise<boolean> {
    const env = this.env;
    if (env.allowThreshold < 0 && r.score <= env.allowThreshold && this.failed === 0) {
      for (let i = 0; i < N; i++) if (i !== T_DNSBL && this.due(i)) this.pass(i, env.ttl[i] ?? 0);
    }
    if (r.score < env.dnsblThreshold) {
      this.pass(T_DNSBL, r.listed ? env.dnsblTtl.min : env.dnsblTtl.max);
      return false;
    }
    msg.info(`DNSBL rank ${r.score} for ${this.client}`);
    let name = r.name;
    if (env.replyMap !== null) {
      const m = await env.replyMap.lookup(r.name);
      if (m.status === "found") name = m.value;
    }
    const text = (code: string): string =>
      `${code} 5.7.1 Service unavailable; client [${this.addr}] blocked using ${name}`;
    return this.failWith(T_DNSBL, env.dnsblAction, text("550"), text("521"));
  }

  /** The deep protocol tests in postscreen's SMTP engine; the client must come back afterwards. */
  async smtpdTests(): Promise<void> {
    this.testName = "tests after SMTP handshake";
    if (this.failed !== 0)
      for (const i of [T_PIPEL, T_NSMTP, T_BARLF]) if (this.env.enabled[i]) this.todo |= 1 << i;
    this.noforward = true;
    if ((await psSmtpd(this)) === "done") return this.conclude();
  }

  /** The client went away. */
  hangup(): Promise<void> {
    this.hungUp = true;
    this.noforward = true;
    msg.info(`HANGUP after ${formatDelta(Date.now() - this.start)} from ${this.client} in ${this.testName}`);
    return this.conclude();
  }

  /** Logs the verdict, updates the cache, and hands the client to smtpd or says goodbye. */
  async conclude(): Promise<void> {
    const env = this.env;
    if (this.failed !== 0) this.passed = 0;
    if (this.passed !== 0 && this.passed === this.todo)
      msg.info(`PASS ${this.isNew ? "NEW" : "OLD"} ${this.client}`);
    if (this.updated && env.cache !== null) await env.cache.set(this.addr, this.stamps.join(";"));
    if (!this.noforward) {
      const peer = this.peer ?? undefined;
      if (await passConnection(this.sock, env.passService, Buffer.concat(this.preread), peer)) return;
      msg.warn(`cannot hand ${this.client} to service ${env.passService}`);
      this.finalReply = "421 4.3.2 All server ports are busy";
    }
    if (!this.hungUp && this.finalReply !== "") await this.write(`${this.finalReply}\r\n`);
    msg.info(`DISCONNECT ${this.client}`);
    this.sock.destroy();
  }
}
