/*
 * queue-file.test - queue files round-trip, and broken ones are rejected with an offset (fast-check)
 *
 * DESCRIPTION
 *   Random valid messages (envelope, attributes, DSN fields, lines long
 *   enough to be split into L records, extracted recipients, short and
 *   long queue IDs) are written with QueueFileWriter and read back with
 *   readEnvelope, contentLines and checkQueueFile. Then the bytes are
 *   mutated (cut, overwritten, inserted, deleted) and the properties are:
 *   no reader throws anything but the documented "... at offset N" error
 *   of contentLines, none hangs (each call has a time limit), every file is
 *   either read as valid or rejected with an offset inside the file, a
 *   file that checkQueueFile accepts reads to its end without error, and
 *   every strict prefix of a file (a crash mid-write) is rejected.
 *   Bounded by numRuns and by time.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { msgInit } from "../util/msg.js";
import { Config } from "./config.js";
import { checkQueueFile } from "./queue-corrupt.js";
import { QueueFileWriter, contentLines, readEnvelope, type Envelope, type Recipient } from "./queue-file.js";
import { QueuePaths } from "./queue-path.js";
import { REC, RecordScanner } from "./rec-codec.js";

const LIMITS = { interruptAfterTimeLimit: 8000, timeout: 10_000 };
const CALL_LIMIT_MS = 5000;
let dir = "";
let paths: QueuePaths;
let serial = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "queue-file-test-"));
  await mkdir(join(dir, "incoming"));
  paths = new QueuePaths(Config.fromText(dir, `queue_directory = ${dir}\n`));
  msgInit({ sink: { write: () => undefined } });
});
after(async () => {
  await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
});

/** Rejects when a promise takes longer than the call limit (a hang). */
async function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not finish in ${CALL_LIMIT_MS} ms`)),
      CALL_LIMIT_MS,
    );
  });
  try {
    return await Promise.race([p, limit]);
  } finally {
    clearTimeout(timer);
  }
}

interface Message {
  long: boolean;
  sender: string;
  filter: string | null;
  attrs: Array<[string, string]>;
  rcpts: Recipient[];
  extracted: string[];
  /** Each line is pieces: all but the last go through part(), the last through line(). */
  lines: Buffer[][];
}

const address = fc.stringMatching(/^[a-z0-9._+-]{1,12}@[a-z0-9.-]{1,12}$/);
const bytes = (max: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a.map((b) => (b === 0x0a ? 0x20 : b))));
const recipient: fc.Arbitrary<Recipient> = fc.record(
  {
    address,
    original: address,
    orcpt: address.map((a) => `rfc822;${a}`),
    notify: fc.integer({ min: 1, max: 15 }),
  },
  { requiredKeys: ["address"] },
);
const message: fc.Arbitrary<Message> = fc.record({
  long: fc.boolean(),
  sender: fc.oneof(fc.constant(""), address),
  filter: fc.option(fc.constantFrom("smtp:[127.0.0.1]:10025", "scan:")),
  attrs: fc.uniqueArray(fc.tuple(fc.stringMatching(/^[a-z_]{1,10}$/), fc.string({ maxLength: 20 })), {
    selector: (t) => t[0],
    maxLength: 3,
  }),
  rcpts: fc.uniqueArray(recipient, { selector: (r) => r.address, minLength: 1, maxLength: 4 }),
  extracted: fc.array(address, { maxLength: 2 }),
  lines: fc.array(fc.array(bytes(90), { minLength: 1, maxLength: 3 }), { maxLength: 12 }),
});

/** Writes a message as cleanup would; returns its path. Lines are split into 32-byte records. */
async function writeMessage(m: Message): Promise<string> {
  const w = await QueueFileWriter.create(paths, m.long);
  if (m.filter !== null) w.filter(m.filter);
  w.sender(m.sender);
  for (const [k, v] of m.attrs) w.attr(k, v);
  for (const r of m.rcpts) w.rcpt(r);
  w.beginContent();
  for (const pieces of m.lines) {
    for (const p of pieces.slice(0, -1)) await w.part(p);
    await w.line(pieces[pieces.length - 1] ?? Buffer.alloc(0), 32);
  }
  w.endContent();
  for (const a of m.extracted) w.rcpt({ address: a });
  await w.commit();
  return paths.path("incoming", w.id);
}

/** Reads all content lines, bounded in time. */
async function readLines(path: string, env: Envelope): Promise<Buffer[]> {
  const out: Buffer[] = [];
  const all = async (): Promise<void> => {
    for await (const l of contentLines(path, env)) out.push(l);
  };
  await bounded(all(), "contentLines");
  return out;
}

void test("random valid messages round-trip through the writer and every reader", async () => {
  const prop = fc.asyncProperty(message, async (m) => {
    const path = await writeMessage(m);
    const r = await bounded(readEnvelope(path), "readEnvelope");
    assert.ok(r.ok, r.ok ? "" : `${r.reason} at ${r.offset}`);
    assert.equal(r.env.sender, m.sender);
    assert.equal(r.env.filter, m.filter ?? undefined);
    assert.deepEqual([...r.env.attrs], m.attrs);
    const want = [...m.rcpts, ...m.extracted.map((address) => ({ address }))];
    assert.deepEqual(
      r.env.recipients.map(({ address, original, orcpt, notify, done }) => ({
        address,
        ...(original !== undefined ? { original } : {}),
        ...(orcpt !== undefined ? { orcpt } : {}),
        ...(notify !== undefined ? { notify } : {}),
        done,
      })),
      want.map((x) => ({ ...x, done: false })),
    );
    const lines = await readLines(path, r.env);
    assert.deepEqual(
      lines.map((l) => l.toString("hex")),
      m.lines.map((p) => Buffer.concat(p).toString("hex")),
    );
    const c = await bounded(checkQueueFile(path), "checkQueueFile");
    assert.ok(c.ok, c.ok ? "" : `${c.reason} at ${c.offset}`);
    await rm(path);
  });
  await fc.assert(prop, { numRuns: 150, ...LIMITS });
});

type Mutation =
  | { kind: "cut"; at: number }
  | { kind: "set"; at: number; bytes: Uint8Array }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; n: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("set" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }),
  }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
);

/** Applies one mutation at a position taken modulo the length. */
function mutate(buf: Buffer, m: Mutation): Buffer {
  const at = m.at % (buf.length + 1);
  switch (m.kind) {
    case "cut":
      return buf.subarray(0, at);
    case "set":
      return Buffer.concat([buf.subarray(0, at), m.bytes, buf.subarray(at + m.bytes.length)]);
    case "insert":
      return Buffer.concat([buf.subarray(0, at), m.bytes, buf.subarray(at)]);
    case "delete":
      return Buffer.concat([buf.subarray(0, at), buf.subarray(at + m.n)]);
  }
}

/** Reads a (possibly broken) file with every reader; returns "valid" or the rejection's offset. */
async function judge(path: string, size: number): Promise<"valid" | number> {
  const r = await bounded(readEnvelope(path), "readEnvelope");
  const c = await bounded(checkQueueFile(path), "checkQueueFile");
  // Both readers name an offset inside the file (a damaged size record cannot send them past its end).
  if (!r.ok)
    assert.ok(Number.isSafeInteger(r.offset) && r.offset >= 0 && r.offset <= size, `offset ${r.offset}`);
  if (!c.ok)
    assert.ok(Number.isSafeInteger(c.offset) && c.offset >= 0 && c.offset <= size, `offset ${c.offset}`);
  if (r.ok) {
    try {
      await readLines(path, r.env);
    } catch (err) {
      assert.ok(err instanceof Error);
      assert.match(err.message, /at offset \d+$/, "contentLines fails only with its documented error");
      assert.ok(!c.ok, "checkQueueFile rejects what contentLines cannot read");
    }
  } else assert.ok(!c.ok, "checkQueueFile rejects what readEnvelope rejects");
  return c.ok ? "valid" : c.offset;
}

void test("mutated files are read as valid or rejected with an offset; readers never throw or hang", async () => {
  const prop = fc.asyncProperty(
    message,
    fc.array(mutation, { minLength: 1, maxLength: 3 }),
    async (m, muts) => {
      const path = await writeMessage(m);
      let data: Buffer = await readFile(path);
      for (const mu of muts) data = mutate(data, mu);
      const broken = join(dir, `broken-${++serial}`);
      await writeFile(broken, data);
      await judge(broken, data.length);
      await rm(broken);
      await rm(path);
    },
  );
  await fc.assert(prop, { numRuns: 400, ...LIMITS });
});

void test("every strict prefix of a queue file (a crash mid-write) is rejected", async () => {
  const prop = fc.asyncProperty(message, async (m) => {
    const path = await writeMessage(m);
    const data = await readFile(path);
    const cut = join(dir, `cut-${++serial}`);
    for (let n = 0; n < data.length; n += Math.max(1, Math.floor(data.length / 60))) {
      await writeFile(cut, data.subarray(0, n));
      const r = await bounded(readEnvelope(cut), "readEnvelope");
      assert.equal(r.ok, false, `a ${n}-byte prefix of ${data.length} bytes must be rejected`);
      assert.notEqual(await judge(cut, n), "valid");
    }
    await rm(cut, { force: true });
    await rm(path);
  });
  await fc.assert(prop, { numRuns: 40, ...LIMITS });
});

void test("a file whose content lost a whole record (the end of content moved) is rejected by every reader", async () => {
  const path = await writeMessage({
    long: false,
    filter: null,
    sender: "s@example.org",
    attrs: [],
    rcpts: [{ address: "r@example.org" }],
    extracted: ["x@example.org"],
    lines: [[Buffer.from("a")], [Buffer.from("")], [Buffer.from("b")]],
  });
  const data = await readFile(path);
  const r = await readEnvelope(path);
  assert.ok(r.ok);
  // Find the empty line's record and cut it out: the record stream stays well formed.
  const scan = new RecordScanner(data, r.env.contentOffset, 1 << 20);
  let cut: [number, number] | null = null;
  while (cut === null) {
    const x = await scan.next();
    assert.ok(x.ok && x.rec !== null);
    if (x.rec.type === REC.LINE && x.rec.payload.length === 0) cut = [x.rec.offset, scan.offset];
  }
  const broken = join(dir, `moved-x-${++serial}`);
  await writeFile(broken, Buffer.concat([data.subarray(0, cut[0]), data.subarray(cut[1])]));
  const e = await readEnvelope(broken);
  assert.equal(e.ok, false, "readEnvelope notices that the end of content is not where the size record says");
  assert.equal((await checkQueueFile(broken)).ok, false);
  await rm(broken);
  await rm(path);
});
