/*
 * sendmail-input.test - how sendmail reads a message from standard input
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { LineSource, MessageLines, type FixEol } from "./sendmail-input.js";

/** Reads a message the way sendmail does; complete lines as text, pieces marked with "+". */
async function read(
  input: string | string[],
  opts: { dotEnds?: boolean; fixEol?: FixEol; piece?: number } = {},
): Promise<string[]> {
  const chunks = (Array.isArray(input) ? input : [input]).map((c) => Buffer.from(c, "latin1"));
  const lines = new MessageLines(new LineSource(Readable.from(chunks), opts.piece ?? 2048), {
    dotEnds: opts.dotEnds ?? true,
    fixEol: opts.fixEol ?? "always",
  });
  const out: string[] = [];
  for (let l = await lines.next(); l !== null; l = await lines.next())
    out.push(l.data.toString("latin1") + (l.complete ? "" : "+"));
  return out;
}

test("bare LF and CRLF input, and a last line without a newline", async () => {
  assert.deepEqual(await read("a\nb\r\nc"), ["a", "b", "c"]);
  assert.deepEqual(await read("a\r\r\n"), ["a"]);
  assert.deepEqual(await read("a\r\nb\r\n", { fixEol: "never" }), ["a\r", "b\r"]);
  assert.deepEqual(await read("a\nb\r\n", { fixEol: "strict" }), ["a", "b\r"]);
  assert.deepEqual(await read("a\r\nb\r\n", { fixEol: "strict" }), ["a", "b"]);
});

test("a line with only a dot ends the message unless -i", async () => {
  assert.deepEqual(await read("a\n.\nb\n"), ["a"]);
  assert.deepEqual(await read("a\n.\r\nb\n"), ["a"]);
  assert.deepEqual(await read("a\n.\nb\n", { dotEnds: false }), ["a", ".", "b"]);
  assert.deepEqual(await read("a\n..\n"), ["a", ".."], "no dot-unstuffing outside SMTP");
});

test("leading From_ lines are dropped, later ones kept", async () => {
  assert.deepEqual(await read("From alice Thu Nov 20\n>From x\nSubject: s\nFrom y\n"), [
    "Subject: s",
    "From y",
  ]);
});

test("long lines come in pieces, whatever the chunking", async () => {
  const long = "x".repeat(25);
  assert.deepEqual(await read(`${long}\nend\n`, { piece: 10 }), [
    "xxxxxxxxxx+",
    "xxxxxxxxxx+",
    "xxxxx",
    "end",
  ]);
  assert.deepEqual(await read(["xxxxxx", "xxxxxxx", "xxxxxxxxxxxx\n"], { piece: 10 }), [
    "xxxxxxxxxx+",
    "xxxxxxxxxx+",
    "xxxxx",
  ]);
  assert.deepEqual(
    await read(`${"y".repeat(9)}\r\n`, { piece: 10 }),
    ["yyyyyyyyy"],
    "a CR before LF is not split off",
  );
  assert.deepEqual(
    await read(`.${"z".repeat(12)}\n.\n`, { piece: 10 }),
    [".zzzzzzzzz+", "zzz"],
    "a piece is not a lone dot",
  );
});

test("sendmail -t counts the recipients cleanup will take from the headers", async () => {
  const { HeaderRecipients } = await import("./sendmail-enqueue.js");
  const count = (text: string): number => {
    const h = new HeaderRecipients(102400, 10240);
    for (const line of text.split("\n")) h.take({ data: Buffer.from(line), complete: true });
    h.end();
    return h.count;
  };
  assert.equal(count("To: a@x, B <b@y>\nCc: c@z\nBcc: d@w\nSubject: s\n\nTo: not@header"), 4);
  assert.equal(count("To: a@x,\n  b@y\nSubject: folded"), 2);
  assert.equal(count("To: a@x\nResent-To: r@x\nResent-Bcc: s@x"), 2, "Resent- headers win");
  assert.equal(count("To: undisclosed-recipients:;\nSubject: s"), 0);
  assert.equal(count("Subject: none\n\nTo: a@x"), 0);
});
