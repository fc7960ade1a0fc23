/*
 * dict-tool - what the table commands postmap, postalias and newaliases share
 *
 * SYNOPSIS
 *   import { parseToolArgs, tableRef, queryKey, queryKeys, listTable, deleteKeys,
 *            buildAsOwner, addEntries, stdinLines, ToolOutput } from "../../global/dict-tool.js";
 *
 * DESCRIPTION
 *   postmap(1) and postalias(1) take the same options and differ only in
 *   how they read a source file and in how they print "key value" lines.
 *   The options, with Postfix's meanings:
 *     -c dir   configuration directory (also passed on as MAIL_CONFIG)
 *     -d key   delete key ("-": keys from standard input); exit 0 when one was found
 *     -f       do not fold keys to lower case
 *     -i       add entries from standard input to an existing table
 *     -j       JSON output for -q and -s ({"key": "value"} per line)
 *     -n, -N   accepted; Postern's table files have no null-terminated
 *              variants, so there is nothing to choose
 *     -o       as root, do not switch to the source file's owner
 *     -p       do not copy the group/other read permissions of the source
 *     -q key   print the value of key ("-": "key value" lines for keys
 *              from standard input); exit 0 found, 1 not found
 *     -r, -w   on a repeated key: keep the last entry (-r) or the first,
 *              silently (-w); the default keeps the first with a warning
 *     -s       list every entry
 *     -u, -U   accepted; UTF-8 is always on
 *     -v       verbose logging
 *   A table argument is "type:name", or a name with default_database_type.
 *
 *   Failures are fatal, with Postfix's wording and exit status 1: a table
 *   that cannot be opened ("open database /x/y.db: No such file or
 *   directory"), a source that cannot be read ("open /x/y: ..."), and a
 *   lookup that fails temporarily ("table proxy:hash:/x: query error:
 *   ...") -- a failed lookup is never reported as "not found".
 *
 *   When run by root, a table is built with the rights of the source
 *   file's owner (unless -o), and the new file gets no more group/other
 *   read permission than the source (unless -p).
 */
import { closeSync, fstatSync, openSync, statSync, type Stats } from "node:fs";
import { dirname, resolve } from "node:path";
import { getopt } from "../util/getopt.js";
import { msg, msgInit } from "../util/msg.js";
import { Config, ConfigError } from "./config.js";
import { dictCloseAll, dictOpen, DictFlag, dictTypes } from "./dict.js";
import { dictAdd, dictDelete, dictDump, dictTablePath, ONDISK_TYPES } from "./dict-mkmap.js";
import { DICT_MAX_LINE } from "./dict-parse.js";
import { proxySequence } from "./dict-proxy.js";
import { putEntry, readSourceEntries, type SourceEntry } from "./dict-texthash.js";
import { configDirectory } from "./install-paths.js";

/** What the command line asks for. */
export interface ToolArgs {
  mode: "build" | "incremental" | "query" | "delete" | "list";
  /** The -q or -d key ("-" for standard input). */
  key: string;
  /** Table flags: FOLD_FIX and the DUP_* policy. */
  flags: number;
  asOwner: boolean;
  savePerm: boolean;
  json: boolean;
  /** Flags that only one command knows (postmap -b -h -m). */
  extra: Set<string>;
  config: Config;
  maps: string[];
}

/** A table named on the command line. */
export interface TableRef {
  type: string;
  name: string;
}

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EPERM: "Operation not permitted",
  EISDIR: "Is a directory",
  ENOTDIR: "Not a directory",
  ELOOP: "Too many levels of symbolic links",
  ENAMETOOLONG: "File name too long",
  EROFS: "Read-only file system",
  ENOSPC: "No space left on device",
  EDQUOT: "Disk quota exceeded",
  EMFILE: "Too many open files",
  EIO: "Input/output error",
  ERR_ACCESS_DENIED: "Permission denied (permission model)",
};

/** The C library's text for a system error, as Postfix's %m prints it. */
export function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code !== undefined && ERRNO_TEXT[code] !== undefined) return ERRNO_TEXT[code];
  return err instanceof Error ? err.message : String(err);
}

/** Parses the common options; `spec` is the command's getopt string, `only` the flags it knows. */
export function parseToolArgs(tool: string, argv: string[], spec: string, usage: string): ToolArgs {
  msgInit({ tag: tool });
  const r = getopt(argv, spec);
  if (!r.ok) {
    process.stderr.write(`${tool}: ${r.error}\n`);
    return msg.fatal(usage);
  }
  const o: Collected = { ...defaultOptions(), dir: undefined, verbose: 0 };
  for (const [k, v] of r.opts) applyOption(o, k, v);
  if (o.json && o.mode !== "query" && o.mode !== "list") msg.fatal("option -j requires -q or -s");
  msgInit({ verbose: o.verbose });
  const config = toolConfig(tool, o.dir);
  if (r.args.length === 0) msg.fatal(usage);
  const { dir: _dir, verbose: _verbose, ...rest } = o;
  return { ...rest, config, maps: r.args };
}

type Collected = Omit<ToolArgs, "config" | "maps"> & { dir: string | undefined; verbose: number };

/** The options when none are given (what newaliases uses). */
export function defaultOptions(): Omit<ToolArgs, "config" | "maps"> {
  return {
    mode: "build",
    key: "",
    flags: DictFlag.DUP_WARN | DictFlag.FOLD_FIX,
    asOwner: true,
    savePerm: true,
    json: false,
    extra: new Set<string>(),
  };
}

/** Loads the configuration of -c dir (passed on as MAIL_CONFIG), else $MAIL_CONFIG; fatal when it is bad. */
export function toolConfig(tool: string, dir: string | undefined): Config {
  if (dir !== undefined) process.env["MAIL_CONFIG"] = resolve(dir);
  try {
    const config = Config.load(configDirectory(dir));
    config.setRuntime("process_name", tool);
    return config;
  } catch (err) {
    return msg.fatal(err instanceof ConfigError ? err.message : errnoText(err));
  }
}

/** Applies one option letter to the options being collected. */
function applyOption(a: Collected, k: string, v: string): void {
  const modes: Record<string, ToolArgs["mode"]> = { d: "delete", i: "incremental", q: "query", s: "list" };
  const mode = modes[k];
  if (mode !== undefined) {
    if (a.mode !== "build") msg.fatal("specify only one of -d -i -q or -s");
    a.mode = mode;
    a.key = v;
    return;
  }
  if (k === "c") a.dir = v;
  else if (k === "f") a.flags &= ~DictFlag.FOLD_FIX;
  else if (k === "r") a.flags = (a.flags & ~(DictFlag.DUP_WARN | DictFlag.DUP_IGNORE)) | DictFlag.DUP_REPLACE;
  else if (k === "w") a.flags = (a.flags & ~(DictFlag.DUP_WARN | DictFlag.DUP_REPLACE)) | DictFlag.DUP_IGNORE;
  else if (k === "o") a.asOwner = false;
  else if (k === "p") a.savePerm = false;
  else if (k === "j") a.json = true;
  else if (k === "v") a.verbose += 1;
  else if (!"nNuU".includes(k)) a.extra.add(k);
}

/** Splits a table argument: "type:name", or a name of the default type. */
export function tableRef(arg: string, config: Config): TableRef {
  const colon = arg.indexOf(":");
  if (colon > 0) return { type: arg.slice(0, colon), name: arg.slice(colon + 1) };
  return { type: config.get("default_database_type"), name: arg };
}

/** The flags a table is opened with for queries (no build-time policy). */
function queryFlags(flags: number): number {
  return flags & ~(DictFlag.DUP_WARN | DictFlag.DUP_IGNORE | DictFlag.DUP_REPLACE);
}

/** Checks that a table can be opened, with Postfix's fatal messages when not. */
function checkOpen(t: TableRef): void {
  if (!dictTypes().includes(t.type)) msg.fatal(`unsupported dictionary type: ${t.type}`);
  let path: string | null = null;
  let what = "open";
  if (ONDISK_TYPES.includes(t.type)) {
    path = dictTablePath(t.type, t.name);
    what = "open database";
  } else if (["texthash", "regexp", "pcre", "cidr"].includes(t.type) && !t.name.startsWith("{")) {
    path = t.name;
  }
  if (path === null) return;
  try {
    closeSync(openSync(path, "r"));
  } catch (err) {
    msg.fatal(`${what} ${path}: ${errnoText(err)}`);
  }
}

/** Buffered standard output that respects back pressure. */
export class ToolOutput {
  #buf = "";

  /** Ends quietly when the reader goes away (postmap -s | head). */
  constructor() {
    process.stdout.on("error", () => process.exit(process.exitCode ?? 0));
  }

  /** Adds one line; writes when enough has gathered. */
  async line(text: string): Promise<void> {
    this.#buf += text + "\n";
    if (this.#buf.length >= 65536) await this.flush();
  }

  /** Writes what is buffered and waits until the stream takes more. */
  async flush(): Promise<void> {
    if (this.#buf === "") return;
    const ok = process.stdout.write(this.#buf);
    this.#buf = "";
    if (!ok) await new Promise<void>((r) => process.stdout.once("drain", () => r()));
  }
}

/** Formats a "key value" line: with sep ("\t" or ":\t"), or as JSON. */
export function formatPair(key: string, value: string, sep: string, json: boolean): string {
  return json ? `{${JSON.stringify(key)}: ${JSON.stringify(value)}}` : `${key}${sep}${value}`;
}

/** Looks a key up in the tables in order; the first value found, null, or fatal on a failed lookup. */
async function lookupFirst(refs: TableRef[], key: string, flags: number): Promise<string | null> {
  for (const t of refs) {
    checkOpen(t);
    const d = dictOpen(`${t.type}:${t.name}`, { flags: queryFlags(flags) });
    const r = await d.lookup(key);
    if (r.status === "tempfail") return msg.fatal(`table ${t.type}:${t.name}: query error: ${r.reason}`);
    if (r.status === "found") {
      if (r.value === "") {
        msg.warn(`table ${t.type}:${t.name}: key ${key}: empty string result is not allowed`);
        msg.warn(`table ${t.type}:${t.name} should return NO RESULT in case of NOT FOUND`);
      }
      return r.value;
    }
  }
  return null;
}

/** postmap -q key: prints the first value found; true when found. */
export async function queryKey(
  refs: TableRef[],
  key: string,
  a: ToolArgs,
  out: ToolOutput,
): Promise<boolean> {
  const value = await lookupFirst(refs, key, a.flags);
  if (value === null) return false;
  await out.line(a.json ? formatPair(key, value, "", true) : value);
  return true;
}

/** postmap -q -: a "key value" line for each key found; true when any was found. */
export async function queryKeys(
  refs: TableRef[],
  keys: AsyncIterable<string>,
  a: ToolArgs,
  sep: string,
  out: ToolOutput,
): Promise<boolean> {
  let any = false;
  for await (const key of keys) {
    const value = await lookupFirst(refs, key, a.flags);
    if (value === null) continue;
    any = true;
    await out.line(formatPair(key, value, sep, a.json));
  }
  return any;
}

/** postmap -s: lists every entry of one table. */
export async function listTable(t: TableRef, a: ToolArgs, sep: string, out: ToolOutput): Promise<void> {
  if (t.type === "proxy") {
    for await (const e of proxySequence(t.name, queryFlags(a.flags))) {
      if (e.kind === "error") msg.fatal(`table ${t.type}:${t.name}: sequence error: ${e.reason}`);
      else await out.line(formatPair(e.key, e.value, sep, a.json));
    }
    return;
  }
  checkOpen(t);
  let entries: Iterable<{ key: string; value: string }>;
  if (ONDISK_TYPES.includes(t.type)) entries = dictDump(t.type, t.name);
  else if (t.type === "texthash") entries = texthashEntries(t.name, a.flags);
  else return msg.fatal(`table ${t.type}:${t.name}: sequence operation is not supported`);
  try {
    for (const e of entries) await out.line(formatPair(e.key, e.value, sep, a.json));
  } catch (err) {
    msg.fatal(`table ${t.type}:${t.name}: sequence error: ${errnoText(err)}`);
  }
}

/** The entries of a texthash source file, folded and de-duplicated as the table sees them. */
function texthashEntries(path: string, flags: number): Array<{ key: string; value: string }> {
  const fd = openSync(path, "r");
  try {
    const map = new Map<string, string>();
    for (const e of readSourceEntries(fd, path)) putEntry(map, e, flags | DictFlag.DUP_IGNORE, path);
    return [...map].map(([key, value]) => ({ key, value }));
  } finally {
    closeSync(fd);
  }
}

/** Reports a failure to write a table file, with Postfix's wording. */
function writeFatal(t: TableRef, err: unknown): never {
  const e = err as NodeJS.ErrnoException;
  if (e.syscall === "open" || e.code === "ENOENT")
    return msg.fatal(`open database ${dictTablePath(t.type, t.name)}: ${errnoText(err)}`);
  return msg.fatal(`table ${t.type}:${t.name}: write error: ${errnoText(err)}`);
}

/** Refuses operations that need a table file for types that have none. */
function needFile(t: TableRef, what: string): void {
  if (t.type === "proxy") msg.fatal("can't create or change maps via the proxy service");
  if (!dictTypes().includes(t.type)) msg.fatal(`unsupported dictionary type: ${t.type}`);
  if (!ONDISK_TYPES.includes(t.type))
    msg.fatal(`unsupported dictionary type: ${t.type} does not support ${what}`);
}

/** postmap -d: deletes keys from one table; true when any was there. */
export function deleteKeys(t: TableRef, keys: string[], a: ToolArgs): boolean {
  needFile(t, "delete");
  checkOpen(t);
  try {
    return dictDelete(t.type, t.name, keys, a.flags) > 0;
  } catch (err) {
    return writeFatal(t, err);
  }
}

/** postmap -i: adds entries to one table (creating it when needed). */
export function addEntries(t: TableRef, entries: Iterable<SourceEntry>, a: ToolArgs): void {
  needFile(t, "incremental updates");
  try {
    dictAdd(t.type, t.name, entries, a.flags);
  } catch (err) {
    writeFatal(t, err);
  }
}

/** Opens the source file of a build and returns its status; fatal when it cannot be read. */
function statSource(path: string): Stats {
  try {
    const fd = openSync(path, "r");
    try {
      return fstatSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    return msg.fatal(`open ${path}: ${errnoText(err)}`);
  }
}

/** Builds one table from its source: checks, takes the owner's rights and umask, runs build(). */
export function buildAsOwner(t: TableRef, source: string, a: ToolArgs, build: () => void): void {
  needFile(t, "bulk-mode creation");
  const st = statSource(source);
  const oldMask = a.savePerm && st.isFile() ? process.umask(0o022 | (~st.mode & 0o077)) : null;
  const restore = a.asOwner ? becomeOwner(source, st) : (): void => undefined;
  try {
    build();
  } catch (err) {
    writeFatal(t, err);
  } finally {
    restore();
    if (oldMask !== null) process.umask(oldMask);
  }
}

/** As root, takes the source owner's user and group ids; returns how to go back. */
function becomeOwner(source: string, st: Stats): () => void {
  if (process.getuid?.() !== 0 || process.seteuid === undefined) return () => undefined;
  if (st.uid === 0) {
    const parent = dirname(resolve(source));
    const pst = statSync(parent, { throwIfNoEntry: false });
    if (pst !== undefined && pst.uid !== 0)
      msg.warn(
        `Creating root-owned database file(s) ${source}.* in non-root-owned directory ${parent}. ` +
          `Files ${source}, ${source}.*, and directory ${parent} should have the same owner. ` +
          "Please fix ownership to avoid a privilege-escalation attack.",
      );
    return () => undefined;
  }
  const groups = process.getgroups?.() ?? [];
  const egid = process.getegid?.() ?? 0;
  try {
    process.setgroups?.([st.gid]);
    process.setegid?.(st.gid);
    process.seteuid(st.uid);
  } catch (err) {
    return msg.fatal(`set_eugid ${st.uid}:${st.gid}: ${errnoText(err)}`);
  }
  return () => {
    process.seteuid?.(0);
    process.setegid?.(egid);
    process.setgroups?.(groups);
  };
}

/** Lines from standard input without their newline; a line over the limit is skipped with a warning. */
export async function* stdinLines(maxLine = DICT_MAX_LINE): AsyncGenerator<string> {
  let parts: Buffer[] = [];
  let len = 0;
  let skipping = false;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    for (let start = 0; start < chunk.length;) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl < 0 ? chunk.length : nl;
      if (!skipping && len + end - start > maxLine) {
        msg.warn(`stdin: line is longer than ${maxLine} bytes: skipping it`);
        skipping = true;
      }
      if (!skipping) parts.push(chunk.subarray(start, end));
      len += end - start;
      if (nl < 0) break;
      if (!skipping) yield Buffer.concat(parts).toString("utf8");
      parts = [];
      len = 0;
      skipping = false;
      start = nl + 1;
    }
  }
  if (len > 0 && !skipping) yield Buffer.concat(parts).toString("utf8");
}

/** Collects standard input's lines (for -i and -d -). */
export async function stdinAll(): Promise<string[]> {
  const out: string[] = [];
  for await (const l of stdinLines()) out.push(l);
  return out;
}

/** Ends a command: flushes output, closes tables, sets the exit status. */
export async function toolExit(out: ToolOutput, status: number): Promise<void> {
  await out.flush();
  dictCloseAll();
  process.exitCode = status;
}
