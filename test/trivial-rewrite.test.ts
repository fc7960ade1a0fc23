/*
 * trivial-rewrite.test - the rewrite service on a real instance, asked by RewriteClient
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeInstance, sleep, type Instance } from "../src/testing/instance.js";
import { AttrClient } from "../src/util/attr-client.js";
import { attrString } from "../src/util/attr-codec.js";
import { RewriteClient } from "../src/global/rewrite-client.js";
import { REWRITE_FRAME_MAX, REWRITE_PROTOCOL, RESOLVE_FLAG } from "../src/global/rewrite-proto.js";

const MAIN = `
myhostname = mx.example.com
mydomain = example.com
mydestination = $myhostname, localhost
relay_domains = relay.example
virtual_mailbox_domains = mbox.example
virtual_transport = lmtp:unix:private/dovecot-lmtp
recipient_delimiter = +
transport_maps = texthash:$config_directory/transport
relocated_maps = inline:{ {old@example.net = new@example.org} }
sender_dependent_relayhost_maps = inline:{ @example.org=[org-relay.example]:587 }
`;

/** Starts an instance with the rewrite service and a transport table. */
async function instance(
  t: { after: (fn: () => Promise<void>) => void },
  main = MAIN,
  chroot = "n",
): Promise<Instance> {
  const inst = makeInstance({ main, master: `rewrite unix - - ${chroot} - - trivial-rewrite\n` });
  writeFileSync(join(inst.etc, "transport"), "special.example  smtp:[special-hop.example]:2525\n");
  const r = await inst.start();
  assert.equal(r.code, 0, r.stderr);
  t.after(async () => {
    await inst.postern("abort");
    inst.cleanup();
  });
  return inst;
}

/** A resolve answer as a tuple (or the failure text). */
async function resolve(rw: RewriteClient, sender: string, address: string): Promise<unknown[] | string> {
  const r = await rw.resolve(sender, address);
  if (!r.ok) return `${r.code}: ${r.reason}`;
  return [r.value.transport, r.value.nexthop, r.value.recipient, r.value.flags];
}

test("the service resolves every address class and rewrites addresses", async (t) => {
  const inst = await instance(t);
  const rw = new RewriteClient(inst.spool);
  t.after(() => Promise.resolve(rw.close()));
  const F = RESOLVE_FLAG;
  assert.deepEqual(await resolve(rw, "", "user+ext@localhost"), [
    "local",
    "mx.example.com",
    "user+ext@localhost",
    F.CLASS_LOCAL,
  ]);
  assert.deepEqual(await resolve(rw, "", "user"), [
    "local",
    "mx.example.com",
    "user@mx.example.com",
    F.CLASS_LOCAL,
  ]);
  assert.deepEqual(await resolve(rw, "", "a@mbox.example"), [
    "lmtp",
    "unix:private/dovecot-lmtp",
    "a@mbox.example",
    F.CLASS_VIRTUAL,
  ]);
  assert.deepEqual(await resolve(rw, "a@example.org", "b@relay.example"), [
    "relay",
    "[org-relay.example]:587",
    "b@relay.example",
    F.CLASS_RELAY,
  ]);
  assert.deepEqual(await resolve(rw, "", "b@example.net"), [
    "smtp",
    "example.net",
    "b@example.net",
    F.CLASS_DEFAULT,
  ]);
  assert.deepEqual(await resolve(rw, "", "b@special.example"), [
    "smtp",
    "[special-hop.example]:2525",
    "b@special.example",
    F.CLASS_DEFAULT,
  ]);
  assert.deepEqual(await resolve(rw, "", "old@example.net"), [
    "error",
    "5.1.6 User has moved to new@example.org",
    "old@example.net",
    F.CLASS_DEFAULT | F.FLAG_FAIL,
  ]);
  assert.deepEqual(await resolve(rw, "", "user%elsewhere.example@localhost"), [
    "smtp",
    "elsewhere.example",
    "user@elsewhere.example",
    F.CLASS_DEFAULT,
  ]);
  assert.deepEqual(await resolve(rw, "", "user@host:port"), [
    "error",
    "5.1.3 Bad address syntax",
    "user@host:port",
    F.CLASS_DEFAULT | F.FLAG_ERROR | F.FLAG_FAIL,
  ]);
  assert.deepEqual(await rw.rewrite("local", "user"), { ok: true, value: "user@mx.example.com" });
  assert.deepEqual(await rw.rewrite("local", "host!user"), { ok: true, value: "user@host" });
  assert.deepEqual(await rw.rewrite("remote", "user"), { ok: true, value: "user" });
  assert.doesNotMatch(inst.log(), /warning|fatal|panic/);
});

test("the verify context routes with address_verify_*; regular routing is unaffected", async (t) => {
  const main = `${MAIN}
address_verify_default_transport = probe
address_verify_relayhost = [probe-relay.example]:2525
address_verify_transport_maps = inline:{ {special.example = probe-special:[probe-hop.example]} }
`;
  const inst = await instance(t, main);
  const rw = new RewriteClient(inst.spool);
  t.after(() => Promise.resolve(rw.close()));
  const F = RESOLVE_FLAG;
  /** A verify answer as a tuple (or the failure text). */
  const verify = async (sender: string, address: string): Promise<unknown[] | string> => {
    const r = await rw.resolveVerify(sender, address);
    if (!r.ok) return `${r.code}: ${r.reason}`;
    return [r.value.transport, r.value.nexthop, r.value.recipient, r.value.flags];
  };
  const D = F.CLASS_DEFAULT;
  assert.deepEqual(await resolve(rw, "", "b@example.net"), ["smtp", "example.net", "b@example.net", D]);
  assert.deepEqual(await verify("", "b@example.net"), [
    "probe",
    "[probe-relay.example]:2525",
    "b@example.net",
    D,
  ]);
  assert.deepEqual(await resolve(rw, "", "b@example.net"), ["smtp", "example.net", "b@example.net", D]);
  assert.deepEqual(await resolve(rw, "", "b@special.example"), [
    "smtp",
    "[special-hop.example]:2525",
    "b@special.example",
    D,
  ]);
  assert.deepEqual(await verify("", "b@special.example"), [
    "probe-special",
    "[probe-hop.example]",
    "b@special.example",
    D,
  ]);
  assert.deepEqual(
    await verify("", "a@mbox.example"),
    ["lmtp", "unix:private/dovecot-lmtp", "a@mbox.example", F.CLASS_VIRTUAL],
    "unset address_verify_* parameters are the regular ones",
  );
  assert.deepEqual(await verify("", "old@example.net"), [
    "error",
    "5.1.6 User has moved to new@example.org",
    "old@example.net",
    D | F.FLAG_FAIL,
  ]);
  const raw = new AttrClient({
    path: join(inst.spool, "private", "rewrite"),
    protocol: REWRITE_PROTOCOL,
    maxFrame: REWRITE_FRAME_MAX,
    timeoutMs: 10_000,
    retries: 0,
    backoffMs: 10,
  });
  t.after(() => Promise.resolve(raw.close()));
  const bad = await raw.request({
    request: "resolve",
    sender: "",
    address: "b@example.net",
    context: "probe",
  });
  assert.ok(bad.ok);
  if (bad.ok) assert.equal(attrString(bad.reply, "status"), "tempfail", "an unknown context is refused");
  const explicit = await raw.request({
    request: "resolve",
    sender: "",
    address: "b@example.net",
    context: "regular",
  });
  assert.ok(explicit.ok);
  if (explicit.ok) assert.equal(attrString(explicit.reply, "transport"), "smtp");
});

test("answers are cached for a while; a client without a cache sees table changes", async (t) => {
  const inst = await instance(t);
  const cached = new RewriteClient(inst.spool);
  const fresh = new RewriteClient(inst.spool, { cacheSize: 0 });
  t.after(() => Promise.resolve([cached, fresh].forEach((c) => c.close())));
  const before = ["smtp", "[special-hop.example]:2525", "b@special.example", RESOLVE_FLAG.CLASS_DEFAULT];
  assert.deepEqual(await resolve(cached, "", "b@special.example"), before);
  writeFileSync(join(inst.etc, "transport"), "special.example  relay:[changed.example]\n");
  const after = ["relay", "[changed.example]", "b@special.example", RESOLVE_FLAG.CLASS_DEFAULT];
  const deadline = Date.now() + 10_000;
  while (JSON.stringify(await resolve(fresh, "", "b@special.example")) !== JSON.stringify(after)) {
    assert.ok(Date.now() < deadline, "the service did not pick up the table change");
    await sleep(200);
  }
  assert.deepEqual(await resolve(cached, "", "b@special.example"), before, "the cached answer is used");
});

test("a failing table is a tempfail; a bad request gets an answer and the connection stays usable", async (t) => {
  const inst = await instance(t, `${MAIN}\nrelocated_maps = fail:relocated-down\n`);
  const rw = new RewriteClient(inst.spool);
  t.after(() => Promise.resolve(rw.close()));
  const r = await rw.resolve("", "user@example.net");
  assert.equal(r.ok, false);
  if (!r.ok) assert.deepEqual([r.code, r.reason], ["ETEMPFAIL", "relocated_maps lookup failure"]);
  const raw = new AttrClient({
    path: join(inst.spool, "private", "rewrite"),
    protocol: REWRITE_PROTOCOL,
    maxFrame: REWRITE_FRAME_MAX,
    timeoutMs: 10_000,
    retries: 0,
    backoffMs: 10,
  });
  t.after(() => Promise.resolve(raw.close()));
  const bad = await raw.request({ request: "rewrite", address: "user" });
  assert.ok(bad.ok);
  if (bad.ok) assert.equal(attrString(bad.reply, "status"), "tempfail");
  const good = await raw.request({ request: "rewrite", rule: "local", address: "user" });
  assert.ok(good.ok);
  if (good.ok) assert.equal(attrString(good.reply, "address"), "user@mx.example.com");
  await inst.waitLog(/trivial-rewrite\[\d+\]: warning: relocated_maps lookup failure/);
  await inst.waitLog(/trivial-rewrite\[\d+\]: warning: bad request: rewrite without a rule/);
});

test("the service works jailed (chroot=y, as in the stock master.cf) with tables in the configuration directory", async (t) => {
  const inst = await instance(t, MAIN, "y");
  const rw = new RewriteClient(inst.spool);
  t.after(() => Promise.resolve(rw.close()));
  assert.deepEqual(await resolve(rw, "", "b@special.example"), [
    "smtp",
    "[special-hop.example]:2525",
    "b@special.example",
    RESOLVE_FLAG.CLASS_DEFAULT,
  ]);
  assert.doesNotMatch(inst.log(), /warning|fatal|panic/);
});
