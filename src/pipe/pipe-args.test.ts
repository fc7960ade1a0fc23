/*
 * pipe-args.test - pipe(8) attributes and argv macros
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { MAIL_COPY } from "../global/mail-copy.js";
import { PIPE_OPT, expandArgv, parsePipeArgs, unescape, type PipeAttr } from "./pipe-args.js";

/** Parses or fails the test. */
function parse(args: string[]): PipeAttr {
  const a = parsePipeArgs(args);
  if ("error" in a) throw new Error(a.error);
  return a;
}

test("attributes: flags, user:group, size, eol, directory, null_sender, argv last", () => {
  const a = parse([
    "flags=DFORXhqu.>B",
    "user=uucp:mail",
    "size=1000",
    "eol=\\r\\n",
    "directory=/tmp",
    "null_sender=",
    "argv=uux",
    "-r",
    "$nexthop!rmail",
  ]);
  assert.equal(
    a.copy,
    MAIL_COPY.DELIVERED |
      MAIL_COPY.FROM |
      MAIL_COPY.ORIG_RCPT |
      MAIL_COPY.RETURN_PATH |
      MAIL_COPY.DOT |
      MAIL_COPY.QUOTE |
      MAIL_COPY.BLANK,
  );
  assert.equal(a.opts, PIPE_OPT.FINAL | PIPE_OPT.FOLD_HOST | PIPE_OPT.QUOTE | PIPE_OPT.FOLD_USER);
  assert.deepEqual(
    [a.user, a.group, a.sizeLimit, a.eol, a.directory, a.nullSender],
    ["uucp", "mail", 1000, "\r\n", "/tmp", ""],
  );
  assert.deepEqual(a.argv, ["uux", "-r", "$nexthop!rmail"]);
});

test("bad attributes are refused with Postfix's words", () => {
  const err = (args: string[]): string => {
    const a = parsePipeArgs(args);
    return "error" in a ? a.error : "";
  };
  assert.equal(err(["flags=Z", "user=x", "argv=y"]), "unknown flag: Z");
  assert.equal(err(["argv=y"]), "missing user= command-line attribute");
  assert.equal(err(["user=x"]), "missing argv= command-line attribute");
  assert.equal(err(["user=x", "bogus=1", "argv=y"]), "unknown attribute name: bogus=1");
  assert.match(err(["user=x", "chroot=/x", "argv=y"]), /not supported/);
});

test("unescape handles C escapes and octal", () => {
  assert.equal(unescape("\\r\\n\\t\\101\\\\"), "\r\n\tA\\");
});

test("recipient macros repeat per recipient; others expand once; values are not re-expanded", () => {
  const a = parse([
    "flags=hqu",
    "user=x",
    "argv=cmd",
    "-f",
    "$sender",
    "--",
    "${recipient}",
    "${user}+${extension}",
    "${domain}",
    "${nexthop}",
    "$$HOME",
  ]);
  const argv = expandArgv(
    a,
    { sender: "a$b@example.org", nexthop: "Relay.Example" },
    [
      { address: "Joe+Tag@EXAMPLE.com", original: "joe@example.com" },
      { address: "a b@example.com", original: "" },
    ],
    "+",
  );
  assert.deepEqual(argv, [
    "cmd",
    "-f",
    "a$b@example.org",
    "--",
    "joe+tag@example.com",
    '"a b"@example.com',
    "joe+tag",
    "a b+",
    "example.com",
    "example.com",
    "Relay.Example",
    "$HOME",
  ]);
});

test("an unknown macro is a configuration error", () => {
  const a = parse(["user=x", "argv=cmd", "${bogus}"]);
  assert.ok("error" in (expandArgv(a, {}, [{ address: "a@b", original: "" }], "") as object));
});
