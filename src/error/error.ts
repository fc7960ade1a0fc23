/*
 * error - the delivery agent that fails (error) or defers (retry) on purpose
 *
 * SYNOPSIS
 *   master.cf: error unix - - n - - error
 *              retry unix - - n - - error
 *   transport_maps: old.example.com error:5.1.1 this domain is gone
 *                   slow.example.com retry:4.4.1 maintenance until Monday
 *
 * DESCRIPTION
 *   As Postfix's error(8): the next hop is the reason. A reason that starts
 *   with an enhanced status code (X.Y.Z and white space) keeps it, and the
 *   rest is the text. The service named "error" bounces every recipient
 *   (5.0.0 when no code is given; a code that is not 5.X.Y is ignored with
 *   a warning, as Postfix's bounce_append() does); the service named
 *   "retry" defers every recipient (4.0.0; a code that is not 4.X.Y is
 *   ignored with a warning, as defer_append() does). Any other service
 *   name is treated as "error".
 */
import { agentServer } from "../master/agent-server.js";
import { msg } from "../util/msg.js";

await agentServer({
  name: "error",
  deliver: (req, ctx) => {
    const retry = ctx.service === "retry";
    const m = /^([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)(.*)$/s.exec(req.nexthop);
    const want = retry ? "4" : "5";
    let dsn = m?.[1] ?? `${want}.0.0`;
    if (!dsn.startsWith(want)) {
      msg.warn(`${retry ? "defer" : "bounce"}_append: ignoring dsn code "${dsn}"`);
      dsn = `${want}.0.0`;
    }
    const text = (m ? m[2] : req.nexthop) || (retry ? "delivery temporarily suspended" : "delivery failed");
    const status = retry ? ("deferred" as const) : ("bounced" as const);
    return Promise.resolve({
      relay: "none",
      siteFail: false,
      results: req.recipients.map(() => ({ status, dsn, text })),
    });
  },
});
