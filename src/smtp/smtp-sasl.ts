/*
 * smtp-sasl - SMTP AUTH in the SMTP and LMTP clients
 *
 * SYNOPSIS
 *   main.cf: smtp_sasl_auth_enable = yes
 *            smtp_sasl_password_maps = texthash:/etc/postern/sasl_passwd
 *            (entries "[mail.isp.example]:587  user:password")
 *
 *   const sasl = SaslClient.fromConfig(cfg, "smtp");        // null when disabled
 *   await sasl.login(session, { sender, dest, queueId });    // right after EHLO
 *
 * DESCRIPTION
 *   As Postfix's smtp(8) with SASL. Right after the EHLO (or LHLO)
 *   handshake, and after STARTTLS once that is negotiated, the client looks
 *   up a user name and password for the session, in this order:
 *     1. with smtp_sender_dependent_authentication (SMTP only, and only for
 *        a non-null sender), the sender address as mail_addr_find searches
 *        it: user+ext@domain, user@domain, user (for a local domain),
 *        @domain;
 *     2. the name of the server host (the MX host name, the address of an
 *        [address] next hop, myhostname for a Unix socket);
 *     3. the next hop as the delivery request or smtp_fallback_relay names
 *        it: "example.com", "[mail.isp.example]", "[mail.isp.example]:587"
 *        (without lmtp's inet: or unix: prefix).
 *   The value is "username:password" (split at the first colon, so a
 *   password may contain one). When nothing is found the session goes on
 *   without AUTH, as strangers do. A table that fails defers the mail
 *   ("local data error").
 *
 *   With a password, the mechanisms the server announced (AUTH, or the old
 *   AUTH= form; several lists are joined) are filtered by
 *   smtp_sasl_mechanism_filter, then by the security options of the
 *   session: smtp_sasl_security_options without TLS,
 *   smtp_sasl_tls_security_options with TLS and
 *   smtp_sasl_tls_verified_security_options when the server certificate
 *   was verified (the session's tlsState, set by STARTTLS). The built-in
 *   mechanisms are CRAM-MD5 (preferred; not plaintext, but open to
 *   dictionary and active attacks), PLAIN and LOGIN (plaintext). So with
 *   Postfix's default "noplaintext, noanonymous", PLAIN and LOGIN are not
 *   used without TLS unless the options are relaxed.
 *
 *   The exchange: "AUTH PLAIN <initial response>" when the command fits in
 *   512 octets (RFC 4954, 5321), else "AUTH PLAIN" and the response after
 *   an empty 334; LOGIN answers the two 334 challenges with the user name
 *   and the password; CRAM-MD5 answers the challenge with the user name and
 *   the HMAC-MD5 digest. Base64 both ways, at most 100 steps, the
 *   smtp_helo_timeout (lmtp_lhlo_timeout) for each reply.
 *
 *   Failures end the session (QUIT, then close); the recipients are tried
 *   on the next server, as after a failed greeting:
 *     "SASL authentication failed; server HOST[ADDR] said: 535 ..."
 *        the server's code and enhanced status code; a 5xx is made 4xx
 *        when smtp_sasl_auth_soft_bounce = yes (the default);
 *     "SASL authentication failed; cannot authenticate to server
 *        HOST[ADDR]: no mechanism available" (4.7.0) when the security
 *        options rule out every mechanism the server offers;
 *     "SASL authentication failed: server HOST[ADDR] offered no compatible
 *        authentication mechanisms for this type of connection security"
 *        (4.7.0) when the mechanism filter leaves none.
 *   The password is never logged and never part of a reason. With
 *   smtp_sasl_auth_cache_name, a 535 reply is remembered for the server
 *   host, user and password (smtp-sasl-cache.ts) and later sessions fail
 *   with "SASL [CACHED] authentication failed; server HOST said: 535 ..."
 *   without trying that password again.
 *
 *   With smtp_sender_dependent_authentication, cached sessions are kept
 *   apart by sender (cacheKey()), as Postfix's connection cache keys do, so
 *   that a session logged in as one user never carries another sender's
 *   mail. session.saslUsername says who a session logged in as.
 */
import { createHmac } from "node:crypto";
import type { Config } from "../global/config.js";
import { dictOpen, dictSplitName, DictFlag } from "../global/dict.js";
import { addrFind, AddrFind, mapsLookup, type LookupFn } from "../global/dict-search.js";
import { MatchList } from "../global/resolve-match.js";
import { filterMechanisms, mechanism, SASL_CLIENT_TYPES, type SaslMechanism } from "../global/sasl-types.js";
import { msg } from "../util/msg.js";
import { SaslAuthCache } from "./smtp-sasl-cache.js";
import { SessionError, type Reply, type SmtpSession } from "./smtp-session.js";

/** The mechanisms of the built-in client, best first, with the properties the security options test. */
export const CLIENT_MECHANISMS: readonly SaslMechanism[] = [
  mechanism("CRAM-MD5", ["dictionary", "active"]),
  mechanism("PLAIN", ["plaintext", "dictionary", "active"]),
  mechanism("LOGIN", ["plaintext", "dictionary", "active"]),
];

const SECURITY_WORDS = new Set([
  "noplaintext",
  "noactive",
  "nodictionary",
  "noanonymous",
  "mutual_auth",
  "forward_secrecy",
]);

/** The longest AUTH command line with an initial response (RFC 5321 4.5.3.1.4, with CRLF). */
const AUTH_LINE_MAX = 512;
/** The most challenges one exchange may take. */
const STEPS_MAX = 100;
/** The longest user name or password (RFC 4616 field limit). */
const FIELD_MAX = 255;

export interface Credentials {
  user: string;
  password: string;
  /** The table key that found them (for logs; never the value). */
  key: string;
}

export type PasswordResult =
  { status: "found"; creds: Credentials } | { status: "notfound" } | { status: "tempfail"; reason: string };

export interface LoginContext {
  sender: string;
  /** The next hop the server came from (request nexthop or fallback relay), as given. */
  dest: string;
  queueId: string;
}

/** The password-table search: sender (when enabled), server host, next hop. */
export interface LookupOrder {
  lookup: LookupFn;
  senderDependent: boolean;
  recipientDelimiter: string;
  isLocalDomain: (domain: string) => boolean;
}

/** Looks up the credentials for a session, in Postfix's order. */
export async function passwordLookup(
  o: LookupOrder,
  sender: string,
  host: string,
  dest: string,
): Promise<PasswordResult> {
  let found: { value: string; key: string } | null = null;
  if (o.senderDependent && sender !== "") {
    const r = await addrFind(o.lookup, sender, {
      strategy: AddrFind.DEFAULT,
      recipientDelimiter: o.recipientDelimiter,
      isLocalDomain: o.isLocalDomain,
    });
    if (r.status === "tempfail") return r;
    if (r.status === "found") found = { value: r.value, key: r.key };
  }
  for (const key of [host, dest]) {
    if (found !== null) break;
    const r = await o.lookup(key, false);
    if (r.status === "tempfail") return { status: "tempfail", reason: r.reason };
    if (r.status === "found") found = { value: r.value, key };
  }
  if (found === null) return { status: "notfound" };
  const colon = found.value.indexOf(":");
  const user = colon < 0 ? found.value : found.value.slice(0, colon);
  const password = colon < 0 ? "" : found.value.slice(colon + 1);
  if (Buffer.byteLength(user) > FIELD_MAX || Buffer.byteLength(password) > FIELD_MAX)
    return {
      status: "tempfail",
      reason: `the entry for "${found.key}" has a user name or password longer than ${FIELD_MAX} bytes`,
    };
  return { status: "found", creds: { user, password, key: found.key } };
}

/** The server's mechanisms that the filter keeps (sasl_mech_filter); null filter keeps all. */
export async function filterServerMechanisms(
  offered: readonly string[],
  filter: MatchList | null,
): Promise<{ ok: true; mechs: string[] } | { ok: false; reason: string }> {
  if (filter === null || filter.empty) return { ok: true, mechs: [...offered] };
  const out: string[] = [];
  for (const m of offered) {
    const r = await filter.match(m);
    if (r.status === "tempfail") return { ok: false, reason: r.reason };
    if (r.status === "match") out.push(m);
  }
  return { ok: true, mechs: out };
}

/** The built-in mechanism to use: the best one the server offers and the security options allow. */
export function chooseMechanism(offered: readonly string[], options: readonly string[]): string | null {
  const upper = new Set(offered.map((m) => m.toUpperCase()));
  const allowed = filterMechanisms(CLIENT_MECHANISMS, options);
  return allowed.find((m) => upper.has(m.name))?.name ?? null;
}

/** A SASL mechanism's client side: the initial response, then an answer per challenge (raw bytes). */
interface ClientMech {
  initial: Buffer | null;
  answer(challenge: Buffer): Buffer | string;
}

/** The client side of a built-in mechanism; a string from answer() is a protocol error. */
export function clientMechanism(name: string, creds: Credentials): ClientMech {
  const user = Buffer.from(creds.user, "utf8");
  const pass = Buffer.from(creds.password, "utf8");
  if (name === "PLAIN")
    return {
      initial: Buffer.concat([Buffer.from([0]), user, Buffer.from([0]), pass]),
      answer: () => "unexpected challenge",
    };
  if (name === "LOGIN") {
    let step = 0;
    return {
      initial: null,
      answer: () => (++step === 1 ? user : step === 2 ? pass : "unexpected challenge"),
    };
  }
  let done = false;
  return {
    initial: null,
    answer: (challenge) => {
      if (done) return "unexpected challenge";
      done = true;
      const digest = createHmac("md5", pass).update(challenge).digest("hex");
      return Buffer.concat([user, Buffer.from(` ${digest}`, "latin1")]);
    },
  };
}

/** Decodes a 334 challenge's base64 text; null when it is not base64. */
export function decodeChallenge(text: string): Buffer | null {
  const t = text.trim();
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(t)) return null;
  return Buffer.from(t, "base64");
}

/** Checks smtp_sasl_*security_options words; returns the bad one, if any. */
function badOption(words: readonly string[]): string | null {
  return words.find((w) => !SECURITY_WORDS.has(w.toLowerCase())) ?? null;
}

export class SaslClient {
  readonly prefix: string;
  #order: LookupOrder;
  #title: string;
  #options: { plain: string[]; tls: string[]; verified: string[] };
  #filter: MatchList | null;
  #softBounce: boolean;
  #dummyMailAuth: boolean;
  #cache: SaslAuthCache | null;

  private constructor(
    prefix: string,
    order: LookupOrder,
    title: string,
    options: { plain: string[]; tls: string[]; verified: string[] },
    filter: MatchList | null,
    softBounce: boolean,
    dummyMailAuth: boolean,
    cache: SaslAuthCache | null,
  ) {
    this.prefix = prefix;
    this.#order = order;
    this.#title = title;
    this.#options = options;
    this.#filter = filter;
    this.#softBounce = softBounce;
    this.#dummyMailAuth = dummyMailAuth;
    this.#cache = cache;
  }

  /** The client of smtp_sasl_* (or lmtp_sasl_*); null when AUTH is off. Configuration errors are fatal. */
  static fromConfig(cfg: Config, prefix: "smtp" | "lmtp"): SaslClient | null {
    const p = (n: string): string => `${prefix}_${n}`;
    if (!cfg.bool(p("sasl_auth_enable"))) return null;
    const type = cfg.get(p("sasl_type"));
    if (!SASL_CLIENT_TYPES.includes(type))
      return msg.fatal(
        `unsupported SASL client implementation: ${type} (${p("sasl_type")}: use ${SASL_CLIENT_TYPES.join(" or ")})`,
      );
    if (cfg.get(p("sasl_path")) !== "")
      msg.warn(`${p("sasl_path")} is not used by the ${type} SASL client type; ignoring its setting`);
    const maps = cfg.list(p("sasl_password_maps"));
    if (maps.length === 0)
      return msg.fatal(
        `specify a password table via the \`${p("sasl_password_maps")}' configuration parameter`,
      );
    for (const m of maps)
      if (dictSplitName(m) === null)
        return msg.fatal(`${cfg.where(p("sasl_password_maps"))}: need "type:name" instead of "${m}"`);
    const title = p("sasl_password_maps");
    const dicts = maps.map((m) => dictOpen(m, { flags: DictFlag.FOLD_FIX | DictFlag.UTF8_REQUEST }));
    const options = {
      plain: cfg.list(p("sasl_security_options")),
      tls: cfg.list(p("sasl_tls_security_options")),
      verified: cfg.list(p("sasl_tls_verified_security_options")),
    };
    for (const [name, words] of [
      ["sasl_security_options", options.plain],
      ["sasl_tls_security_options", options.tls],
      ["sasl_tls_verified_security_options", options.verified],
    ] as const) {
      const bad = badOption(words);
      if (bad !== null) return msg.fatal(`unknown ${p(name)} value "${bad}"`);
    }
    const filterList = cfg.list(p("sasl_mechanism_filter"));
    const filter =
      filterList.length === 0
        ? null
        : new MatchList(p("sasl_mechanism_filter"), filterList, {
            kind: "string",
            parentStyle: false,
            open: (spec, flags) => dictOpen(spec, { flags }),
          });
    const local = new Set(
      [cfg.get("myorigin"), ...cfg.list("mydestination")]
        .map((d) => d.toLowerCase())
        .filter((d) => !d.includes(":")),
    );
    const order: LookupOrder = {
      lookup: mapsLookup(dicts, title),
      senderDependent: prefix === "smtp" && cfg.bool(p("sender_dependent_authentication")),
      recipientDelimiter: cfg.get("recipient_delimiter"),
      isLocalDomain: (d) => local.has(d.toLowerCase()),
    };
    return new SaslClient(
      prefix,
      order,
      title,
      options,
      filter,
      cfg.bool(p("sasl_auth_soft_bounce")),
      cfg.bool(p("send_dummy_mail_auth")),
      authCache(cfg, p("sasl_auth_cache_name"), p("sasl_auth_cache_time")),
    );
  }

  /**
   * What keeps cached sessions of different senders apart: "" unless
   * passwords are sender-dependent (Postfix adds the sender to its cache
   * keys then).
   */
  cacheKey(sender: string): string {
    return this.#order.senderDependent ? `\0${sender}` : "";
  }

  /** The security options for a session: plaintext, TLS, or TLS with a verified server certificate. */
  securityOptions(tls: { encrypted: boolean; verified: boolean }): string[] {
    if (!tls.encrypted) return this.#options.plain;
    return tls.verified ? this.#options.verified : this.#options.tls;
  }

  /** The next hop as a password-table key: lmtp's inet: and unix: prefixes removed. */
  static destKey(nexthop: string): string {
    return nexthop.replace(/^(?:inet|unix):/i, "");
  }

  /** Authenticates the session when the tables have a password for it; throws a SessionError on failure. */
  async login(s: SmtpSession, ctx: LoginContext): Promise<void> {
    const offered = s.features.auth;
    if (offered === null) return;
    const found = await passwordLookup(this.#order, ctx.sender, s.server.host, SaslClient.destKey(ctx.dest));
    if (found.status === "notfound") return;
    if (found.status === "tempfail") {
      msg.warn(`${ctx.queueId}: ${this.#title} lookup error: ${found.reason}`);
      throw this.#fail(s, `local data error while talking to ${s.hostAddr}`, "4.3.0");
    }
    const filtered = await filterServerMechanisms(offered, this.#filter);
    if (!filtered.ok) {
      msg.warn(`${ctx.queueId}: ${filtered.reason}`);
      throw this.#fail(s, `local data error while talking to ${s.hostAddr}`, "4.3.0");
    }
    if (filtered.mechs.length === 0) {
      msg.warn(
        offered.length > 0
          ? `${s.name} offered no supported AUTH mechanisms: '${offered.join(" ")}'`
          : `${s.name} offered null AUTH mechanism list`,
      );
      throw this.#fail(
        s,
        `SASL authentication failed: server ${s.hostAddr} offered no compatible authentication mechanisms for this type of connection security`,
        "4.7.0",
      );
    }
    // A 535 for this server, user and password is remembered (smtp_sasl_auth_cache_name): no new attempt.
    const cached = this.#cache?.find(s.server.host, found.creds.user, found.creds.password) ?? null;
    if (cached !== null) {
      const soft = this.#softBounce && cached.dsn.startsWith("5");
      throw this.#fail(
        s,
        `SASL [CACHED] authentication failed; server ${s.server.host} said: ${cached.text}`,
        soft ? `4${cached.dsn.slice(1)}` : cached.dsn,
        cached.dsn.startsWith("5") && !soft,
      );
    }
    const mech = chooseMechanism(filtered.mechs, this.securityOptions(s.tlsState));
    if (mech === null)
      throw this.#fail(
        s,
        `SASL authentication failed; cannot authenticate to server ${s.hostAddr}: no mechanism available`,
        "4.7.0",
      );
    await this.#exchange(s, mech, found.creds);
    s.saslUsername = found.creds.user;
    if (this.#dummyMailAuth) s.mailAuth = "<>";
  }

  /** Runs the AUTH exchange; throws a SessionError unless the server says 2xx. */
  async #exchange(s: SmtpSession, mech: string, creds: Credentials): Promise<void> {
    const where = s.opts.lmtp ? "performing the LHLO handshake" : "performing the EHLO handshake";
    const t = s.opts.timeouts.helo;
    const client = clientMechanism(mech, creds);
    const initial = client.initial === null ? "" : b64(client.initial);
    let deferred = "";
    let r: Reply;
    if (initial !== "" && mech.length + initial.length + 8 <= AUTH_LINE_MAX) {
      r = await s.command(`AUTH ${mech} ${initial}`, t, where);
    } else {
      deferred = initial;
      r = await s.command(`AUTH ${mech}`, t, where);
    }
    for (let steps = 0; Math.floor(r.code / 100) === 3; steps++) {
      if (steps >= STEPS_MAX)
        throw this.#fail(
          s,
          `SASL authentication failed; authentication protocol loop with server ${s.hostAddr}`,
          "4.3.0",
        );
      const challenge = (r.lines[0] ?? "").slice(4);
      let answer: string;
      if (deferred !== "") {
        if (challenge.trim() !== "")
          throw this.#fail(
            s,
            `SASL authentication failed; non-empty initial ${mech} challenge from server ${s.hostAddr}: ${challenge.trim()}`,
            "4.7.0",
          );
        answer = deferred;
        deferred = "";
      } else {
        const raw = decodeChallenge(challenge);
        const out = raw === null ? "malformed challenge (not base64)" : client.answer(raw);
        if (typeof out === "string") {
          s.send("*");
          throw this.#fail(
            s,
            `SASL authentication failed; cannot authenticate to server ${s.hostAddr}: ${out}`,
            "4.7.0",
          );
        }
        answer = b64(out);
      }
      r = await s.command(answer, t, where);
    }
    if (Math.floor(r.code / 100) === 2) return;
    if (r.code === 535) this.#cache?.store(s.server.host, creds.user, creds.password, r.dsn, r.text);
    const permanent = r.code >= 500 && !this.#softBounce;
    const dsn = r.code >= 500 && this.#softBounce ? `4${r.dsn.slice(1)}` : r.dsn;
    throw this.#fail(s, `SASL authentication failed; server ${s.hostAddr} said: ${r.text}`, dsn, permanent);
  }

  /** Ends a session whose login failed (QUIT is sent; the caller closes) and makes the error. */
  #fail(s: SmtpSession, text: string, dsn: string, permanent = false): SessionError {
    s.send("QUIT");
    return new SessionError(text, dsn, true, permanent);
  }
}

/** The 535 reply cache of smtp_sasl_auth_cache_name, or null; a table that cannot be written is fatal. */
function authCache(cfg: Config, name: string, time: string): SaslAuthCache | null {
  const spec = cfg.get(name);
  if (spec === "") return null;
  try {
    return SaslAuthCache.open(spec, cfg.time(time), name);
  } catch (err) {
    return msg.fatal((err as Error).message);
  }
}

/** Base64 of bytes ("=" stands for an empty response, RFC 4954). */
function b64(data: Buffer): string {
  return data.length === 0 ? "=" : data.toString("base64");
}
