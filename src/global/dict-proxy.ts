/*
 * dict-proxy - proxy: tables, looked up through the proxymap service
 *
 * SYNOPSIS
 *   import "../global/dict-proxy.js";            // registers the proxy: type
 *   dictOpen("proxy:hash:/etc/postfix/virtual")  // lookups go to proxymap
 *   dictProxyConfigure({ queueDirectory: "/var/spool/postern" });
 *   for await (const e of proxySequence("hash:/etc/postfix/virtual", flags)) ...
 *
 * DESCRIPTION
 *   A proxy:type:name table asks the proxymap daemon to look keys up in
 *   type:name, so that a jailed daemon (chroot=y) can use a table it cannot
 *   read itself, and so that many processes share one open table. The wire
 *   contract is in proxymap-proto.ts. Nothing is opened until the first
 *   lookup, so opening never blocks and never fails.
 *
 *   The service is found as Postfix's client finds it: the socket
 *   queue_directory/private/$proxymap_service, or public/$proxymap_service
 *   when only that one exists. All proxy: tables of a process share one
 *   connection (util/attr-client.ts: reconnects, retries a dropped request,
 *   never waits longer than ipc_timeout). The configuration is read from
 *   $MAIL_CONFIG unless dictProxyConfigure() says otherwise.
 *
 *   Whether the table takes partial keys (FIXED) or only whole ones
 *   (PATTERN) must be known when it is opened, before the service can say:
 *   it follows from the table type (regexp, pcre, cidr, randmap and fail
 *   are pattern tables; unionmap and pipemap are what their first table
 *   is). A reply whose flags disagree is logged once.
 *
 *   With DictFlag.NO_PROXY in the open flags the table is opened directly,
 *   as Postfix does for security-sensitive lookups.
 *
 * DIAGNOSTICS
 *   Every failure is a temporary failure with a logged warning, never "not
 *   found": the service is unreachable, the reply is malformed, the table
 *   is not listed in proxy_read_maps (DENY; the proxymap log says how to
 *   approve it), or the table itself fails.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { AttrClient } from "../util/attr-client.js";
import { msg } from "../util/msg.js";
import { Config } from "./config.js";
import { dictOpen, dictRegister, dictSplitName, dictTypeKnown } from "./dict-registry.js";
import { braceTokens, stripBraces } from "./dict-parse.js";
import {
  DictFlag,
  errorText,
  found,
  NOT_FOUND,
  tempFail,
  type DictImpl,
  type DictResult,
} from "./dict-types.js";
import { configDirectory } from "./install-paths.js";
import {
  PROXYMAP_PROTOCOL,
  ProxyStat,
  buildProxyRequest,
  parseProxyReply,
  proxyStatName,
  type ProxyReply,
  type ProxyRequest,
} from "./proxymap-proto.js";

/** Where and how to reach the service. */
export interface DictProxySettings {
  queueDirectory: string;
  service: string;
  timeoutMs: number;
  maxFrame: number;
}

let overrides: Partial<DictProxySettings> = {};
let cached: DictProxySettings | null = null;
const clients = new Map<string, AttrClient>();

/** Sets where the service is (tests, programs that know their configuration); drops open connections. */
export function dictProxyConfigure(opts: Partial<DictProxySettings>): void {
  overrides = { ...overrides, ...opts };
  cached = null;
  for (const c of clients.values()) c.close();
  clients.clear();
}

/** The settings: dictProxyConfigure()'s, else main.cf's from $MAIL_CONFIG. */
function settings(): DictProxySettings {
  if (cached !== null) return cached;
  let cfg: Config | null = null;
  const conf = (): Config => (cfg ??= Config.load(configDirectory(undefined)));
  const s: DictProxySettings = {
    queueDirectory: overrides.queueDirectory ?? conf().get("queue_directory"),
    service: overrides.service ?? conf().get("proxymap_service"),
    timeoutMs: overrides.timeoutMs ?? conf().time("ipc_timeout") * 1000,
    maxFrame: overrides.maxFrame ?? conf().int("internal_frame_limit"),
  };
  if (s.queueDirectory === "" || s.service === "")
    throw new Error("queue_directory or proxymap_service is empty");
  cached = s;
  return s;
}

/** The service socket: private/ unless only public/ has it. */
export function proxySocketPath(s: DictProxySettings): string {
  const priv = join(s.queueDirectory, "private", s.service);
  const pub = join(s.queueDirectory, "public", s.service);
  return !existsSync(priv) && existsSync(pub) ? pub : priv;
}

/** A new client for the service (retries: how often a dropped request is sent again). */
function newClient(s: DictProxySettings, retries: number): AttrClient {
  return new AttrClient({
    path: proxySocketPath(s),
    protocol: PROXYMAP_PROTOCOL,
    maxFrame: s.maxFrame,
    timeoutMs: s.timeoutMs,
    retries,
    backoffMs: 500,
  });
}

/** The shared client of this process. */
function sharedClient(s: DictProxySettings): AttrClient {
  const path = proxySocketPath(s);
  let c = clients.get(path);
  if (c === undefined) {
    c = newClient(s, 3);
    clients.set(path, c);
  }
  return c;
}

/** Sends one request; resolves to the checked reply or a failure text. */
async function ask(
  client: AttrClient,
  req: ProxyRequest,
): Promise<{ ok: true; reply: ProxyReply } | { ok: false; reason: string }> {
  const r = await client.request(buildProxyRequest(req));
  if (!r.ok) return { ok: false, reason: `${r.code}: ${r.reason}` };
  const reply = parseProxyReply(r.reply);
  if (!reply.ok) return { ok: false, reason: `malformed reply: ${reply.error}` };
  return { ok: true, reply: reply.value };
}

const PATTERN_TYPES = new Set(["regexp", "pcre", "cidr", "randmap", "fail"]);

/** FIXED or PATTERN for a table name "type:name", as that type would open it. */
export function proxyKindFlag(table: string, depth = 0): number {
  const split = dictSplitName(table);
  if (split === null) return DictFlag.PATTERN;
  if (PATTERN_TYPES.has(split.type)) return DictFlag.PATTERN;
  if ((split.type === "unionmap" || split.type === "pipemap") && depth < 8) {
    const inner = stripBraces(split.name);
    const first = "error" in inner ? undefined : braceTokens(inner.text)[0];
    return first === undefined ? DictFlag.PATTERN : proxyKindFlag(first, depth + 1);
  }
  return DictFlag.FIXED;
}

/** Removes leading "proxy:" prefixes. */
function stripProxy(name: string): string {
  while (name.startsWith("proxy:")) name = name.slice("proxy:".length);
  return name;
}

/** A proxy: table. */
class ProxyDict implements DictImpl {
  readonly type = "proxy";
  readonly name: string;
  readonly flags: number;
  #instFlags: number;
  #flagsChecked = false;

  /** Remembers the table and flags; nothing is sent yet. */
  constructor(name: string, flags: number) {
    this.name = name;
    this.#instFlags = flags & ~(DictFlag.FIXED | DictFlag.PATTERN);
    this.flags = this.#instFlags | proxyKindFlag(name);
  }

  /** Asks the service for one key. */
  async lookup(key: string): Promise<DictResult> {
    let s: DictProxySettings;
    try {
      s = settings();
    } catch (err) {
      return this.#fail(`configuration: ${errorText(err)}`);
    }
    const flags = this.#instFlags;
    const req: ProxyRequest = { req: "lookup", table: this.name, instFlags: flags, flags, key };
    const r = await ask(sharedClient(s), req);
    if (!r.ok) return this.#fail(`service ${proxySocketPath(s)}: ${r.reason}`);
    this.#checkFlags(r.reply.flags);
    return this.#result(r.reply, s.service);
  }

  /** Maps a reply to a lookup result. */
  #result(reply: ProxyReply, service: string): DictResult {
    switch (reply.status) {
      case ProxyStat.OK:
        return found(reply.value ?? "");
      case ProxyStat.NOKEY:
        return NOT_FOUND;
      case ProxyStat.DENY:
        return this.#fail(`${service} service is not configured for table "${this.name}"`);
      case ProxyStat.BAD:
        return this.#fail(`${service} lookup failed: invalid request`);
      default:
        return this.#fail(
          `${service} lookup failed: ${proxyStatName(reply.status)}${reply.reason ? `: ${reply.reason}` : ""}`,
        );
    }
  }

  /** Logs once when the service opened the table as another kind than assumed. */
  #checkFlags(serverFlags: number): void {
    if (this.#flagsChecked) return;
    this.#flagsChecked = true;
    const kind = DictFlag.FIXED | DictFlag.PATTERN;
    if ((serverFlags & kind) !== 0 && (serverFlags & kind) !== (this.flags & kind))
      msg.warn(`proxy:${this.name}: the service reports table flags that differ from the table type's`);
  }

  /** A logged temporary failure. */
  #fail(why: string): DictResult {
    msg.warn(`proxy:${this.name} lookup error: ${why}`);
    return tempFail(`proxy:${this.name}: ${why}`);
  }

  /** The shared connection stays for other tables. */
  close(): void {}
}

/** Opens a proxy: table (the registered open function). */
export function proxyOpen(name: string, flags: number): DictImpl {
  const inner = stripProxy(name);
  if (dictSplitName(inner) === null) throw new Error(`need "proxy:type:name" instead of "proxy:${name}"`);
  if ((flags & DictFlag.NO_PROXY) !== 0) return dictOpen(inner, { flags });
  return new ProxyDict(inner, flags);
}

/** One step of a listing through the service. */
export type ProxySeqItem = { kind: "entry"; key: string; value: string } | { kind: "error"; reason: string };

/** Lists every entry of a table through the service (postmap -s proxy:...), on a connection of its own. */
export async function* proxySequence(table: string, flags: number): AsyncGenerator<ProxySeqItem> {
  const name = stripProxy(table);
  let s: DictProxySettings;
  try {
    s = settings();
  } catch (err) {
    yield { kind: "error", reason: `configuration: ${errorText(err)}` };
    return;
  }
  const client = newClient(s, 0);
  try {
    for (let func: "first" | "next" = "first"; ; func = "next") {
      const r = await ask(client, { req: "sequence", table: name, instFlags: flags, flags, func });
      if (!r.ok) {
        yield { kind: "error", reason: `service ${proxySocketPath(s)}: ${r.reason}` };
        return;
      }
      const { status, key, value, reason } = r.reply;
      if (status === ProxyStat.NOKEY) return;
      if (status !== ProxyStat.OK) {
        const why = status === ProxyStat.DENY ? `service is not configured for table "${name}"` : reason;
        yield { kind: "error", reason: `${s.service}: ${proxyStatName(status)}: ${why ?? ""}` };
        return;
      }
      yield { kind: "entry", key: key ?? "", value: value ?? "" };
    }
  } finally {
    client.close();
  }
}

if (!dictTypeKnown("proxy")) dictRegister("proxy", proxyOpen);
