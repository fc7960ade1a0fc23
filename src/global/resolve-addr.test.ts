/*
 * resolve-addr.test - golden tests for the resolver, plus unit tests
 *
 * DESCRIPTION
 *   testdata/resolve/NAME.in drives the resolver (resolve-addr.ts); the
 *   output is compared with NAME.ref. Lines of an .in file:
 *     # comment                  ignored
 *     name = value               a main.cf setting (later ones win); the
 *                                resolver is made anew before the next
 *                                request. $testdata names testdata/resolve.
 *     from SENDER                the sender of the requests that follow
 *                                ("<>" or nothing: the null sender)
 *     resolve ADDRESS            resolve the rest of the line (internal form)
 *     verify ADDRESS             the same in the "verify" context
 *     class DOMAIN               the address class of a domain
 *   Warnings logged meanwhile appear in the output as "warning: ...".
 *   The host's interfaces are 127.0.0.1, ::1, 192.0.2.10 and 2001:db8::10;
 *   host names resolve from a fixed list (mx.example.com is 192.0.2.10).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { msgInit, StderrSink, type MsgLevel } from "../util/msg.js";
import { goldenTests, sourceDir } from "../testing/golden.js";
import { Config } from "./config.js";
import { Resolver, type ResolveResult } from "./resolve-addr.js";
import { RESOLVE_FLAG } from "./rewrite-proto.js";
import { mapsLookup } from "./dict-search.js";
import { dictOpen } from "./dict.js";
import { TransportMaps, parseTransportEntry } from "./resolve-transport.js";

const TESTDATA = join(sourceDir(import.meta.url), "testdata", "resolve");
const HOSTS: Record<string, string[]> = {
  "mx.example.com": ["192.0.2.10"],
  "proxy.example.com": ["198.51.100.7"],
  localhost: ["127.0.0.1", "::1"],
};

/** The flag names of a bit mask, in Postfix's order (problems first, then the class). */
function flagNames(flags: number): string {
  const names = [
    "FLAG_FAIL",
    "FLAG_ERROR",
    "FLAG_ROUTED",
    "CLASS_LOCAL",
    "CLASS_ALIAS",
    "CLASS_VIRTUAL",
    "CLASS_RELAY",
    "CLASS_DEFAULT",
  ] as const;
  return names.filter((n) => (flags & RESOLVE_FLAG[n]) !== 0).join(" ");
}

/** A result as one line. */
function show(r: ResolveResult): string {
  if (r.status === "tempfail") return `  -> tempfail: ${r.reason}`;
  const q = JSON.stringify;
  return `  -> ${q(r.transport)} ${q(r.nexthop)} ${q(r.recipient)} ${flagNames(r.flags)}`;
}

/** Makes a resolver for the settings so far. */
function makeResolver(settings: string[]): Promise<Resolver> {
  const main = ["compatibility_level = 3.6", `testdata = ${TESTDATA}`, ...settings].join("\n");
  return Resolver.create(Config.fromText("/etc/postern", main + "\n"), {
    interfaces: () => ["127.0.0.1", "::1", "192.0.2.10", "2001:db8::10"],
    lookupHost: (name) => {
      const a = HOSTS[name.toLowerCase()];
      return a !== undefined ? Promise.resolve(a) : Promise.reject(new Error("not found"));
    },
  });
}

/** Runs one .in file. */
async function run(input: string): Promise<string> {
  const out: string[] = [];
  msgInit({
    exit: false,
    sink: {
      write: (level: MsgLevel, _tag, _pid, text) =>
        void out.push(`${level}: ${text.replaceAll(TESTDATA, "$testdata")}`),
    },
  });
  const settings: string[] = [];
  let resolver: Resolver | null = null;
  let sender = "";
  try {
    for (const line of input.split("\n")) {
      if (line.trim() === "" || line.startsWith("#")) continue;
      const setting = /^([a-z0-9_]+)\s*=\s*(.*)$/.exec(line);
      if (setting !== null) {
        settings.push(line);
        resolver?.close();
        resolver = null;
        continue;
      }
      const [cmd = "", rest = ""] = line.split(/ (.*)/s);
      resolver ??= await makeResolver(settings);
      if (cmd === "from") {
        sender = rest === "<>" ? "" : rest;
        out.push(line);
      } else if (cmd === "resolve" || cmd === "verify") {
        out.push(line);
        out.push(show(await resolver.resolve(sender, rest, cmd === "resolve" ? "regular" : "verify")));
      } else if (cmd === "class") {
        const r = await resolver.domainClass(rest);
        out.push(line, r.status === "ok" ? `  -> ${flagNames(r.cls)}` : `  -> tempfail: ${r.reason}`);
      } else {
        throw new Error(`bad line: ${line}`);
      }
    }
  } finally {
    resolver?.close();
    msgInit({ exit: true, sink: new StderrSink() });
  }
  return out.join("\n") + "\n";
}

goldenTests(import.meta.url, "testdata/resolve", run);

test("transport entries keep or replace the transport and next hop as transport(5) says", () => {
  const cur = { transport: "smtp", nexthop: "[relay.example]" };
  const cases: Array<[string, string, string]> = [
    [":", "smtp", "[relay.example]"],
    [":[mx.example]:587", "smtp", "[mx.example]:587"],
    ["lmtp", "lmtp", "example.com"],
    ["lmtp:", "lmtp", "example.com"],
    ["error:", "error", "Address is undeliverable"],
    ["retry", "retry", "Address is undeliverable"],
    ["error:5.7.1 go away", "error", "5.7.1 go away"],
    ["lmtp:unix:private/dovecot", "lmtp", "unix:private/dovecot"],
  ];
  for (const [value, transport, nexthop] of cases)
    assert.deepEqual(parseTransportEntry(value, "example.com", cur), { transport, nexthop }, value);
});

test('the "*" wildcard is looked up again only after 30 seconds, or after a failure', async () => {
  let now = 1_000_000;
  let lookups = 0;
  let fail = true;
  const lookup = (
    key: string,
  ): Promise<
    { status: "found"; value: string } | { status: "notfound" } | { status: "tempfail"; reason: string }
  > => {
    if (key !== "*") return Promise.resolve({ status: "notfound" });
    lookups++;
    return Promise.resolve(
      fail ? { status: "tempfail", reason: "down" } : { status: "found", value: "relay:[gw]" },
    );
  };
  const tm = new TransportMaps(lookup, { parentStyle: false, addr: {}, now: () => now });
  const cur = { transport: "smtp", nexthop: "example.com" };
  assert.equal((await tm.lookup("a@example.com", "example.com", cur)).status, "tempfail");
  fail = false;
  const hop = { status: "found", hop: { transport: "relay", nexthop: "[gw]" } };
  assert.deepEqual(await tm.lookup("a@example.com", "example.com", cur), hop);
  assert.deepEqual(await tm.lookup("b@example.com", "example.com", cur), hop);
  assert.equal(lookups, 2, "a failure is not cached, a result is");
  now += 31_000;
  await tm.lookup("c@example.com", "example.com", cur);
  assert.equal(lookups, 3, "the result expires after 30 s");
});

test("a table that fails is a tempfail, not a different route", async () => {
  const r = await makeResolver(["mydestination = fail:down", "myhostname = mx.example.com"]);
  msgInit({ exit: false, sink: { write: () => undefined } });
  try {
    assert.equal((await r.resolve("", "user@example.com")).status, "tempfail");
    const t = dictOpen("fail:x");
    const found = await new TransportMaps(mapsLookup([t], "t"), {
      parentStyle: false,
      addr: {},
      now: Date.now,
    }).lookup("a@b.example", "b.example", { transport: "smtp", nexthop: "b.example" });
    assert.equal(found.status, "tempfail");
    t.close();
  } finally {
    r.close();
    msgInit({ exit: true, sink: new StderrSink() });
  }
});
