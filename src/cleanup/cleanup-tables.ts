/*
 * cleanup-tables - the tables and parameters of cleanup's content processing
 *
 * SYNOPSIS
 *   const t = cleanupTables(cfg);     // opened once per configuration, then shared
 *   if (t.virtual !== null) await addrFind(t.virtual.lookup, addr, t.find);
 *
 * DESCRIPTION
 *   Reads, once per configuration, what cleanup needs to rewrite and check
 *   a message: the rewrite parameters; canonical_maps,
 *   sender_canonical_maps and recipient_canonical_maps with their
 *   *_classes; virtual_alias_maps and its limits; masquerade_domains,
 *   masquerade_exceptions and masquerade_classes; always_bcc,
 *   sender_bcc_maps and recipient_bcc_maps; header_checks,
 *   mime_header_checks, nested_header_checks and body_checks with
 *   body_checks_size_limit; propagate_unmatched_extensions;
 *   message_drop_headers; content_filter; the MIME limits and strictness
 *   switches. Address tables are opened with fold_fix and utf8_request, as
 *   Postfix does; check tables without folding.
 *
 *   find holds the options of the address searches: recipient_delimiter,
 *   and the local-domain test ($myorigin and mydestination, whose entries
 *   may be domains or type:name tables).
 *
 * DIAGNOSTICS
 *   A bad value (an unknown class name, a table name without a type)
 *   throws ConfigError; the caller turns it into a temporary failure.
 */
import type { Config } from "../global/config.js";
import { ConfigError } from "../global/config.js";
import { dictOpen, dictSplitName, DictFlag, type Dict } from "../global/dict.js";
import { mapsLookup, type AddrFindOptions, type LookupFn } from "../global/dict-search.js";
import { rewriteParams, type RewriteParams } from "../global/rewrite-addr.js";

/** Address classes of canonical_classes and masquerade_classes. */
export const ADDR_CLASS = { ENV_FROM: 1, ENV_RCPT: 2, HDR_FROM: 4, HDR_RCPT: 8 } as const;

const CLASS_NAMES: Record<string, number> = {
  envelope_sender: ADDR_CLASS.ENV_FROM,
  envelope_recipient: ADDR_CLASS.ENV_RCPT,
  header_sender: ADDR_CLASS.HDR_FROM,
  header_recipient: ADDR_CLASS.HDR_RCPT,
};

const PROPAGATE_NAMES = ["canonical", "virtual", "alias", "forward", "include", "generic"];

/** A search over the tables of one parameter, with the parameter name for logs. */
export interface NamedMaps {
  title: string;
  lookup: LookupFn;
}

export interface CleanupTables {
  rewrite: RewriteParams;
  find: AddrFindOptions;
  senderCanonical: { maps: NamedMaps; classes: number } | null;
  recipientCanonical: { maps: NamedMaps; classes: number } | null;
  commonCanonical: { maps: NamedMaps; classes: number } | null;
  virtual: NamedMaps | null;
  virtualRecursionLimit: number;
  virtualExpansionLimit: number;
  virtualAddressLengthLimit: number;
  propagateCanonical: boolean;
  propagateVirtual: boolean;
  masqDomains: string[];
  masqClasses: number;
  /** Whether a local part (external form) is in masquerade_exceptions; throws on a table failure. */
  masqException: ((local: string) => Promise<boolean>) | null;
  alwaysBcc: string;
  senderBcc: NamedMaps | null;
  recipientBcc: NamedMaps | null;
  headerChecks: NamedMaps | null;
  mimeHeaderChecks: NamedMaps | null;
  nestedHeaderChecks: NamedMaps | null;
  bodyChecks: NamedMaps | null;
  bodyChecksSizeLimit: number;
  dropHeaders: ReadonlySet<string>;
  contentFilter: string;
  tokenLimit: number;
  emptyRecipient: string;
  originalRecipient: boolean;
  mime: { disable: boolean; nestingLimit: number; boundaryLimit: number; headerLimit: number };
  strict: { header8bit: boolean; body8bit: boolean; domain: boolean };
}

/** Opens the tables of a list parameter; null when it is empty. */
export function openMaps(cfg: Config, param: string, flags: number): NamedMaps | null {
  const names = cfg.list(param);
  if (names.length === 0) return null;
  const dicts: Dict[] = names.map((n) => {
    if (dictSplitName(n) === null)
      throw new ConfigError(`${cfg.where(param)}: parameter ${param}: need "type:name" instead of "${n}"`);
    return dictOpen(n, { flags });
  });
  return { title: param, lookup: mapsLookup(dicts, param) };
}

/** Parses a class list parameter into ADDR_CLASS bits. */
function classBits(cfg: Config, param: string): number {
  let bits = 0;
  for (const name of cfg.list(param)) {
    const b = CLASS_NAMES[name.toLowerCase()];
    if (b === undefined)
      throw new ConfigError(`${cfg.where(param)}: parameter ${param}: unknown class "${name}"`);
    bits |= b;
  }
  return bits;
}

/** A domain or name list whose entries are literal names or type:name tables. */
function nameList(cfg: Config, param: string, flags: number): (name: string) => Promise<boolean> {
  const plain = new Set<string>();
  const tables: Dict[] = [];
  for (const e of cfg.list(param)) {
    if (dictSplitName(e) !== null && !e.startsWith("[")) tables.push(dictOpen(e, { flags }));
    else plain.add(e.toLowerCase());
  }
  return async (name) => {
    const key = name.toLowerCase();
    if (plain.has(key)) return true;
    for (const t of tables) {
      const r = await t.lookup(key);
      if (r.status === "found") return true;
      if (r.status === "tempfail") throw new Error(`${param}: ${t.type}:${t.name}: ${r.reason}`);
    }
    return false;
  };
}

/** A canonical map with its classes, or null. */
function canon(cfg: Config, maps: string, classes: string): { maps: NamedMaps; classes: number } | null {
  const m = openMaps(cfg, maps, DictFlag.FOLD_FIX | DictFlag.UTF8_REQUEST);
  return m === null ? null : { maps: m, classes: classBits(cfg, classes) };
}

/** Reads everything (see the module comment). */
function load(cfg: Config): CleanupTables {
  const addrFlags = DictFlag.FOLD_FIX | DictFlag.UTF8_REQUEST;
  const myorigin = cfg.get("myorigin").toLowerCase();
  const dest = nameList(cfg, "mydestination", DictFlag.FOLD_FIX);
  const propagate = cfg.list("propagate_unmatched_extensions").map((n) => n.toLowerCase());
  const bad = propagate.find((n) => !PROPAGATE_NAMES.includes(n));
  if (bad !== undefined)
    throw new ConfigError(`parameter propagate_unmatched_extensions: unknown name "${bad}"`);
  const exceptions = cfg.list("masquerade_exceptions");
  const checks = (p: string): NamedMaps | null => openMaps(cfg, p, DictFlag.NONE);
  const strict8 = cfg.bool("strict_8bitmime");
  return {
    rewrite: rewriteParams(cfg),
    find: {
      recipientDelimiter: cfg.get("recipient_delimiter"),
      isLocalDomain: async (d) => d.toLowerCase() === myorigin || (await dest(d)),
    },
    senderCanonical: canon(cfg, "sender_canonical_maps", "sender_canonical_classes"),
    recipientCanonical: canon(cfg, "recipient_canonical_maps", "recipient_canonical_classes"),
    commonCanonical: canon(cfg, "canonical_maps", "canonical_classes"),
    virtual: openMaps(cfg, "virtual_alias_maps", addrFlags),
    virtualRecursionLimit: cfg.int("virtual_alias_recursion_limit"),
    virtualExpansionLimit: cfg.int("virtual_alias_expansion_limit"),
    virtualAddressLengthLimit: cfg.int("virtual_alias_address_length_limit"),
    propagateCanonical: propagate.includes("canonical"),
    propagateVirtual: propagate.includes("virtual"),
    masqDomains: cfg.list("masquerade_domains"),
    masqClasses: classBits(cfg, "masquerade_classes"),
    masqException: exceptions.length > 0 ? nameList(cfg, "masquerade_exceptions", DictFlag.FOLD_FIX) : null,
    alwaysBcc: cfg.get("always_bcc"),
    senderBcc: openMaps(cfg, "sender_bcc_maps", addrFlags),
    recipientBcc: openMaps(cfg, "recipient_bcc_maps", addrFlags),
    headerChecks: checks("header_checks"),
    mimeHeaderChecks: checks("mime_header_checks"),
    nestedHeaderChecks: checks("nested_header_checks"),
    bodyChecks: checks("body_checks"),
    bodyChecksSizeLimit: cfg.int("body_checks_size_limit"),
    dropHeaders: new Set(cfg.list("message_drop_headers").map((h) => h.toLowerCase())),
    contentFilter: cfg.get("content_filter"),
    tokenLimit: cfg.int("header_address_token_limit"),
    emptyRecipient: cfg.get("empty_address_recipient"),
    originalRecipient: cfg.bool("enable_original_recipient"),
    mime: {
      disable: cfg.bool("disable_mime_input_processing"),
      nestingLimit: cfg.int("mime_nesting_limit"),
      boundaryLimit: cfg.int("mime_boundary_length_limit"),
      headerLimit: cfg.int("header_size_limit"),
    },
    strict: {
      header8bit: strict8 || cfg.bool("strict_7bit_headers"),
      body8bit: strict8 || cfg.bool("strict_8bitmime_body"),
      domain: cfg.bool("strict_mime_encoding_domain"),
    },
  };
}

const cache = new WeakMap<Config, CleanupTables>();

/** The tables of a configuration, opened on first use and then shared. */
export function cleanupTables(cfg: Config): CleanupTables {
  let t = cache.get(cfg);
  if (t === undefined) {
    t = load(cfg);
    cache.set(cfg, t);
  }
  return t;
}
