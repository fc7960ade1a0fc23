/*
 * resolve-addr - where does mail for an address go? (trivial-rewrite's "resolve")
 *
 * SYNOPSIS
 *   import { Resolver } from "./resolve-addr.js";
 *   const resolver = await Resolver.create(cfg);       // tables opened once
 *   const r = await resolver.resolve("sender@example.org", "user@example.com");
 *   if (r.status === "ok") use(r.transport, r.nexthop, r.recipient, r.flags);
 *   else defer(r.reason);                               // tempfail: try again later
 *   resolver.close();
 *
 * DESCRIPTION
 *   Postfix's resolve_addr as a library. The address (internal form) is
 *   taken apart (resolve-split.ts: local domains stripped, routing
 *   operators followed, FLAG_ROUTED and FLAG_ERROR decided). Then the
 *   recipient domain is classified, in this order, and given a transport
 *   and next hop:
 *     local    mydestination, or an address literal of inet_interfaces or
 *              proxy_interfaces: $local_transport, nexthop the domain
 *     alias    virtual_alias_domains: the error transport with "5.1.1 User
 *              unknown in virtual alias table" (known aliases were expanded
 *              by cleanup before; what is left is unknown)
 *     virtual  virtual_mailbox_domains: $virtual_transport, the domain
 *     relay    relay_domains: $relay_transport
 *     default  everything else: $default_transport, or what
 *              sender_dependent_default_transport_maps says for the sender
 *              (DUNNO: the default)
 *   For relay and default the next hop is what
 *   sender_dependent_relayhost_maps says for the sender, else $relayhost
 *   ("[host]:port" forms are passed on as they are), else the domain. A
 *   "transport:nexthop" value of the transport parameters overrides the
 *   next hop (local_transport = local:$myhostname puts all local mail in
 *   one queue). The null sender is looked up as
 *   $empty_address_*_maps_lookup_key.
 *
 *   transport_maps then overrides transport and next hop (not for the
 *   alias class), see resolve-transport.ts; relocated_maps turns any
 *   recipient into the error transport with "5.1.6 User has moved to ...".
 *   Table lookups ignore the address extension where Postfix does
 *   (recipient_delimiter): the recipient keeps it. A recipient that starts
 *   with "-" is FLAG_ERROR unless allow_min_user.
 *
 *   Results: { status: "ok", transport, nexthop, recipient, flags } where
 *   flags has one CLASS_* bit, FLAG_ROUTED when the local part still has a
 *   routing operator, FLAG_ERROR for a malformed address (the transport is
 *   then "error" with "5.1.3 Bad address syntax"), and FLAG_FAIL whenever
 *   the transport is "error". A table that fails gives { status:
 *   "tempfail", reason } and a logged warning, never a wrong route.
 *
 *   There are two resolve contexts, as in Postfix: "regular" (delivery)
 *   and "verify" (address verification probes). Each is a
 *   ResolveParamNames: the verify context (RESOLVE_VERIFY) reads
 *   address_verify_{local,virtual,relay,default}_transport,
 *   address_verify_relayhost, address_verify_transport_maps and
 *   address_verify_sender_dependent_{relayhost,default_transport}_maps
 *   (by default the regular values). The domain lists, relocated_maps and
 *   the other settings are shared. The tables of both contexts are opened
 *   by create(); resolve(sender, address, "verify") uses the verify ones.
 */
import { msg } from "../util/msg.js";
import type { Config } from "./config.js";
import { dictOpen } from "./dict.js";
import { AddrFind, mapsLookup, type AddrFindOptions, type LookupFn } from "./dict-search.js";
import { DictFlag, type Dict } from "./dict-types.js";
import { LocalDomains, interfaceAddresses, type AddressSources } from "./resolve-local.js";
import { MatchList, type TableOpener } from "./resolve-match.js";
import { splitAddress, type SplitSettings } from "./resolve-split.js";
import { TransportMaps, findAddress, relocatedReason, type Hop } from "./resolve-transport.js";
import { rewriteParams } from "./rewrite-addr.js";
import { RESOLVE_FLAG, type Resolved } from "./rewrite-proto.js";

/** The parameters one resolve context reads (Postfix's RES_CONTEXT). */
export interface ResolveParamNames {
  localTransport: string;
  virtualTransport: string;
  relayTransport: string;
  defaultTransport: string;
  senderDefaultTransportMaps: string;
  relayhost: string;
  senderRelayhostMaps: string;
  transportMaps: string;
}

/** The regular context (Postfix's resolve_regular). */
export const RESOLVE_REGULAR: ResolveParamNames = {
  localTransport: "local_transport",
  virtualTransport: "virtual_transport",
  relayTransport: "relay_transport",
  defaultTransport: "default_transport",
  senderDefaultTransportMaps: "sender_dependent_default_transport_maps",
  relayhost: "relayhost",
  senderRelayhostMaps: "sender_dependent_relayhost_maps",
  transportMaps: "transport_maps",
};

/** The verify context (Postfix's resolve_verify): address verification probes. */
export const RESOLVE_VERIFY: ResolveParamNames = {
  localTransport: "address_verify_local_transport",
  virtualTransport: "address_verify_virtual_transport",
  relayTransport: "address_verify_relay_transport",
  defaultTransport: "address_verify_default_transport",
  senderDefaultTransportMaps: "address_verify_sender_dependent_default_transport_maps",
  relayhost: "address_verify_relayhost",
  senderRelayhostMaps: "address_verify_sender_dependent_relayhost_maps",
  transportMaps: "address_verify_transport_maps",
};

/** The name of a resolve context. */
export type ResolveContext = "regular" | "verify";

/** How a Resolver finds its tables, addresses and time. */
export interface ResolverOptions extends AddressSources {
  /** Opens a table; default dictOpen. */
  open?: TableOpener;
  /** The clock in ms (transport_maps wildcard cache); default Date.now. */
  now?: () => number;
  /** The parameter names of the regular context; default RESOLVE_REGULAR. */
  params?: ResolveParamNames;
  /** The parameter names of the verify context; default RESOLVE_VERIFY. */
  verifyParams?: ResolveParamNames;
}

/** The outcome of resolving one address. */
export type ResolveResult = ({ status: "ok" } & Resolved) | { status: "tempfail"; reason: string };

type Tempfail = { status: "tempfail"; reason: string };
/** A classified destination before transport_maps: hop, class bit, and the parameter to blame. */
type Classified = { status: "ok"; hop: Hop; cls: number; blame: string };

/** The longest address the resolver takes apart. */
export const RESOLVE_ADDRESS_MAX = 4096;
/** The reason given with FLAG_ERROR. */
export const BAD_ADDRESS_REASON = "5.1.3 Bad address syntax";

const { CLASS_LOCAL, CLASS_ALIAS, CLASS_VIRTUAL, CLASS_RELAY, CLASS_DEFAULT } = RESOLVE_FLAG;
const MAP_FLAGS = DictFlag.FOLD_FIX | DictFlag.NO_REGSUB | DictFlag.UTF8_REQUEST;

/** A temporary failure with a logged warning. */
function tempfail(warning: string): Tempfail {
  msg.warn(warning);
  return { status: "tempfail", reason: warning };
}

/** The settings of one resolve context, read once. */
interface Settings {
  localTransport: string;
  virtualTransport: string;
  relayTransport: string;
  defaultTransport: string;
  relayhost: string;
  nullRelayKey: string;
  nullXportKey: string;
  helpfulWarnings: boolean;
  showTableName: boolean;
  relocatedPrefix: boolean;
  allowMinUser: boolean;
  mainPath: string;
}

/** One resolve context: its parameter names, settings and tables. */
interface Context {
  p: ResolveParamNames;
  s: Settings;
  transport: TransportMaps | null;
  sndRelay: LookupFn | null;
  sndXport: LookupFn | null;
}

/** Reads the settings (ConfigError if a value is bad). */
function readSettings(cfg: Config, p: ResolveParamNames): Settings {
  return {
    localTransport: cfg.get(p.localTransport),
    virtualTransport: cfg.get(p.virtualTransport),
    relayTransport: cfg.get(p.relayTransport),
    defaultTransport: cfg.get(p.defaultTransport),
    relayhost: cfg.get(p.relayhost),
    nullRelayKey: cfg.get("empty_address_relayhost_maps_lookup_key"),
    nullXportKey: cfg.get("empty_address_default_transport_maps_lookup_key"),
    helpfulWarnings: cfg.bool("helpful_warnings"),
    showTableName: cfg.bool("show_user_unknown_table_name"),
    relocatedPrefix: cfg.bool("relocated_prefix_enable"),
    allowMinUser: cfg.bool("allow_min_user"),
    mainPath: cfg.mainPath,
  };
}

/** Resolves addresses with one configuration's tables. */
export class Resolver {
  /** The shared settings (those of the regular context). */
  #s: Settings;
  #contexts: Record<ResolveContext, Context>;
  #split: SplitSettings;
  #addr: AddrFindOptions;
  #dicts: Dict[] = [];
  #lists: MatchList[] = [];
  #local: LocalDomains;
  #virtAlias: MatchList;
  #virtMailbox: MatchList;
  #relayDomains: MatchList;
  #relocated: LookupFn | null;

  /** Reads the configuration (ConfigError if a value is bad) and opens the tables. */
  static async create(cfg: Config, opts: ResolverOptions = {}): Promise<Resolver> {
    return new Resolver(cfg, await interfaceAddresses(cfg, opts), opts);
  }

  /** Use Resolver.create. */
  private constructor(cfg: Config, own: ReadonlySet<string>, opts: ResolverOptions) {
    const open = opts.open ?? ((spec: string, flags: number): Dict => dictOpen(spec, { flags }));
    const regular = opts.params ?? RESOLVE_REGULAR;
    const verify = opts.verifyParams ?? RESOLVE_VERIFY;
    const sr = readSettings(cfg, regular);
    const sv = readSettings(cfg, verify);
    this.#s = sr;
    const parents = cfg.list("parent_domain_matches_subdomains");
    const list = (name: string, kind: "string" | "domain"): MatchList => {
      const m = new MatchList(name, cfg.list(name), { kind, parentStyle: parents.includes(name), open });
      this.#lists.push(m);
      return m;
    };
    const opened = new Map<string, Dict[]>();
    const maps = (name: string, flags: number): LookupFn | null => {
      const specs = cfg.list(name);
      if (specs.length === 0) return null;
      // The same tables in both contexts (the default) are opened once.
      const key = `${flags}\0${specs.join("\0")}`;
      let dicts = opened.get(key);
      if (dicts === undefined) {
        dicts = specs.map((s) => open(s, flags));
        opened.set(key, dicts);
        this.#dicts.push(...dicts);
      }
      return mapsLookup(dicts, name);
    };
    this.#local = new LocalDomains(list("mydestination", "string"), own);
    this.#virtAlias = list("virtual_alias_domains", "string");
    this.#virtMailbox = list("virtual_mailbox_domains", "string");
    this.#relayDomains = list("relay_domains", "domain");
    const origin = cfg.get("myorigin").toLowerCase();
    this.#addr = {
      recipientDelimiter: cfg.get("recipient_delimiter"),
      ownerRequestSpecial: cfg.bool("owner_request_special"),
      doubleBounceSender: cfg.get("double_bounce_sender"),
      isLocalDomain: async (d) => d.toLowerCase() === origin || (await this.#isLocal(d)),
    };
    this.#split = {
      rules: rewriteParams(cfg),
      myhostname: cfg.get("myhostname"),
      emptyAddress: cfg.get("empty_address_recipient"),
      resolveDequoted: cfg.bool("resolve_dequoted_address"),
      resolveNullDomain: cfg.bool("resolve_null_domain"),
      resolveNumericDomain: cfg.bool("resolve_numeric_domain"),
      smtputf8: cfg.bool("smtputf8_enable"),
    };
    const context = (p: ResolveParamNames, s: Settings): Context => {
      const tm = maps(p.transportMaps, MAP_FLAGS);
      const transport =
        tm === null
          ? null
          : new TransportMaps(tm, {
              parentStyle: parents.includes(p.transportMaps),
              addr: this.#addr,
              now: opts.now ?? Date.now,
            });
      const sndRelay = maps(p.senderRelayhostMaps, MAP_FLAGS);
      const sndXport = maps(p.senderDefaultTransportMaps, MAP_FLAGS);
      return { p, s, transport, sndRelay, sndXport };
    };
    this.#contexts = { regular: context(regular, sr), verify: context(verify, sv) };
    this.#relocated = maps("relocated_maps", DictFlag.FOLD_FIX | DictFlag.UTF8_REQUEST);
  }

  /** Whether a domain is local; a table failure throws (dict-search turns it into a tempfail). */
  async #isLocal(domain: string): Promise<boolean> {
    const r = await this.#local.check(domain);
    if (r.status === "tempfail") throw new Error(r.reason);
    return r.status === "local";
  }

  /** Resolves one recipient for a sender ("" for the null sender) in a context (default regular). */
  async resolve(
    sender: string,
    address: string,
    context: ResolveContext = "regular",
  ): Promise<ResolveResult> {
    const ctx = this.#contexts[context];
    if (address.length > RESOLVE_ADDRESS_MAX) return this.#bad(address.slice(0, 256), CLASS_DEFAULT);
    const sp = await splitAddress(address, this.#split, (d) => this.#local.check(d));
    if (sp.status === "tempfail") return sp;
    if ((sp.flags & RESOLVE_FLAG.FLAG_ERROR) !== 0) return this.#bad(sp.recipient, sp.flags | CLASS_DEFAULT);
    const c = sp.remote ? await this.#remote(ctx, sender, sp.domain) : await this.#localClass(ctx, sp.domain);
    if (c.status === "tempfail") return c;
    let hop = c.hop;
    const colon = hop.transport.indexOf(":");
    if (colon >= 0) {
      const dest = hop.transport.slice(colon + 1);
      hop = { transport: hop.transport.slice(0, colon), nexthop: dest !== "" ? dest : hop.nexthop };
    }
    if (hop.transport === "")
      return tempfail(`file ${this.#s.mainPath}: parameter ${c.blame}: null transport is not allowed`);
    if (ctx.transport !== null && c.cls !== CLASS_ALIAS) {
      const t = await ctx.transport.lookup(sp.recipient, sp.domain, hop);
      if (t.status === "tempfail") return tempfail(`${ctx.p.transportMaps} lookup failure`);
      if (t.status === "found") hop = t.hop;
    }
    if (this.#relocated !== null) {
      const prefix = this.#s.relocatedPrefix;
      const r = await relocatedReason(this.#relocated, sp.recipient, { ...this.#addr, prefix });
      if (r.status === "tempfail") return tempfail("relocated_maps lookup failure");
      if (r.status === "found") hop = { transport: "error", nexthop: r.reason };
    }
    const flags = sp.flags | c.cls;
    if (!this.#s.allowMinUser && sp.recipient.startsWith("-"))
      return this.#bad(sp.recipient, flags | RESOLVE_FLAG.FLAG_ERROR);
    const fail = hop.transport === "error" ? RESOLVE_FLAG.FLAG_FAIL : 0;
    return { status: "ok", ...hop, recipient: sp.recipient, flags: flags | fail };
  }

  /** The answer for a malformed address. */
  #bad(recipient: string, flags: number): ResolveResult {
    const f = flags | RESOLVE_FLAG.FLAG_ERROR | RESOLVE_FLAG.FLAG_FAIL;
    return { status: "ok", transport: "error", nexthop: BAD_ADDRESS_REASON, recipient, flags: f };
  }

  /** A local domain: $local_transport. */
  async #localClass(ctx: Context, domain: string): Promise<Classified> {
    await this.#overlap(domain, "mydestination", [this.#virtAlias, this.#virtMailbox]);
    const hop = { transport: ctx.s.localTransport, nexthop: domain };
    return { status: "ok", hop, cls: CLASS_LOCAL, blame: ctx.p.localTransport };
  }

  /** A remote domain: alias, virtual, relay or default class. */
  async #remote(ctx: Context, sender: string, domain: string): Promise<Classified | Tempfail> {
    const alias = await this.#virtAlias.match(domain);
    if (alias.status === "tempfail") return tempfail("virtual_alias_domains lookup failure");
    if (alias.status === "match") {
      await this.#overlap(domain, "virtual_alias_domains", [this.#virtMailbox, this.#relayDomains]);
      const table = this.#s.showTableName ? " in virtual alias table" : "";
      const hop = { transport: "error", nexthop: `5.1.1 User unknown${table}` };
      return { status: "ok", hop, cls: CLASS_ALIAS, blame: "virtual_alias_domains" };
    }
    const mbox = await this.#virtMailbox.match(domain);
    if (mbox.status === "tempfail") return tempfail("virtual_mailbox_domains lookup failure");
    if (mbox.status === "match") {
      await this.#overlap(domain, "virtual_mailbox_domains", [this.#relayDomains]);
      const hop = { transport: ctx.s.virtualTransport, nexthop: domain };
      return { status: "ok", hop, cls: CLASS_VIRTUAL, blame: ctx.p.virtualTransport };
    }
    const relay = await this.#relayDomains.match(domain);
    if (relay.status === "tempfail") return tempfail("relay_domains lookup failure");
    const xport =
      relay.status === "match"
        ? {
            status: "ok" as const,
            transport: ctx.s.relayTransport,
            blame: ctx.p.relayTransport,
          }
        : await this.#defaultTransport(ctx, sender);
    if (xport.status === "tempfail") return xport;
    const relayhost = await this.#relayhost(ctx, sender);
    if (relayhost.status === "tempfail") return relayhost;
    const hop = { transport: xport.transport, nexthop: relayhost.value ?? domain };
    return {
      status: "ok",
      hop,
      cls: relay.status === "match" ? CLASS_RELAY : CLASS_DEFAULT,
      blame: xport.blame,
    };
  }

  /** $default_transport, or the sender-dependent one. */
  async #defaultTransport(
    ctx: Context,
    sender: string,
  ): Promise<{ status: "ok"; transport: string; blame: string } | Tempfail> {
    const name = ctx.p.senderDefaultTransportMaps;
    const r = await this.#senderLookup(ctx.sndXport, sender, ctx.s.nullXportKey, name);
    if (r.status === "tempfail") return r;
    if (r.value !== null) return { status: "ok", transport: r.value, blame: name };
    return {
      status: "ok",
      transport: ctx.s.defaultTransport,
      blame: ctx.p.defaultTransport,
    };
  }

  /** The sender-dependent relayhost, else $relayhost, else null (the domain). */
  async #relayhost(ctx: Context, sender: string): Promise<{ status: "ok"; value: string | null } | Tempfail> {
    const r = await this.#senderLookup(ctx.sndRelay, sender, ctx.s.nullRelayKey, ctx.p.senderRelayhostMaps);
    if (r.status === "tempfail" || r.value !== null) return r;
    return { status: "ok", value: ctx.s.relayhost !== "" ? ctx.s.relayhost : null };
  }

  /** Looks a sender (or the null-sender key) up; DUNNO and not found are null. */
  async #senderLookup(
    fn: LookupFn | null,
    sender: string,
    nullKey: string,
    title: string,
  ): Promise<{ status: "ok"; value: string | null } | Tempfail> {
    if (fn === null) return { status: "ok", value: null };
    const key = sender === "" ? nullKey : sender;
    const r = await findAddress(fn, key, { ...this.#addr, strategy: AddrFind.DEFAULT });
    if (r.status === "tempfail") return tempfail(`${title} lookup failure`);
    if (r.status === "notfound" || r.value.toLowerCase() === "dunno") return { status: "ok", value: null };
    return { status: "ok", value: r.value };
  }

  /** Warns (helpful_warnings) when a domain is also listed in other classes' lists. */
  async #overlap(domain: string, listed: string, others: MatchList[]): Promise<void> {
    if (!this.#s.helpfulWarnings) return;
    for (const other of others) {
      if ((await other.match(domain)).status === "match")
        msg.warn(`do not list domain ${domain} in BOTH ${listed} and ${other.name}`);
    }
  }

  /** The address class of a domain (Postfix's resolve_class), e.g. for smtpd's relay checks. */
  async domainClass(domain: string): Promise<{ status: "ok"; cls: number } | Tempfail> {
    const local = await this.#local.check(domain);
    if (local.status !== "remote")
      return local.status === "local" ? { status: "ok", cls: CLASS_LOCAL } : local;
    for (const [list, cls] of [
      [this.#virtAlias, CLASS_ALIAS],
      [this.#virtMailbox, CLASS_VIRTUAL],
      [this.#relayDomains, CLASS_RELAY],
    ] as const) {
      const m = await list.match(domain);
      if (m.status === "tempfail") return m;
      if (m.status === "match") return { status: "ok", cls };
    }
    return { status: "ok", cls: CLASS_DEFAULT };
  }

  /** Releases the tables. */
  close(): void {
    for (const l of this.#lists) l.close();
    for (const d of this.#dicts) d.close();
    this.#lists = [];
    this.#dicts = [];
  }
}
