/*
 * login-sender.test - the sender patterns of local_login_sender_maps
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Config } from "./config.js";
import { checkLoginSender, loginSenderMatch, splitPatterns } from "./login-sender.js";

const O = { delims: "+", nullSender: "<>" };

test("patterns split on commas and spaces, quoted parts kept whole", () => {
  assert.deepEqual(splitPatterns(' a, b  c,,"x y"@d '), ["a", "b", "c", '"x y"@d']);
});

test("each pattern form, as Postfix's login_sender_match", () => {
  const m = (patterns: string, sender: string): boolean =>
    loginSenderMatch(splitPatterns(patterns), sender, O);
  assert.equal(m("*", "anyone@anywhere"), true);
  assert.equal(m("<>", ""), true);
  assert.equal(m("<>", "a@b"), false);
  assert.equal(m("alice", ""), false, "a literal pattern does not match the null sender");
  assert.equal(m("@Example.COM", "bob@example.com"), true);
  assert.equal(m("@example.com", "bob@sub.example.com"), false);
  assert.equal(m("@example.com", "bob"), false);
  assert.equal(m("alice@example.com", "Alice+news@Example.com"), true, "extension and case ignored");
  assert.equal(m("alice", "alice+x"), true);
  assert.equal(m("alice", "alice@example.com"), false);
  assert.equal(m('"john doe"@example.com', "john doe@example.com"), true, "compared in quoted form");
  assert.equal(m("owner-list", "owner-list"), true);
  assert.equal(m("bob, carol", "carol"), true);
});

test("the default static:* permits without any lookup; a table error is a temporary failure", async () => {
  const dflt = Config.fromText("/nonexistent", "");
  assert.deepEqual(await checkLoginSender(dflt, 4242, "root"), { status: "permit" });
  const bad = Config.fromText("/nonexistent", "local_login_sender_maps = texthash:/nonexistent/table\n");
  const v = await checkLoginSender(bad, process.getuid?.() ?? 0, "root");
  assert.equal(v.status, "tempfail");
  const inline = Config.fromText("/nonexistent", "local_login_sender_maps = inline:{uid:4242=x@y}\n");
  assert.deepEqual(await checkLoginSender(inline, 4242, "x@y"), { status: "permit" });
  assert.deepEqual(await checkLoginSender(inline, 4242, "z@y"), {
    status: "deny",
    reason: "not authorized to use sender='z@y'",
  });
});
