/*
 * bounce-template.test - golden tests for bounce(5) template files
 *
 * DESCRIPTION
 *   testdata/bounce-template: a template file in; its warnings, then what
 *   postconf -t and postconf -b print (or the error that stops them) out.
 *   The configuration: myhostname = mx.example.com, mydomain = example.com,
 *   delay_warning_time = 4h, the other parameters at their defaults.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { goldenTests } from "../testing/golden.js";
import { Config } from "./config.js";
import {
  BUILTIN_TEMPLATES,
  TemplateError,
  dumpTemplates,
  expandTemplate,
  expandTemplates,
  parseTemplates,
} from "./bounce-template.js";

const MAIN = "myhostname = mx.example.com\nmydomain = example.com\ndelay_warning_time = 4h\n";

/** Runs one file through the parser, -t and -b. */
function run(input: string, name: string): string {
  const cfg = Config.fromText("/etc/postern", MAIN);
  let out = "";
  const warn = (w: string): void => {
    out += `warning: ${w}\n`;
  };
  let ts;
  try {
    ts = parseTemplates(input, `${name}.in`, warn);
  } catch (err) {
    if (err instanceof TemplateError) return `${out}fatal: ${err.message}\n`;
    throw err;
  }
  out += "== -t\n" + dumpTemplates(ts, cfg);
  out += "== -b\n";
  try {
    const text = expandTemplates(ts, cfg, warn);
    out += text;
  } catch (err) {
    if (err instanceof TemplateError) return `${out}fatal: ${err.message}\n`;
    throw err;
  }
  return out;
}

goldenTests(import.meta.url, "testdata/bounce-template", run);

test("header_from_format = obsolete gives the built-in From: in the old form", () => {
  const cfg = Config.fromText("/etc/postern", "header_from_format = obsolete\n");
  assert.match(dumpTemplates(BUILTIN_TEMPLATES, cfg), /^From: MAILER-DAEMON \(Mail Delivery System\)$/m);
});

test("with smtputf8_enable, $myhostname shows its UTF-8 form", () => {
  const cfg = Config.fromText(
    "/etc/postern",
    "myhostname = mx.xn--bcher-kva.example\nsmtputf8_enable = yes\n",
  );
  const r = expandTemplate(BUILTIN_TEMPLATES.verify, cfg);
  assert.ok(r.ok);
  assert.equal(r.lines[0], "This is the mail system at host mx.bücher.example.");
  const off = Config.fromText(
    "/etc/postern",
    "myhostname = mx.xn--bcher-kva.example\nsmtputf8_enable = no\n",
  );
  const r2 = expandTemplate(BUILTIN_TEMPLATES.verify, off);
  assert.ok(r2.ok);
  assert.equal(r2.lines[0], "This is the mail system at host mx.xn--bcher-kva.example.");
});
