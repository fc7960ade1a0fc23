/*
 * deliver-helper-proto - the frames between a delivery agent and its user-rights helper
 *
 * DESCRIPTION
 *   A delivery agent (local, virtual) runs as root and never touches a
 *   user's files itself. It runs deliver-helper.js as a child process with
 *   the user's uid and gid and talks to it over the child's standard input
 *   and output in frames of the internal protocol (util/attr-codec.ts), at
 *   most HELPER_FRAME_MAX bytes. One request at a time:
 *
 *   agent -> helper  { op: "mbox", path, ...MboxParams }   append to a mailbox file
 *                    { op: "maildir", path, host, size_limit, def_dsn }
 *                    then { data }* and { end } (or { abort: reason })
 *                    { op: "read", path, limit, follow }     read a small file
 *                    { op: "stat", path }                    does it exist, what is it
 *   helper -> agent  { status: "ok" | "fail", why, dsn, text,
 *                      [kind, uid, mode, size, data, name] }
 *
 *   why names the failure for the agent's own wording: "notfile",
 *   "owner", "exec", "lock", "io", "limit", "abort", "toolarge", "noent".
 *   Both sides check every frame; a helper that says something malformed
 *   is a temporary failure, never a success.
 */
import { attrInt, attrString, type AttrList } from "../util/attr-codec.js";

export const HELPER_FRAME_MAX = 1 << 21;
export const HELPER_DATA_CHUNK = 1 << 16;
/** The most a "read" request returns (forward and include files). */
export const HELPER_READ_MAX = 1 << 20;

export type FileKind = "file" | "dir" | "symlink" | "other";

export type HelperWhy =
  "notfile" | "owner" | "exec" | "lock" | "io" | "limit" | "abort" | "toolarge" | "noent" | "proto";

export interface HelperReply {
  ok: boolean;
  why: HelperWhy | "";
  dsn: string;
  text: string;
  kind?: FileKind;
  uid?: number;
  mode?: number;
  size?: number;
  data?: Buffer;
  /** The file name a maildir delivery used (under new/). */
  name?: string;
}

export interface MboxParams {
  path: string;
  /** Create path.lock (dotlock). */
  dotlock: boolean;
  /** A failed dotlock is only a warning (files in directories the user may not write). */
  dotlockMayFail: boolean;
  /** Take a kernel lock with flock(1). */
  kernelLock: boolean;
  attempts: number;
  delayMs: number;
  staleSec: number;
  /** 0 for no limit. */
  sizeLimit: number;
  /** The file must be owned by the helper's uid (strict_mailbox_ownership). */
  strictOwner: boolean;
  /** Refuse executable files (deliveries to /file/name). */
  refuseExec: boolean;
  /** A mailbox must be a regular file (a /file/name may be a device). */
  mailbox: boolean;
  /** The enhanced status code for failures that have no better one. */
  defDsn: string;
}

export interface MaildirParams {
  path: string;
  host: string;
  sizeLimit: number;
  defDsn: string;
}

const WHY: readonly string[] = [
  "notfile",
  "owner",
  "exec",
  "lock",
  "io",
  "limit",
  "abort",
  "toolarge",
  "noent",
  "proto",
];
const KINDS: readonly string[] = ["file", "dir", "symlink", "other"];

/** Encodes mbox parameters as request attributes. */
export function mboxAttrs(p: MboxParams): Record<string, string | number> {
  return {
    op: "mbox",
    path: p.path,
    dotlock: p.dotlock ? 1 : 0,
    dotlock_may_fail: p.dotlockMayFail ? 1 : 0,
    kernel_lock: p.kernelLock ? 1 : 0,
    attempts: p.attempts,
    delay_ms: p.delayMs,
    stale_sec: p.staleSec,
    size_limit: p.sizeLimit,
    strict_owner: p.strictOwner ? 1 : 0,
    refuse_exec: p.refuseExec ? 1 : 0,
    mailbox: p.mailbox ? 1 : 0,
    def_dsn: p.defDsn,
  };
}

/** A string attribute within limits, or null. */
function str(a: AttrList, name: string, max = 4096): string | null {
  const v = attrString(a, name);
  return v !== undefined && v.length <= max && !v.includes("\0") ? v : null;
}

/** A non-negative integer attribute, or null. */
function num(a: AttrList, name: string): number | null {
  const v = attrInt(a, name);
  return v !== undefined && Number.isSafeInteger(v) && v >= 0 ? v : null;
}

/** Decodes mbox parameters (helper side); null when malformed. */
export function parseMbox(a: AttrList): MboxParams | null {
  const path = str(a, "path");
  const defDsn = str(a, "def_dsn", 16);
  const n = ["attempts", "delay_ms", "stale_sec", "size_limit"].map((k) => num(a, k));
  if (path === null || !path.startsWith("/") || defDsn === null || n.some((x) => x === null)) return null;
  const [attempts = 1, delayMs = 0, staleSec = 0, sizeLimit = 0] = n as number[];
  const flag = (k: string): boolean => num(a, k) === 1;
  return {
    path,
    dotlock: flag("dotlock"),
    dotlockMayFail: flag("dotlock_may_fail"),
    kernelLock: flag("kernel_lock"),
    attempts: Math.max(1, attempts),
    delayMs,
    staleSec,
    sizeLimit,
    strictOwner: flag("strict_owner"),
    refuseExec: flag("refuse_exec"),
    mailbox: flag("mailbox"),
    defDsn,
  };
}

/** Decodes maildir parameters (helper side); null when malformed. */
export function parseMaildir(a: AttrList): MaildirParams | null {
  const path = str(a, "path");
  const host = str(a, "host", 255);
  const sizeLimit = num(a, "size_limit");
  const defDsn = str(a, "def_dsn", 16);
  if (path === null || !path.startsWith("/") || !path.endsWith("/")) return null;
  if (host === null || sizeLimit === null || defDsn === null) return null;
  return { path, host, sizeLimit, defDsn };
}

/** Encodes a reply (helper side). */
export function encodeHelperReply(r: HelperReply): Record<string, string | number | Buffer> {
  const out: Record<string, string | number | Buffer> = {
    status: r.ok ? "ok" : "fail",
    why: r.why,
    dsn: r.dsn,
    text: r.text.slice(0, 1000),
  };
  if (r.kind !== undefined) out["kind"] = r.kind;
  if (r.uid !== undefined) out["uid"] = r.uid;
  if (r.mode !== undefined) out["mode"] = r.mode;
  if (r.size !== undefined) out["size"] = r.size;
  if (r.data !== undefined) out["data"] = r.data;
  if (r.name !== undefined) out["name"] = r.name;
  return out;
}

/** Decodes a reply (agent side); a string says what is wrong with it. */
export function parseHelperReply(a: AttrList): HelperReply | string {
  const status = str(a, "status", 8);
  const why = str(a, "why", 16);
  const dsn = str(a, "dsn", 16);
  const text = str(a, "text", 1000);
  if ((status !== "ok" && status !== "fail") || why === null || dsn === null || text === null)
    return "malformed reply";
  if (why !== "" && !WHY.includes(why)) return "unknown failure kind";
  if (status === "fail" && !/^[45]\.\d{1,3}\.\d{1,3}$/.test(dsn)) return "bad status code";
  const r: HelperReply = { ok: status === "ok", why: why as HelperWhy | "", dsn, text };
  const kind = str(a, "kind", 16);
  if (kind !== null) {
    if (!KINDS.includes(kind)) return "bad file kind";
    r.kind = kind as FileKind;
  }
  for (const k of ["uid", "mode", "size"] as const) {
    const v = num(a, k);
    if (v !== null) r[k] = v;
  }
  const data = a.get("data");
  if (data !== undefined) {
    if (data.length > HELPER_READ_MAX) return "reply data too large";
    r.data = data;
  }
  const name = str(a, "name", 1024);
  if (name !== null) r.name = name;
  return r;
}
