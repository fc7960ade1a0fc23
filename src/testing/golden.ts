/*
 * golden - table-driven tests with .in and .ref files, as Postfix tests
 *
 * SYNOPSIS
 *   goldenTests(import.meta.url, "testdata/expand", (input, name) => output);
 *
 * DESCRIPTION
 *   For every NAME.in in a directory of the source tree, runs the transform
 *   and compares its output with NAME.ref. The directory is resolved from
 *   the compiled test's location back to src/. With UPDATE_GOLDEN=1 in the
 *   environment, missing or different .ref files are written instead (read
 *   the diff before committing them: a .ref states what is right).
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import assert from "node:assert/strict";

/** Maps a compiled module URL (dist/src/x/y.test.js) to its source directory (src/x). */
export function sourceDir(moduleUrl: string): string {
  const here = dirname(fileURLToPath(moduleUrl));
  const root = resolve(here.slice(0, here.lastIndexOf(`${"/"}dist${"/"}`)));
  return join(root, relative(join(root, "dist"), here));
}

/** Registers one node:test test per .in file. */
export function goldenTests(
  moduleUrl: string,
  subdir: string,
  transform: (input: string, name: string) => string | Promise<string>,
): void {
  const dir = join(sourceDir(moduleUrl), subdir);
  const names = readdirSync(dir)
    .filter((f) => f.endsWith(".in"))
    .map((f) => f.slice(0, -3))
    .sort();
  if (names.length === 0) throw new Error(`no .in files in ${dir}`);
  for (const name of names) {
    test(`${subdir}/${name}`, async () => {
      const input = readFileSync(join(dir, `${name}.in`), "utf8");
      const got = await transform(input, name);
      const refPath = join(dir, `${name}.ref`);
      if (
        process.env["UPDATE_GOLDEN"] === "1" &&
        (!existsSync(refPath) || readFileSync(refPath, "utf8") !== got)
      ) {
        writeFileSync(refPath, got);
        return;
      }
      assert.equal(got, readFileSync(refPath, "utf8"));
    });
  }
}
