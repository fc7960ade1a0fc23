/*
 * smtp-session.test - reply parsing and the xtext encoding of DSN parameters
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseReply, replyDsn } from "./smtp-session.js";
import { xtext } from "./smtp-trans.js";

test("replies: multi-line text joined, enhanced status codes taken when they match the reply class", () => {
  const r = parseReply(["250-mx.example.net Hello", "250-PIPELINING", "250 SIZE 1000"]);
  assert.equal(r.code, 250);
  assert.equal(r.text, "250 mx.example.net Hello PIPELINING SIZE 1000");
  assert.equal(r.dsn, "2.0.0");
  assert.equal(replyDsn(550, "550 5.1.1 <u@x>: no such user"), "5.1.1");
  assert.equal(replyDsn(450, "450 4.2.0 busy"), "4.2.0");
  assert.equal(replyDsn(450, "450 5.2.0 mismatched class"), "4.0.0");
  assert.equal(replyDsn(554, "554 no code"), "5.0.0");
  assert.equal(replyDsn(250, "250 2.1.5"), "2.1.5");
});

test("xtext: '+', '=' and characters outside 33..126 are hex-escaped", () => {
  assert.equal(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
  assert.equal(xtext("plain@example.com"), "plain@example.com");
  assert.equal(xtext("k\u00e4se"), "k+C3+A4se");
});
