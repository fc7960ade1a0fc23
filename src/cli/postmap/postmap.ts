/*
 * postmap - build, query and change lookup tables, as Postfix's postmap
 *
 * SYNOPSIS
 *   postmap [-bfhijnNoprsuUvw] [-c config_dir] [-d key] [-q key] [type:]file ...
 *
 * DESCRIPTION
 *   Without -d, -i, -q or -s, postmap builds each table from its source
 *   file: "postmap hash:/etc/postfix/access" reads /etc/postfix/access and
 *   writes /etc/postfix/access.db; without a type, default_database_type
 *   (hash) is used. The source format is postmap(5)'s: "key whitespace
 *   value" per logical line, "#" comments, continuation lines that start
 *   with white space, keys in double quotes when they hold white space.
 *   Keys are folded to lower case unless -f. The new file replaces the old
 *   one atomically: a daemon that reads the table sees the old table or
 *   the new one, never a partial one. Bad lines are reported with file and
 *   line and skipped; a repeated key is reported and the first entry kept
 *   (-r keeps the last, -w the first without a warning). The table types
 *   that have a file are hash, btree, lmdb (Postern's indexed format, name.db
 *   or name.lmdb) and cdb (name.cdb).
 *
 *   -q key prints the first value found in the tables in order, and exits
 *   0 when found, 1 when not; "-q -" reads keys from standard input and
 *   prints "key<TAB>value" for each key found (exit 0 when one was found).
 *   Any table type can be queried, including proxy:, regexp:, cidr:. With
 *   "-q -", -h takes the header lines of a message on standard input as
 *   keys (a folded header is one key with embedded newlines), and -b the
 *   body lines. -s lists every entry ("key<TAB>value", hash, btree, lmdb,
 *   cdb, texthash and proxy: tables). -i adds "key value" lines from
 *   standard input to a table, creating it when needed. -d key removes a
 *   key ("-d -": keys from standard input); exit 0 when one was there. -j
 *   prints {"key": "value"} lines. The other options (-c -n -N -o -p -u -U
 *   -v) are described in global/dict-tool.ts; -n and -N are accepted for
 *   compatibility: Postern's table files have no null-terminated variants.
 *
 * DIAGNOSTICS
 *   Problems go to standard error as "postmap: warning: ..." and
 *   "postmap: fatal: ..."; a fatal error, including a lookup that fails
 *   temporarily, exits 1. -F (base64 file contents) and -m (MIME parsing
 *   of -b and -h input) are not supported yet and are refused.
 */
import { msg } from "../../util/msg.js";
import { dictBuild } from "../../global/dict-mkmap.js";
import { logicalLines, parseSourceLine } from "../../global/dict-parse.js";
import type { SourceEntry } from "../../global/dict-texthash.js";
import {
  addEntries,
  buildAsOwner,
  deleteKeys,
  listTable,
  parseToolArgs,
  queryKey,
  queryKeys,
  stdinAll,
  stdinLines,
  tableRef,
  toolExit,
  ToolOutput,
  type ToolArgs,
} from "../../global/dict-tool.js";

const USAGE = "usage: postmap [-bfFhijmnNoprsuUvw] [-c config_dir] [-d key] [-q key] [map_type:]file...";

/** The entries of "key value" lines (postmap -i); bad lines are reported and skipped. */
function* sourceEntries(lines: string[], where: string): Generator<SourceEntry> {
  for (const ll of logicalLines(lines, where, (t) => msg.warn(t))) {
    const kv = parseSourceLine(ll.text);
    if ("error" in kv) {
      msg.warn(`${where}, line ${ll.line}: ${kv.error}: skipping this line`);
      continue;
    }
    if (kv.key.endsWith(":"))
      msg.warn(`${where}, line ${ll.line}: record is in "key: value" format; is this an alias file?`);
    yield { key: kv.key, value: kv.value, line: ll.line };
  }
}

/** Keys from a message on standard input: header lines (-h), body lines (-b). */
async function* messageKeys(
  lines: AsyncIterable<string>,
  header: boolean,
  body: boolean,
): AsyncGenerator<string> {
  let current: string | null = null;
  let inHeader = true;
  for await (const raw of lines) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (inHeader) {
      if (current !== null && /^[ \t]/.test(line)) {
        current += `\n${line}`;
        continue;
      }
      if (current !== null && header) yield current;
      current = null;
      if (/^[\x21-\x39\x3b-\x7e]+:/.test(line)) {
        current = line;
        continue;
      }
      inHeader = false;
      if (!body) return;
      if (line === "") continue;
    }
    yield line;
  }
  if (current !== null && header) yield current;
}

/** Refuses flag combinations that Postfix refuses or that Postern lacks. */
function checkExtra(a: ToolArgs): void {
  if (a.extra.has("F")) msg.fatal("option -F (file contents as base64) is not supported");
  if (a.extra.has("m")) msg.fatal("option -m (MIME parsing) is not supported");
  const hb = a.extra.has("h") || a.extra.has("b");
  if (hb && !(a.mode === "query" && a.key === "-")) msg.fatal('specify -b -h or -m only with "-q -"');
}

/** Runs postmap; returns the exit status. */
async function postmap(argv: string[], out: ToolOutput): Promise<number> {
  const a = parseToolArgs("postmap", argv, "bc:d:fFhijmnNopq:rsuUvw", USAGE);
  checkExtra(a);
  const refs = a.maps.map((m) => tableRef(m, a.config));
  switch (a.mode) {
    case "query": {
      if (a.key !== "-") return (await queryKey(refs, a.key, a, out)) ? 0 : 1;
      const hb = a.extra.has("h") || a.extra.has("b");
      const keys = hb ? messageKeys(stdinLines(), a.extra.has("h"), a.extra.has("b")) : stdinLines();
      return (await queryKeys(refs, keys, a, "\t", out)) ? 0 : 1;
    }
    case "delete": {
      const keys = a.key === "-" ? await stdinAll() : [a.key];
      let found = false;
      for (const t of refs) found = deleteKeys(t, keys, a) || found;
      return found ? 0 : 1;
    }
    case "list":
      for (const t of refs) await listTable(t, a, "\t", out);
      return 0;
    case "incremental": {
      const entries = [...sourceEntries(await stdinAll(), "stdin")];
      for (const t of refs) addEntries(t, entries, a);
      return 0;
    }
    case "build":
      for (const t of refs)
        buildAsOwner(t, t.name, a, () => void dictBuild(t.type, t.name, { flags: a.flags }));
      return 0;
  }
}

const out = new ToolOutput();
await toolExit(out, await postmap(process.argv.slice(2), out));
