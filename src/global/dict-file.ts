/*
 * dict-file - the life cycle of a table that lives in a file
 *
 * SYNOPSIS
 *   import { FileDict, dictSetRecheckInterval } from "./dict-file.js";
 *   class MyDict extends FileDict<Parsed> { ... load(path, fd) ...; find(parsed, key) ... }
 *
 * DESCRIPTION
 *   FileDict loads a table file when it is opened, and loads it again when
 *   the file changes (another inode, size or modification time), so that a
 *   long-running daemon sees what postmap or an editor wrote. The file is
 *   checked at most once per recheck interval (default 1000 ms; see
 *   dictSetRecheckInterval).
 *
 *   A file that cannot be opened or read, now or after a change, makes
 *   every lookup a temporary failure until it can be read again: the last
 *   good contents are not used once the file is known to have changed, and
 *   a missing file never looks like an empty table.
 *
 *   rulesTableOpen() builds a rules table (regexp, pcre, cidr) from a file,
 *   or from rules given in the table name: "type:{ {rule 1}, {rule 2} }",
 *   each rule one line of an in-memory file, as in Postfix 3.7 and later.
 *
 *   Subclasses parse in load(), which gets an open file descriptor (closed
 *   afterwards unless keepOpen() says the subclass keeps it, as the indexed
 *   formats do), and answer in find().
 */
import { closeSync, fstatSync, openSync, statSync, type Stats } from "node:fs";
import { msg } from "../util/msg.js";
import { dictSurrogate } from "./dict-registry.js";
import {
  fdPhysicalLines,
  inlineRules,
  logicalLines,
  textPhysicalLines,
  type LogicalLine,
} from "./dict-parse.js";
import { errorText, tempFail, type DictImpl, type DictResult } from "./dict-types.js";

let recheckMs = 1000;
let restartHook: ((why: string) => void) | null = null;

/**
 * Names what to do when a changed table can no longer be read by this
 * process (it was opened as root, before the daemon dropped its
 * privileges): the daemon skeleton retires the process, and its successor
 * opens the new version as root, as Postfix's daemons restart.
 */
export function onUnreadableChange(fn: (why: string) => void): void {
  restartHook = fn;
}

/** Sets how often (ms) file tables look for a changed file; 0 checks on every lookup. */
export function dictSetRecheckInterval(ms: number): void {
  recheckMs = Math.max(0, ms);
}

/** The identity of a file version. */
export interface FileStamp {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

/** The identity of the file version that st describes. */
export function fileStamp(st: Stats): FileStamp {
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
}

/** Whether two stamps name the same file version. */
function sameStamp(a: FileStamp, b: FileStamp): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

type State<T> =
  | { ok: true; data: T; stamp: FileStamp }
  | { ok: false; reason: string; stamp: FileStamp | null; code?: string };

/** A table backed by one file, reloaded when the file changes. */
export abstract class FileDict<T> implements DictImpl {
  readonly type: string;
  readonly name: string;
  readonly flags: number;
  readonly path: string;
  #state: State<T>;
  #checked = 0;
  #closed = false;

  /** Opens the table; a failure is remembered and reported, not thrown. */
  constructor(type: string, name: string, flags: number, path: string) {
    this.type = type;
    this.name = name;
    this.flags = flags;
    this.path = path;
    this.#state = { ok: false, reason: "not loaded", stamp: null };
  }

  /** Loads the file for the first time; subclasses call this at the end of their constructor. */
  protected start(): void {
    this.#state = this.#load();
    this.#checked = Date.now();
    if (!this.#state.ok) msg.warn(`${this.type}:${this.name}: ${this.#state.reason}`);
  }

  /** Parses the open file; throws when the file is unusable. */
  protected abstract load(path: string, fd: number, st: Stats): T;

  /** Answers a lookup from the parsed contents. */
  protected abstract find(data: T, key: string): DictResult | Promise<DictResult>;

  /** Whether load() keeps the descriptor (then release() must close it). */
  protected keepOpen(): boolean {
    return false;
  }

  /** Releases what load() returned (e.g. a kept descriptor). */
  protected release(_data: T): void {}

  /** Looks up a key in the current version of the file. */
  lookup(key: string): DictResult | Promise<DictResult> {
    if (this.#closed) return tempFail(`${this.type}:${this.name}: table is closed`);
    this.#refresh();
    const st = this.#state;
    if (!st.ok) return tempFail(`${this.type}:${this.name}: ${st.reason}`);
    return this.find(st.data, key);
  }

  /** Releases the current contents; later lookups fail. */
  close(): void {
    this.#closed = true;
    if (this.#state.ok) this.release(this.#state.data);
    this.#state = { ok: false, reason: "table is closed", stamp: null };
  }

  /** Reloads the file when the recheck interval has passed and the file changed. */
  #refresh(): void {
    const now = Date.now();
    if (recheckMs > 0 && now - this.#checked < recheckMs) return;
    this.#checked = now;
    let stamp: FileStamp | null;
    try {
      stamp = fileStamp(statSync(this.path));
    } catch {
      stamp = null;
    }
    const old = this.#state.stamp;
    if (stamp !== null && old !== null && sameStamp(stamp, old)) return;
    if (stamp === null && old === null && !this.#state.ok) return;
    const next = this.#load();
    const wasOk = this.#state.ok;
    if (this.#state.ok) this.release(this.#state.data);
    this.#state = next;
    if (next.ok) msg.info(`${this.type}:${this.name}: table file changed, reloaded`);
    else if (wasOk && next.code === "EACCES" && restartHook !== null) {
      msg.info(`table ${this.type}:${this.name} has changed -- restarting`);
      restartHook(`table ${this.type}:${this.name} changed`);
    } else msg.warn(`${this.type}:${this.name}: ${next.reason}`);
  }

  /** Opens, checks and parses the file. */
  #load(): State<T> {
    let fd: number;
    try {
      fd = openSync(this.path, "r");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return { ok: false, reason: errorText(err), stamp: null, ...(code !== undefined ? { code } : {}) };
    }
    let kept = false;
    let st: Stats | null = null;
    try {
      st = fstatSync(fd);
      if (!st.isFile())
        return { ok: false, reason: `${this.path}: not a regular file`, stamp: fileStamp(st) };
      const data = this.load(this.path, fd, st);
      kept = this.keepOpen();
      return { ok: true, data, stamp: fileStamp(st) };
    } catch (err) {
      return { ok: false, reason: `${this.path}: ${errorText(err)}`, stamp: st && fileStamp(st) };
    } finally {
      if (!kept) closeSync(fd);
    }
  }
}

/** A rules table read from a file: the parse and find functions of its type. */
class RulesFileDict<T> extends FileDict<T> {
  #parse: (lines: Iterable<LogicalLine>, where: string) => T;
  #find: (data: T, key: string) => DictResult;

  /** Opens and parses the file. */
  constructor(
    type: string,
    name: string,
    flags: number,
    parse: (lines: Iterable<LogicalLine>, where: string) => T,
    find: (data: T, key: string) => DictResult,
  ) {
    super(type, name, flags, name);
    this.#parse = parse;
    this.#find = find;
    this.start();
  }

  /** Parses the logical lines of the file. */
  protected load(path: string, fd: number, _st: Stats): T {
    return this.#parse(
      logicalLines(fdPhysicalLines(fd), `${this.type}:${path}`, (t) => msg.warn(t)),
      `${this.type}:${path}`,
    );
  }

  /** Matches the key against the rules. */
  protected find(data: T, key: string): DictResult {
    return this.#find(data, key);
  }
}

/** A rules table given in its name ("{ {rule}, {rule} }"). */
class RulesInlineDict<T> implements DictImpl {
  readonly type: string;
  readonly name: string;
  readonly flags: number;
  #data: T;
  #find: (data: T, key: string) => DictResult;

  /** Keeps the parsed rules. */
  constructor(
    type: string,
    name: string,
    flags: number,
    data: T,
    find: (data: T, key: string) => DictResult,
  ) {
    this.type = type;
    this.name = name;
    this.flags = flags;
    this.#data = data;
    this.#find = find;
  }

  /** Matches the key against the rules. */
  lookup(key: string): DictResult {
    return this.#find(this.#data, key);
  }

  /** Nothing to release. */
  close(): void {}
}

/** Opens a rules table (regexp, pcre, cidr) from a file, or inline when the name starts with "{". */
export function rulesTableOpen<T>(
  type: string,
  name: string,
  flags: number,
  parse: (lines: Iterable<LogicalLine>, where: string) => T,
  find: (data: T, key: string) => DictResult,
): DictImpl {
  if (!name.startsWith("{")) return new RulesFileDict(type, name, flags, parse, find);
  const rules = inlineRules(name);
  if ("error" in rules) return dictSurrogate(type, name, flags, `${rules.error}; need "${type}:{{rule}...}"`);
  const where = `${type}:${name.length > 40 ? name.slice(0, 40) + "..." : name}`;
  const lines = logicalLines(textPhysicalLines(rules.lines.join("\n")), where, (t) => msg.warn(t));
  return new RulesInlineDict(type, name, flags, parse(lines, where), find);
}
