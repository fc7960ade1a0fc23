#!/usr/bin/env node
// Runs the compiled test suites with node:test: unit tests beside the code
// (dist/src/**/*.test.js) in parallel, then the end-to-end tests
// (dist/test/**/*.test.js) one file at a time. Node 20's --test takes no
// glob, so the files are listed here. Arguments filter by substring.
// The fault-injection suite (dist/test/faults/, slow) runs only with --faults, which
// runs it together with the fast fault tests that npm test also runs (dist/test/fault-*).
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

function find(dir) {
  let out = [];
  let names;
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(find(p));
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out.sort();
}

const faults = process.argv.includes("--faults");
const filters = process.argv.slice(2).filter((a) => a !== "--faults");
const isFault = (f) => f.includes("/faults/") || /\/fault-[^/]*$/.test(f);
const pick = (files) =>
  files
    .filter((f) => (faults ? isFault(f) : !f.includes("/faults/")))
    .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
let failed = false;
for (const [dir, conc] of [
  ["dist/src", "2"],
  ["dist/test", "1"],
]) {
  const files = pick(find(dir));
  if (files.length === 0) continue;
  const r = spawnSync(process.execPath, ["--test", `--test-concurrency=${conc}`, ...files], {
    stdio: "inherit",
  });
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
