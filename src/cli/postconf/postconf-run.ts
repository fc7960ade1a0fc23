/*
 * postconf - show and change Postern's configuration, as Postfix's postconf
 *
 * SYNOPSIS
 *   postconf [-c dir] [-dfhnx] [-o name=value] [name ...]
 *   postconf [-c dir] -e name=value ...     postconf -X name ...   postconf -# name ...
 *   postconf [-c dir] -M[f|X|#] [service[/type] | service/type='entry' ...]
 *   postconf [-c dir] -F[e] [service[/type[/field]] ...]
 *   postconf [-c dir] -P[e|X] [service[/type[/name]] ...]
 *   postconf [-c dir] -b | -t [template_file]
 *   postconf -m | -l | -a | -A
 *
 * DESCRIPTION
 *   Without flags, prints every parameter with its effective value. -n
 *   prints only what main.cf sets, -d the defaults, -h values only, -x with
 *   $name expanded, -f folds long lines. -e, -X and -# edit main.cf in place
 *   (comments and order are kept; the file is replaced atomically under a
 *   lock). -M, -F and -P show or edit master.cf. -m lists the lookup table
 *   types, -l the mailbox locking methods, -a and -A the SASL server and
 *   client types. -b prints the text of the delivery status notices
 *   with $name expanded, as they would be sent, and -t the templates
 *   themselves (bounce(5) format), from bounce_template_file or the named
 *   file ("" for the built-in ones). The configuration directory is -c, else $MAIL_CONFIG,
 *   else /etc/postern. Problems go to standard error; unknown parameters in
 *   main.cf and master.cf draw "unused parameter" warnings.
 *   postconf.ts is the entry point; this module does the work.
 */
import { readFileSync } from "node:fs";
import { getopt } from "../../util/getopt.js";
import { msg, msgInit } from "../../util/msg.js";
import { editFile } from "../../util/edit-file.js";
import { Config } from "../../global/config.js";
import { configDirectory } from "../../global/install-paths.js";
import { editMainCf, splitNameValue } from "../../global/main-cf.js";
import { PARAM_TABLE, paramDef } from "../../global/params-table.js";
import { capabilityList } from "../../global/capabilities.js";
import { dictTypes } from "../../global/dict.js";
import { MBOX_LOCK_METHODS } from "../../global/mbox-conf.js";
import {
  PostconfError,
  editMasterFile,
  showEntries,
  showFields,
  showParams,
  type MasterEdit,
} from "./postconf-master.js";
import { formatParam } from "./postconf-print.js";
import {
  TemplateError,
  dumpTemplates,
  expandTemplates,
  loadTemplates,
} from "../../global/bounce-template.js";

const USAGE = "usage: postconf [-c config_dir] [-aAbdefFhlmMnPtxX#] [-o name=value] [name...]";

interface Flags {
  set: Set<string>;
  dir: string | undefined;
  overrides: Array<[string, string]>;
}

/** Reads the command line into flags. */
function parseFlags(argv: string[]): { flags: Flags; args: string[] } {
  const r = getopt(argv, "aAbc:defFhlmMno:pPtvxX#");
  if (!r.ok) throw new PostconfError(`${r.error}\n${USAGE}`);
  const flags: Flags = { set: new Set(), dir: undefined, overrides: [] };
  for (const [k, v] of r.opts) {
    if (k === "c") flags.dir = v;
    else if (k === "o") {
      const nv = splitNameValue(v);
      if ("error" in nv) throw new PostconfError(`-o ${v}: ${nv.error}`);
      flags.overrides.push([nv.name, nv.value]);
    } else flags.set.add(k);
  }
  return { flags, args: r.args };
}

/** The names postconf shows without -n: built-in ones and the valid names that main.cf sets. */
function shownNames(cfg: Config, onlySet: boolean): string[] {
  const unused = new Set(cfg.unusedWarnings().map((w) => /unused parameter: ([^=]+)=/.exec(w)?.[1] ?? ""));
  const set = [...cfg.main.settings.keys()].filter((n) => !unused.has(n));
  const names = onlySet ? set : [...new Set([...PARAM_TABLE.map((d) => d.name), ...set])];
  return names.sort();
}

/** Shows parameters: all, -n, -d, or the named ones. */
function showMain(cfg: Config, flags: Flags, names: string[]): string {
  const has = (f: string): boolean => flags.set.has(f);
  const list = names.length > 0 ? names : shownNames(cfg, has("n"));
  let out = "";
  for (const name of list) {
    let value = has("d") ? cfg.rawDefault(name) : cfg.raw(name);
    if (has("n") && names.length > 0 && !cfg.isSet(name)) continue;
    if (value === undefined || (!has("d") && paramDef(name) === undefined && !cfg.isSet(name))) {
      msg.warn(`${name}: unknown parameter`);
      continue;
    }
    if (has("x")) value = cfg.expand(value, `parameter ${name}`);
    out += formatParam(name, value, has("h"), has("f"));
  }
  return out;
}

/** Edits main.cf for -e, -X or -#. */
async function editMain(cfg: Config, flags: Flags, args: string[]): Promise<void> {
  if (args.length === 0) throw new PostconfError("-e, -X or -# requires name=value or name arguments");
  let edit: Parameters<typeof editMainCf>[1];
  if (flags.set.has("e")) {
    const values = new Map<string, string>();
    for (const a of args) {
      if (a.includes("\n")) throw new PostconfError("-e, -X, or -# accepts no multi-line input");
      const nv = splitNameValue(a);
      if ("error" in nv) throw new PostconfError(`${nv.error}`);
      values.set(nv.name, nv.value);
    }
    edit = { op: "set", values };
  } else {
    for (const a of args)
      if (a.includes("=")) throw new PostconfError("-X or -# requires parameter names without value");
    edit = { op: flags.set.has("X") ? "remove" : "comment", names: new Set(args.map((a) => a.trim())) };
  }
  await editFile(cfg.mainPath, (old) => {
    const r = editMainCf(old, edit);
    for (const w of r.warnings) msg.warn(`${cfg.mainPath}: ${w}`);
    return r.text;
  });
}

/** The master.cf edit that the flags ask for, or null when they ask to show. */
function masterEdit(flags: Flags, args: string[]): MasterEdit | null {
  const has = (f: string): boolean => flags.set.has(f);
  const editing = has("e") || args.some((a) => a.includes("="));
  if (has("M")) {
    if (has("X") || has("#")) return { op: has("X") ? "remove" : "comment", args };
    return editing ? { op: "entry", args } : null;
  }
  if (has("F")) return editing ? { op: "field", args } : null;
  if (has("X")) return { op: "param-remove", args };
  return editing ? { op: "param", args } : null;
}

/** Runs the -M, -F and -P modes. */
async function runMaster(cfg: Config, flags: Flags, args: string[]): Promise<string> {
  const edit = masterEdit(flags, args);
  if (edit !== null) {
    await editMasterFile(cfg.masterPath, edit);
    return "";
  }
  const text = readMaster(cfg);
  const fold = flags.set.has("f");
  const expand = flags.set.has("x") ? (v: string): string => expandOverride(cfg, v) : undefined;
  if (flags.set.has("M")) return showEntries(text, cfg.masterPath, args, fold, expand);
  if (flags.set.has("F")) return showFields(text, cfg.masterPath, args, fold);
  return showParams(text, cfg.masterPath, args, fold, expand ? (v) => cfg.expand(v) : undefined);
}

/** Reads master.cf as text ("" when it does not exist). */
function readMaster(cfg: Config): string {
  try {
    return readFileSync(cfg.masterPath, "utf8");
  } catch {
    return "";
  }
}

/** Expands the value part of "name=value" for -Mx. */
function expandOverride(cfg: Config, nv: string): string {
  const eq = nv.indexOf("=");
  return eq < 0 ? nv : `${nv.slice(0, eq)}=${cfg.expand(nv.slice(eq + 1))}`;
}

/** Runs -b and -t: the notice templates, expanded or as they are. */
function showTemplates(cfg: Config, flags: Flags, args: string[]): string {
  if (flags.set.has("b") && flags.set.has("t")) throw new PostconfError("specify one of -b and -t");
  if (args.length > 1) throw new PostconfError("options -b and -t require at most one template file");
  const file = args[0];
  const c = file === undefined ? cfg : cfg.withOverrides([["bounce_template_file", file]], "command line");
  const warn = (w: string): void => msg.warn(w);
  try {
    const ts = loadTemplates(c, warn);
    return flags.set.has("b") ? expandTemplates(ts, c, warn) : dumpTemplates(ts, c);
  } catch (err) {
    if (err instanceof TemplateError) throw new PostconfError(err.message);
    throw err;
  }
}

/** Runs postconf; returns the exit status. */
export async function postconf(argv: string[]): Promise<number> {
  msgInit({ tag: "postconf" });
  const { flags, args } = parseFlags(argv);
  const has = (f: string): boolean => flags.set.has(f);
  if (has("m")) {
    process.stdout.write(
      dictTypes()
        .sort()
        .map((x) => `${x}\n`)
        .join(""),
    );
    return 0;
  }
  if (has("l")) {
    process.stdout.write(MBOX_LOCK_METHODS.map((x) => `${x}\n`).join(""));
    return 0;
  }
  for (const f of ["a", "A"] as const) {
    if (has(f)) {
      process.stdout.write(
        capabilityList(f)
          .map((x) => `${x}\n`)
          .join(""),
      );
      return 0;
    }
  }
  const cfg = Config.load(configDirectory(flags.dir)).withOverrides(flags.overrides, "command line -o");
  for (const p of [...cfg.main.problems, ...cfg.master.problems])
    msg.warn(`${p.file}, line ${p.line}: ${p.text}`);
  if (has("b") || has("t")) {
    process.stdout.write(showTemplates(cfg, flags, args));
    return 0;
  }
  if (has("e") && !has("M") && !has("F") && !has("P")) {
    await editMain(cfg, flags, args);
    return 0;
  }
  if ((has("X") || has("#")) && !has("M") && !has("P")) {
    await editMain(cfg, flags, args);
    return 0;
  }
  const out =
    has("M") || has("F") || has("P") ? await runMaster(cfg, flags, args) : showMain(cfg, flags, args);
  process.stdout.write(out);
  if (!has("d")) for (const w of cfg.unusedWarnings()) msg.warn(w);
  return 0;
}
