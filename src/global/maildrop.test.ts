/*
 * maildrop.test - the maildrop file: written by sendmail, read as untrusted input by pickup
 *
 * DESCRIPTION
 *   A file written by MaildropWriter reads back event by event; every kind
 *   of malformed file (wrong order, unknown records, bad attributes and
 *   addresses, oversized content, truncation, trailing data) is a failure
 *   that names the problem, never an exception; random bytes never throw.
 *   As root, the identity proof accepts only a fresh, single-link file
 *   made in the (set-group-ID) maildrop directory.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { MaildropWriter } from "./maildrop.js";
import { MaildropReader, type MaildropEvent } from "./maildrop-reader.js";
import { REC, encodeRecord, type RecType } from "./rec-codec.js";
import { checkProof, createProof, makeNonce } from "./uid-proof.js";

/** A queue directory with a maildrop/ of mode 3733. */
function queueDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "postern-md-"));
  mkdirSync(join(dir, "maildrop"));
  chmodSync(join(dir, "maildrop"), 0o3733);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Reads a file with the reader; the events, or "error: reason". */
async function readAll(
  path: string,
  limits = { contentMax: 0, rcptMax: 1000 },
): Promise<Array<MaildropEvent | string>> {
  const fh = await open(path, "r");
  try {
    const r = new MaildropReader(fh, limits);
    const out: Array<MaildropEvent | string> = [];
    for (;;) {
      const s = await r.next();
      if (!s.ok) return [...out, `error: ${s.reason}`];
      if (s.ev === null) return out;
      out.push(s.ev);
    }
  } finally {
    await fh.close();
  }
}

/** Writes records to a file and reads them back; the last event or the error. */
async function verdict(
  dir: string,
  recs: Array<[RecType, string]>,
  limits?: { contentMax: number; rcptMax: number },
): Promise<string> {
  const path = join(dir, "f");
  writeFileSync(path, Buffer.concat(recs.map(([t, p]) => encodeRecord(t, p))));
  const evs = await readAll(path, limits);
  const last = evs[evs.length - 1];
  return typeof last === "string" ? last : (last?.kind ?? "nothing");
}

test("a written file reads back; complete files are group-readable, long lines come in pieces", async (t) => {
  const dir = queueDir(t);
  const w = await MaildropWriter.create(dir, { contentMax: 100_000 });
  w.attr("rewrite_context", "local");
  w.attr("extract", "yes");
  w.sender("alice");
  w.rcpt({ address: "bob@example.com", notify: 6 });
  w.beginContent();
  await w.write(Buffer.from("Subject: hi"), true);
  await w.write(Buffer.from("y".repeat(5000)), false);
  await w.write(Buffer.from("z"), true);
  await w.commit();
  const path = join(dir, "maildrop", w.name);
  assert.equal(statSync(path).mode & 0o777, 0o640);
  const evs = await readAll(path);
  assert.deepEqual(
    evs.map((e) =>
      typeof e === "string"
        ? e
        : e.kind === "line"
          ? `line ${e.data.length}${e.complete ? "" : "+"}`
          : JSON.stringify(e),
    ),
    [
      '{"kind":"attr","name":"rewrite_context","value":"local"}',
      '{"kind":"attr","name":"extract","value":"yes"}',
      '{"kind":"sender","address":"alice"}',
      '{"kind":"rcpt","address":"bob@example.com","notify":6}',
      '{"kind":"content"}',
      "line 11",
      "line 2048+",
      "line 2048+",
      "line 904+",
      "line 1",
      '{"kind":"end"}',
    ],
  );
});

test("the writer refuses what pickup would refuse", async (t) => {
  const dir = queueDir(t);
  const w = await MaildropWriter.create(dir, { contentMax: 10 });
  assert.throws(() => w.sender("a\nb"), { code: "EBADADDR" });
  assert.throws(() => w.attr("evil", "x"), RangeError);
  w.sender("a");
  w.beginContent();
  await assert.rejects(w.write(Buffer.alloc(20), true), { code: "EFBIG" });
  await w.abort();
});

test("malformed files are failures with a reason", async (t) => {
  const dir = queueDir(t);
  const S: [RecType, string] = [REC.SENDER, "a"];
  const M: [RecType, string] = [REC.MESSAGE, ""];
  const TAIL: Array<[RecType, string]> = [
    [REC.XTRA, ""],
    [REC.END, ""],
  ];
  const cases: Array<[string, Array<[RecType, string]>, string]> = [
    ["good", [S, [REC.RCPT, "b"], M, [REC.LINE, "x"], ...TAIL], "end"],
    ["no sender", [[REC.RCPT, "b"], M, ...TAIL], "error: recipient before the sender record"],
    ["two senders", [S, S, M, ...TAIL], "error: more than one sender record"],
    [
      "attribute after sender",
      [S, [REC.ATTR, "encoding=8bit"], M, ...TAIL],
      "error: attribute after the sender record",
    ],
    ["unknown attribute", [[REC.ATTR, "content_filter=smtp:x"], S, M, ...TAIL], "error: unknown attribute"],
    [
      "a user may not make a verify probe",
      [[REC.ATTR, "trace_flags=1"], S, M, ...TAIL],
      "error: attribute trace_flags: bad value",
    ],
    [
      "bad attribute value",
      [[REC.ATTR, "encoding=binary"], S, M, ...TAIL],
      "error: attribute encoding: bad value",
    ],
    [
      "twice",
      [[REC.ATTR, "encoding=8bit"], [REC.ATTR, "encoding=7bit"], S, M, ...TAIL],
      "error: attribute encoding given twice",
    ],
    [
      "control in address",
      [S, [REC.RCPT, "b\r\nRCPT TO:<c>"], M, ...TAIL],
      "error: recipient: control character in address",
    ],
    [
      "long address",
      [S, [REC.RCPT, "b".repeat(2049)], M, ...TAIL],
      "error: recipient: address longer than 2048 bytes",
    ],
    [
      "notify alone",
      [S, [REC.DSN_NOTIFY, "2"], M, ...TAIL],
      "error: DSN NOTIFY record not followed by a recipient",
    ],
    [
      "bad notify",
      [S, [REC.DSN_NOTIFY, "99"], [REC.RCPT, "b"], M, ...TAIL],
      "error: malformed DSN NOTIFY record",
    ],
    [
      "queue-file record",
      [[REC.SIZE, "1"], S, M, ...TAIL],
      "error: unexpected record type C in the envelope",
    ],
    ["done recipient", [S, [REC.DONE, "b"], M, ...TAIL], "error: unexpected record type D in the envelope"],
    [
      "envelope in content",
      [S, M, [REC.RCPT, "b"], ...TAIL],
      "error: unexpected record type R in the content",
    ],
    ["no end", [S, M, [REC.XTRA, ""]], "error: file ends without an end record (truncated)"],
    ["after end", [S, M, ...TAIL, [REC.LINE, "x"]], "error: data after the end record"],
  ];
  for (const [name, recs, want] of cases) assert.equal(await verdict(dir, recs), want, name);
  const big: Array<[RecType, string]> = [S, M, [REC.LINE, "x".repeat(100)], ...TAIL];
  assert.equal(
    await verdict(dir, big, { contentMax: 50, rcptMax: 10 }),
    "error: content larger than 50 bytes",
  );
  const many: Array<[RecType, string]> = [S, [REC.RCPT, "a"], [REC.RCPT, "b"], [REC.RCPT, "c"], M, ...TAIL];
  assert.equal(await verdict(dir, many, { contentMax: 0, rcptMax: 2 }), "error: more than 2 recipients");
  const huge = join(dir, "huge");
  writeFileSync(
    huge,
    Buffer.concat([encodeRecord(REC.SENDER, "a"), Buffer.from([REC.LINE, 0xff, 0xff, 0xff, 0x7f])]),
  );
  const last = (await readAll(huge)).pop();
  assert.match(typeof last === "string" ? last : "", /^error: record length \d+ exceeds the limit 4096$/);
});

test("random bytes never make the reader throw", async (t) => {
  const dir = queueDir(t);
  const path = join(dir, "fuzz");
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
      writeFileSync(path, bytes);
      const evs = await readAll(path);
      assert.ok(evs.length >= 0);
    }),
    { numRuns: 300 },
  );
});

test("identity proofs: the creator's uid, and nothing a user can fake", async (t) => {
  assert.equal(process.getuid?.(), 0, "run the suite as root (CI does)");
  const dir = queueDir(t);
  chownSync(join(dir, "maildrop"), 8, 8);
  const n1 = makeNonce();
  assert.equal(await createProof(dir, n1), null);
  assert.deepEqual(await checkProof(dir, n1), { ok: true, uid: 0 });
  assert.deepEqual(await checkProof(dir, n1), { ok: false, reason: "no proof file" }, "a proof is used once");
  const n2 = makeNonce();
  const outside = join(dir, "elsewhere");
  writeFileSync(outside, "");
  chownSync(outside, 4242, 4242);
  linkSync(outside, join(dir, "maildrop", `cred.${n2}`));
  assert.deepEqual(await checkProof(dir, n2), { ok: false, reason: "proof file has more than one link" });
  const n3 = makeNonce();
  writeFileSync(join(dir, "maildrop", `cred.${n3}`), "");
  chownSync(join(dir, "maildrop", `cred.${n3}`), 4242, 4242);
  assert.deepEqual(await checkProof(dir, n3), {
    ok: false,
    reason: "proof file was not created in the maildrop directory",
  });
  assert.equal(await createProof(dir, "../../etc/passwd"), "malformed nonce from the server");
});
