/*
 * smtp-sasl.test - the client's password search order, mechanism choice and mechanisms
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Config } from "../global/config.js";
import type { DictResult } from "../global/dict-types.js";
import type { LookupFn } from "../global/dict-search.js";
import { MatchList } from "../global/resolve-match.js";
import {
  chooseMechanism,
  clientMechanism,
  decodeChallenge,
  filterServerMechanisms,
  passwordLookup,
  SaslClient,
  type LookupOrder,
} from "./smtp-sasl.js";
import { authKeyword } from "./smtp-session.js";

/** A table that records the keys it is asked for. */
function table(entries: Record<string, string>, fail?: string): { lookup: LookupFn; asked: string[] } {
  const asked: string[] = [];
  const lookup: LookupFn = (key) => {
    asked.push(key);
    const r: DictResult =
      key === fail
        ? { status: "tempfail", reason: "down" }
        : entries[key] !== undefined
          ? { status: "found", value: entries[key] }
          : { status: "notfound" };
    return Promise.resolve(r);
  };
  return { lookup, asked };
}

function order(lookup: LookupFn, senderDependent: boolean): LookupOrder {
  return {
    lookup,
    senderDependent,
    recipientDelimiter: "+",
    isLocalDomain: (d) => d === "local.example",
  };
}

test("lookup order: sender forms (sender-dependent only), then the server host, then the next hop", async () => {
  const t = table({});
  const r = await passwordLookup(
    order(t.lookup, true),
    "joe+list@example.com",
    "mx1.isp.example",
    "[relay]:587",
  );
  assert.equal(r.status, "notfound");
  assert.deepEqual(t.asked, [
    "joe+list@example.com",
    "joe@example.com",
    "@example.com",
    "mx1.isp.example",
    "[relay]:587",
  ]);
  // A local domain also tries the bare local part; without sender-dependent auth the sender is not looked up.
  const l = table({});
  await passwordLookup(order(l.lookup, true), "joe@local.example", "h", "d");
  assert.deepEqual(l.asked, ["joe@local.example", "joe", "@local.example", "h", "d"]);
  const n = table({});
  await passwordLookup(order(n.lookup, false), "joe@example.com", "h", "[d]");
  assert.deepEqual(n.asked, ["h", "[d]"]);
  // The null sender is never looked up.
  const z = table({});
  await passwordLookup(order(z.lookup, true), "", "h", "d");
  assert.deepEqual(z.asked, ["h", "d"]);
});

test("lookup: the first hit wins, user:password splits at the first colon, failures are temporary", async () => {
  const t = table({ "@example.com": "dom:pw", "mx1.isp.example": "host:pw", "[relay]:587": "hop:p:w:x" });
  const r = await passwordLookup(order(t.lookup, true), "joe@example.com", "mx1.isp.example", "[relay]:587");
  assert.deepEqual(r, { status: "found", creds: { user: "dom", password: "pw", key: "@example.com" } });
  const h = await passwordLookup(order(t.lookup, false), "joe@example.com", "mx1.isp.example", "x");
  assert.deepEqual(h, { status: "found", creds: { user: "host", password: "pw", key: "mx1.isp.example" } });
  const d = await passwordLookup(order(t.lookup, false), "joe@example.com", "other", "[relay]:587");
  assert.deepEqual(d, { status: "found", creds: { user: "hop", password: "p:w:x", key: "[relay]:587" } });
  const f = table({ d: "u:p" }, "h");
  assert.equal((await passwordLookup(order(f.lookup, false), "", "h", "d")).status, "tempfail");
  const long = table({ h: `u:${"x".repeat(256)}` });
  const lr = await passwordLookup(order(long.lookup, false), "", "h", "d");
  assert.equal(lr.status, "tempfail");
  assert.ok(lr.status === "tempfail" && !lr.reason.includes("xxx"), "the password is not in the reason");
});

test("mechanism choice: CRAM-MD5 before PLAIN before LOGIN, security options decide", () => {
  const dflt = ["noplaintext", "noanonymous"];
  assert.equal(chooseMechanism(["PLAIN", "LOGIN"], dflt), null, "Postfix's default rules out plaintext");
  assert.equal(chooseMechanism(["LOGIN", "PLAIN", "CRAM-MD5"], dflt), "CRAM-MD5");
  assert.equal(chooseMechanism(["LOGIN", "PLAIN"], ["noanonymous"]), "PLAIN");
  assert.equal(chooseMechanism(["login"], []), "LOGIN");
  assert.equal(chooseMechanism(["CRAM-MD5", "PLAIN"], ["nodictionary"]), null);
  assert.equal(chooseMechanism(["CRAM-MD5", "PLAIN"], ["noactive"]), null);
  assert.equal(chooseMechanism(["DIGEST-MD5", "GSSAPI", "XOAUTH2"], []), null);
});

test("mechanism filter: names and negation, as Postfix's string lists", async () => {
  const list = (items: string[]): MatchList =>
    new MatchList("smtp_sasl_mechanism_filter", items, {
      kind: "string",
      parentStyle: false,
      open: () => assert.fail("no tables here"),
    });
  assert.deepEqual(await filterServerMechanisms(["PLAIN", "LOGIN", "CRAM-MD5"], null), {
    ok: true,
    mechs: ["PLAIN", "LOGIN", "CRAM-MD5"],
  });
  assert.deepEqual(
    await filterServerMechanisms(["PLAIN", "LOGIN", "CRAM-MD5"], list(["login", "cram-md5"])),
    {
      ok: true,
      mechs: ["LOGIN", "CRAM-MD5"],
    },
  );
  assert.deepEqual(await filterServerMechanisms(["PLAIN", "LOGIN"], list(["!plain", "login"])), {
    ok: true,
    mechs: ["LOGIN"],
  });
  assert.deepEqual(await filterServerMechanisms(["PLAIN", "LOGIN"], list(["!plain"])), {
    ok: true,
    mechs: [],
  });
});

test("PLAIN, LOGIN and CRAM-MD5 (RFC 2195 example) client steps", () => {
  const creds = { user: "tim", password: "tanstaaftanstaaf", key: "k" };
  const plain = clientMechanism("PLAIN", creds);
  assert.equal(plain.initial?.toString("latin1"), "\0tim\0tanstaaftanstaaf");
  assert.equal(typeof plain.answer(Buffer.from("x")), "string", "PLAIN has no challenge");
  const login = clientMechanism("LOGIN", creds);
  assert.equal(login.initial, null);
  assert.equal(login.answer(Buffer.from("Username:")).toString(), "tim");
  assert.equal(login.answer(Buffer.from("Password:")).toString(), "tanstaaftanstaaf");
  assert.equal(typeof login.answer(Buffer.from("More:")), "string");
  const cram = clientMechanism("CRAM-MD5", creds);
  const challenge = decodeChallenge("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
  assert.equal(challenge?.toString(), "<1896.697170952@postoffice.reston.mci.net>");
  assert.equal(cram.answer(challenge ?? Buffer.alloc(0)).toString(), "tim b913a602c7eda7a495b4e6e7334d3890");
  assert.equal(decodeChallenge("not base64!"), null);
  assert.equal(decodeChallenge("")?.length, 0);
});

test("EHLO AUTH lines: the standard and the old AUTH= form; next-hop keys", () => {
  assert.deepEqual(authKeyword("AUTH PLAIN login"), ["PLAIN", "LOGIN"]);
  assert.deepEqual(authKeyword("AUTH=LOGIN PLAIN"), ["LOGIN", "PLAIN"]);
  assert.deepEqual(authKeyword("AUTH"), []);
  assert.equal(authKeyword("AUTHX PLAIN"), null);
  assert.equal(authKeyword("SIZE 100"), null);
  assert.equal(SaslClient.destKey("inet:[10.0.0.1]:24"), "[10.0.0.1]:24");
  assert.equal(SaslClient.destKey("unix:private/dovecot-lmtp"), "private/dovecot-lmtp");
  assert.equal(SaslClient.destKey("[mail.isp.example]:587"), "[mail.isp.example]:587");
});

test("settings: Postfix's defaults, the TLS variants inherit, lmtp_ twins are read in LMTP mode", () => {
  const plain = { encrypted: false, verified: false };
  const tls = { encrypted: true, verified: false };
  const verified = { encrypted: true, verified: true };
  const base = "smtp_sasl_auth_enable = yes\nsmtp_sasl_password_maps = static:u:p\n";
  const dflt = SaslClient.fromConfig(Config.fromText("/nonexistent", base), "smtp");
  assert.ok(dflt !== null);
  for (const st of [plain, tls, verified])
    assert.deepEqual(dflt.securityOptions(st), ["noplaintext", "noanonymous"]);
  const cfg = Config.fromText(
    "/nonexistent",
    `${base}smtp_sasl_tls_security_options = noanonymous\nsmtp_sasl_tls_verified_security_options =\n` +
      "lmtp_sasl_auth_enable = yes\nlmtp_sasl_password_maps = static:l:p\nlmtp_sasl_security_options = nodictionary\n",
  );
  const smtp = SaslClient.fromConfig(cfg, "smtp");
  assert.deepEqual(smtp?.securityOptions(plain), ["noplaintext", "noanonymous"]);
  assert.deepEqual(smtp?.securityOptions(tls), ["noanonymous"]);
  assert.deepEqual(smtp?.securityOptions(verified), []);
  const lmtp = SaslClient.fromConfig(cfg, "lmtp");
  assert.deepEqual(lmtp?.securityOptions(verified), ["nodictionary"]);
  assert.equal(SaslClient.fromConfig(Config.fromText("/nonexistent", ""), "smtp"), null, "off by default");
  // Sender-dependent cache keys only where the passwords are (SMTP only, as in Postfix).
  const sd = Config.fromText(
    "/nonexistent",
    `${base}smtp_sender_dependent_authentication = yes\nlmtp_sasl_auth_enable = yes\nlmtp_sasl_password_maps = static:l:p\nlmtp_sender_dependent_authentication = yes\n`,
  );
  assert.equal(SaslClient.fromConfig(sd, "smtp")?.cacheKey("a@b"), "\0a@b");
  assert.equal(SaslClient.fromConfig(sd, "lmtp")?.cacheKey("a@b"), "");
  assert.equal(dflt.cacheKey("a@b"), "");
});
