/*
 * lmtp - the LMTP delivery agent (master.cf command "lmtp")
 *
 * DESCRIPTION
 *   Entry point; the SMTP agent in LMTP mode (LHLO, lmtp_* parameters,
 *   one reply per recipient after DATA, Unix-domain next hops). See
 *   smtp-agent.ts.
 */
import { runAgent } from "./smtp-agent.js";

await runAgent("lmtp");
