/*
 * postconf-print - output formatting shared by the postconf modes
 *
 * DESCRIPTION
 *   postconf prints "name = value" lines with the white space in values
 *   normalized to single spaces, and with -f folds lines longer than 80
 *   columns, continuing them indented by four spaces, as Postfix does.
 */

const LINE_LIMIT = 80;
const INDENT = "    ";

/** Normalizes white space and optionally folds a line; returns it with a newline. */
export function printLine(text: string, fold: boolean): string {
  let out = "";
  let len = 0;
  for (const word of text.split(/[ \t\r\n]+/)) {
    if (word === "") continue;
    if (len > 0) {
      if (!fold || len + word.length < LINE_LIMIT) {
        out += " ";
        len += 1;
      } else {
        out += `\n${INDENT}`;
        len = INDENT.length;
      }
    }
    out += word;
    len += word.length;
  }
  return out + "\n";
}

/** Formats "name = value" (or only the value with -h). */
export function formatParam(name: string, value: string, hideName: boolean, fold: boolean): string {
  if (hideName) return printLine(value, fold);
  return value === "" ? `${name} =\n` : printLine(`${name} = ${value}`, fold);
}
