/*
 * postalias-run - the work of postalias and newaliases
 *
 * SYNOPSIS
 *   postalias [-fijnNoprsuvw] [-c config_dir] [-d key] [-q key] [type:]file ...
 *   newaliases [-c config_dir] [-v]
 *
 * DESCRIPTION
 *   postalias builds, queries and changes alias tables as Postfix's
 *   postalias(1) does. Without -d, -i, -q or -s it builds each table from
 *   its aliases(5) source file (postalias-parse.ts): "postalias
 *   hash:/etc/aliases" writes /etc/aliases.db atomically; without a type,
 *   default_database_type is used. Names are folded to lower case unless
 *   -f; a repeated name is reported and the first entry kept (-r: the
 *   last; -w: the first, silently). A bad line is reported with file and
 *   line, and the rest of the file is still built.
 *
 *   -q name prints the value of name (exit 0 found, 1 not found); "-q -"
 *   reads names from standard input and prints "name:<TAB>value" lines;
 *   -s lists the table as "name:<TAB>value" lines; -i adds alias lines from
 *   standard input; -d name removes a name. The other options are the
 *   same as postmap's (global/dict-tool.ts).
 *
 *   Postfix also stores the "@:@" entry for sendmail and YP_* entries for
 *   NIS; no program reads Postern's table files but Postern, so they are
 *   not written.
 *
 *   newaliases rebuilds every table that alias_database lists, as
 *   "sendmail -bi" does; -C is taken as -c (sendmail's spelling).
 */
import { closeSync, openSync } from "node:fs";
import { getopt } from "../../util/getopt.js";
import { msg, msgInit } from "../../util/msg.js";
import { dictBuildFrom } from "../../global/dict-mkmap.js";
import { fdPhysicalLines } from "../../global/dict-parse.js";
import {
  addEntries,
  buildAsOwner,
  defaultOptions,
  deleteKeys,
  listTable,
  parseToolArgs,
  queryKey,
  queryKeys,
  stdinAll,
  stdinLines,
  tableRef,
  toolConfig,
  type TableRef,
  type ToolArgs,
  type ToolOutput,
} from "../../global/dict-tool.js";
import { aliasEntries } from "./postalias-parse.js";

const USAGE = "usage: postalias [-Nfijnoprsuvw] [-c config_dir] [-d key] [-q key] [map_type:]file...";
const SEP = ":\t";

/** Builds one alias table from its source file. */
function buildAliases(t: TableRef, a: ToolArgs): void {
  buildAsOwner(t, t.name, a, () => {
    const fd = openSync(t.name, "r");
    try {
      const entries = aliasEntries(fdPhysicalLines(fd), t.name, (text) => msg.warn(text));
      dictBuildFrom(t.type, t.name, entries, a.flags);
    } finally {
      closeSync(fd);
    }
  });
}

/** Runs postalias; returns the exit status. */
export async function postalias(argv: string[], out: ToolOutput): Promise<number> {
  const a = parseToolArgs("postalias", argv, "c:d:fijnNopq:rsuvw", USAGE);
  const refs = a.maps.map((m) => tableRef(m, a.config));
  switch (a.mode) {
    case "query":
      if (a.key !== "-") return (await queryKey(refs, a.key, a, out)) ? 0 : 1;
      return (await queryKeys(refs, stdinLines(), a, SEP, out)) ? 0 : 1;
    case "delete": {
      const keys = a.key === "-" ? await stdinAll() : [a.key];
      let found = false;
      for (const t of refs) found = deleteKeys(t, keys, a) || found;
      return found ? 0 : 1;
    }
    case "list":
      for (const t of refs) await listTable(t, a, SEP, out);
      return 0;
    case "incremental": {
      const entries = [...aliasEntries(await stdinAll(), "stdin", (text) => msg.warn(text))];
      for (const t of refs) addEntries(t, entries, a);
      return 0;
    }
    case "build":
      for (const t of refs) buildAliases(t, a);
      return 0;
  }
}

/** Runs newaliases: rebuilds every alias_database table; returns the exit status. */
export function newaliases(argv: string[]): number {
  msgInit({ tag: "newaliases" });
  const r = getopt(argv, "c:C:v");
  if (!r.ok || r.args.length > 0) return msg.fatal("usage: newaliases [-c config_dir] [-v]");
  let dir: string | undefined;
  for (const [k, v] of r.opts) {
    if (k === "c" || k === "C") dir = v;
    else msgInit({ verbose: 1 });
  }
  const config = toolConfig("newaliases", dir);
  let list: string[];
  try {
    list = config.list("alias_database");
  } catch (err) {
    return msg.fatal(err instanceof Error ? err.message : String(err));
  }
  const a: ToolArgs = { ...defaultOptions(), config, maps: list };
  for (const m of list) buildAliases(tableRef(m, config), a);
  return 0;
}
