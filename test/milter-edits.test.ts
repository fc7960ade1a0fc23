/*
 * milter-edits.test - smtpd_milters verdicts and modifications reach the client and the queue file
 *
 * DESCRIPTION
 *   A scripted milter (src/testing/fake-milter.ts) answers smtpd's events.
 *   Its end-of-message modifications (headers added, inserted, changed and
 *   deleted, recipients added and deleted, the sender changed, the body
 *   replaced) must be in the queue file that cleanup publishes (read back
 *   with postcat, which also checks that the file is well formed); its
 *   refusals reach the SMTP client with the milter's reply and are logged
 *   as Postfix logs them; a quarantine puts the message in hold/; the
 *   macros carry Postfix's names and values.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SMFIC, SMFIR, cstr, u32, type Packet } from "../src/global/milter-proto.js";
import { C, FakeMilter, optneg, reply } from "../src/testing/fake-milter.js";
import { runCli } from "../src/testing/run-cli.js";
import { smtpCmd, smtpHello, smtpdInstance, type SmtpdInstance } from "../src/testing/smtpd-instance.js";

/** Runs one transaction; returns the replies to RCPT (each) and to the end of DATA. */
async function transaction(
  inst: SmtpdInstance,
  rcpts: string[],
  content: string,
): Promise<{ rcpt: string[]; end: string }> {
  const c = await smtpHello(inst.port);
  assert.equal(await smtpCmd(c, "MAIL FROM:<sender@example.org> SIZE=100"), "250 2.1.0 Ok");
  const rcpt: string[] = [];
  for (const r of rcpts) rcpt.push(await smtpCmd(c, `RCPT TO:<${r}>`));
  assert.match(await smtpCmd(c, "DATA"), /^354 /);
  c.send(content.replace(/\n/g, "\r\n") + ".");
  const end = await smtpCmd(c, null);
  await smtpCmd(c, "QUIT");
  return { rcpt, end };
}

/** A fake milter: negotiation with every action, "continue" to all, and replies per event letter. */
async function milter(
  t: { after: (fn: () => Promise<void>) => void },
  over: (p: Packet) => Buffer[] | null | undefined,
): Promise<FakeMilter> {
  const f = await new FakeMilter((p) => {
    const o = over(p);
    if (o !== undefined) return o;
    if (p.cmd === SMFIC.OPTNEG) return [optneg(6, 0x1ff, 0)];
    if (p.cmd === SMFIC.MACRO || p.cmd === SMFIC.ABORT || p.cmd === SMFIC.QUIT) return null;
    return [C];
  }).start();
  t.after(() => f.stop());
  return f;
}

const BODY = "Subject: original\nX-Remove: me\nFrom: sender@example.org\n\noriginal body\n";

test("end-of-message modifications are in the published queue file", async (t) => {
  const eom = [
    reply(SMFIR.ADDHEADER, cstr("X-Milter"), cstr("added")),
    reply(SMFIR.INSHEADER, u32(0), cstr("X-First"), cstr("on top")),
    reply(SMFIR.CHGHEADER, u32(1), cstr("Subject"), cstr("changed subject")),
    reply(SMFIR.CHGHEADER, u32(1), cstr("X-Remove"), cstr("")),
    reply(SMFIR.ADDRCPT_PAR, cstr("<extra@example.org>"), cstr("NOTIFY=NEVER")),
    reply(SMFIR.DELRCPT, cstr("<gone@example.org>")),
    reply(SMFIR.CHGFROM, cstr("<new-sender@example.org>")),
    reply(SMFIR.REPLBODY, Buffer.from("replaced body\r\nline two\r\n")),
    C,
  ];
  const f = await milter(t, (p) => (p.cmd === SMFIC.BODYEOB ? eom : undefined));
  const inst = await smtpdInstance(t, `smtpd_milters = inet:127.0.0.1:${f.port}\n`);
  const r = await transaction(inst, ["keep@example.org", "gone@example.org"], BODY);
  const m = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]+)$/.exec(r.end);
  assert.ok(m, r.end);
  const cat = await runCli("postcat", ["-c", inst.etc, "-q", m[1] ?? ""]);
  assert.equal(cat.code, 0, cat.stderr + cat.stdout);
  const out = cat.stdout;
  assert.match(out, /^sender: new-sender@example\.org$/m);
  assert.match(out, /^recipient: keep@example\.org$/m);
  assert.match(out, /^recipient: extra@example\.org$/m);
  assert.doesNotMatch(out, /^recipient: gone@example\.org$/m);
  const headers = out.slice(
    out.indexOf("*** MESSAGE CONTENTS"),
    out.indexOf("\n\n", out.indexOf("*** MESSAGE CONTENTS")),
  );
  assert.match(headers, /MESSAGE CONTENTS [^\n]*\nX-First: on top\nReceived: from client\.example/);
  assert.match(headers, /^Subject: changed subject$/m);
  assert.match(headers, /^X-Milter: added$/m);
  assert.doesNotMatch(out, /X-Remove|original body|Subject: original/);
  assert.match(out, /\n\nreplaced body\nline two\n/);
  const headerEvents = f.seen.filter((p) => p.cmd === SMFIC.HEADER).map((p) => p.data.toString("latin1"));
  assert.ok(headerEvents.includes("Subject\0original\0"), headerEvents.join("|"));
});

test("milter refusals reach the client and the log; quarantine holds the message; macros", async (t) => {
  const f = await milter(t, (p) => {
    const d = p.data.toString("latin1");
    if (p.cmd === SMFIC.RCPT && d.startsWith("<bad@"))
      return [reply(SMFIR.REPLYCODE, cstr("550 5.7.1 no such luck"))];
    if (p.cmd === SMFIC.BODYEOB && spam) return [reply(SMFIR.REPLYCODE, cstr("554 5.7.1 Spam detected"))];
    if (p.cmd === SMFIC.BODYEOB) return [reply(SMFIR.QUARANTINE, cstr("suspicious")), C];
    return undefined;
  });
  let spam = true;
  const inst = await smtpdInstance(
    t,
    `smtpd_milters = inet:127.0.0.1:${f.port}\nmilter_macro_daemon_name = ORIGINATING\n`,
  );
  const r = await transaction(inst, ["bad@example.org", "good@example.org"], BODY);
  assert.deepEqual(r.rcpt, ["550 5.7.1 no such luck", "250 2.1.5 Ok"]);
  assert.equal(r.end, "554 5.7.1 Spam detected");
  await inst.waitLog(
    /[0-9A-Z]+: milter-reject: RCPT from unknown\[127\.0\.0\.1\]: 550 5\.7\.1 no such luck; from=<sender@example\.org> to=<bad@example\.org> proto=ESMTP helo=<client\.example>/,
  );
  await inst.waitLog(
    /[0-9A-Z]+: milter-reject: END-OF-MESSAGE from unknown\[127\.0\.0\.1\]: 5\.7\.1 Spam detected; from=<sender@example\.org> to=<good@example\.org> proto=ESMTP helo=<client\.example>/,
  );
  spam = false;
  const held = await transaction(inst, ["good@example.org"], BODY);
  const id = /queued as ([0-9A-Z]+)/.exec(held.end)?.[1] ?? "";
  await inst.waitLog(
    new RegExp(`${id}: milter-hold: END-OF-MESSAGE from unknown\\[127\\.0\\.0\\.1\\]: suspicious;`),
  );
  const cat = await runCli("postcat", ["-c", inst.etc, "-q", id]);
  assert.match(cat.stdout, /^\*\*\* ENVELOPE RECORDS hold\//m, cat.stdout);
  const macros = f.seen
    .filter((p) => p.cmd === SMFIC.MACRO)
    .map(
      (p) =>
        `${String.fromCharCode(p.data[0] ?? 0)}:${p.data.subarray(1).toString("latin1").split("\0").join(",")}`,
    );
  assert.ok(
    macros.includes(
      "C:j,mx.example.org,{daemon_name},ORIGINATING,{daemon_addr},127.0.0.1,v,Postern 0.1.0,_,unknown [127.0.0.1],",
    ),
    macros.join("\n"),
  );
  assert.ok(
    macros.some((m) => /^M:\{mail_addr\},sender@example\.org,\{mail_host\},/.test(m)),
    macros.join("\n"),
  );
  assert.ok(
    macros.some((m) => /^R:i,[0-9A-Z]+,\{rcpt_addr\},good@example\.org,/.test(m)),
    macros.join("\n"),
  );
});
