/*
 * proxymap-serve - the requests of one proxymap client connection
 *
 * SYNOPSIS
 *   import { proxymapSession } from "./proxymap-serve.js";
 *   const session = proxymapSession({ allowed, service: "proxymap" });
 *   serveAttrConnection(socket, { ..., handler: session.handler });
 *   ... session.close();
 *
 * DESCRIPTION
 *   Answers open, lookup and sequence requests (global/proxymap-proto.ts)
 *   for the tables in the allow list. A table is opened once per name and
 *   flags in the process (dictOpen shares it) and stays open for later
 *   clients; a file table reloads itself when its file changes.
 *
 *   Results are passed on faithfully: found is OK with the value, not found
 *   is NOKEY, and a temporary failure of the table is RETRY with its
 *   reason, never NOKEY. A table that is not approved gets DENY, and the
 *   log says how to approve it (once per table). A malformed request gets
 *   BAD; the connection stays open.
 *
 *   A sequence cursor (postmap -s proxy:...) belongs to the connection;
 *   listing works for the table types that postmap -s can list directly
 *   (hash, btree, lmdb, cdb).
 */
import type { AttrList } from "../util/attr-codec.js";
import { msg } from "../util/msg.js";
import { dictOpen, DictFlag, dictSplitName, dictTypes, type Dict } from "../global/dict.js";
import { dictDump, ONDISK_TYPES } from "../global/dict-mkmap.js";
import {
  ProxyStat,
  buildProxyReply,
  parseProxyRequest,
  type ProxyReply,
  type ProxyRequest,
} from "../global/proxymap-proto.js";

/** What every session of the process shares. */
export interface ProxymapState {
  /** Approved tables, "type:name". */
  allowed: ReadonlySet<string>;
  /** The service name, for log messages. */
  service: string;
}

/** One client connection's handler and clean-up. */
export interface ProxymapSession {
  handler: (req: AttrList) => Promise<AttrList>;
  close: () => void;
}

/** The flags a client may ask a table to be opened with. */
const CLIENT_FLAGS =
  DictFlag.DUP_WARN |
  DictFlag.DUP_IGNORE |
  DictFlag.DUP_REPLACE |
  DictFlag.NO_REGSUB |
  DictFlag.NO_UNAUTH |
  DictFlag.FOLD_FIX |
  DictFlag.FOLD_MUL |
  DictFlag.UTF8_REQUEST;

/** Tables whose refusal was logged (each once; names beyond the cap are logged every time). */
const warnedDenied = new Set<string>();
const DENIED_LOG_MAX = 1000;

/** A reply with a status and optional parts. */
function reply(status: ProxyReply["status"], rest: Partial<ProxyReply> = {}): AttrList {
  return buildProxyReply({ status, flags: 0, ...rest });
}

/** Checks the table name and approval; returns the open table or the reply that refuses it. */
function findTable(state: ProxymapState, table: string, instFlags: number): Dict | AttrList {
  let name = table;
  while (name.startsWith("proxy:")) name = name.slice("proxy:".length);
  const split = dictSplitName(name);
  if (split === null) return reply(ProxyStat.BAD, { reason: `bad table name "${name}"` });
  if (!state.allowed.has(name)) {
    if (!warnedDenied.has(name)) {
      if (warnedDenied.size < DENIED_LOG_MAX) warnedDenied.add(name);
      msg.warn(`request for unapproved table: "${name}"`);
      msg.warn(`to approve this table for read-only access, list proxy:${name} in main.cf:proxy_read_maps`);
    }
    return reply(ProxyStat.DENY, { reason: `table "${name}" is not listed in proxy_read_maps` });
  }
  if (!dictTypes().includes(split.type))
    return reply(ProxyStat.CONFIG, { reason: `unsupported table type: ${split.type}` });
  return dictOpen(name, { flags: instFlags & CLIENT_FLAGS });
}

/** A new session: its handler keeps the connection's sequence cursor. */
export function proxymapSession(state: ProxymapState): ProxymapSession {
  let cursor: { table: string; entries: Generator<{ key: string; value: string }> } | null = null;
  /** Ends the listing in progress, closing its file. */
  const endCursor = (): void => {
    cursor?.entries.return(undefined);
    cursor = null;
  };

  /** Lists one more entry of a table. */
  function sequence(dict: Dict, req: Extract<ProxyRequest, { req: "sequence" }>): AttrList {
    if (!ONDISK_TYPES.includes(dict.type))
      return reply(ProxyStat.CONFIG, { flags: dict.flags, reason: "sequence operation is not supported" });
    try {
      if (req.func === "first" || cursor === null || cursor.table !== req.table) {
        endCursor();
        cursor = { table: req.table, entries: dictDump(dict.type, dict.name) };
      }
      const next = cursor.entries.next();
      if (next.done === true) {
        endCursor();
        return reply(ProxyStat.NOKEY, { flags: dict.flags });
      }
      return reply(ProxyStat.OK, { flags: dict.flags, key: next.value.key, value: next.value.value });
    } catch (err) {
      endCursor();
      return reply(ProxyStat.RETRY, { flags: dict.flags, reason: (err as Error).message });
    }
  }

  /** Answers one request. */
  async function handler(raw: AttrList): Promise<AttrList> {
    const parsed = parseProxyRequest(raw);
    if (!parsed.ok) {
      msg.warn(`${state.service}: malformed request: ${parsed.error}`);
      return reply(ProxyStat.BAD, { reason: parsed.error });
    }
    const req = parsed.value;
    const found = findTable(state, req.table, req.instFlags);
    if (found instanceof Map) return found;
    const dict = found;
    if (req.req === "open") return reply(ProxyStat.OK, { flags: dict.flags });
    if (req.req === "sequence") return sequence(dict, req);
    const r = await dict.lookup(req.key);
    if (r.status === "found") return reply(ProxyStat.OK, { flags: dict.flags, value: r.value });
    if (r.status === "notfound") return reply(ProxyStat.NOKEY, { flags: dict.flags });
    return reply(ProxyStat.RETRY, { flags: dict.flags, reason: r.reason.slice(0, 1000) });
  }

  return { handler, close: endCursor };
}
