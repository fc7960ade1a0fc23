import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PeerCertificate } from "node:tls";
import { Config } from "../global/config.js";
import {
  clientTlsSettings,
  finishPolicy,
  hopDomain,
  nameMatches,
  parsePolicy,
  policyFor,
  policyKey,
  policyKeys,
  policyWords,
  tlsSummaryLine,
  unwrapSession,
  wrapSession,
  type SitePolicy,
} from "./smtp-tls.js";

/** Client TLS settings from main.cf text. */
function settings(main: string, mode: "smtp" | "lmtp" = "smtp"): ReturnType<typeof clientTlsSettings> {
  const dir = mkdtempSync(join(tmpdir(), "postern-ctls-unit-"));
  try {
    return clientTlsSettings(Config.fromText(dir, main), mode);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("policy keys: a domain and its parents with a leading dot; explicit next hops as they are", () => {
  assert.deepEqual(policyKeys("Mail.Example.COM"), ["mail.example.com", ".example.com", ".com"]);
  assert.deepEqual(policyKeys("[mx.example.com]:587"), ["[mx.example.com]:587"]);
  assert.deepEqual(policyKeys("[mx.example.com]"), ["[mx.example.com]"]);
  assert.deepEqual(policyKeys("example.com:2525"), ["example.com:2525"]);
  assert.deepEqual(policyKeys("inet:lmtp.example.com:24"), ["lmtp.example.com:24"]);
  assert.deepEqual(policyKeys("192.0.2.1"), ["192.0.2.1"]);
  assert.equal(hopDomain("[MX.example.com]:587"), "mx.example.com");
  assert.equal(hopDomain("example.com:2525"), "example.com");
  assert.equal(hopDomain("[ipv6:2001:db8::1]"), "2001:db8::1");
});

test("policy values: levels, attributes, braces, and the errors Postfix refuses", () => {
  assert.deepEqual(policyWords("secure match=a:b, { exclude = aNULL  3DES }"), [
    "secure",
    "match=a:b",
    "exclude = aNULL 3DES",
  ]);
  assert.deepEqual(parsePolicy("secure match=mx.example.com:.example.com match=nexthop", "t"), {
    level: "secure",
    match: ["mx.example.com", ".example.com", "nexthop"],
  });
  assert.deepEqual(parsePolicy("fingerprint match=AA:BB|CC:DD", "t"), {
    level: "fingerprint",
    match: ["AA:BB", "CC:DD"],
  });
  assert.deepEqual(
    parsePolicy("encrypt protocols=>=TLSv1.3 ciphers=high exclude=3DES servername=sni.example.com", "t"),
    { level: "encrypt", protocols: ">=TLSv1.3", grade: "high", exclude: ["3DES"], sni: "sni.example.com" },
  );
  assert.deepEqual(parsePolicy("MAY", "t"), { level: "may" });
  assert.deepEqual(parsePolicy("dane", "t"), { level: "may" }, "dane works as may (with a warning)");
  assert.deepEqual(parsePolicy("dane-only", "t"), { level: "encrypt" }, "dane-only never goes plaintext");
  assert.equal(parsePolicy("", "t"), "invalid empty policy");
  assert.equal(parsePolicy("strict", "t"), 'invalid security level "strict"');
  assert.equal(parsePolicy("encrypt match=x", "t"), 'attribute "match" invalid at security level "encrypt"');
  assert.equal(
    parsePolicy("may ciphers=high ciphers=low", "t"),
    'attribute "ciphers" is specified multiple times',
  );
  assert.equal(parsePolicy("verify bogus=1", "t"), 'invalid attribute name: "bogus"');
  assert.equal(parsePolicy("verify match", "t"), `malformed attribute/value pair "match": missing '='`);
  assert.equal(
    parsePolicy("may servername=bad_name!", "t"),
    '"servername=bad_name!" specifies an invalid hostname',
  );
  assert.equal(
    parsePolicy("encrypt tafile=/x", "t"),
    'attribute "tafile" invalid at security level "encrypt"',
  );
  const unclosed = parsePolicy("may {ciphers=high", "t");
  assert.ok(typeof unclosed === "string" && /missing "}"/.test(unclosed), JSON.stringify(unclosed));
  assert.deepEqual(parsePolicy("none match=ignored", "t"), { level: "none" });
});

test("global level: the new parameter, or the older smtp_use_tls/smtp_enforce_tls pair; lmtp_ twins", () => {
  assert.equal(settings("").globalLevel, "none");
  assert.equal(settings("smtp_use_tls = yes").globalLevel, "may");
  assert.equal(settings("smtp_enforce_tls = yes").globalLevel, "verify");
  assert.equal(settings("smtp_enforce_tls = yes\nsmtp_tls_enforce_peername = no").globalLevel, "encrypt");
  assert.equal(settings("smtp_tls_security_level = secure\nsmtp_use_tls = no").globalLevel, "secure");
  assert.equal(settings("lmtp_tls_security_level = encrypt", "lmtp").globalLevel, "encrypt");
  assert.equal(settings("lmtp_tls_security_level = encrypt", "smtp").globalLevel, "none");
  assert.deepEqual(settings("").secureMatch, ["nexthop", "dot-nexthop"]);
  assert.deepEqual(settings("", "lmtp").secureMatch, ["nexthop"]);
});

test("finished policies: main.cf defaults per level, exclusions, and invalid settings", () => {
  const st = settings(
    [
      "smtp_tls_protocols = >=TLSv1.2",
      "smtp_tls_mandatory_protocols = >=TLSv1.3",
      "smtp_tls_exclude_ciphers = RC4",
      "smtp_tls_mandatory_exclude_ciphers = 3DES",
    ].join("\n"),
  );
  const fin = (site: SitePolicy): ReturnType<typeof finishPolicy> => finishPolicy(st, site, "example.com");
  const may = fin({ level: "may" });
  assert.equal(may.protocols, ">=TLSv1.2");
  assert.deepEqual(may.exclude, ["RC4"]);
  assert.equal(may.node?.minVersion, "TLSv1.2");
  const enc = fin({ level: "encrypt" });
  assert.equal(enc.protocols, ">=TLSv1.3");
  assert.deepEqual(enc.exclude, ["RC4", "3DES", "eNULL"]);
  assert.equal(enc.node?.minVersion, "TLSv1.3");
  const ver = fin({ level: "verify" });
  assert.deepEqual(ver.match, ["hostname"]);
  assert.deepEqual(ver.exclude, ["RC4", "3DES", "aNULL"]);
  assert.deepEqual(fin({ level: "secure" }).match, ["nexthop", "dot-nexthop"]);
  assert.deepEqual(
    fin({ level: "verify", exclude: ["MD5"] }).exclude,
    ["MD5", "aNULL"],
    "exclude= replaces main.cf's",
  );
  assert.match(
    fin({ level: "fingerprint" }).invalid ?? "",
    /configured at fingerprint security level, but with no fingerprints/,
  );
  assert.match(fin({ level: "may", protocols: "TLSv9" }).invalid ?? "", /unknown TLS protocol "TLSv9"/);
  assert.match(fin({ level: "encrypt", grade: "superb" }).invalid ?? "", /invalid cipher grade "superb"/);
  const wrap = settings("smtp_tls_wrappermode = yes");
  assert.match(
    finishPolicy(wrap, { level: "may" }, "x").invalid ?? "",
    /requires "smtp_tls_security_level = encrypt"/,
  );
  assert.equal(finishPolicy(wrap, { level: "encrypt" }, "x").invalid, null);
  assert.notEqual(policyKey(may), policyKey(enc), "TLS policy differences separate cache keys");
  assert.equal(policyKey(fin({ level: "none" })), "none");
});

test("policy lookups through smtp_tls_policy_maps: exact next hop, then parent domains; a bad entry defers", async () => {
  const dir = mkdtempSync(join(tmpdir(), "postern-ctls-maps-"));
  try {
    const file = join(dir, "policy");
    writeFileSync(
      file,
      [
        "[mx.example.com]:587 secure match=mx.example.com",
        "example.com encrypt",
        ".example.com verify",
        "bad.example.net wibble",
      ].join("\n") + "\n",
    );
    const st = clientTlsSettings(
      Config.fromText(dir, `smtp_tls_security_level = may\nsmtp_tls_policy_maps = texthash:${file}`),
      "smtp",
    );
    assert.equal((await policyFor(st, "example.com")).level, "encrypt");
    assert.equal((await policyFor(st, "a.b.example.com")).level, "verify");
    assert.deepEqual((await policyFor(st, "[mx.example.com]:587")).match, ["mx.example.com"]);
    assert.equal(
      (await policyFor(st, "[mx.example.com]")).level,
      "may",
      "explicit next hops match only themselves",
    );
    assert.equal((await policyFor(st, "other.org")).level, "may", "the global level when nothing matches");
    const bad = await policyFor(st, "bad.example.net");
    assert.match(
      bad.invalid ?? "",
      /next-hop destination "bad\.example\.net": invalid security level "wibble"/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("certificate names: exact names and wildcards through Node's check, dot-names match subdomains only", () => {
  const cert = {
    subject: { CN: "mx.example.com" },
    subjectaltname: "DNS:mx.example.com, DNS:*.mail.example.com, IP Address:192.0.2.1",
  } as unknown as PeerCertificate;
  assert.ok(nameMatches(cert, "mx.example.com"));
  assert.ok(nameMatches(cert, "MX.Example.com."));
  assert.ok(nameMatches(cert, "a.mail.example.com"));
  assert.ok(!nameMatches(cert, "a.b.mail.example.com"), "a wildcard covers one label");
  assert.ok(!nameMatches(cert, "example.com"));
  assert.ok(nameMatches(cert, ".example.com"), "dot-nexthop: a subdomain");
  assert.ok(!nameMatches(cert, ".mx.example.com"), "a name is not its own subdomain");
  assert.ok(nameMatches(cert, "192.0.2.1"));
  assert.ok(!nameMatches(cert, "192.0.2.2"));
});

test("the summary line is Postfix's", () => {
  assert.equal(
    tlsSummaryLine(
      {
        protocol: "TLSv1.3",
        cipher: "TLS_AES_256_GCM_SHA384",
        bits: 256,
        reused: false,
        kind: "Untrusted",
        cn: "",
        issuer: "",
        fingerprint: "",
        pkeyFingerprint: "",
      },
      "mx.example.com[192.0.2.1]:25",
    ),
    "Untrusted TLS connection established to mx.example.com[192.0.2.1]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
  );
});

test("saved sessions carry the server certificate and verdict of their full handshake", () => {
  const cert = Buffer.from("certificate bytes");
  const session = Buffer.from("session bytes");
  const back = unwrapSession(wrapSession(session, { cert, trusted: true }));
  assert.ok(back !== null);
  assert.deepEqual(back.session, session);
  assert.deepEqual(back.peer.cert, cert);
  assert.equal(back.peer.trusted, true);
  const none = unwrapSession(wrapSession(session, { cert: Buffer.alloc(0), trusted: false }));
  assert.equal(none?.peer.cert.length, 0);
  assert.equal(none?.peer.trusted, false);
  assert.equal(unwrapSession(null), null);
  assert.equal(unwrapSession(session), null, "an entry in another format is not used");
  assert.equal(unwrapSession(wrapSession(Buffer.alloc(0), { cert, trusted: true })), null, "no session");
});
