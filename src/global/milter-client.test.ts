/*
 * milter-client.test - the milter client against a scripted fake milter on loopback
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Milter, milterEndpoint, parseProtocol, type MilterConf } from "./milter-client.js";
import { MilterChain } from "./milter-chain.js";
import { SMFIC, SMFIF, SMFIP, SMFIR, cstr, u32, type Packet } from "./milter-proto.js";
import { C, FakeMilter, optneg, reply, script } from "../testing/fake-milter.js";

function conf(port: number, extra: Partial<MilterConf> = {}): MilterConf {
  return {
    name: `inet:127.0.0.1:${port}`,
    defaultAction: "tempfail",
    connectTimeoutMs: 2000,
    commandTimeoutMs: 2000,
    contentTimeoutMs: 2000,
    protocol: "6",
    macros: {
      connect: "j {daemon_name} {daemon_addr} v _",
      helo: "{tls_version}",
      mail: "i {mail_addr}",
      rcpt: "i {rcpt_addr}",
      data: "i",
      eoh: "i",
      eom: "i",
      unknown: "",
    },
    ...extra,
  };
}

const MACROS: Record<string, string> = {
  j: "mx.example",
  daemon_name: "mx.example",
  v: "Postern 0.1.0",
  _: "client.example [192.0.2.1]",
  i: "QID1",
  mail_addr: "a@example.com",
};
const macro = (n: string): string | undefined => MACROS[n];

/** Splits a macro packet into its stage and name/value pairs. */
function macroPairs(p: Packet): { stage: string; pairs: string[] } {
  const parts = p.data.subarray(1).toString("latin1").split("\0");
  parts.pop();
  return { stage: String.fromCharCode(p.data[0] ?? 0), pairs: parts };
}

test("milter_protocol and endpoints parse as Postfix writes them", () => {
  assert.deepEqual(parseProtocol("6"), { version: 6, noHeaderReply: false });
  assert.deepEqual(parseProtocol("4, no_header_reply"), { version: 4, noHeaderReply: true });
  assert.equal(parseProtocol("5"), null);
  assert.equal(parseProtocol("2 6"), null);
  assert.deepEqual(milterEndpoint("inet:127.0.0.1:8891"), {
    ok: true,
    opts: { host: "127.0.0.1", port: 8891 },
  });
  assert.deepEqual(milterEndpoint("inet:[::1]:8891"), { ok: true, opts: { host: "::1", port: 8891 } });
  assert.deepEqual(milterEndpoint("unix:/run/m.sock"), { ok: true, opts: { path: "/run/m.sock" } });
  assert.equal(milterEndpoint("tcp:1.2.3.4:1").ok, false);
  assert.equal(milterEndpoint("inet:host:99999").ok, false);
});

test("negotiation: events the milter declines are not sent, no-reply events are not waited for, macros go first", async (t) => {
  const f = await new FakeMilter(
    script(optneg(6, SMFIF.ADDHDRS, SMFIP.NOHELO | SMFIP.NR_RCPT), { R: null }),
  ).start();
  t.after(() => f.stop());
  const m = new Milter(conf(f.port), macro);
  await m.open();
  assert.deepEqual(m.negotiated, {
    version: 6,
    actions: SMFIF.ADDHDRS,
    protocol: SMFIP.NOHELO | SMFIP.NR_RCPT,
  });
  const opt = f.seen[0] as Packet;
  assert.equal(opt.data.readUInt32BE(0), 6);
  assert.equal(opt.data.readUInt32BE(4), 0x1ff);
  assert.deepEqual(await m.connect("client.example", "192.0.2.1", 4711), { kind: "continue" });
  assert.deepEqual(await m.helo("client.example"), { kind: "continue" });
  assert.deepEqual(await m.mail(["<a@example.com>", "SIZE=10"]), { kind: "continue" });
  assert.deepEqual(await m.rcpt(["<b@example.net>"]), { kind: "continue" });
  m.quit();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(f.cmds, "ODCDMDRQ");
  const conMacros = macroPairs(f.seen[1] as Packet);
  assert.equal(conMacros.stage, "C");
  assert.deepEqual(conMacros.pairs, [
    "j",
    "mx.example",
    "{daemon_name}",
    "mx.example",
    "v",
    "Postern 0.1.0",
    "_",
    "client.example [192.0.2.1]",
  ]);
  const con = (f.seen[2] as Packet).data;
  assert.equal(con.toString("latin1"), "client.example\0" + "4" + "\x12\x67" + "192.0.2.1\0");
  assert.equal((f.seen[4] as Packet).data.toString("latin1"), "<a@example.com>\0SIZE=10\0");
});

test("a milter with an older version gets only the events of its version", async (t) => {
  const f = await new FakeMilter(script(optneg(2, 0, 0))).start();
  t.after(() => f.stop());
  const m = new Milter(conf(f.port), () => undefined);
  await m.open();
  await m.connect("c", "192.0.2.1", 1);
  await m.mail(["<a@b>"]);
  await m.data();
  await m.unknown("XYZZY");
  m.quit();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(f.cmds, "OCMQ", "DATA (v4) and UNKNOWN (v3) are not sent to a version 2 milter");
});

test("a milter that claims a newer version, or unknown actions, gets the default action", async (t) => {
  const f1 = await new FakeMilter(script(optneg(6, 0, 0))).start();
  const f2 = await new FakeMilter(script(optneg(6, 0x10000, 0))).start();
  t.after(() => f1.stop());
  t.after(() => f2.stop());
  const m1 = new Milter(conf(f1.port, { protocol: "4" }), () => undefined);
  await m1.open();
  assert.equal(m1.failed, true);
  assert.deepEqual(await m1.connect("c", "1.2.3.4", 1), {
    kind: "reject",
    reply: "451 4.7.1 Service unavailable - try again later",
  });
  const m2 = new Milter(conf(f2.port, { defaultAction: "reject" }), () => undefined);
  await m2.open();
  assert.deepEqual(await m2.mail(["<a@b>"]), { kind: "reject", reply: "550 5.5.0 Service unavailable" });
});

test("replies: reject, tempfail, replycode, discard, shutdown and accept", async (t) => {
  let next: Buffer = C;
  const f = await new FakeMilter((p) =>
    p.cmd === SMFIC.OPTNEG
      ? [optneg(6, 0, 0)]
      : p.cmd === SMFIC.MACRO || p.cmd === SMFIC.ABORT
        ? null
        : [next],
  ).start();
  t.after(() => f.stop());
  const m = new Milter(conf(f.port), () => undefined);
  await m.open();
  await m.connect("c", "192.0.2.1", 1);
  next = reply(SMFIR.REJECT);
  assert.deepEqual(await m.mail(["<a@b>"]), { kind: "reject", reply: "550 5.7.1 Command rejected" });
  next = reply(SMFIR.TEMPFAIL);
  assert.deepEqual(await m.rcpt(["<c@d>"]), {
    kind: "reject",
    reply: "451 4.7.1 Service unavailable - try again later",
  });
  next = reply(SMFIR.REPLYCODE, cstr("554 5.7.1 100%% spam"));
  assert.deepEqual(await m.rcpt(["<c@d>"]), { kind: "reject", reply: "554 5.7.1 100% spam" });
  next = reply(SMFIR.DISCARD);
  assert.deepEqual(await m.rcpt(["<c@d>"]), { kind: "discard" });
  const before = f.seen.length;
  assert.deepEqual(await m.rcpt(["<e@f>"]), { kind: "continue" }, "no more events for a discarded message");
  assert.equal(f.seen.length, before);
  next = reply(SMFIR.ACCEPT);
  assert.deepEqual(await m.mail(["<a@b>"]), { kind: "accept" });
  assert.deepEqual(await m.rcpt(["<c@d>"]), { kind: "continue" });
  next = reply(SMFIR.SHUTDOWN);
  assert.deepEqual(await m.mail(["<a@b>"]), {
    kind: "shutdown",
    reply: "421 4.7.0 Server closing connection",
  });
  next = reply(SMFIR.REPLYCODE, cstr("250 ok"));
  assert.deepEqual(await m.helo("x"), { kind: "shutdown", reply: "421 4.7.0 Server closing connection" });
});

test("a rejected connect refuses the session's later events; a malformed replycode is the default action", async (t) => {
  let next: Buffer = reply(SMFIR.REPLYCODE, cstr("421 4.7.0 go away"));
  const f = await new FakeMilter((p) =>
    p.cmd === SMFIC.OPTNEG ? [optneg(6, 0, 0)] : p.cmd === SMFIC.MACRO ? null : [next],
  ).start();
  t.after(() => f.stop());
  const m = new Milter(conf(f.port), () => undefined);
  await m.open();
  assert.deepEqual(await m.connect("c", "192.0.2.1", 1), { kind: "reject", reply: "421 4.7.0 go away" });
  assert.deepEqual(await m.mail(["<a@b>"]), { kind: "reject", reply: "421 4.7.0 go away" });
  const m2 = new Milter(conf(f.port), () => undefined);
  await m2.open();
  next = reply(SMFIR.REPLYCODE, cstr("250 2.0.0 fine"));
  assert.deepEqual(await m2.connect("c", "192.0.2.1", 1), {
    kind: "reject",
    reply: "451 4.7.1 Service unavailable - try again later",
  });
  assert.equal(m2.failed, true);
});

test("end of message: every modification, progress, quarantine", async (t) => {
  const eom = [
    reply(SMFIR.PROGRESS),
    reply(SMFIR.ADDHEADER, cstr("X-Added"), cstr("yes")),
    reply(SMFIR.INSHEADER, u32(0), cstr("DKIM-Signature"), cstr("v=1; a=rsa-sha256")),
    reply(SMFIR.CHGHEADER, u32(1), cstr("Subject"), cstr("")),
    reply(SMFIR.ADDRCPT_PAR, cstr("<new@example.net>"), cstr("NOTIFY=NEVER")),
    reply(SMFIR.ADDRCPT, cstr("<plain@example.net>")),
    reply(SMFIR.DELRCPT, cstr("<old@example.net>")),
    reply(SMFIR.CHGFROM, cstr("<bounce@example.com>"), cstr("SIZE=5")),
    reply(SMFIR.REPLBODY, Buffer.from("new body\r\n")),
    reply(SMFIR.QUARANTINE, cstr("looks odd")),
  ];
  const f = await new FakeMilter(script(optneg(6, 0x1ff, 0), { E: eom })).start();
  t.after(() => f.stop());
  const chain = new MilterChain([conf(f.port)], () => undefined);
  await chain.open();
  await chain.connect("c", "192.0.2.1", 1);
  await chain.mail(["<a@b>"]);
  for (const l of ["Subject: hi", "X-Long: one", "\ttwo", "", "body line", ".dot"])
    await chain.line(Buffer.from(l));
  const r = await chain.eom();
  assert.deepEqual(r.verdict, { kind: "continue" });
  assert.equal(r.hold, "looks odd");
  assert.deepEqual(
    r.edits.map((e) => e.op),
    ["addheader", "insheader", "chgheader", "addrcpt", "addrcpt", "delrcpt", "chgfrom", "replbody"],
  );
  assert.deepEqual(r.edits[3], { op: "addrcpt", address: "<new@example.net>", args: "NOTIFY=NEVER" });
  assert.deepEqual(r.edits[6], { op: "chgfrom", address: "<bounce@example.com>", args: "SIZE=5" });
  const headers = f.seen.filter((p) => p.cmd === SMFIC.HEADER).map((p) => p.data.toString("latin1"));
  assert.deepEqual(headers, ["Subject\0hi\0", "X-Long\0one\n\ttwo\0"]);
  const body = f.seen.filter((p) => p.cmd === SMFIC.BODY).map((p) => p.data.toString("latin1"));
  assert.deepEqual(body, ["body line\r\n.dot\r\n"]);
  assert.ok(f.cmds.includes("NDTB") || f.cmds.includes("NB"), `EOH precedes the body: ${f.cmds}`);
});

test("a modification that was not negotiated is a protocol error and the default action", async (t) => {
  const f = await new FakeMilter(
    script(optneg(6, SMFIF.ADDHDRS, 0), { E: [reply(SMFIR.DELRCPT, cstr("<x@y>")), C] }),
  ).start();
  t.after(() => f.stop());
  const m = new Milter(conf(f.port, { defaultAction: "quarantine" }), () => undefined);
  await m.open();
  await m.mail(["<a@b>"]);
  const r = await m.eom();
  assert.deepEqual(r, { verdict: { kind: "hold", reason: "default_action" }, edits: [] });
});

test("a silent milter costs at most its timeout; a refused connection follows milter_default_action", async (t) => {
  const f = await new FakeMilter(script(optneg(6, 0, 0), { M: null })).start();
  t.after(() => f.stop());
  const m = new Milter(conf(f.port, { commandTimeoutMs: 300 }), () => undefined);
  await m.open();
  const t0 = Date.now();
  assert.deepEqual(await m.mail(["<a@b>"]), {
    kind: "reject",
    reply: "451 4.7.1 Service unavailable - try again later",
  });
  const took = Date.now() - t0;
  assert.ok(took >= 250 && took < 3000, `took ${took} ms`);
  await f.stop();
  const closed = new Milter(conf(f.port, { defaultAction: "accept" }), () => undefined);
  await closed.open();
  assert.equal(closed.failed, true);
  assert.deepEqual(await closed.connect("c", "192.0.2.1", 1), { kind: "continue" });
  assert.deepEqual((await closed.eom()).verdict, { kind: "continue" });
});

test("an oversized or garbage reply ends the conversation with the default action", async (t) => {
  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(50_000_000);
  const f = await new FakeMilter(script(optneg(6, 0, 0), { M: [huge], R: [reply(0x7a)] })).start();
  t.after(() => f.stop());
  const m = new Milter(conf(f.port, { defaultAction: "reject" }), () => undefined);
  await m.open();
  assert.deepEqual(await m.mail(["<a@b>"]), { kind: "reject", reply: "550 5.5.0 Service unavailable" });
  const m2 = new Milter(conf(f.port), () => undefined);
  await m2.open();
  assert.equal((await m2.rcpt(["<a@b>"])).kind, "reject");
  assert.equal(m2.failed, true);
});

test("skip: no more body chunks after SMFIR_SKIP; the next milter in the chain is not asked after a reject", async (t) => {
  const f1 = await new FakeMilter(script(optneg(6, 0, 0), { B: [reply(SMFIR.SKIP)] })).start();
  const f2 = await new FakeMilter(script(optneg(6, 0, 0), { M: [reply(SMFIR.REJECT)] })).start();
  const f3 = await new FakeMilter(script(optneg(6, 0, 0))).start();
  t.after(() => Promise.all([f1.stop(), f2.stop(), f3.stop()]));
  const chain = new MilterChain([conf(f1.port), conf(f2.port), conf(f3.port)], () => undefined);
  await chain.open();
  assert.deepEqual(await chain.mail(["<a@b>"]), { kind: "reject", reply: "550 5.7.1 Command rejected" });
  assert.equal(f3.cmds, "O");
  const one = new MilterChain([conf(f1.port)], () => undefined);
  await one.open();
  await one.mail(["<a@b>"]);
  await one.line(Buffer.from(""));
  for (let i = 0; i < 3000; i++) await one.line(Buffer.alloc(60, 0x61));
  await one.eom();
  const bodies = f1.seen.filter((p) => p.cmd === SMFIC.BODY).length;
  assert.equal(bodies, 1, "after SKIP the remaining chunks are not sent");
});
