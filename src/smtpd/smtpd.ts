/*
 * smtpd - the SMTP server
 *
 * SYNOPSIS
 *   master.cf: smtp inet n - n - - smtpd
 *
 * DESCRIPTION
 *   Serves SMTP clients that master hands over, many per process
 *   (multiServer). Each connection is a Session (smtpd-session.ts); what all
 *   sessions share (settings, mynetworks, the trivial-rewrite client) is
 *   built once at start (smtpd-env.ts). The restriction lists and access
 *   tables are the policy enforcement point (smtpd-check.ts), with DNS
 *   checks (smtpd-dns.ts), recipient validation (smtpd-unlisted.ts) and
 *   policy servers (smtpd-policy.ts). queue_minfree is checked at MAIL
 *   (smtpd-space.ts).
 */
import { msg } from "../util/msg.js";
import { multiServer } from "../master/mail-server.js";
import { smtpdEnv, type SmtpdEnv } from "./smtpd-env.js";
import { Session } from "./smtpd-session.js";
import { spaceSettings, spaceWarning } from "./smtpd-space.js";

let env: SmtpdEnv | null = null;

await multiServer({
  name: "smtpd",
  preInit(ctx) {
    // TLS keys and certificates, and the tables, are opened while root, as in Postfix.
    env = smtpdEnv(ctx.config);
  },
  onStart(ctx) {
    const advice = spaceWarning(spaceSettings(ctx.config));
    if (advice !== null) msg.warn(advice);
  },
  async onConnection(sock) {
    if (env !== null) await new Session(env, sock).run();
  },
});
