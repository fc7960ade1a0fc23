/*
 * deliver-pass - hand one recipient of a delivery request to another transport
 *
 * SYNOPSIS
 *   import { deliverPass } from "./deliver-pass.js";
 *   const res = await deliverPass(queueDir, "dovecot:", req, rcpt, timeoutMs);   // RcptResult
 *
 * DESCRIPTION
 *   As Postfix's deliver_pass(): local(8) gives mailbox_transport and
 *   fallback_transport recipients to the named transport by sending it a
 *   delivery request of its own (deliver-proto.ts) over
 *   private/<transport>, with the same queue file and message attributes
 *   and just this recipient. "transport:nexthop" sets the next hop; an
 *   empty one keeps the request's. The other agent marks the recipient
 *   done in the queue file as any agent does; its answer becomes this
 *   recipient's result. No agent listening, a lost connection or a
 *   malformed answer defers (the other agent may have delivered, and a
 *   retry repeats at most that).
 */
import { connect } from "node:net";
import { join } from "node:path";
import { FrameDecoder, attrString, encodeFrame } from "../util/attr-codec.js";
import {
  DELIVER_FRAME_MAX,
  DELIVER_PROTOCOL,
  encodeRequest,
  parseReply,
  type DeliveryRecipient,
  type DeliveryRequest,
  type RcptResult,
} from "./deliver-proto.js";

/** Splits "transport[:nexthop]". */
export function splitTransport(spec: string, defNexthop: string): { transport: string; nexthop: string } {
  const colon = spec.indexOf(":");
  const transport = colon < 0 ? spec : spec.slice(0, colon);
  const nexthop = colon < 0 ? "" : spec.slice(colon + 1);
  return { transport, nexthop: nexthop === "" ? defNexthop : nexthop };
}

/** Sends one recipient to another transport and returns its result. */
export function deliverPass(
  queueDir: string,
  spec: string,
  req: DeliveryRequest,
  rcpt: DeliveryRecipient,
  timeoutMs: number,
): Promise<RcptResult> {
  const { transport, nexthop } = splitTransport(spec, req.nexthop);
  const defer = (text: string): RcptResult => ({ status: "deferred", dsn: "4.3.0", text });
  if (!/^[A-Za-z0-9._-]+$/.test(transport))
    return Promise.resolve(defer(`bad transport name "${transport}"`));
  const sub: DeliveryRequest = { ...req, nexthop, recipients: [rcpt] };
  return new Promise((resolve) => {
    const sock = connect({ path: join(queueDir, "private", transport) });
    const dec = new FrameDecoder({ maxFrame: DELIVER_FRAME_MAX });
    let greeted = false;
    let settled = false;
    const done = (r: RcptResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done(defer(`timeout waiting for transport ${transport}`)), timeoutMs);
    sock.on("error", (err) => done(defer(`mail transport ${transport} unavailable: ${err.message}`)));
    sock.on("close", () => done(defer(`unknown mail transport error (${transport} went away)`)));
    sock.on("data", (chunk: Buffer) => {
      const r = dec.push(chunk);
      if (!r.ok) return done(defer(`unknown mail transport error (${r.reason})`));
      for (const f of r.frames) {
        if (!greeted) {
          greeted = true;
          if (attrString(f, "protocol") !== DELIVER_PROTOCOL)
            return done(defer(`transport ${transport} speaks another protocol`));
          sock.write(encodeFrame(encodeRequest(sub), DELIVER_FRAME_MAX));
          continue;
        }
        const rep = parseReply(f, 1);
        if (typeof rep === "string" || rep.results[0] === undefined)
          return done(defer(`unknown mail transport error (${typeof rep === "string" ? rep : "no result"})`));
        return done(rep.results[0]);
      }
    });
  });
}
