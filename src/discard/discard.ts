/*
 * discard - the delivery agent that accepts and throws away
 *
 * SYNOPSIS
 *   master.cf: discard unix - - n - - discard
 *   transport_maps: example.com discard:silently dropped
 *
 * DESCRIPTION
 *   As Postfix's discard(8): reports every recipient as delivered without
 *   delivering anything, and the skeleton logs one "status=sent" line per
 *   recipient with the reason. The reason is the next hop (the text after
 *   "discard:"); one that starts with a 2.X.Y status code keeps it, else
 *   2.0.0 is used; an empty one reads "discarded".
 */
import { agentServer } from "../master/agent-server.js";

await agentServer({
  name: "discard",
  deliver: (req) => {
    const m = /^(2\.\d{1,3}\.\d{1,3})(?:\s+|$)(.*)$/s.exec(req.nexthop);
    const dsn = m?.[1] ?? "2.0.0";
    const text = (m ? m[2] : req.nexthop) || "discarded";
    return Promise.resolve({
      relay: "none",
      siteFail: false,
      results: req.recipients.map(() => ({ status: "sent" as const, dsn, text })),
    });
  },
});
