/*
 * config.test - golden tests for main.cf, master.cf, expansion and edits
 *
 * DESCRIPTION
 *   testdata/config/expand:    main.cf in, every setting expanded out;
 *                              "#@ -o name=value" lines add overrides.
 *   testdata/config/main-cf:   main.cf in, settings with line numbers,
 *                              problems and unused-parameter warnings out.
 *   testdata/config/edit:      main.cf with "#@ -e name=value", "#@ -X name"
 *                              or "#@ -# name" lines in, the edited file out.
 */
import { test } from "node:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { goldenTests } from "../testing/golden.js";
import { Config, ConfigError } from "./config.js";
import { editMainCf } from "./main-cf.js";
import { PARAM_TABLE } from "./params-table.js";

/** The "#@ ..." directives of a golden input. */
function directives(input: string): string[][] {
  return input
    .split("\n")
    .filter((l) => l.startsWith("#@ "))
    .map((l) =>
      l
        .slice(3)
        .trim()
        .split(/\s+(.*)/s)
        .filter((x) => x !== ""),
    );
}

goldenTests(import.meta.url, "testdata/config/expand", (input) => {
  const overrides = directives(input)
    .filter((d) => d[0] === "-o")
    .map((d): [string, string] => {
      const [n = "", ...v] = (d[1] ?? "").split("=");
      return [n, v.join("=")];
    });
  const cfg = Config.fromText("/etc/postern", input).withOverrides(overrides, "test -o");
  let out = "";
  for (const name of cfg.main.settings.keys()) {
    try {
      out += `${name} = ${cfg.get(name)}\n`;
    } catch (err) {
      out += `${name}: error: ${(err as Error).message}\n`;
    }
  }
  return out;
});

goldenTests(import.meta.url, "testdata/config/main-cf", (input) => {
  const cfg = Config.fromText("/etc/postern", input);
  let out = "";
  for (const s of cfg.main.settings.values()) out += `${s.name} [${s.first}-${s.last}] = ${s.value}\n`;
  for (const p of cfg.problems()) out += `problem: ${p}\n`;
  for (const w of cfg.unusedWarnings()) out += `warning: ${w}\n`;
  return out;
});

goldenTests(import.meta.url, "testdata/config/edit", (input) => {
  let text = input;
  let out = "";
  for (const [flag = "", arg = ""] of directives(input)) {
    const edit =
      flag === "-e"
        ? {
            op: "set" as const,
            values: new Map([[arg.split("=")[0]?.trim() ?? "", arg.slice(arg.indexOf("=") + 1).trim()]]),
          }
        : { op: flag === "-X" ? ("remove" as const) : ("comment" as const), names: new Set([arg]) };
    const r = editMainCf(text, edit);
    text = r.text;
    for (const w of r.warnings) out += `warning: ${w}\n`;
  }
  return out + text;
});

test("typed getters name file, line, parameter, value and what was expected", () => {
  const cfg = Config.fromText(
    "/etc/postern",
    "max_idle = 10x\nmax_use = -1\nenable_long_queue_ids = maybe\n",
  );
  assert.throws(
    () => cfg.time("max_idle"),
    (e: unknown) =>
      e instanceof ConfigError &&
      /main\.cf, line 1: parameter max_idle: bad value "10x": expected a time/.test(e.message),
  );
  assert.throws(
    () => cfg.int("max_use"),
    /line 2: parameter max_use: bad value "-1": expected an integer >= 1/,
  );
  assert.throws(() => cfg.bool("enable_long_queue_ids"), /line 3: .*expected yes or no/);
});

test("time units and defaults per parameter", () => {
  const cfg = Config.fromText(
    "/etc/postern",
    "max_idle = 2m\nipc_timeout = 1h\nservice_throttle_time = 1w\n",
  );
  assert.equal(cfg.time("max_idle"), 120);
  assert.equal(cfg.time("ipc_timeout"), 3600);
  assert.equal(cfg.time("service_throttle_time"), 604800);
  assert.equal(cfg.time("daemon_timeout"), 18000);
});

test("compatibility_level picks the defaults that depend on it", () => {
  assert.equal(Config.fromText("/x", "").get("mynetworks_style"), "subnet");
  assert.equal(Config.fromText("/x", "compatibility_level = 2\n").get("mynetworks_style"), "host");
  assert.equal(Config.fromText("/x", "compatibility_level = 3.6\n").bool("smtputf8_enable"), true);
  assert.equal(Config.fromText("/x", "compatibility_level = 0\n").bool("append_dot_mydomain"), true);
  assert.equal(Config.fromText("/x", "compatibility_level = 3.6\n").list("relay_domains").length, 0);
  assert.deepEqual(Config.fromText("/x", "myhostname = a.b.c\n").list("relay_domains"), [
    "a.b.c",
    "localhost.b.c",
    "localhost",
  ]);
});

test("every table entry has a description and a default that checks out", () => {
  const cfg = Config.fromText("/etc/postern", "");
  for (const def of PARAM_TABLE) {
    assert.ok(def.desc.length > 10, `${def.name} needs a description`);
    assert.equal(cfg.checkParam(def), null, `${def.name}: default does not parse`);
  }
  assert.equal(
    new Set(PARAM_TABLE.map((d) => d.name)).size,
    PARAM_TABLE.length,
    "duplicate names in the table",
  );
});

test("myorigin = /etc/mailname (Debian's setting) takes the file's first word; a missing file is an error naming it", () => {
  const dir = mkdtempSync(join(tmpdir(), "config-mailname-"));
  try {
    writeFileSync(join(dir, "mailname"), "mail.example.org\n");
    const cfg = Config.fromText(dir, `myorigin = ${dir}/mailname\n`);
    assert.equal(cfg.get("myorigin"), "mail.example.org");
    const missing = Config.fromText(dir, `myorigin = ${dir}/nothing\n`);
    assert.throws(
      () => missing.get("myorigin"),
      (e: unknown) => e instanceof ConfigError && /nothing/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
