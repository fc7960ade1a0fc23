/*
 * smtpd-dns.test - the DNS restrictions against a real DNS server
 *
 * DESCRIPTION
 *   NSD serves test zones on loopback (example.test, the 127.0.0.x reverse
 *   zone, a client block list, a domain block list and an allow list);
 *   smtpd resolves through it (postern_dns_servers). Clients connect from
 *   different loopback addresses to play hosts with a good name, a forged
 *   name, no name, or a listed address (never 127.0.0.1, which /etc/hosts
 *   names before DNS is asked, as with Postfix's getnameinfo()). A UDP socket that never answers
 *   stands in for a dead DNS server: lookups time out and become
 *   temporary failures.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { nsdAvailable, startNsd, zone, type NsdServer } from "../src/testing/dns-server.js";
import { smtpCmd, smtpConnect, smtpHello, smtpdInstance } from "../src/testing/smtpd-instance.js";

const skip = !nsdAvailable() ? "nsd is not installed" : false;
let dns: NsdServer | null = null;

const ZONES = {
  "example.test": zone(
    "example.test",
    [
      "@ IN MX 10 mx1",
      "@ IN A 127.0.0.1",
      "ns1 IN A 127.0.0.1",
      "mx1 IN A 127.0.0.1",
      "mx2 IN A 127.0.0.2",
      "mx8 IN A 127.0.0.8",
      "onlymx IN MX 10 mx1",
      "nullmx IN MX 0 .",
      "badmx IN MX 10 mx9",
      "mx9 IN A 127.0.0.99",
      "spammer IN A 127.0.0.1",
    ].join("\n"),
  ),
  "0.0.127.in-addr.arpa": zone(
    "0.0.127.in-addr.arpa",
    ["1 IN PTR mx1.example.test.", "3 IN PTR mx2.example.test.", "8 IN PTR mx8.example.test."].join("\n"),
  ),
  "rbl.test": zone(
    "rbl.test",
    ["5.0.0.127 IN A 127.0.0.2", '5.0.0.127 IN TXT "listed for testing"', "6.0.0.127 IN A 127.0.0.10"].join(
      "\n",
    ),
  ),
  "rhsbl.test": zone("rhsbl.test", "spammer.example.test IN A 127.0.0.2"),
  "dnswl.test": zone("dnswl.test", "7.0.0.127 IN A 127.0.10.1"),
};

before(async () => {
  if (!skip) dns = await startNsd(ZONES);
});
after(async () => {
  await dns?.stop();
});

/** main.cf lines that point smtpd at the test DNS server. */
function dnsMain(extra: string): string {
  return `postern_dns_servers = ${dns?.server ?? ""}\npostern_dns_timeout = 1s\nsmtpd_peername_lookup = yes\n${extra}`;
}

test("peer names come from the configured DNS: verified, forged and unknown", { skip }, async (t) => {
  const inst = await smtpdInstance(
    t,
    dnsMain(
      "smtpd_client_restrictions = reject_unknown_reverse_client_hostname, reject_unknown_client_hostname\nsmtpd_relay_restrictions = permit\n",
    ),
  );
  const good = await smtpHello(inst.port, "127.0.0.8");
  await smtpCmd(good, "MAIL FROM:<a@example.test>");
  assert.equal(await smtpCmd(good, "RCPT TO:<u@example.org>"), "250 2.1.5 Ok");
  await inst.waitLog(/connect from mx8\.example\.test\[127\.0\.0\.8\]/);

  const forged = await smtpHello(inst.port, "127.0.0.3");
  await smtpCmd(forged, "MAIL FROM:<a@example.test>");
  assert.equal(
    await smtpCmd(forged, "RCPT TO:<u@example.org>"),
    "450 4.7.25 Client host rejected: cannot find your hostname, [127.0.0.3]",
  );
  const none = await smtpHello(inst.port, "127.0.0.4");
  await smtpCmd(none, "MAIL FROM:<a@example.test>");
  assert.equal(
    await smtpCmd(none, "RCPT TO:<u@example.org>"),
    "450 4.7.1 Client host rejected: cannot find your reverse hostname, [127.0.0.4]",
  );
  await inst.waitLog(/NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.4\]: 450 4\.7\.1 Client host rejected/);
  await inst.waitLog(/warning: hostname mx2\.example\.test does not resolve to address 127\.0\.0\.3/);
});

test("reject_unknown_helo_hostname and the sender/recipient domain checks", { skip }, async (t) => {
  const inst = await smtpdInstance(
    t,
    dnsMain(
      [
        "unknown_address_reject_code = 550",
        "unknown_hostname_reject_code = 550",
        "smtpd_helo_restrictions = reject_unknown_helo_hostname",
        "smtpd_sender_restrictions = reject_unknown_sender_domain",
        "smtpd_recipient_restrictions = reject_unknown_recipient_domain, permit",
        "smtpd_relay_restrictions = permit",
        "",
      ].join("\n"),
    ),
  );
  const bad = await smtpHello(inst.port, "127.0.0.1", "nosuch.example.test");
  await smtpCmd(bad, "MAIL FROM:<a@example.test>");
  assert.equal(
    await smtpCmd(bad, "RCPT TO:<u@example.org>"),
    "550 5.7.1 <nosuch.example.test>: Helo command rejected: Host not found",
  );
  const c = await smtpHello(inst.port, "127.0.0.1", "mx1.example.test");
  await smtpCmd(c, "MAIL FROM:<a@onlymx.example.test>");
  assert.equal(await smtpCmd(c, "RCPT TO:<u@example.org>"), "250 2.1.5 Ok");
  assert.equal(
    await smtpCmd(c, "RCPT TO:<u@nowhere.example.test>"),
    "550 5.1.2 <u@nowhere.example.test>: Recipient address rejected: Domain not found",
  );
  assert.equal(
    await smtpCmd(c, "RCPT TO:<u@nullmx.example.test>"),
    "556 5.1.10 <u@nullmx.example.test>: Recipient address rejected: Domain nullmx.example.test does not accept mail (nullMX)",
  );
  await smtpCmd(c, "RSET");
  await smtpCmd(c, "MAIL FROM:<a@nosuch.example.test>");
  assert.equal(
    await smtpCmd(c, "RCPT TO:<u@example.org>"),
    "550 5.1.8 <a@nosuch.example.test>: Sender address rejected: Domain not found",
  );
  await smtpCmd(c, "RSET");
  await smtpCmd(c, "MAIL FROM:<a@nullmx.example.test>");
  assert.equal(
    await smtpCmd(c, "RCPT TO:<u@example.org>"),
    "550 5.7.27 <a@nullmx.example.test>: Sender address rejected: Domain nullmx.example.test does not accept mail (nullMX)",
  );
});

test(
  "reject_rbl_client with a pattern, rbl_reply_maps, rhsbl and permit_dnswl_client",
  { skip },
  async (t) => {
    const replies = join(mkdtempSync(join(tmpdir(), "postern-rbl-")), "rbl_reply");
    chmodSync(dirname(replies), 0o755);
    writeFileSync(
      replies,
      "rbl.test=127.0.0.[10;11] $rbl_code 5.7.2 Go away $rbl_what ($rbl_class) via $rbl_domain\n",
    );
    t.after(() => rmSync(dirname(replies), { recursive: true, force: true }));
    const inst = await smtpdInstance(
      t,
      dnsMain(
        [
          "smtpd_client_restrictions = permit_dnswl_client dnswl.test=127.0.[0..255].1, reject_rbl_client rbl.test=127.0.0.2, reject_rbl_client rbl.test=127.0.0.[10;11], reject_rhsbl_sender rhsbl.test",
          `rbl_reply_maps = texthash:${replies}`,
          "smtpd_relay_restrictions = permit",
          "",
        ].join("\n"),
      ),
    );
    const listed = await smtpHello(inst.port, "127.0.0.5");
    await smtpCmd(listed, "MAIL FROM:<a@example.test>");
    assert.equal(
      await smtpCmd(listed, "RCPT TO:<u@example.org>"),
      "554 5.7.1 Service unavailable; Client host [127.0.0.5] blocked using rbl.test; listed for testing",
    );
    await inst.waitLog(
      /NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.5\]: 554 5\.7\.1 Service unavailable; Client host \[127\.0\.0\.5\] blocked using rbl\.test; listed for testing; from=<a@example\.test> to=<u@example\.org>/,
    );
    const other = await smtpHello(inst.port, "127.0.0.6");
    await smtpCmd(other, "MAIL FROM:<a@example.test>");
    assert.equal(
      await smtpCmd(other, "RCPT TO:<u@example.org>"),
      "554 5.7.2 Go away 127.0.0.6 (Client host) via rbl.test",
    );
    const clean = await smtpHello(inst.port, "127.0.0.8");
    await smtpCmd(clean, "MAIL FROM:<a@example.test>");
    assert.equal(await smtpCmd(clean, "RCPT TO:<u@example.org>"), "250 2.1.5 Ok");
    await smtpCmd(clean, "RSET");
    await smtpCmd(clean, "MAIL FROM:<a@spammer.example.test>");
    assert.equal(
      await smtpCmd(clean, "RCPT TO:<u@example.org>"),
      "554 5.7.1 Service unavailable; Sender address [spammer.example.test] blocked using rhsbl.test",
    );
    const allowed = await smtpHello(inst.port, "127.0.0.7");
    await smtpCmd(allowed, "MAIL FROM:<a@spammer.example.test>");
    assert.equal(await smtpCmd(allowed, "RCPT TO:<u@example.org>"), "250 2.1.5 Ok");
  },
);

test(
  "check_sender_mx_access and check_sender_ns_access look at the DNS servers of the domain",
  { skip },
  async (t) => {
    const inst = await smtpdInstance(
      t,
      dnsMain(
        [
          "smtpd_sender_restrictions = check_sender_mx_access inline:{ {127.0.0.99=REJECT bad mail exchanger} }, check_sender_ns_access inline:{ns1.example.test=DUNNO}",
          "smtpd_recipient_restrictions = check_recipient_ns_access inline:{ {ns1.example.test=450 4.7.9 try later} }",
          "smtpd_relay_restrictions = permit",
          "",
        ].join("\n"),
      ),
    );
    const c = await smtpHello(inst.port);
    await smtpCmd(c, "MAIL FROM:<a@badmx.example.test>");
    assert.equal(
      await smtpCmd(c, "RCPT TO:<u@example.org>"),
      "554 5.7.1 <a@badmx.example.test>: Sender address rejected: bad mail exchanger",
    );
    await smtpCmd(c, "RSET");
    await smtpCmd(c, "MAIL FROM:<a@example.test>");
    assert.equal(
      await smtpCmd(c, "RCPT TO:<u@sub.example.test>"),
      "450 4.7.9 <u@sub.example.test>: Recipient address rejected: try later",
    );
  },
);

test(
  "a DNS server that does not answer gives temporary failures, never a pass or a 5xx",
  { skip },
  async (t) => {
    const hole: Socket = createSocket("udp4");
    await new Promise<void>((r) => hole.bind(0, "127.0.0.1", () => r()));
    t.after(() => hole.close());
    const inst = await smtpdInstance(
      t,
      [
        `postern_dns_servers = 127.0.0.1:${hole.address().port}`,
        "smtpd_peername_lookup = yes",
        "postern_dns_timeout = 1s",
        "smtpd_sender_restrictions = reject_unknown_sender_domain",
        "smtpd_recipient_restrictions = check_recipient_access inline:{client-check@example.org=reject_unknown_client_hostname}",
        "smtpd_relay_restrictions = permit",
        "",
      ].join("\n"),
    );
    const c = await smtpConnect(inst.port, "127.0.0.2");
    assert.match(await smtpCmd(c, null), /^220 /);
    await smtpCmd(c, "EHLO client.example");
    await smtpCmd(c, "MAIL FROM:<a@somewhere.example.test>");
    assert.equal(
      await smtpCmd(c, "RCPT TO:<u@example.org>"),
      "450 4.1.8 <a@somewhere.example.test>: Sender address rejected: Domain not found",
    );
    await smtpCmd(c, "RSET");
    await smtpCmd(c, "MAIL FROM:<>");
    assert.equal(
      await smtpCmd(c, "RCPT TO:<client-check@example.org>"),
      "450 4.7.25 Client host rejected: cannot find your hostname, [127.0.0.2]",
    );
  },
);

test("check_reverse_client_hostname_access sees the unverified PTR name", { skip }, async (t) => {
  const inst = await smtpdInstance(
    t,
    dnsMain(
      "smtpd_client_restrictions = check_reverse_client_hostname_access inline:{ {mx2.example.test=REJECT forged name} }\nsmtpd_relay_restrictions = permit\n",
    ),
  );
  const forged = await smtpHello(inst.port, "127.0.0.3");
  await smtpCmd(forged, "MAIL FROM:<a@example.test>");
  assert.equal(
    await smtpCmd(forged, "RCPT TO:<u@example.org>"),
    "554 5.7.1 <mx2.example.test>: Unverified Client host rejected: forged name",
  );
  const good = await smtpHello(inst.port, "127.0.0.8");
  await smtpCmd(good, "MAIL FROM:<a@example.test>");
  assert.equal(await smtpCmd(good, "RCPT TO:<u@example.org>"), "250 2.1.5 Ok");
});
