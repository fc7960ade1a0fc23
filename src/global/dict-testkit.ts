/*
 * dict-testkit - helpers for the table tests: captured logs, golden files, temp dirs
 *
 * SYNOPSIS
 *   import { captureLog, goldenDir, checkGolden, tempDir, showResult } from "./dict-testkit.js";
 *
 * DESCRIPTION
 *   captureLog() installs a msg sink that keeps log lines in memory and
 *   disables exit on fatal/panic. goldenDir() finds src/global/testdata/dict
 *   from either the source or the compiled tree. checkGolden() compares a
 *   produced text with a .ref file; with POSTERN_GOLDEN_UPDATE=1 in the
 *   environment it writes the .ref file instead (then review the diff).
 *   Only tests import this module.
 */
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { msgInit, type MsgLevel } from "../util/msg.js";
import type { DictResult } from "./dict-types.js";

/** Log lines kept by captureLog(). */
export interface CapturedLog {
  lines: string[];
  /** Returns and forgets the lines so far. */
  take(): string[];
}

/** Sends msg output to memory (and makes fatal/panic throw instead of exit). */
export function captureLog(): CapturedLog {
  const log: CapturedLog = {
    lines: [],
    take() {
      const out = log.lines;
      log.lines = [];
      return out;
    },
  };
  msgInit({
    exit: false,
    sink: {
      write(level: MsgLevel, _tag: string, _pid: number, text: string): void {
        log.lines.push(level === "info" ? `info: ${text}` : `${level}: ${text}`);
      },
    },
  });
  return log;
}

/** The directory of the golden files, src/global/testdata/dict. */
export function goldenDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, "testdata", "dict"), resolve(here, "../../../src/global/testdata/dict")];
  for (const c of candidates) if (existsSync(c)) return c;
  throw new Error(`golden files not found near ${here}`);
}

/** Compares text with the .ref file (or rewrites it when POSTERN_GOLDEN_UPDATE=1); returns the expected text. */
export function checkGolden(refPath: string, text: string): string {
  if (process.env["POSTERN_GOLDEN_UPDATE"] === "1") {
    writeFileSync(refPath, text);
    return text;
  }
  return readFileSync(refPath, "utf8");
}

/** A new empty temporary directory. */
export function tempDir(prefix = "postern-dict-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A lookup result as one line of text. */
export function showResult(r: DictResult | { status: string; value?: string; reason?: string }): string {
  if (r.status === "found") return `found: ${r.value ?? ""}`;
  if (r.status === "tempfail") return `tempfail: ${r.reason ?? ""}`;
  return "notfound";
}
