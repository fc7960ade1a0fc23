/*
 * qmgr-deliver - one delivery request to an agent, and its answer
 *
 * DESCRIPTION
 *   Connects to private/<transport> (master hands the connection to an
 *   agent), checks the agent's greeting, sends the request, and waits, up to
 *   the transport's time limit, for the answer. A request is never sent
 *   twice: a lost connection or a timeout is an outcome ("unknown mail
 *   transport error"), not a reason to retry, because the agent may have
 *   delivered already. No agent listening is a transport failure.
 */
import { connect } from "node:net";
import { join } from "node:path";
import { FrameDecoder, attrString, encodeFrame, type AttrList } from "../util/attr-codec.js";
import {
  DELIVER_FRAME_MAX,
  DELIVER_PROTOCOL,
  encodeRequest,
  parseReply,
  type DeliveryReply,
  type DeliveryRequest,
} from "../global/deliver-proto.js";

export type DeliverOutcome =
  | { kind: "reply"; reply: DeliveryReply }
  | { kind: "transport-down"; reason: string }
  | { kind: "lost"; reason: string };

/** Sends one request and waits for its reply. */
export function deliverOnce(
  queueDir: string,
  transport: string,
  req: DeliveryRequest,
  timeoutMs: number,
): Promise<DeliverOutcome> {
  return new Promise((resolve) => {
    const sock = connect({ path: join(queueDir, "private", transport) });
    const dec = new FrameDecoder({ maxFrame: DELIVER_FRAME_MAX });
    let greeted = false;
    let sent = false;
    let settled = false;
    const done = (o: DeliverOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(o);
    };
    const timer = setTimeout(
      () => done({ kind: "lost", reason: "timeout waiting for the delivery agent" }),
      timeoutMs,
    );
    sock.on("error", (err: NodeJS.ErrnoException) => {
      if (!sent && (err.code === "ENOENT" || err.code === "ECONNREFUSED"))
        done({ kind: "transport-down", reason: `mail transport unavailable (${err.code})` });
      else done({ kind: "lost", reason: `unknown mail transport error (${err.message})` });
    });
    sock.on("close", () => done({ kind: "lost", reason: "unknown mail transport error (agent went away)" }));
    sock.on("data", (chunk: Buffer) => {
      const r = dec.push(chunk);
      if (!r.ok) return done({ kind: "lost", reason: `unknown mail transport error (${r.reason})` });
      for (const f of r.frames) {
        if (!greeted) {
          greeted = true;
          if (attrString(f, "protocol") !== DELIVER_PROTOCOL)
            return done({ kind: "transport-down", reason: "delivery agent speaks another protocol" });
          sent = true;
          sock.write(encodeFrame(encodeRequest(req), DELIVER_FRAME_MAX));
        } else return done(reply(f, req.recipients.length));
      }
    });
  });
}

/** Turns the agent's answer into an outcome. */
function reply(f: AttrList, count: number): DeliverOutcome {
  if (attrString(f, "status") === "error")
    return {
      kind: "lost",
      reason: `unknown mail transport error (${attrString(f, "reason") ?? "agent error"})`,
    };
  const r = parseReply(f, count);
  return typeof r === "string"
    ? { kind: "lost", reason: `unknown mail transport error (${r})` }
    : { kind: "reply", reply: r };
}
