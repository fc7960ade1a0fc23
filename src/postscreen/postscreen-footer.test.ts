import { test } from "node:test";
import assert from "node:assert/strict";
import { PsFooter, addFooter } from "./postscreen-footer.js";
import { dictOpen } from "../global/dict.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const CTX = { addr: "192.0.2.7", port: "4321", myhostname: "mx.example.org" };

test("a footer is a new reply line with the reply's code and enhanced status code", () => {
  assert.equal(
    addFooter("550 5.5.1 Protocol error", "Call $server_name about [$client_address]:$client_port", CTX),
    "550-5.5.1 Protocol error\r\n550 5.5.1 Call mx.example.org about [192.0.2.7]:4321",
  );
  assert.equal(
    addFooter("421 mx.example.org Service unavailable - try again later", "see https://example.org/", CTX),
    "421-mx.example.org Service unavailable - try again later\r\n421 see https://example.org/",
  );
});

test('"\\n" makes more lines; "\\c" at the start joins the last reply line', () => {
  assert.equal(
    addFooter("450 4.3.2 Service currently unavailable", "\\c. Call 555-0101.\\nClient $client_address", CTX),
    "450-4.3.2 Service currently unavailable. Call 555-0101.\r\n450 4.3.2 Client 192.0.2.7",
  );
  assert.equal(
    addFooter("550 5.7.1 Blocked", "\\c (ref $client_port)", CTX),
    "550 5.7.1 Blocked (ref 4321)",
    "no new line, so the reply stays one line",
  );
  assert.equal(
    addFooter("250-mx\r\n550 5.7.1 No", "a\\nb", CTX),
    "250-mx\r\n550-5.7.1 No\r\n550-5.7.1 a\r\n550 5.7.1 b",
  );
});

test("$localtime is Mmm dd hh:mm:ss; other names are not expanded; bad input leaves the reply alone", () => {
  const withTime = addFooter("550 No", "at $localtime", CTX);
  assert.match(withTime, /^550-No\r\n550 at [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d$/);
  assert.equal(addFooter("550 No", "$myhostname $mail_name.", CTX), "550-No\r\n550  .");
  assert.equal(addFooter("550 No", "${client_address", CTX), "550 No", "a syntax error adds nothing");
  assert.equal(addFooter("not a reply", "x", CTX), "not a reply");
  assert.equal(addFooter("550 No", "", CTX), "550 No");
  const odd = addFooter("550 No", "$client_address", { ...CTX, addr: "a\u0001b" });
  assert.equal(odd, "550-No\r\n550 a_b", "inserted values keep printable characters only");
});

test("the footer maps are looked up with the whole reply, before the plain footer; 2XX replies get none", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "postern-footer-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // A regexp table substitutes $n itself: the footer's own names are written $$name there.
  writeFileSync(join(dir, "footers"), "/^550 5\\.5\\.1 Protocol error$/ mapped for $$client_address\n");
  const maps = [dictOpen(`regexp:${join(dir, "footers")}`, { flags: 0 })];
  const f = new PsFooter("plain", maps);
  assert.equal(
    await f.apply("550 5.5.1 Protocol error", CTX),
    "550-5.5.1 Protocol error\r\n550 5.5.1 mapped for 192.0.2.7",
  );
  assert.equal(await f.apply("450 4.3.2 Other", CTX), "450-4.3.2 Other\r\n450 4.3.2 plain");
  assert.equal(await f.apply("250 2.0.0 Ok", CTX), "250 2.0.0 Ok");
  assert.ok(new PsFooter("", []).empty);
});
