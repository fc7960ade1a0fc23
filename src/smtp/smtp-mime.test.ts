/*
 * smtp-mime.test - 8-bit to 7-bit conversion
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { downgrade, qpEncodeLine } from "./smtp-mime.js";

/** Runs the converter over a message given as text (latin1, \n line ends). */
async function run(text: string): Promise<string> {
  const lines = text.split("\n").map((l) => Buffer.from(l, "latin1"));
  const out: string[] = [];
  for await (const l of downgrade(lines)) out.push(l.toString("latin1"));
  return out.join("\n");
}

/** Decodes quoted-printable lines. */
function qpDecode(lines: Buffer[]): Buffer {
  const text = lines.map((l) => l.toString("latin1")).join("\n");
  const joined = text.replace(/=\n/g, "");
  return Buffer.from(
    joined.replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
    "latin1",
  );
}

test("quoted-printable lines are 7-bit, at most 76 characters, and decode to the original", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      const line = Buffer.from(bytes.filter((b) => b !== 10 && b !== 13));
      const enc = qpEncodeLine(line);
      for (const l of enc) {
        assert.ok(l.length <= 76, `line of ${l.length}`);
        assert.ok(l.every((c) => c < 128));
      }
      assert.deepEqual(qpDecode(enc), line);
    }),
  );
  assert.equal(qpEncodeLine(Buffer.from("trailing space ")).toString(), "trailing space=20");
});

test("an 8bit text message becomes quoted-printable with its encoding header rewritten", async () => {
  const out = await run(
    "Subject: hi\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nK\xc3\xa4se = cheese\n",
  );
  assert.equal(
    out,
    "Subject: hi\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nK=C3=A4se =3D cheese\n",
  );
});

test("multipart: 8bit parts are converted, base64 and 7bit parts and the boundaries pass, the container says 7bit", async () => {
  const msg = [
    'Content-Type: multipart/mixed; boundary="b1"',
    "Content-Transfer-Encoding: 8bit",
    "",
    "preamble",
    "--b1",
    "Content-Type: text/plain",
    "Content-Transfer-Encoding: 8bit",
    "",
    "gr\xfc\xdf",
    "--b1",
    "Content-Type: application/octet-stream",
    "Content-Transfer-Encoding: base64",
    "",
    "AAEC",
    "--b1--",
    "epilogue",
  ].join("\n");
  const out = await run(msg);
  assert.equal(
    out,
    [
      'Content-Type: multipart/mixed; boundary="b1"',
      "Content-Transfer-Encoding: 7bit",
      "",
      "preamble",
      "--b1",
      "Content-Type: text/plain",
      "Content-Transfer-Encoding: quoted-printable",
      "",
      "gr=FC=DF",
      "--b1",
      "Content-Type: application/octet-stream",
      "Content-Transfer-Encoding: base64",
      "",
      "AAEC",
      "--b1--",
      "epilogue",
    ].join("\n"),
  );
});
