/*
 * mail-copy.test - delivery formats of a queued message
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { MAIL_COPY, asctime, deliveredKey, deliveredTo, mailCopy } from "./mail-copy.js";

/** The lines as content records would give them. */
function* lines(text: string): Generator<Buffer> {
  for (const l of text.split("\n")) yield Buffer.from(l);
}

/** Collects the output. */
async function out(gen: AsyncGenerator<Buffer>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const b of gen) parts.push(b);
  return Buffer.concat(parts).toString("utf8");
}

const NOW = new Date(2003, 10, 3, 21, 38, 0);

test("asctime pads the day with a space, as mbox readers expect", () => {
  assert.equal(asctime(NOW).slice(4), "Nov  3 21:38:00 2003");
});

test("mbox: From_ line, Return-Path, X-Original-To, Delivered-To, >From quoting, blank line", async () => {
  const text = await out(
    mailCopy(lines("Subject: hi\n\nFrom me\n>From you\nend"), {
      flags: MAIL_COPY.MBOX,
      sender: "a b@example.org",
      origRcpt: "list@example.com",
      delivered: "u@example.com",
      now: NOW,
    }),
  );
  assert.equal(
    text,
    `From "a b"@example.org  ${asctime(NOW)}\nReturn-Path: <"a b"@example.org>\nX-Original-To: list@example.com\nDelivered-To: u@example.com\nSubject: hi\n\n>From me\n>From you\nend\n\n`,
  );
});

test("the null sender is MAILER-DAEMON in From_ and <> in Return-Path; no X-Original-To without one", async () => {
  const text = await out(
    mailCopy(lines("x"), { flags: MAIL_COPY.MBOX, sender: "", origRcpt: "", delivered: "u@h", now: NOW }),
  );
  assert.match(text, /^From MAILER-DAEMON {2}.*\nReturn-Path: <>\nDelivered-To: u@h\nx\n\n$/);
});

test("pipe options: dot-stuffing and CRLF line ends", async () => {
  const text = await out(
    mailCopy(lines(".hidden\nok"), { flags: MAIL_COPY.DOT, sender: "s@h", eol: "\r\n" }),
  );
  assert.equal(text, "..hidden\r\nok\r\n");
});

test("long messages come in bounded chunks", async () => {
  const many = Array.from({ length: 5000 }, (_, i) => `line ${i} ${"z".repeat(50)}`).join("\n");
  let chunks = 0;
  let size = 0;
  for await (const b of mailCopy(lines(many), { flags: 0, sender: "s@h" })) {
    chunks++;
    size += b.length;
    assert.ok(b.length < 70_000);
  }
  assert.ok(chunks > 1);
  assert.equal(size, many.length + 1);
});

test("deliveredTo reads Delivered-To headers of the header only, folded", async () => {
  const seen = await deliveredTo(
    lines(
      "Received: from x\n by y\nDelivered-To: User@Example.COM\nSubject: s\n\nDelivered-To: body@example.com",
    ),
  );
  assert.deepEqual([...seen], ["user@example.com"]);
  assert.ok(seen.has(deliveredKey("USER@example.com")));
});
