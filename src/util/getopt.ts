/*
 * getopt - POSIX-style option parsing, as the Postfix commands take them
 *
 * SYNOPSIS
 *   const r = getopt(argv, "c:nhx#");
 *   if (!r.ok) usage(r.error);
 *   r.opts  // [["c", "/etc/postern"], ["n", ""], ...] in order
 *   r.args  // what follows the options
 *
 * DESCRIPTION
 *   Letters in the spec are flags; a letter followed by ":" takes a value
 *   (attached, "-c/etc", or the next word). Flags group ("-nf"). Parsing
 *   stops at "--" or the first word that is not an option. An option can
 *   repeat; the caller decides what repetition means.
 */

export type GetoptResult =
  { ok: true; opts: Array<[string, string]>; args: string[] } | { ok: false; error: string };

/** Parses argv against a getopt spec. */
export function getopt(argv: readonly string[], spec: string): GetoptResult {
  const opts: Array<[string, string]> = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "--") {
      i++;
      break;
    }
    if (!a.startsWith("-") || a === "-") break;
    for (let j = 1; j < a.length; j++) {
      const ch = a[j] ?? "";
      const at = spec.indexOf(ch);
      if (at < 0 || ch === ":") return { ok: false, error: `invalid option -- '${ch}'` };
      if (spec[at + 1] !== ":") {
        opts.push([ch, ""]);
        continue;
      }
      const rest = a.slice(j + 1);
      if (rest !== "") opts.push([ch, rest]);
      else if (i + 1 < argv.length) opts.push([ch, argv[++i] ?? ""]);
      else return { ok: false, error: `option requires an argument -- '${ch}'` };
      break;
    }
  }
  return { ok: true, opts, args: argv.slice(i) };
}
