/*
 * milter-proto.test - the milter packet decoder and reply decoder, by example and by fast-check
 *
 * DESCRIPTION
 *   The properties: decodeReply never throws, whatever the bytes; what it
 *   accepts has the shape its type says; the packet decoder never accepts
 *   a length above its cap and finds the same packets whatever the split.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  PacketDecoder,
  SMFIR,
  cstr,
  decodeReply,
  encodePacket,
  u32,
  validSmtpReply,
} from "./milter-proto.js";

const LIMITS = { numRuns: 2000, interruptAfterTimeLimit: 3000 };

test("replies decode to their types; malformed ones are failures", () => {
  const dec = (cmd: number, ...parts: Buffer[]) => decodeReply({ cmd, data: Buffer.concat(parts) });
  assert.deepEqual(dec(SMFIR.ADDHEADER, cstr("X-A"), cstr("v")), {
    kind: "addheader",
    name: "X-A",
    value: "v",
  });
  assert.deepEqual(dec(SMFIR.CHGHEADER, u32(2), cstr("Subject"), cstr("")), {
    kind: "chgheader",
    index: 2,
    name: "Subject",
    value: "",
  });
  assert.deepEqual(dec(SMFIR.REPLYCODE, cstr("550-5.7.1 first\r\n550 5.7.1 second")), {
    kind: "replycode",
    reply: "550-5.7.1 first\r\n550 5.7.1 second",
  });
  assert.equal(dec(SMFIR.REPLYCODE, cstr("250 ok")).kind, "bad");
  assert.equal(dec(SMFIR.ADDHEADER, Buffer.from("X-A\0v")).kind, "bad", "missing NUL");
  assert.equal(dec(SMFIR.ADDHEADER, cstr("Bad Name"), cstr("v")).kind, "bad");
  assert.equal(dec(SMFIR.INSHEADER, Buffer.from([0, 0])).kind, "bad", "short number");
  assert.equal(dec(SMFIR.ACCEPT, Buffer.from("x")).kind, "bad", "trailing data");
  assert.equal(dec(SMFIR.DELRCPT, cstr("<a@b>"), cstr("extra")).kind, "bad");
  assert.equal(dec(0x00).kind, "bad");
  const neg = dec(SMFIR.OPTNEG, u32(6), u32(3), u32(0), u32(2), cstr("{mail_addr} i"));
  assert.equal(neg.kind, "optneg");
  if (neg.kind === "optneg") assert.equal(neg.symlists.get(2), "{mail_addr} i");
  assert.ok(validSmtpReply("421 4.7.0 closing"));
  assert.ok(!validSmtpReply("550 ok\r\n451 mixed"));
});

test("decodeReply never throws and its results are well formed (fast-check)", () => {
  const cmds = fc.constantFrom(...Object.values(SMFIR), 0, 0x7a, 0xff);
  fc.assert(
    fc.property(cmds, fc.uint8Array({ maxLength: 300 }), (cmd, bytes) => {
      const r = decodeReply({ cmd, data: Buffer.from(bytes) });
      if (r.kind === "replycode") assert.ok(/^[45]\d\d/.test(r.reply));
      if (r.kind === "addheader" || r.kind === "chgheader" || r.kind === "insheader")
        assert.ok(!/[\s:]/.test(r.name) && r.name.length > 0);
      if (r.kind === "bad") assert.equal(typeof r.why, "string");
    }),
    LIMITS,
  );
});

test("the packet decoder caps lengths and is split-independent (fast-check)", () => {
  const packet = fc
    .tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 200 }))
    .map(([c, d]) => encodePacket(c, Buffer.from(d)));
  fc.assert(
    fc.property(fc.array(packet, { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 8 }), (pkts, cuts) => {
      const all = Buffer.concat(pkts);
      const whole = new PacketDecoder(1024).push(all);
      assert.ok(whole.ok);
      const dec = new PacketDecoder(1024);
      const got = [];
      let at = 0;
      for (const c of [...cuts.map((n) => n % (all.length + 1))].sort((a, b) => a - b).concat(all.length)) {
        const r = dec.push(all.subarray(at, Math.max(at, c)));
        assert.ok(r.ok);
        got.push(...r.packets);
        at = Math.max(at, c);
      }
      assert.deepEqual(got, whole.packets);
      assert.equal(got.length, pkts.length);
    }),
    LIMITS,
  );
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 4, maxLength: 64 }), (bytes) => {
      const b = Buffer.from(bytes);
      const len = b.readUInt32BE(0);
      const r = new PacketDecoder(100).push(b);
      if (len === 0 || len > 100) assert.equal(r.ok, false);
      else assert.ok(r.ok);
    }),
    LIMITS,
  );
});
