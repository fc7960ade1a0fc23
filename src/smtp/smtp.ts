/*
 * smtp - the SMTP delivery agent (master.cf command "smtp")
 *
 * DESCRIPTION
 *   Entry point; see smtp-agent.ts. The same code runs as lmtp from
 *   lmtp.ts, which master starts for the master.cf command "lmtp".
 */
import { runAgent } from "./smtp-agent.js";

await runAgent("smtp");
