/*
 * smtp-xforward.test - the XFORWARD command sent to a content filter
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { SmtpSession } from "./smtp-session.js";
import { xforwardCommand, type TransMessage } from "./smtp-trans.js";

/** A session whose server offered these XFORWARD attributes. */
function offering(...names: string[]): SmtpSession {
  return { features: { xforward: new Set(names) } } as unknown as SmtpSession;
}

const message = (xforward?: Array<[string, string]>): TransMessage => ({
  sender: "",
  size: 0,
  eightBit: false,
  smtputf8: false,
  ...(xforward !== undefined ? { xforward } : {}),
  lines: async function* () {},
});

test("XFORWARD: only the offered attributes, xtext-encoded, empty ones as [UNAVAILABLE]", () => {
  const attrs: Array<[string, string]> = [
    ["NAME", "unknown"],
    ["ADDR", "127.0.0.5"],
    ["PROTO", "ESMTP"],
    ["HELO", "a+b=c"],
    ["IDENT", ""],
  ];
  assert.equal(
    xforwardCommand(offering("NAME", "ADDR", "HELO", "IDENT"), message(attrs)),
    "XFORWARD NAME=unknown ADDR=127.0.0.5 HELO=a+2Bb+3Dc IDENT=[UNAVAILABLE]",
  );
  assert.equal(xforwardCommand(offering(), message(attrs)), null, "not offered");
  assert.equal(xforwardCommand(offering("NAME"), message()), null, "smtp_send_xforward_command = no");
  assert.equal(xforwardCommand(offering("SOURCE"), message(attrs)), null, "nothing offered to send");
});
