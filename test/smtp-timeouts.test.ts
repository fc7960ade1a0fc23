/*
 * smtp-timeouts.test - every time limit of the SMTP client, against peers that stall
 *
 * DESCRIPTION
 *   One stalling server per point (src/testing/smtp-peers.ts): a listener
 *   that never accepts (smtp_connect_timeout), no greeting
 *   (smtp_helo_timeout), no reply to EHLO (smtp_helo_timeout), MAIL
 *   (smtp_mail_timeout), RCPT (smtp_rcpt_timeout), DATA
 *   (smtp_data_init_timeout), a peer that stops reading the message body
 *   (smtp_data_xfer_timeout), no reply to the final dot
 *   (smtp_data_done_timeout), and no reply to QUIT (smtp_quit_timeout: the
 *   mail is sent and the client hangs up when the limit runs out). Each
 *   limit is set to one second; each message is deferred with Postfix's
 *   words for the point where the conversation stopped.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  relayInstance,
  startStallServer,
  submitMessage,
  type StallPoint,
} from "../src/testing/smtp-peers.js";

const POINTS: Array<[StallPoint, string, string]> = [
  ["connect", "4.4.1", "connect to 127.0.0.4[127.0.0.4]:PORT: Connection timed out"],
  [
    "greeting",
    "4.4.2",
    "conversation with 127.0.0.4[127.0.0.4] timed out while receiving the initial server greeting",
  ],
  ["helo", "4.4.2", "conversation with 127.0.0.4[127.0.0.4] timed out while performing the EHLO handshake"],
  ["mail", "4.4.2", "conversation with 127.0.0.4[127.0.0.4] timed out while sending MAIL FROM"],
  ["rcpt", "4.4.2", "conversation with 127.0.0.4[127.0.0.4] timed out while sending RCPT TO"],
  ["data", "4.4.2", "conversation with 127.0.0.4[127.0.0.4] timed out while sending DATA command"],
  ["body", "4.4.2", "conversation with 127.0.0.4[127.0.0.4] timed out while sending message body"],
  [
    "dot",
    "4.4.2",
    "conversation with 127.0.0.4[127.0.0.4] timed out while sending end of data -- message may be sent more than once",
  ],
];

/** A regular expression that matches a string literally. */
function lit(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

test("every smtp_*_timeout: the session stops where the peer stalls and the mail is deferred", async (t) => {
  const servers = new Map<StallPoint, number>();
  for (const [at] of POINTS) servers.set(at, (await startStallServer(t, at)).port);
  const quit = await startStallServer(t, "quit");
  const routes = POINTS.map(([at]) => `${at}.test=smtp:[127.0.0.4]:${servers.get(at)}`);
  routes.push(`quit.test=smtpq:[127.0.0.4]:${quit.port}`);
  const inst = await relayInstance(
    t,
    [
      ...["connect", "helo", "mail", "rcpt", "data_init", "data_xfer", "data_done", "quit"].map(
        (n) => `smtp_${n}_timeout = 1s`,
      ),
      "message_size_limit = 0",
      `transport_maps = inline:{${routes.join(", ")}}`,
    ].join("\n"),
    "smtpq unix - - n - - smtp\n  -o smtp_skip_quit_response=no\n  -o smtp_connection_cache_on_demand=no",
  );
  const ids = new Map<StallPoint, string>();
  for (const [at] of POINTS) {
    // The body stall needs more than the sockets' buffers hold.
    const big = at === "body" ? "x".repeat(76) + "\n" : "";
    const content = `Subject: ${at}\n\n${big.repeat(at === "body" ? 200_000 : 0)}hello\n`;
    ids.set(at, await submitMessage(inst, { rcpts: [`u@${at}.test`], content }));
  }
  for (const [at, dsn, text] of POINTS) {
    const why = text.replace("PORT", String(servers.get(at)));
    await inst.waitLog(
      new RegExp(
        `${ids.get(at)}: to=<u@${at}\\.test>, relay=.*, dsn=${lit(dsn)}, status=deferred \\(${lit(why)}\\)`,
      ),
      30_000,
    );
  }
  const q = await submitMessage(inst, { rcpts: ["u@quit.test"], content: "Subject: quit\n\nhello\n" });
  await inst.waitLog(
    new RegExp(
      `${q}: to=<u@quit\\.test>, relay=127\\.0\\.0\\.4\\[127\\.0\\.0\\.4\\]:${quit.port}, .*status=sent \\(250 2\\.0\\.0 Ok: queued as STALL\\)`,
    ),
    20_000,
  );
  const deadline = Date.now() + 10_000;
  while (quit.closedAt === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.ok(quit.quitAt > 0, "the client sent QUIT");
  const waited = quit.closedAt - quit.quitAt;
  assert.ok(
    waited >= 900 && waited < 5000,
    `the client waited for the QUIT reply for smtp_quit_timeout (${waited} ms)`,
  );
});

test("a parked session that went stale is replaced by a fresh one", async (t) => {
  const srv = await startStallServer(t, "second-mail");
  const inst = await relayInstance(
    t,
    [
      `relayhost = [127.0.0.4]:${srv.port}`,
      `smtp_connection_cache_destinations = [127.0.0.4]:${srv.port}`,
      "smtp_mail_timeout = 1s",
      "smtp_connection_cache_time_limit = 10s",
    ].join("\n"),
  );
  for (let i = 0; i < 2; i++) {
    const id = await submitMessage(inst, {
      rcpts: [`r${i}@remote.test`],
      content: `Subject: stale ${i}\n\nhi\n`,
    });
    await inst.waitLog(
      new RegExp(`${id}: to=<r${i}@remote\\.test>, .*status=sent \\(250 2\\.0\\.0 Ok: queued as STALL\\)`),
      20_000,
    );
  }
  assert.equal(srv.received.filter((l) => l.startsWith("EHLO")).length, 2, "a second session was opened");
  assert.equal(
    srv.received.filter((l) => l.startsWith("MAIL")).length,
    3,
    "the stale session got one MAIL it never answered",
  );
});
