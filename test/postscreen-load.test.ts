/*
 * postscreen-load.test - 10,000 idle bots held by postscreen while a good client is served at once
 *
 * DESCRIPTION
 *   Bots from 10,000 connections (40 per 127.1.x.y address) are on
 *   postscreen's deny list with the action enforce: they get the teaser
 *   banner, then postscreen's own SMTP engine, and stay connected, silent.
 *   Meanwhile a client that passed before (PASS OLD) runs whole mail
 *   transactions through smtpd; each must finish within a second. The
 *   memory postscreen needs for the bots is reported. Needs 10,000 file
 *   descriptors in this process and in postscreen (Node raises the soft
 *   limit to the hard limit; raise the hard limit if it is lower).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { postscreenInstance } from "../src/testing/postscreen-instance.js";
import { fileLimit, goodTransaction, holdBots, rssKiB } from "../src/testing/postscreen-load.js";
import { sleep } from "../src/testing/instance.js";

const BOTS = 10_000;
const ROUNDS = 5;

test("postscreen holds 10,000 idle bots while a good client's transactions finish within a second", async (t) => {
  assert.ok(
    fileLimit() >= BOTS + 2000,
    `this test needs ${BOTS + 2000} open files per process; the limit is ${fileLimit()} (raise it with ulimit -n as root)`,
  );
  const inst = await postscreenInstance(
    t,
    [
      "postscreen_greet_wait = 1s",
      "postscreen_access_list = permit_mynetworks, cidr:{{127.1.0.0/16 reject}}",
      "postscreen_denylist_action = enforce",
      "postscreen_pre_queue_limit = 20000",
      "smtpd_client_connection_count_limit = 0",
    ].join("\n"),
  );
  assert.equal(await goodTransaction(inst.port, "127.0.0.2").then(() => "ok"), "ok", "a first visit passes");
  await inst.waitLog(/PASS NEW \[127\.0\.0\.2\]/);
  const pid = Number(/postscreen\[(\d+)\]/.exec(inst.log())?.[1] ?? 0);
  const before = rssKiB(pid);
  const bots = await holdBots(inst.port, BOTS, Date.now() + 180_000);
  t.after(() => bots.close());
  assert.equal(bots.error, "");
  await sleep(1500);
  assert.equal(bots.held, BOTS, "every bot is still connected");
  const during = rssKiB(pid);
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) times.push(await goodTransaction(inst.port, "127.0.0.2"));
  assert.equal(bots.held, BOTS, "the bots are still held");
  t.diagnostic(
    `postscreen RSS ${before} KiB idle, ${during} KiB with ${BOTS} bots: ${(((during - before) * 1024) / BOTS).toFixed(0)} bytes per held connection`,
  );
  t.diagnostic(`good client transactions: ${times.map((ms) => ms.toFixed(0)).join(", ")} ms`);
  for (const ms of times) assert.ok(ms < 1000, `a transaction took ${ms.toFixed(0)} ms`);
  assert.match(inst.log(), /PASS OLD \[127\.0\.0\.2\]/);
});
