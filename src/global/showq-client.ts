/*
 * showq-client - ask the showq service for the queue listing
 *
 * SYNOPSIS
 *   const r = await showqOpen(queueDir, { service: "showq", timeoutMs });
 *   if (!r.ok) fail(r.code, r.reason);
 *   for await (const item of r.items) item.kind === "msg" ? ... : ...;   // may end with kind "error"
 *
 * DESCRIPTION
 *   Speaks showq-proto.ts over public/<service>: reads the hello, proves
 *   the caller's uid with a file in maildrop/ (uid-proof.ts), asks for the
 *   listing and yields it message by message, recipient by recipient, as
 *   it arrives; every frame is checked with the schemas. Failures are
 *   results with a code: ECONNECT (the mail system is down), EPROTOCOL
 *   (showq said something it should not), EDENY (the caller is not in
 *   authorized_mailq_users), EFAIL (showq could not list the queue).
 */
import { join } from "node:path";
import { FrameConn } from "./frame-conn.js";
import {
  SHOWQ_FRAME_MAX,
  SHOWQ_PROTOCOL,
  ShowqHello,
  ShowqItem,
  ShowqMsg,
  ShowqRcpt,
  ShowqStatus,
  type ShowqMsgValue,
  type ShowqRcptValue,
} from "./showq-proto.js";
import { createProof, dropProof } from "./uid-proof.js";

export type ShowqItemValue =
  ({ kind: "msg" } & ShowqMsgValue) | ({ kind: "rcpt" } & ShowqRcptValue) | { kind: "error"; reason: string };

export type ShowqOpen =
  | { ok: true; items: AsyncGenerator<ShowqItemValue> }
  | { ok: false; code: "ECONNECT" | "EPROTOCOL" | "EDENY" | "EFAIL"; reason: string };

/** Reads the listing frames until the end item or a failure. */
async function* listing(conn: FrameConn): AsyncGenerator<ShowqItemValue> {
  try {
    for (;;) {
      const f = await conn.next();
      if (typeof f === "string") {
        yield { kind: "error", reason: `showq: ${f}` };
        return;
      }
      const t = ShowqItem.parse(f);
      if (!t.ok) {
        yield { kind: "error", reason: `malformed showq server response: ${t.error}` };
        return;
      }
      if (t.value.t === "end") return;
      const v = t.value.t === "msg" ? ShowqMsg.parse(f) : ShowqRcpt.parse(f);
      if (!v.ok) {
        yield { kind: "error", reason: `malformed showq server response: ${v.error}` };
        return;
      }
      yield t.value.t === "msg"
        ? { kind: "msg", ...(v.value as ShowqMsgValue) }
        : { kind: "rcpt", ...(v.value as ShowqRcptValue) };
    }
  } finally {
    conn.destroy();
  }
}

/** Connects, proves who asks, and starts the listing. */
export async function showqOpen(
  queueDir: string,
  opts: { service?: string; timeoutMs?: number } = {},
): Promise<ShowqOpen> {
  const path = join(queueDir, "public", opts.service ?? "showq");
  const conn = await FrameConn.connect(path, {
    maxFrame: SHOWQ_FRAME_MAX,
    timeoutMs: opts.timeoutMs ?? 60_000,
  });
  if (typeof conn === "string") return { ok: false, code: "ECONNECT", reason: conn };
  const fail = (code: "EPROTOCOL" | "EDENY" | "EFAIL", reason: string): ShowqOpen => {
    conn.destroy();
    return { ok: false, code, reason };
  };
  const hello = await conn.next();
  if (typeof hello === "string") return fail("EPROTOCOL", `showq: ${hello}`);
  const h = ShowqHello.parse(hello);
  if (!h.ok || h.value.protocol !== SHOWQ_PROTOCOL)
    return fail("EPROTOCOL", "malformed showq server response");
  const nonce = h.value.nonce;
  const proofErr = await createProof(queueDir, nonce);
  if (proofErr !== null) return fail("EFAIL", `cannot prove who asks: ${proofErr}`);
  await conn.send({ request: "list" });
  const st = await conn.next();
  await dropProof(queueDir, nonce);
  if (typeof st === "string") return fail("EPROTOCOL", `showq: ${st}`);
  const s = ShowqStatus.parse(st);
  if (!s.ok) return fail("EPROTOCOL", "malformed showq server response");
  if (s.value.status === "deny") return fail("EDENY", s.value.reason ?? "permission denied");
  if (s.value.status === "error") return fail("EFAIL", s.value.reason ?? "showq failed");
  return { ok: true, items: listing(conn) };
}
