/*
 * deliver-proto - the delivery request from qmgr to a delivery agent
 *
 * DESCRIPTION
 *   qmgr connects to private/<transport> (master hands the connection to an
 *   agent process) and sends one request frame (protocol "deliver"):
 *     queue_name queue_id   where the queue file is
 *     nexthop               the destination (transport_maps, relayhost, ...)
 *     sender arrival active arrival and active times (for delays= in logs)
 *     attributes of the message (dsn_envid, dsn_ret, log_ident, ...)
 *     rcpt_count, then for each i: r<i>_addr, r<i>_orig, r<i>_offset,
 *     r<i>_orcpt, r<i>_notify
 *   The agent answers with one frame: for each i r<i>_status (sent,
 *   deferred, bounced), r<i>_dsn (X.Y.Z), r<i>_text, and site_fail=1 when
 *   the destination itself failed (no connection, no greeting): qmgr's
 *   concurrency feedback counts only those. The agent marks each sent or
 *   bounced recipient done in the queue file before it answers.
 */
import { attrInt, attrString, type AttrInput, type AttrList } from "../util/attr-codec.js";

export const DELIVER_PROTOCOL = "deliver";
export const DELIVER_FRAME_MAX = 1 << 20;
export const DELIVER_MAX_RCPT = 1000;

/**
 * Request flag bits: MTA_VRFY for a verify-service probe, USR_VRFY for
 * sendmail -bv, RECORD for sendmail -v; CONN_LOAD and CONN_STORE are
 * qmgr's word for on-demand connection caching (Postfix's
 * DEL_REQ_FLAG_CONN_*): look for a cached connection first, and keep the
 * connection afterwards because more mail waits for the destination.
 */
export const DEL_REQ_FLAG = { MTA_VRFY: 1, USR_VRFY: 2, RECORD: 4, CONN_LOAD: 8, CONN_STORE: 16 } as const;
/** Both connection-cache bits. */
export const DEL_REQ_CONN_MASK = DEL_REQ_FLAG.CONN_LOAD | DEL_REQ_FLAG.CONN_STORE;
export const DEL_REQ_VERIFY = DEL_REQ_FLAG.MTA_VRFY | DEL_REQ_FLAG.USR_VRFY;
/** All trace flag bits. */
export const DEL_REQ_TRACE_MASK = DEL_REQ_VERIFY | DEL_REQ_FLAG.RECORD;
/** The queue-file attribute that carries a message's trace flags (cleanup records it as the submitter gave it). */
export const TRACE_FLAGS_ATTR = "trace_flags";

/** A message's trace flags from its queue-file attributes (0 when absent or malformed). */
export function traceFlags(attrs: ReadonlyMap<string, string>): number {
  const v = attrs.get(TRACE_FLAGS_ATTR);
  if (v === undefined || !/^\d{1,2}$/.test(v)) return 0;
  return Number(v) & DEL_REQ_TRACE_MASK;
}

/** True for a request that must not deliver: a verify probe or sendmail -bv. */
export function traceOnly(flags: number | undefined): boolean {
  return ((flags ?? 0) & DEL_REQ_VERIFY) !== 0;
}

export interface DeliveryRecipient {
  address: string;
  original: string;
  offset: number;
  orcpt?: string;
  notify?: number;
}

export interface DeliveryRequest {
  queueName: string;
  queueId: string;
  nexthop: string;
  sender: string;
  /** Arrival and queue-manager times, milliseconds since the epoch. */
  arrival: number;
  active: number;
  attrs: Record<string, string>;
  recipients: DeliveryRecipient[];
  /** DEL_REQ_FLAG bits; absent means 0. */
  flags?: number;
}

export type RcptStatus = "sent" | "deferred" | "bounced";

export interface RcptResult {
  status: RcptStatus;
  dsn: string;
  text: string;
}

export interface DeliveryReply {
  results: RcptResult[];
  siteFail: boolean;
}

const ATTR_NAMES = [
  "dsn_envid",
  "dsn_ret",
  "log_ident",
  "encoding",
  "smtputf8",
  "client_name",
  "client_address",
  "protocol",
  "helo",
  "rewrite_context",
];

/** Encodes a request. */
export function encodeRequest(r: DeliveryRequest): AttrInput {
  const out: Record<string, string | number> = {
    queue_name: r.queueName,
    queue_id: r.queueId,
    nexthop: r.nexthop,
    sender: r.sender,
    arrival: r.arrival,
    active: r.active,
    rcpt_count: r.recipients.length,
  };
  if (r.flags !== undefined && r.flags !== 0) out["flags"] = r.flags;
  for (const name of ATTR_NAMES) if (r.attrs[name] !== undefined) out[`m_${name}`] = r.attrs[name];
  r.recipients.forEach((rc, i) => {
    out[`r${i}_addr`] = rc.address;
    out[`r${i}_orig`] = rc.original;
    out[`r${i}_offset`] = rc.offset;
    if (rc.orcpt !== undefined) out[`r${i}_orcpt`] = rc.orcpt;
    if (rc.notify !== undefined) out[`r${i}_notify`] = rc.notify;
  });
  return out;
}

/** A string attribute within a length limit, or null. */
function str(a: AttrList, name: string, max: number): string | null {
  const v = attrString(a, name);
  return v !== undefined && v.length <= max && !/[\r\n\0]/.test(v) ? v : null;
}

/** Decodes and checks a request; an error text names the bad attribute. */
export function parseRequest(a: AttrList): DeliveryRequest | string {
  const queueName = str(a, "queue_name", 16);
  const queueId = str(a, "queue_id", 32);
  const nexthop = str(a, "nexthop", 1024);
  const sender = str(a, "sender", 2048);
  const arrival = attrInt(a, "arrival");
  const active = attrInt(a, "active");
  const count = attrInt(a, "rcpt_count");
  if (queueName === null || !/^[a-z]+$/.test(queueName)) return "bad queue_name";
  if (queueId === null || !/^[0-9A-Za-z]+$/.test(queueId)) return "bad queue_id";
  if (nexthop === null || sender === null || arrival === undefined || active === undefined)
    return "missing nexthop, sender or times";
  if (count === undefined || count < 1 || count > DELIVER_MAX_RCPT) return "bad rcpt_count";
  const attrs: Record<string, string> = {};
  for (const name of ATTR_NAMES) {
    const v = str(a, `m_${name}`, 1024);
    if (v !== null) attrs[name] = v;
  }
  const recipients: DeliveryRecipient[] = [];
  for (let i = 0; i < count; i++) {
    const address = str(a, `r${i}_addr`, 2048);
    const original = str(a, `r${i}_orig`, 2048);
    const offset = attrInt(a, `r${i}_offset`);
    if (address === null || original === null || offset === undefined) return `bad recipient ${i}`;
    const rc: DeliveryRecipient = { address, original, offset };
    const orcpt = str(a, `r${i}_orcpt`, 2048);
    const notify = attrInt(a, `r${i}_notify`);
    if (orcpt !== null) rc.orcpt = orcpt;
    if (notify !== undefined) rc.notify = notify;
    recipients.push(rc);
  }
  const flags = attrInt(a, "flags");
  if (flags !== undefined && (flags < 0 || flags > 31)) return "bad flags";
  const req: DeliveryRequest = { queueName, queueId, nexthop, sender, arrival, active, attrs, recipients };
  if (flags !== undefined && flags !== 0) req.flags = flags;
  return req;
}

/** Encodes a reply. */
export function encodeReply(r: DeliveryReply): AttrInput {
  const out: Record<string, string | number> = {
    status: "ok",
    rcpt_count: r.results.length,
    site_fail: r.siteFail ? 1 : 0,
  };
  r.results.forEach((res, i) => {
    out[`r${i}_status`] = res.status;
    out[`r${i}_dsn`] = res.dsn;
    out[`r${i}_text`] = res.text.slice(0, 1000);
  });
  return out;
}

/** Decodes a reply for a request with `count` recipients. */
export function parseReply(a: AttrList, count: number): DeliveryReply | string {
  if (attrInt(a, "rcpt_count") !== count) return "recipient count mismatch";
  const results: RcptResult[] = [];
  for (let i = 0; i < count; i++) {
    const status = attrString(a, `r${i}_status`);
    const dsn = str(a, `r${i}_dsn`, 16);
    const text = str(a, `r${i}_text`, 1000);
    if (status !== "sent" && status !== "deferred" && status !== "bounced")
      return `bad status for recipient ${i}`;
    if (dsn === null || !/^[245]\.\d{1,3}\.\d{1,3}$/.test(dsn) || text === null)
      return `bad dsn or text for recipient ${i}`;
    results.push({ status, dsn, text });
  }
  return { results, siteFail: attrInt(a, "site_fail") === 1 };
}
