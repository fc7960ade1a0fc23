/*
 * virtual - delivery to virtual mailboxes: one table says where, two say as whom
 *
 * SYNOPSIS
 *   master.cf: virtual unix - n n - - virtual
 *   main.cf:   virtual_mailbox_domains = example.com
 *              virtual_mailbox_base = /var/vmail
 *              virtual_mailbox_maps = hash:/etc/postern/vmailbox   (user@example.com example.com/user/)
 *              virtual_uid_maps = static:5000
 *              virtual_gid_maps = static:5000
 *
 * DESCRIPTION
 *   As Postfix's virtual(8). For each recipient (folded to lower case)
 *   virtual_mailbox_maps gives a path under virtual_mailbox_base (searched
 *   as user@domain, user@domain without the address extension, then
 *   @domain); a path that ends in "/" is a Maildir, anything else a UNIX
 *   mailbox. virtual_uid_maps and virtual_gid_maps give the numeric uid
 *   and gid the mailbox is written with: a uid below virtual_minimum_uid,
 *   gid 0, a path with "/../", or a recipient missing from the uid or gid
 *   tables defers with "mail system configuration error"; a recipient
 *   missing from virtual_mailbox_maps bounces (unknown user). Mailboxes are
 *   locked with virtual_mailbox_lock (dotlock plus flock(1)) and truncated
 *   back on failure; virtual_mailbox_limit caps a mailbox or Maildir file.
 *   Messages get Return-Path:, X-Original-To: and Delivered-To: (and a
 *   From_ line and >From quoting in mbox files).
 *
 *   Privileges: like local(8), this agent runs as root and writes only
 *   through a helper process started with the mailbox's uid and gid
 *   (global/deliver-helper-client.ts); without root, with its own rights.
 */
import { agentServer } from "../master/agent-server.js";
import { HelperPool, type Rights } from "../global/deliver-helper-client.js";
import {
  traceOnly,
  type DeliveryRecipient,
  type DeliveryRequest,
  type RcptResult,
} from "../global/deliver-proto.js";
import { dictOpen, DictFlag } from "../global/dict.js";
import { AddrFind, addrFind, mapsLookup, type LookupFn } from "../global/dict-search.js";
import { MAIL_COPY, mailCopy } from "../global/mail-copy.js";
import { mboxLockMethods } from "../global/mbox-conf.js";
import { contentLines, readEnvelope, type Envelope } from "../global/queue-file.js";
import { QueuePaths, type QueueName } from "../global/queue-path.js";
import type { Config } from "../global/config.js";
import { msg } from "../util/msg.js";

interface VirtualSettings {
  mailboxMaps: LookupFn;
  uidMaps: LookupFn;
  gidMaps: LookupFn;
  base: string;
  minimumUid: number;
  sizeLimit: number;
  dotlock: boolean;
  kernelLock: boolean;
  lockAttempts: number;
  lockDelayMs: number;
  staleLockSec: number;
  strictOwner: boolean;
  delimiter: string;
  enableOrigRcpt: boolean;
  host: string;
  asRoot: boolean;
}

let set: VirtualSettings | null = null;
let paths: QueuePaths | null = null;
let pool: HelperPool | null = null;

/** Opens the tables of a list parameter. */
function tables(cfg: Config, param: string): LookupFn {
  const flags = DictFlag.FOLD_FIX | DictFlag.NO_REGSUB;
  return mapsLookup(
    cfg.list(param).map((s) => dictOpen(s, { flags })),
    param,
  );
}

/** Reads the virtual(8) settings. */
function loadSettings(cfg: Config): VirtualSettings {
  const base = cfg.get("virtual_mailbox_base");
  if (!base.startsWith("/"))
    return msg.fatal(`do not specify relative pathname: virtual_mailbox_base = ${base}`);
  const limit = cfg.int("virtual_mailbox_limit");
  const messageLimit = cfg.int("message_size_limit");
  if (limit !== 0 && (messageLimit === 0 || limit < messageLimit))
    return msg.fatal("configuration error: virtual_mailbox_limit is smaller than message_size_limit");
  return {
    mailboxMaps: tables(cfg, "virtual_mailbox_maps"),
    uidMaps: tables(cfg, "virtual_uid_maps"),
    gidMaps: tables(cfg, "virtual_gid_maps"),
    base: base.replace(/\/+$/, ""),
    minimumUid: cfg.int("virtual_minimum_uid"),
    sizeLimit: limit,
    ...mboxLockMethods(cfg, "virtual_mailbox_lock"),
    lockAttempts: cfg.int("deliver_lock_attempts"),
    lockDelayMs: cfg.time("deliver_lock_delay") * 1000,
    staleLockSec: cfg.time("stale_lock_time"),
    strictOwner: cfg.bool("strict_mailbox_ownership"),
    delimiter: cfg.get("recipient_delimiter"),
    enableOrigRcpt: cfg.bool("enable_original_recipient"),
    host: cfg.get("myhostname"),
    asRoot: process.getuid?.() === 0,
  };
}

/** A result. */
function result(status: RcptResult["status"], dsn: string, text: string): RcptResult {
  return { status, dsn, text };
}

/** Looks an address up in a table with Postfix's mail_addr_find order. */
async function find(
  s: VirtualSettings,
  lookup: LookupFn,
  user: string,
): Promise<{ value: string } | "notfound" | "tempfail"> {
  const r = await addrFind(lookup, user, { strategy: AddrFind.DEFAULT, recipientDelimiter: s.delimiter });
  return r.status === "found" ? { value: r.value } : r.status;
}

/** The mailbox path and owner of a recipient, or a result that ends its delivery. */
async function locate(
  s: VirtualSettings,
  user: string,
): Promise<{ path: string; uid: number; gid: number } | RcptResult> {
  const config = (why: string): RcptResult => {
    msg.warn(why);
    return result("deferred", "4.3.5", "mail system configuration error");
  };
  const mbox = await find(s, s.mailboxMaps, user);
  if (mbox === "tempfail") return config(`table virtual_mailbox_maps: lookup ${user} failed`);
  if (mbox === "notfound") return result("bounced", "5.1.1", `unknown user: "${user}"`);
  const path = `${s.base}/${mbox.value}`;
  if (path.slice(s.base.length).includes("/../"))
    return config(`recipient ${user}: bad mailbox path ${mbox.value}`);
  const uidRes = await find(s, s.uidMaps, user);
  if (typeof uidRes === "string") return config(`recipient ${user}: not found in virtual_uid_maps`);
  const uid = /^\d+$/.test(uidRes.value.trim()) ? Number(uidRes.value.trim()) : NaN;
  if (!Number.isSafeInteger(uid) || uid < s.minimumUid || uid > 0xfffffffe)
    return config(`recipient ${user}: bad uid ${uidRes.value} in virtual_uid_maps`);
  const gidRes = await find(s, s.gidMaps, user);
  if (typeof gidRes === "string") return config(`recipient ${user}: not found in virtual_gid_maps`);
  const gid = /^\d+$/.test(gidRes.value.trim()) ? Number(gidRes.value.trim()) : NaN;
  if (!Number.isSafeInteger(gid) || gid === 0 || gid > 0xfffffffe)
    return config(`recipient ${user}: bad gid ${gidRes.value} in virtual_gid_maps`);
  return { path, uid, gid };
}

/** Delivers one recipient. */
async function deliverOne(
  s: VirtualSettings,
  h: HelperPool,
  req: DeliveryRequest,
  rcpt: DeliveryRecipient,
  content: () => AsyncGenerator<Buffer>,
): Promise<RcptResult> {
  const user = rcpt.address.toLowerCase();
  const where = await locate(s, user);
  if ("status" in where) return where;
  const rights: Rights = s.asRoot ? { uid: where.uid, gid: where.gid } : null;
  const maildir = where.path.endsWith("/");
  // A verify probe or sendmail -bv: the mailbox was found; write nothing.
  if (traceOnly(req.flags))
    return result("sent", "2.0.0", maildir ? "delivers to maildir" : "delivers to mailbox");
  const flags = maildir ? MAIL_COPY.RETURN_PATH | MAIL_COPY.DELIVERED | MAIL_COPY.ORIG_RCPT : MAIL_COPY.MBOX;
  const bytes = mailCopy(content(), {
    flags,
    sender: req.sender,
    origRcpt: s.enableOrigRcpt ? rcpt.original : "",
    delivered: rcpt.address,
  });
  let r;
  try {
    r = maildir
      ? await h.maildir(
          rights,
          { path: where.path, host: s.host, sizeLimit: s.sizeLimit, defDsn: "4.2.0" },
          bytes,
        )
      : await h.mbox(
          rights,
          {
            path: where.path,
            dotlock: s.dotlock,
            dotlockMayFail: false,
            kernelLock: s.kernelLock,
            attempts: s.lockAttempts,
            delayMs: s.lockDelayMs,
            staleSec: s.staleLockSec,
            sizeLimit: s.sizeLimit,
            strictOwner: s.strictOwner,
            refuseExec: false,
            mailbox: true,
            defDsn: "4.2.0",
          },
          bytes,
        );
  } catch (err) {
    msg.warn(`${req.queueId}: ${(err as Error).message}`);
    return result("deferred", "4.3.0", "error reading message: queue file read error");
  }
  if (r.ok) return result("sent", "2.0.0", maildir ? "delivered to maildir" : "delivered to mailbox");
  if (r.why === "notfile") {
    msg.warn(`recipient ${rcpt.address}: destination ${where.path} is not a regular file`);
    return result("deferred", "4.3.5", "mail system configuration error");
  }
  if (r.why === "owner") {
    msg.warn(`specify "strict_mailbox_ownership = no" to ignore mailbox ownership mismatch`);
    return result("deferred", "4.2.0", `destination ${where.path} is not owned by recipient`);
  }
  const text = maildir
    ? `maildir delivery failed: ${r.text}`
    : `delivery failed to mailbox ${where.path}: ${r.text}`;
  return result(r.dsn.startsWith("4") ? "deferred" : "bounced", r.dsn, text);
}

/** Delivers a request. */
async function deliver(req: DeliveryRequest): Promise<RcptResult[]> {
  if (set === null || paths === null || pool === null) throw new Error("virtual agent not initialized");
  const path = paths.path(req.queueName as QueueName, req.queueId);
  const e = await readEnvelope(path);
  if (!e.ok) {
    msg.warn(`${req.queueId}: queue file ${path}: ${e.reason} at offset ${e.offset}`);
    return req.recipients.map(() => result("deferred", "4.3.0", "queue file read error"));
  }
  const env: Envelope = e.env;
  const out: RcptResult[] = [];
  for (const rcpt of req.recipients)
    out.push(await deliverOne(set, pool, req, rcpt, () => contentLines(path, env)));
  return out;
}

await agentServer({
  name: "virtual",
  /** Reads the settings and opens the tables. */
  onStart(ctx) {
    set = loadSettings(ctx.config);
    paths = new QueuePaths(ctx.config);
    pool = new HelperPool({ timeoutMs: ctx.config.time("ipc_timeout") * 1000 });
  },
  /** Delivers one request from qmgr. */
  async deliver(req, ctx) {
    return { relay: ctx.service, siteFail: false, results: await deliver(req) };
  },
});
