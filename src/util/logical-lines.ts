/*
 * logical-lines - Postfix-style logical lines with continuation
 *
 * SYNOPSIS
 *   import { logicalLines } from "../util/logical-lines.js";
 *   for (const l of logicalLines(text)) ... l.text, l.first, l.last
 *
 * DESCRIPTION
 *   Splits configuration text into logical lines the way Postfix reads
 *   main.cf, master.cf and table source files:
 *   - a line whose first non-white character is "#" is a comment and is ignored;
 *   - empty and all-white lines are ignored;
 *   - a line that starts with white space continues the previous logical line
 *     (comment and blank lines in between do not end it);
 *   - the physical lines are joined as they are, without the newline.
 *   A logical line that would start with white space (text at the top of the
 *   input that is indented) is reported as a problem and skipped.
 *   Each result carries the first and last physical line number, so that
 *   errors can name file and line.
 */

export interface LogicalLine {
  text: string;
  first: number;
  last: number;
}

export interface LogicalLineProblem {
  line: number;
  problem: string;
}

/** Returns true for the white space characters that continue a line. */
function isSpace(ch: string | undefined): boolean {
  return ch === " " || ch === "\t" || ch === "\r" || ch === "\f" || ch === "\v";
}

/** Returns true when a physical line holds nothing (all white or a comment). */
function isIgnorable(line: string): boolean {
  const t = line.trimStart();
  return t.length === 0 || t.startsWith("#");
}

/** Splits text into logical lines; problems are reported through the optional callback. */
export function logicalLines(text: string, onProblem?: (p: LogicalLineProblem) => void): LogicalLine[] {
  const out: LogicalLine[] = [];
  const phys = text.split("\n");
  if (phys.length > 0 && phys[phys.length - 1] === "") phys.pop();
  let cur: LogicalLine | null = null;
  for (let i = 0; i < phys.length; i++) {
    const line = phys[i] ?? "";
    if (isIgnorable(line)) continue;
    if (isSpace(line[0])) {
      if (cur !== null) {
        cur.text += line;
        cur.last = i + 1;
      } else {
        onProblem?.({
          line: i + 1,
          problem: `logical line must not start with whitespace: "${line.trim().slice(0, 30)}"`,
        });
      }
      continue;
    }
    cur = { text: line, first: i + 1, last: i + 1 };
    out.push(cur);
  }
  for (const l of out) l.text = l.text.replace(/\r/g, "");
  return out;
}
