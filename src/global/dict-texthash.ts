/*
 * dict-texthash - texthash: tables, a postmap source file read into memory
 *
 * SYNOPSIS
 *   dictOpen("texthash:/etc/postfix/access")
 *
 * DESCRIPTION
 *   The file has the postmap(1) source format: "key whitespace value", one
 *   entry per logical line, "#" comments at line start, continuation lines
 *   that start with whitespace. Keys stay in their quoted form. With
 *   FOLD_FIX, keys and queries are folded to lower case.
 *
 *   A repeated key is reported; the first entry stays, unless DUP_REPLACE
 *   asks for the last (DUP_IGNORE keeps the first silently). Postfix makes a
 *   texthash table with a repeated key unusable; Postern keeps the table in
 *   service and names the line, as it does for other bad lines.
 *
 *   Unlike Postfix's texthash, the file is read again when it changes.
 *
 * DIAGNOSTICS
 *   Warnings name the file and line of every line that is skipped. A file
 *   that cannot be read makes lookups fail temporarily.
 */
import type { Stats } from "node:fs";
import { msg } from "../util/msg.js";
import { fdPhysicalLines, logicalLines, parseSourceLine } from "./dict-parse.js";
import { FileDict } from "./dict-file.js";
import { DictFlag, foldKey, found, NOT_FOUND, type DictResult } from "./dict-types.js";

/** One entry of a source file, with the line it came from. */
export interface SourceEntry {
  key: string;
  value: string;
  line: number;
}

/** Reads the entries of a postmap source file from an open descriptor, warning about bad lines. */
export function* readSourceEntries(fd: number, where: string): Generator<SourceEntry> {
  for (const ll of logicalLines(fdPhysicalLines(fd), where, (t) => msg.warn(t))) {
    const kv = parseSourceLine(ll.text);
    if ("error" in kv) {
      msg.warn(`${where}, line ${ll.line}: ${kv.error}: skipping this line`);
      continue;
    }
    if (kv.key.endsWith(":")) {
      msg.warn(`${where}, line ${ll.line}: entry looks like "key: value"; is this an alias file?`);
    }
    yield { key: kv.key, value: kv.value, line: ll.line };
  }
}

/** Stores an entry in a map, applying the duplicate-key policy of the flags. */
export function putEntry(map: Map<string, string>, e: SourceEntry, flags: number, where: string): void {
  const key = foldKey(e.key, flags, "fixed");
  if (!map.has(key) || (flags & DictFlag.DUP_REPLACE) !== 0) {
    map.set(key, e.value);
    return;
  }
  if ((flags & DictFlag.DUP_IGNORE) === 0) {
    msg.warn(`${where}, line ${e.line}: duplicate entry "${key}": keeping the first one`);
  }
}

/** A texthash: table. */
export class TexthashDict extends FileDict<Map<string, string>> {
  /** Opens and reads the file. */
  constructor(name: string, flags: number) {
    super("texthash", name, flags | DictFlag.FIXED, name);
    this.start();
  }

  /** Reads every entry into memory. */
  protected load(path: string, fd: number, _st: Stats): Map<string, string> {
    const map = new Map<string, string>();
    for (const e of readSourceEntries(fd, path)) putEntry(map, e, this.flags, path);
    return map;
  }

  /** Finds a key. */
  protected find(data: Map<string, string>, key: string): DictResult {
    const value = data.get(foldKey(key, this.flags, "fixed"));
    return value === undefined ? NOT_FOUND : found(value);
  }
}

/** Opens a texthash: table. */
export function texthashOpen(name: string, flags: number): TexthashDict {
  return new TexthashDict(name, flags);
}
