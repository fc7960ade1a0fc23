/*
 * smtpd-instance - an smtpd test instance and an SMTP line client
 *
 * SYNOPSIS
 *   const inst = await smtpdInstance(t, "smtpd_client_restrictions = ...\n");
 *   const c = await smtpConnect(inst.port, "127.0.0.2");
 *   assert.equal(await smtpCmd(c, "MAIL FROM:<a@b.example>"), "250 2.1.0 Ok");
 *
 * DESCRIPTION
 *   Starts smtpd, cleanup and trivial-rewrite on a loopback port
 *   (myhostname mx.example.org, mydestination example.org, mynetworks
 *   192.0.2.0/24 so that loopback clients are strangers, and an empty
 *   local_recipient_maps and no peer name lookups unless the test says
 *   otherwise: later main.cf lines win), stopped when
 *   the test ends. smtpConnect() can bind the client to another loopback
 *   address (127.0.0.2 ... all reach a server on 127.0.0.1), which is how
 *   tests play clients with different DNS records.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { freePort, LineClient, shippedEntries, startInstance, type Instance } from "./instance.js";

export interface SmtpdInstance extends Instance {
  port: number;
}

export interface TestContext {
  after: (fn: () => Promise<void>) => void;
}

/** Starts smtpd with cleanup and trivial-rewrite; extra main.cf text is appended. */
export async function smtpdInstance(t: TestContext, main = "", extraMaster = ""): Promise<SmtpdInstance> {
  const port = await freePort();
  const inst = await startInstance(t, {
    main: `myhostname = mx.example.org\nmydestination = $myhostname, example.org\nmynetworks = 192.0.2.0/24\nlocal_recipient_maps =\nsmtpd_peername_lookup = no\n${main}`,
    // Part of the shipped master.cf, with its columns: no qmgr, so that what smtpd queued stays in incoming/ for the test.
    master: [`${port} inet n - n - - smtpd`, shippedEntries("cleanup", "rewrite"), extraMaster, ""].join(
      "\n",
    ),
  });
  return Object.assign(inst, { port });
}

/** Connects to 127.0.0.1:port from the given local address. */
export function smtpConnect(port: number, from = "127.0.0.1"): Promise<LineClient> {
  return new Promise((resolve, reject) => {
    const sock = connect({ port, host: "127.0.0.1", localAddress: from });
    sock.once("connect", () => resolve(new LineClient(sock)));
    sock.once("error", reject);
  });
}

/** Sends a command (unless null) and reads the whole reply, lines joined by "\n". */
export async function smtpCmd(c: LineClient, line: string | null): Promise<string> {
  if (line !== null) c.send(line);
  const lines: string[] = [];
  for (;;) {
    const l = await c.line();
    lines.push(l);
    if (!/^\d{3}-/.test(l)) break;
  }
  return lines.join("\n");
}

/** Connects, reads the greeting and says EHLO (the greeting must be a 220). */
export async function smtpHello(
  port: number,
  from = "127.0.0.1",
  helo = "client.example",
): Promise<LineClient> {
  const c = await smtpConnect(port, from);
  assert.match(await smtpCmd(c, null), /^220 /);
  assert.match(await smtpCmd(c, `EHLO ${helo}`), /^250[- ]/);
  return c;
}
