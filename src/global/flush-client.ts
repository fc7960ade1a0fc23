/*
 * flush-client - talk to the fast flush service
 *
 * SYNOPSIS
 *   const r = await flushRequest(queueDir, { request: "send_site", site: "example.com" });
 *   r.status  // "ok" | "fail" | "bad" | "deny"; r.reason for the others
 *   await flushAdd(queueDir, "example.com", queueId);   // from whoever defers mail
 *
 * DESCRIPTION
 *   Speaks flush-proto.ts over public/<service>, proving the caller's uid
 *   with a file in maildrop/ (uid-proof.ts). Every failure to reach the
 *   service or to understand it is the status "fail" with a reason, as
 *   Postfix's flush_clnt reports MAIL_FLUSH_FAIL.
 */
import { join } from "node:path";
import { FrameConn } from "./frame-conn.js";
import {
  FLUSH_FRAME_MAX,
  FLUSH_PROTOCOL,
  FlushHello,
  FlushReply,
  type FlushRequestValue,
  type FlushStatus,
} from "./flush-proto.js";
import { createProof, dropProof } from "./uid-proof.js";

export interface FlushResult {
  status: FlushStatus;
  reason: string;
}

/** Sends one request to the flush service and returns its answer. */
export async function flushRequest(
  queueDir: string,
  req: FlushRequestValue,
  opts: { service?: string; timeoutMs?: number } = {},
): Promise<FlushResult> {
  const path = join(queueDir, "public", opts.service ?? "flush");
  const conn = await FrameConn.connect(path, {
    maxFrame: FLUSH_FRAME_MAX,
    timeoutMs: opts.timeoutMs ?? 60_000,
  });
  if (typeof conn === "string") return { status: "fail", reason: conn };
  let nonce = "";
  try {
    const hello = await conn.next();
    const h = typeof hello === "string" ? null : FlushHello.parse(hello);
    if (h === null || !h.ok || h.value.protocol !== FLUSH_PROTOCOL)
      return {
        status: "fail",
        reason: `malformed flush server response${typeof hello === "string" ? `: ${hello}` : ""}`,
      };
    nonce = h.value.nonce;
    const proofErr = await createProof(queueDir, nonce);
    if (proofErr !== null) return { status: "fail", reason: `cannot prove who asks: ${proofErr}` };
    await conn.send({ ...req });
    const reply = await conn.next();
    if (typeof reply === "string") return { status: "fail", reason: `flush: ${reply}` };
    const r = FlushReply.parse(reply);
    if (!r.ok) return { status: "fail", reason: "malformed flush server response" };
    return { status: r.value.status, reason: r.value.reason ?? "" };
  } finally {
    conn.destroy();
    if (nonce !== "") await dropProof(queueDir, nonce);
  }
}

/** Tells flush that mail with this queue ID is deferred to a site (Postfix's flush_add). */
export function flushAdd(queueDir: string, site: string, queueId: string): Promise<FlushResult> {
  return flushRequest(queueDir, { request: "add", site, queue_id: queueId });
}
