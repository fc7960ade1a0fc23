/*
 * local-state - what one local delivery knows: settings, attributes, outcomes
 *
 * DESCRIPTION
 *   As in Postfix's local(8), a recipient is delivered by a recursive walk
 *   (recipient -> alias -> token -> include/.forward -> recipient ...).
 *   The walk passes two small records by value, so that no step can undo
 *   what a caller set up:
 *     MsgAttr   the recipient and what was derived from it (local part,
 *               user, extension, domain), the Delivered-To address, the
 *               owner (who hears about problems; set by owner- aliases and
 *               .forward files), the expansion type (alias, forward,
 *               include: decides whether files and commands are allowed)
 *               and the nesting level;
 *     UserAttr  whose rights files and commands get (uid 0 means "none
 *               chosen yet": default_privs is used, never root).
 *   LocalRun holds what is shared while one queue-file recipient is
 *   delivered: the duplicate filter, the Delivered-To addresses of the
 *   message (loop detection), the forwarded recipients waiting to be
 *   resubmitted, and the outcomes. Each outcome is one destination's
 *   status; the recipient's result is the worst of them (deferred, then
 *   bounced, then sent), as Postfix marks a recipient done only when no
 *   destination deferred.
 *   A trace-only request (traceOnly: a verify probe or sendmail -bv) walks
 *   the same way but each delivery point only records what it would do
 *   ("delivers to mailbox", "delivers to command: ...", "forwards to
 *   ..."); a verify probe (mtaVerify) stops at the first alias ("aliased
 *   to ...") or .forward file ("forward via file: ...").
 */
import type { Config } from "../global/config.js";
import type { HelperPool, Rights } from "../global/deliver-helper-client.js";
import {
  DEL_REQ_FLAG,
  traceOnly,
  type DeliveryRecipient,
  type DeliveryRequest,
  type RcptResult,
} from "../global/deliver-proto.js";
import type { Dict } from "../global/dict-types.js";
import type { LookupFn } from "../global/dict-search.js";
import type { RewriteClient } from "../global/rewrite-client.js";
import { contentLines, type Envelope } from "../global/queue-file.js";
import { msg } from "../util/msg.js";

export const EXPAND = { ALIAS: 1, FWD: 2, INCL: 4 } as const;
export const HDR = { CMD: 1, FILE: 2, FWD: 4 } as const;
/** Step results: DONE (sent or bounced, recorded) or DEFER. */
export const DONE = 0;
export const DEFER = 1;

export interface UserAttr {
  uid: number;
  gid: number;
  home: string | null;
  shell: string | null;
  logname: string | null;
}

export const NO_USER: UserAttr = { uid: 0, gid: 0, home: null, shell: null, logname: null };

export interface MsgAttr {
  level: number;
  rcpt: DeliveryRecipient;
  sender: string;
  local: string;
  user: string;
  extension: string | null;
  domain: string | null;
  /** The extension still to be appended to an expansion (propagate_unmatched_extensions). */
  unmatched: string | null;
  delivered: string | null;
  owner: string | null;
  expType: number;
  expFrom: string | null;
}

export interface AliasTable {
  spec: string;
  dict: Dict;
}

export interface LocalSettings {
  queueDir: string;
  myhostname: string;
  myorigin: string;
  mailName: string;
  aliasMaps: AliasTable[];
  forwardPath: string[];
  delimiter: string;
  mailboxTransport: string;
  mailboxTransportMaps: LookupFn | null;
  mailboxCommand: string;
  mailboxCommandMaps: LookupFn | null;
  homeMailbox: string;
  spoolDir: string;
  fallbackTransport: string;
  fallbackTransportMaps: LookupFn | null;
  luserRelay: string;
  allowCommands: number;
  allowFiles: number;
  deliverHdr: number;
  propagate: number;
  dotlock: boolean;
  kernelLock: boolean;
  lockAttempts: number;
  lockDelayMs: number;
  staleLockSec: number;
  mailboxSizeLimit: number;
  commandTimeMs: number;
  cmdFilter: string;
  fwdFilter: string;
  execFilter: string;
  execDirectory: string;
  commandShell: string;
  exportEnv: string[];
  defaultPrivs: UserAttr;
  expandOwnerAlias: boolean;
  resetOwnerAlias: boolean;
  frozenDelivered: boolean;
  requireHome: boolean;
  strictOwner: boolean;
  ownerRequestSpecial: boolean;
  dupLimit: number;
  lineLimit: number;
  enableOrigRcpt: boolean;
  ipcTimeoutMs: number;
  /** False when the agent is not root: everything runs with its own rights. */
  asRoot: boolean;
  config: Config;
}

export interface Outcome {
  address: string;
  status: RcptResult["status"];
  dsn: string;
  text: string;
}

export interface ForwardRcpt {
  address: string;
  original: string;
  orcpt?: string;
  notify?: number;
}

/** The shared state of one queue-file recipient's delivery. */
export class LocalRun {
  readonly req: DeliveryRequest;
  readonly set: LocalSettings;
  readonly env: Envelope;
  readonly path: string;
  readonly service: string;
  readonly loop: Set<string>;
  readonly pool: HelperPool;
  readonly rewrite: RewriteClient;
  /** The queue-file recipient being delivered. */
  readonly top: DeliveryRecipient;
  readonly outcomes: Outcome[] = [];
  /** Forwarded recipients by Delivered-To address, then by sender. */
  readonly forwards = new Map<string, Map<string, ForwardRcpt[]>>();
  #dups = new Set<string>();

  constructor(
    init: Pick<LocalRun, "req" | "set" | "env" | "path" | "service" | "loop" | "pool" | "rewrite" | "top">,
  ) {
    this.top = init.top;
    this.req = init.req;
    this.set = init.set;
    this.env = init.env;
    this.path = init.path;
    this.service = init.service;
    this.loop = init.loop;
    this.pool = init.pool;
    this.rewrite = init.rewrite;
  }

  /** A trace-only request (verify probe or sendmail -bv): find out, do not deliver. */
  get traceOnly(): boolean {
    return traceOnly(this.req.flags);
  }

  /** A verify-service probe: aliases and .forward files are not expanded (their existence is enough). */
  get mtaVerify(): boolean {
    return ((this.req.flags ?? 0) & DEL_REQ_FLAG.MTA_VRFY) !== 0;
  }

  /** True when a key was seen before in this delivery (then remembers it, up to duplicate_filter_limit). */
  beenHere(key: string): boolean {
    if (this.#dups.has(key)) return true;
    if (this.set.dupLimit === 0 || this.#dups.size < this.set.dupLimit) this.#dups.add(key);
    return false;
  }

  /** True when a key was seen, without remembering it. */
  beenHereCheck(key: string): boolean {
    return this.#dups.has(key);
  }

  /** The message content lines. */
  content(): AsyncGenerator<Buffer> {
    return contentLines(this.path, this.env);
  }

  /** Records one destination's outcome. */
  #record(a: MsgAttr, status: Outcome["status"], dsn: string, text: string): number {
    this.outcomes.push({ address: a.rcpt.address, status, dsn, text });
    return status === "deferred" ? DEFER : DONE;
  }

  /** Records a delivery. */
  sent(a: MsgAttr, text: string, dsn = "2.0.0"): number {
    return this.#record(a, "sent", dsn, text);
  }

  /** Records a permanent failure. */
  bounce(a: MsgAttr, dsn: string, text: string): number {
    return this.#record(a, "bounced", dsn, text);
  }

  /** Records a temporary failure. */
  defer(a: MsgAttr, dsn: string, text: string): number {
    return this.#record(a, "deferred", dsn.startsWith("5") ? `4${dsn.slice(1)}` : dsn, text);
  }

  /** Records a failure, temporary or permanent by its status code. */
  fail(a: MsgAttr, dsn: string, text: string): number {
    return dsn.startsWith("4") ? this.defer(a, dsn, text) : this.bounce(a, dsn, text);
  }

  /** The rights of the helper for a user (null: the agent's own, when it is not root). */
  rights(u: UserAttr): Rights {
    return this.set.asRoot ? { uid: u.uid, gid: u.gid } : null;
  }

  /** The recipient's result from the outcomes, and a log line for each expanded destination. */
  result(top: DeliveryRecipient): RcptResult {
    for (const o of this.outcomes)
      if (o.address !== top.address)
        msg.info(
          `${this.req.queueId}: to=<${o.address}>, orig_to=<${top.address}>, relay=${this.service}, dsn=${o.dsn}, status=${o.status} (${o.text})`,
        );
    const pick = (s: Outcome["status"]): Outcome | undefined => this.outcomes.find((o) => o.status === s);
    const worst = pick("deferred") ?? pick("bounced");
    if (worst !== undefined) return { status: worst.status, dsn: worst.dsn, text: worst.text };
    const sent = this.outcomes.filter((o) => o.status === "sent");
    if (sent.length === 0) return { status: "sent", dsn: "2.0.0", text: "alias expanded" };
    const texts = [...new Set(sent.map((o) => o.text))];
    const text = texts.length === 1 ? (texts[0] ?? "") : `${sent.length} deliveries: ${texts.join("; ")}`;
    return { status: "sent", dsn: sent[0]?.dsn ?? "2.0.0", text: text.slice(0, 900) };
  }
}

/** The attributes of a top-level recipient. */
export function topAttr(req: DeliveryRequest, rcpt: DeliveryRecipient): MsgAttr {
  return {
    level: 0,
    rcpt,
    sender: req.sender,
    local: "",
    user: "",
    extension: null,
    domain: null,
    unmatched: null,
    delivered: null,
    owner: null,
    expType: 0,
    expFrom: null,
  };
}

/** Lower-cases for delivery decisions, as Postfix's casefold(). */
export function casefold(s: string): string {
  return s.toLowerCase();
}
