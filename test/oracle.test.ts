/*
 * oracle.test - a differential oracle: the same SMTP dialogs against Postfix and Postern
 *
 * DESCRIPTION
 *   Starts a private Postfix (Debian's package, in a temporary directory;
 *   src/testing/postfix-oracle.ts) and a Postern instance with the shipped
 *   master.cf, both with the same main.cf core (SHARED below), and runs
 *   every dialog below against both. A dialog is data: the bytes to send,
 *   in order, and how many replies to read after each write (several
 *   commands in one write are a PIPELINING group). A reply is compared by
 *   its class and enhanced status code (and, for a multi-line 250, the
 *   EHLO keywords; for a 2xx after the end of a message, that it was
 *   queued), never by its text, so host names, queue IDs and banners need
 *   no further normalising.
 *
 *   One summary line is printed, "oracle: N dialogs, I identical, D
 *   differing (listed)", followed by each difference. A difference must be
 *   explained in docs/differences.md (a table keyed by dialog name); the
 *   test fails only on differences that are not.
 *
 *   The loopback client is a stranger (mynetworks is 192.0.2.0/24). No
 *   DNS lookup leaves the machine: no peer name lookups, no restriction
 *   that looks up names, and every transport is error: (nothing is
 *   delivered, to mailboxes or to the network; queued mail bounces inside
 *   each instance).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { installRoot } from "../src/global/install-paths.js";
import { freePort, LineClient, shippedMaster, startInstance } from "../src/testing/instance.js";
import { postfixMissing, startPostfix, waitGreeting } from "../src/testing/postfix-oracle.js";

/** The main.cf core both servers run with (each instance adds only its paths, ports and accounts). */
const SHARED = `compatibility_level = 3.6
myhostname = mx.example.org
mydestination = $myhostname, localhost, example.org
mynetworks = 192.0.2.0/24
relay_domains =
smtpd_peername_lookup = no
smtpd_client_restrictions =
local_recipient_maps = inline:{ alice=ok, bob=ok, postmaster=ok }
alias_maps =
message_size_limit = 20000
smtpd_forbid_unauth_pipelining = yes
smtpd_forbid_bare_newline = normalize
smtpd_error_sleep_time = 0s
default_transport = error:no network in the oracle
local_transport = discard:oracle
`;

/** How long to wait for one reply before the rest of the dialog is given up. */
const REPLY_TIMEOUT_MS = 15_000;

// ---- dialogs as data --------------------------------------------------------

interface Step {
  /** The bytes to send (a string is sent as UTF-8). */
  send: string | Buffer;
  /** How many replies to read after sending. */
  replies: number;
  /** How the step is named in the list of differences. */
  label: string;
}

interface Dialog {
  name: string;
  steps: Step[];
}

/** Shortens a label. */
function short(s: string): string {
  const t = s.replace(/\r\n/g, "\\r\\n").replace(/\r/g, "\\r").replace(/\n/g, "\\n");
  return t.length > 60 ? `${t.slice(0, 57)}...` : t;
}

/** One command line, one reply. */
const C = (line: string): Step => ({ send: `${line}\r\n`, replies: 1, label: short(line) });
/** Several command lines in one write (a pipelined group), one reply each. */
const P = (...lines: string[]): Step => ({
  send: lines.map((l) => `${l}\r\n`).join(""),
  replies: lines.length,
  label: short(lines.join(" | ")),
});
/** Raw bytes and a number of replies. */
const R = (send: string | Buffer, replies: number, label?: string): Step => ({
  send,
  replies,
  label: label ?? short(typeof send === "string" ? send : send.toString("latin1")),
});
/** A command line given as bytes (invalid UTF-8 and the like). */
const B = (bytes: Buffer): Step => R(Buffer.concat([bytes, Buffer.from("\r\n")]), 1);

const EHLO = C("EHLO client.example");
const MAIL = C("MAIL FROM:<sender@sender.example>");
const RCPT = C("RCPT TO:<alice@example.org>");
const DATA = C("DATA");
const QUIT = C("QUIT");
const MSG = "From: sender@sender.example\r\nTo: alice@example.org\r\nSubject: oracle\r\n\r\nhello\r\n";
/** A message body sent after DATA's 354, with the end-of-data line. */
const BODY = (text = MSG): Step => R(`${text}.\r\n`, 1, `<${text.length} bytes>.`);
/** A body of about n bytes in lines of 70 characters. */
function bigText(n: number): string {
  const line = `${"x".repeat(70)}\r\n`;
  return `Subject: big\r\n\r\n${line.repeat(Math.ceil(n / line.length))}`;
}
/** A BDAT command with its chunk in one write. */
const BDAT = (chunk: string, last: boolean): Step =>
  R(
    `BDAT ${Buffer.byteLength(chunk)}${last ? " LAST" : ""}\r\n${chunk}`,
    1,
    `BDAT ${chunk.length}${last ? " LAST" : ""}`,
  );

/** A dialog: its name and its steps, in order (the greeting is read first). */
const d = (name: string, ...steps: Step[]): Dialog => ({ name, steps });

const utf8 = (s: string): Buffer => Buffer.from(s, "utf8");

const DIALOGS: Dialog[] = [
  // RFC 5321 basics: greeting, HELO/EHLO.
  d("quit", QUIT),
  d("quit-with-argument", C("QUIT now")),
  d("ehlo", EHLO, QUIT),
  d("ehlo-lowercase", C("ehlo client.example"), QUIT),
  d("helo", C("HELO client.example"), QUIT),
  d("helo-no-argument", C("HELO")),
  d("ehlo-no-argument", C("EHLO")),
  d("ehlo-twice", EHLO, C("EHLO other.example")),
  d("helo-then-ehlo", C("HELO client.example"), EHLO),
  d("ehlo-address-literal", C("EHLO [127.0.0.1]")),
  d("ehlo-ipv6-literal", C("EHLO [IPv6:::1]")),
  d("ehlo-bad-literal", C("EHLO [999.1.1.1]")),
  d("ehlo-two-arguments", C("EHLO client.example extra")),
  d("ehlo-utf8-name", R(utf8("EHLO bücher.example\r\n"), 1, "EHLO bücher.example")),
  d("helo-then-transaction", C("HELO client.example"), MAIL, RCPT, DATA, BODY()),
  d("mail-without-helo", MAIL, RCPT),
  // Commands out of order.
  d("rcpt-before-mail", EHLO, RCPT),
  d("data-before-mail", EHLO, DATA),
  d("data-before-rcpt", EHLO, MAIL, DATA),
  d("mail-twice", EHLO, MAIL, MAIL),
  d("data-after-rejected-rcpt", EHLO, MAIL, C("RCPT TO:<nobody-here@example.org>"), DATA),
  d("rset-then-rcpt", EHLO, MAIL, C("RSET"), RCPT),
  d("rset-with-argument", EHLO, C("RSET now")),
  d("rset-before-ehlo", C("RSET")),
  // MAIL syntax.
  d("mail-no-colon", EHLO, C("MAIL FROM <sender@sender.example>")),
  d("mail-missing-brackets", EHLO, C("MAIL FROM:sender@sender.example")),
  d("mail-no-address", EHLO, C("MAIL FROM:")),
  d("mail-bare", EHLO, C("MAIL")),
  d("mail-null-sender", EHLO, C("MAIL FROM:<>"), RCPT),
  d("mail-unbalanced-bracket", EHLO, C("MAIL FROM:<sender@sender.example")),
  d("mail-space-after-colon", EHLO, C("MAIL FROM: <sender@sender.example>")),
  d("mail-source-route", EHLO, C("MAIL FROM:<@relay.example:sender@sender.example>")),
  d("mail-quoted-local-part", EHLO, C('MAIL FROM:<"john doe"@sender.example>')),
  d("mail-double-at", EHLO, C("MAIL FROM:<a@@sender.example>")),
  d("mail-lowercase", EHLO, C("mail from:<sender@sender.example>")),
  d("mail-unknown-parameter", EHLO, C("MAIL FROM:<sender@sender.example> FOO=BAR")),
  d("mail-long-local-part", EHLO, C(`MAIL FROM:<${"a".repeat(300)}@sender.example>`)),
  d("mail-trailing-space", EHLO, C("MAIL FROM:<sender@sender.example> ")),
  // SIZE and BODY.
  d("mail-size-ok", EHLO, C("MAIL FROM:<sender@sender.example> SIZE=1000")),
  d("mail-size-over-limit", EHLO, C("MAIL FROM:<sender@sender.example> SIZE=30000")),
  d("mail-size-not-numeric", EHLO, C("MAIL FROM:<sender@sender.example> SIZE=abc")),
  d("mail-size-huge", EHLO, C("MAIL FROM:<sender@sender.example> SIZE=99999999999999999999999")),
  d("mail-size-empty", EHLO, C("MAIL FROM:<sender@sender.example> SIZE=")),
  d("mail-body-8bitmime", EHLO, C("MAIL FROM:<sender@sender.example> BODY=8BITMIME")),
  d("mail-body-7bit", EHLO, C("MAIL FROM:<sender@sender.example> BODY=7BIT")),
  d("mail-body-binarymime", EHLO, C("MAIL FROM:<sender@sender.example> BODY=BINARYMIME")),
  d("mail-body-bad", EHLO, C("MAIL FROM:<sender@sender.example> BODY=FOO")),
  d("mail-params-lowercase", EHLO, C("MAIL FROM:<sender@sender.example> size=100 body=8bitmime")),
  // RCPT.
  d("rcpt-local-user", EHLO, MAIL, RCPT),
  d("rcpt-unknown-local-user", EHLO, MAIL, C("RCPT TO:<nobody-here@example.org>")),
  d("rcpt-localhost", EHLO, MAIL, C("RCPT TO:<alice@localhost>")),
  d("rcpt-myhostname", EHLO, MAIL, C("RCPT TO:<bob@mx.example.org>")),
  d("rcpt-relay-denied", EHLO, MAIL, C("RCPT TO:<someone@elsewhere.example>")),
  d("rcpt-unqualified", EHLO, MAIL, C("RCPT TO:<alice>")),
  d("rcpt-unqualified-unknown", EHLO, MAIL, C("RCPT TO:<zed>")),
  d("rcpt-postmaster", EHLO, MAIL, C("RCPT TO:<postmaster>")),
  d("rcpt-postmaster-capitalised", EHLO, MAIL, C("RCPT TO:<PostMaster@example.org>")),
  d("rcpt-null", EHLO, MAIL, C("RCPT TO:<>")),
  d("rcpt-missing-brackets", EHLO, MAIL, C("RCPT TO:alice@example.org")),
  d("rcpt-no-colon", EHLO, MAIL, C("RCPT alice@example.org")),
  d("rcpt-unknown-parameter", EHLO, MAIL, C("RCPT TO:<alice@example.org> FOO=1")),
  d("rcpt-source-route", EHLO, MAIL, C("RCPT TO:<@mx.example.org:alice@example.org>")),
  d("rcpt-ip-literal", EHLO, MAIL, C("RCPT TO:<alice@[127.0.0.1]>")),
  d("rcpt-percent-hack", EHLO, MAIL, C("RCPT TO:<alice%elsewhere.example@example.org>")),
  d("rcpt-bang-path", EHLO, MAIL, C("RCPT TO:<elsewhere.example!alice@example.org>")),
  d("rcpt-trailing-dot-domain", EHLO, MAIL, C("RCPT TO:<alice@example.org.>")),
  d(
    "rcpt-several",
    EHLO,
    MAIL,
    RCPT,
    C("RCPT TO:<bob@example.org>"),
    C("RCPT TO:<zed@example.org>"),
    C("RCPT TO:<x@elsewhere.example>"),
    DATA,
    BODY(),
  ),
  // NOOP, VRFY, EXPN, HELP, unknown commands, long lines.
  d("noop", C("NOOP")),
  d("noop-with-argument", EHLO, C("NOOP hello there")),
  d("vrfy-known", EHLO, C("VRFY alice")),
  d("vrfy-known-address", EHLO, C("VRFY <alice@example.org>")),
  d("vrfy-unknown", EHLO, C("VRFY zed@example.org")),
  d("vrfy-remote", EHLO, C("VRFY someone@elsewhere.example")),
  d("vrfy-no-argument", EHLO, C("VRFY")),
  d("expn", EHLO, C("EXPN alice")),
  d("help", EHLO, C("HELP")),
  d("unknown-command", EHLO, C("FOOBAR baz")),
  d("empty-line", EHLO, C("")),
  d("whitespace-line", EHLO, C("   ")),
  d("long-command-line", EHLO, C(`NOOP ${"x".repeat(3000)}`), C("NOOP")),
  d("long-mail-line", EHLO, C(`MAIL FROM:<sender@sender.example> ${"X".repeat(1200)}`)),
  d("etrn-local", EHLO, C("ETRN example.org")),
  d("etrn-no-argument", EHLO, C("ETRN")),
  d("etrn-in-transaction", EHLO, MAIL, C("ETRN example.org")),
  d("starttls-not-offered", EHLO, C("STARTTLS")),
  d("auth-not-offered", EHLO, C("AUTH PLAIN AGFsaWNlAHNlY3JldA==")),
  d("xclient-not-allowed", EHLO, C("XCLIENT ADDR=192.0.2.1")),
  d("turn", EHLO, C("TURN")),
  // DATA.
  d("data-good", EHLO, MAIL, RCPT, DATA, BODY(), QUIT),
  d("data-null-sender", EHLO, C("MAIL FROM:<>"), RCPT, DATA, BODY()),
  d("data-dot-stuffing", EHLO, MAIL, RCPT, DATA, BODY("Subject: dots\r\n\r\n..one\r\n...two\r\n")),
  d("data-empty-message", EHLO, MAIL, RCPT, DATA, R(".\r\n", 1, ".")),
  d("data-with-argument", EHLO, MAIL, RCPT, C("DATA now")),
  d("data-over-size", EHLO, MAIL, RCPT, DATA, BODY(bigText(25_000)), RSET_STEP()),
  d("data-just-under-size", EHLO, MAIL, RCPT, DATA, BODY(bigText(18_000))),
  d(
    "data-size-declared-small",
    EHLO,
    C("MAIL FROM:<sender@sender.example> SIZE=100"),
    RCPT,
    DATA,
    BODY(bigText(25_000)),
  ),
  d(
    "data-two-transactions",
    EHLO,
    MAIL,
    RCPT,
    DATA,
    BODY(),
    MAIL,
    C("RCPT TO:<bob@example.org>"),
    DATA,
    BODY(),
  ),
  d(
    "data-8bit-without-body",
    EHLO,
    MAIL,
    RCPT,
    DATA,
    R(utf8(`Subject: 8bit\r\n\r\ngrüße\r\n.\r\n`), 1, "8-bit body"),
  ),
  d(
    "data-8bit-with-body",
    EHLO,
    C("MAIL FROM:<sender@sender.example> BODY=8BITMIME"),
    RCPT,
    DATA,
    R(utf8(`Subject: 8bit\r\n\r\ngrüße\r\n.\r\n`), 1, "8-bit body"),
  ),
  d("data-long-body-line", EHLO, MAIL, RCPT, DATA, BODY(`Subject: long\r\n\r\n${"y".repeat(5000)}\r\n`)),
  d("data-bare-lf-lines", EHLO, MAIL, RCPT, DATA, R("Subject: lf\n\nline one\nline two\r\n.\r\n", 1)),
  d(
    "data-bare-lf-end",
    EHLO,
    MAIL,
    RCPT,
    DATA,
    R("Subject: lf\r\n\r\nbody\n.\n", 0, "body<LF>.<LF>"),
    R("more\r\n.\r\n", 1),
  ),
  d("data-bare-cr", EHLO, MAIL, RCPT, DATA, R("Subject: cr\r\n\r\none\rtwo\r\n.\r\n", 1)),
  d(
    "data-bare-cr-end",
    EHLO,
    MAIL,
    RCPT,
    DATA,
    R("Subject: cr\r\n\r\nbody\r.\r", 0, "body<CR>.<CR>"),
    R("\r\n.\r\n", 1),
  ),
  d(
    "data-dot-lf-end",
    EHLO,
    MAIL,
    RCPT,
    DATA,
    R("Subject: x\r\n\r\nbody\r\n.\n", 0, "body<CRLF>.<LF>"),
    R("x\r\n.\r\n", 1),
  ),
  d(
    "bare-lf-command",
    R("EHLO client.example\n", 1, "EHLO<LF>"),
    R("MAIL FROM:<sender@sender.example>\n", 1),
  ),
  // DSN parameters.
  d("dsn-notify-success-failure", EHLO, MAIL, C("RCPT TO:<alice@example.org> NOTIFY=SUCCESS,FAILURE")),
  d("dsn-notify-never", EHLO, MAIL, C("RCPT TO:<alice@example.org> NOTIFY=NEVER")),
  d("dsn-notify-delay", EHLO, MAIL, C("RCPT TO:<alice@example.org> NOTIFY=DELAY")),
  d("dsn-notify-bad-keyword", EHLO, MAIL, C("RCPT TO:<alice@example.org> NOTIFY=SOMETIMES")),
  d("dsn-notify-never-and-success", EHLO, MAIL, C("RCPT TO:<alice@example.org> NOTIFY=NEVER,SUCCESS")),
  d("dsn-notify-empty", EHLO, MAIL, C("RCPT TO:<alice@example.org> NOTIFY=")),
  d("dsn-notify-twice", EHLO, MAIL, C("RCPT TO:<alice@example.org> NOTIFY=NEVER NOTIFY=NEVER")),
  d("dsn-orcpt-good", EHLO, MAIL, C("RCPT TO:<alice@example.org> ORCPT=rfc822;alice+40example.org")),
  d("dsn-orcpt-unknown-type", EHLO, MAIL, C("RCPT TO:<alice@example.org> ORCPT=x-foo;alice")),
  d("dsn-orcpt-bad-xtext", EHLO, MAIL, C("RCPT TO:<alice@example.org> ORCPT=rfc822;a+ZZb")),
  d("dsn-orcpt-no-semicolon", EHLO, MAIL, C("RCPT TO:<alice@example.org> ORCPT=rfc822")),
  d("dsn-ret-full", EHLO, C("MAIL FROM:<sender@sender.example> RET=FULL")),
  d("dsn-ret-hdrs", EHLO, C("MAIL FROM:<sender@sender.example> RET=HDRS")),
  d("dsn-ret-bad", EHLO, C("MAIL FROM:<sender@sender.example> RET=BODY")),
  d("dsn-ret-twice", EHLO, C("MAIL FROM:<sender@sender.example> RET=FULL RET=HDRS")),
  d("dsn-envid-good", EHLO, C("MAIL FROM:<sender@sender.example> ENVID=abc+2Bdef")),
  d("dsn-envid-bad-xtext", EHLO, C("MAIL FROM:<sender@sender.example> ENVID=a+G0b")),
  d("dsn-envid-empty", EHLO, C("MAIL FROM:<sender@sender.example> ENVID=")),
  d("dsn-after-helo", C("HELO client.example"), C("MAIL FROM:<sender@sender.example> RET=FULL")),
  d(
    "dsn-full-transaction",
    EHLO,
    C("MAIL FROM:<sender@sender.example> RET=HDRS ENVID=id1"),
    C("RCPT TO:<alice@example.org> NOTIFY=FAILURE ORCPT=rfc822;alice@example.org"),
    DATA,
    BODY(),
  ),
  // SMTPUTF8.
  d(
    "utf8-mail-with-smtputf8",
    EHLO,
    R(utf8("MAIL FROM:<jörg@sender.example> SMTPUTF8\r\n"), 1, "MAIL ü SMTPUTF8"),
  ),
  d("utf8-mail-without-smtputf8", EHLO, R(utf8("MAIL FROM:<jörg@sender.example>\r\n"), 1, "MAIL ü")),
  d(
    "utf8-rcpt-with-smtputf8",
    EHLO,
    C("MAIL FROM:<sender@sender.example> SMTPUTF8"),
    R(utf8("RCPT TO:<jörg@example.org>\r\n"), 1, "RCPT ü"),
  ),
  d("utf8-rcpt-without-smtputf8", EHLO, MAIL, R(utf8("RCPT TO:<jörg@example.org>\r\n"), 1, "RCPT ü")),
  d("utf8-domain-without-smtputf8", EHLO, MAIL, R(utf8("RCPT TO:<alice@exämple.org>\r\n"), 1, "RCPT @ü")),
  d(
    "utf8-invalid-with-smtputf8",
    EHLO,
    B(Buffer.from("MAIL FROM:<j\xffrg@sender.example> SMTPUTF8", "latin1")),
  ),
  d("utf8-invalid-without-smtputf8", EHLO, B(Buffer.from("MAIL FROM:<j\xffrg@sender.example>", "latin1"))),
  d("utf8-invalid-in-noop", EHLO, B(Buffer.from("NOOP \xc3\x28", "latin1"))),
  d("utf8-smtputf8-with-value", EHLO, C("MAIL FROM:<sender@sender.example> SMTPUTF8=yes")),
  d(
    "utf8-message",
    EHLO,
    R(utf8("MAIL FROM:<jörg@sender.example> SMTPUTF8 BODY=8BITMIME\r\n"), 1, "MAIL ü SMTPUTF8"),
    RCPT,
    DATA,
    R(utf8("From: jörg@sender.example\r\nSubject: grüße\r\n\r\nhallo\r\n.\r\n"), 1, "utf-8 message"),
  ),
  // CHUNKING.
  d("bdat-good", EHLO, MAIL, RCPT, BDAT(MSG, true)),
  d("bdat-two-chunks", EHLO, MAIL, RCPT, BDAT("Subject: two\r\n\r\n", false), BDAT("hello\r\n", true)),
  d("bdat-zero-last", EHLO, MAIL, RCPT, BDAT(MSG, false), R("BDAT 0 LAST\r\n", 1)),
  d("bdat-over-size-single", EHLO, MAIL, RCPT, BDAT(bigText(30_000), true), RSET_STEP()),
  d(
    "bdat-over-size-multi",
    EHLO,
    MAIL,
    RCPT,
    BDAT(bigText(15_000), false),
    BDAT(bigText(15_000), true),
    RSET_STEP(),
  ),
  d("bdat-not-numeric", EHLO, MAIL, RCPT, C("BDAT abc")),
  d("bdat-no-argument", EHLO, MAIL, RCPT, C("BDAT")),
  d("bdat-bad-keyword", EHLO, MAIL, RCPT, R("BDAT 5 FIRST\r\nhello", 1)),
  d("bdat-before-mail", EHLO, BDAT("hello", true), C("NOOP")),
  d("bdat-before-rcpt", EHLO, MAIL, BDAT("hello", true), C("NOOP")),
  d("bdat-then-data", EHLO, MAIL, RCPT, BDAT("Subject: x\r\n", false), DATA),
  d(
    "bdat-then-rset",
    EHLO,
    MAIL,
    RCPT,
    BDAT("Subject: x\r\n", false),
    C("RSET"),
    MAIL,
    RCPT,
    BDAT(MSG, true),
  ),
  d("bdat-bare-lf", EHLO, MAIL, RCPT, BDAT("Subject: lf\n\nbody\n", true)),
  d("bdat-after-helo", C("HELO client.example"), MAIL, RCPT, BDAT(MSG, true)),
  // PIPELINING.
  d(
    "pipe-mail-rcpt-data",
    EHLO,
    P("MAIL FROM:<sender@sender.example>", "RCPT TO:<alice@example.org>", "DATA"),
    BODY(),
  ),
  d(
    "pipe-several-rcpts",
    EHLO,
    P(
      "MAIL FROM:<sender@sender.example>",
      "RCPT TO:<alice@example.org>",
      "RCPT TO:<zed@example.org>",
      "RCPT TO:<bob@example.org>",
    ),
  ),
  d(
    "pipe-rset-mail-rcpt",
    EHLO,
    MAIL,
    P("RSET", "MAIL FROM:<sender@sender.example>", "RCPT TO:<alice@example.org>"),
  ),
  d(
    "pipe-mail-rcpt-quit",
    EHLO,
    P("MAIL FROM:<sender@sender.example>", "RCPT TO:<alice@example.org>", "QUIT"),
  ),
  d(
    "pipe-bdat-chunks",
    EHLO,
    MAIL,
    RCPT,
    R(`BDAT 5\r\nhelloBDAT ${MSG.length} LAST\r\n${MSG}`, 2, "BDAT 5 + BDAT LAST"),
  ),
  d(
    "pipe-mail-rcpt-bdat",
    EHLO,
    R(
      `MAIL FROM:<sender@sender.example>\r\nRCPT TO:<alice@example.org>\r\nBDAT ${MSG.length} LAST\r\n${MSG}`,
      3,
      "MAIL+RCPT+BDAT",
    ),
  ),
  d("pipe-ehlo-mail", P("EHLO client.example", "MAIL FROM:<sender@sender.example>")),
  d("pipe-helo-mail", P("HELO client.example", "MAIL FROM:<sender@sender.example>")),
  d(
    "pipe-after-helo",
    C("HELO client.example"),
    P("MAIL FROM:<sender@sender.example>", "RCPT TO:<alice@example.org>"),
  ),
  d("pipe-without-ehlo", P("MAIL FROM:<sender@sender.example>", "RCPT TO:<alice@example.org>")),
  d("pipe-data-with-body", EHLO, MAIL, RCPT, R(`DATA\r\n${MSG}.\r\n`, 2, "DATA+body")),
  d("pipe-noop-noop", EHLO, P("NOOP", "NOOP")),
  d("pipe-vrfy-noop", EHLO, P("VRFY alice", "NOOP")),
  d("pipe-quit-noop", EHLO, P("QUIT", "NOOP")),
  d(
    "pipe-body-then-mail",
    EHLO,
    MAIL,
    RCPT,
    DATA,
    R(`${MSG}.\r\nMAIL FROM:<sender@sender.example>\r\n`, 2, "body+MAIL"),
  ),
  d(
    "pipe-rcpt-unknown-data",
    EHLO,
    P("MAIL FROM:<sender@sender.example>", "RCPT TO:<zed@example.org>", "DATA"),
  ),
];

/** RSET, one reply (what a client says after a refused message). */
function RSET_STEP(): Step {
  return C("RSET");
}

// ---- generated dialogs (fast-check, fixed seed) -----------------------------

/** Commands that never leave the server waiting for message content. */
const ALPHABET = [
  "EHLO client.example",
  "HELO client.example",
  "MAIL FROM:<sender@sender.example>",
  "MAIL FROM:<>",
  "RCPT TO:<alice@example.org>",
  "RCPT TO:<zed@example.org>",
  "RCPT TO:<x@elsewhere.example>",
  "RSET",
  "NOOP",
  "VRFY bob",
  "ETRN example.org",
];

/** A command line from the alphabet, or a MAIL/RCPT line with one printable character changed. */
const commandArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...ALPHABET),
  fc
    .tuple(
      fc.constantFrom(
        "MAIL FROM:<sender@sender.example> SIZE=100",
        "RCPT TO:<alice@example.org> NOTIFY=NEVER",
      ),
      fc.nat(),
      fc.integer({ min: 0x20, max: 0x7e }),
      fc.constantFrom("insert", "replace", "delete"),
    )
    .map(([line, pos, code, how]) => {
      const i = pos % line.length;
      const ch = String.fromCharCode(code);
      if (how === "insert") return line.slice(0, i) + ch + line.slice(i);
      if (how === "replace") return line.slice(0, i) + ch + line.slice(i + 1);
      return line.slice(0, i) + line.slice(i + 1);
    }),
);

function generated(): Dialog[] {
  const seqs = fc.sample(fc.array(commandArb, { minLength: 2, maxLength: 8 }), {
    seed: 20240601,
    numRuns: 24,
  });
  return seqs.map((seq, i) => d(`generated-${String(i + 1).padStart(2, "0")}`, ...seq.map((l) => C(l))));
}

// ---- running and comparing --------------------------------------------------

interface Reply {
  /** The reply's lines as received, or "closed"/"timeout"/"skipped". */
  raw: string;
  /** What is compared. */
  norm: string;
}

/** Reads one whole reply; "closed" or "timeout" when none comes. */
async function readReply(c: LineClient): Promise<string> {
  const lines: string[] = [];
  try {
    for (;;) {
      const l = await c.line(REPLY_TIMEOUT_MS);
      lines.push(l);
      if (!/^\d{3}-/.test(l)) break;
    }
  } catch (e) {
    const why = String(e).includes("closed") ? "closed" : "timeout";
    return lines.length === 0 ? why : `${lines.join("\n")}\n(${why})`;
  }
  return lines.join("\n");
}

/** What of a reply is compared: the class, the enhanced status code, EHLO keywords, "queued". */
export function normalise(raw: string): string {
  if (raw === "closed" || raw === "timeout" || raw === "skipped") return raw;
  const lines = raw.split("\n");
  const first = lines[0] ?? "";
  const last = lines[lines.length - 1] ?? "";
  const code = /^(\d)\d\d/.exec(first)?.[1];
  if (code === undefined) return `garbage`;
  const enh = /^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})(?:\s|$)/.exec(last)?.[1] ?? "-";
  let out = `${code}xx ${enh}`;
  if (/^250-/.test(first)) {
    const kws = lines
      .slice(1)
      .map((l) => l.slice(4).toUpperCase())
      .sort();
    out += ` [${kws.join(", ")}]`;
  }
  if (code === "2" && /queued as/i.test(raw)) out += " queued";
  return out;
}

/** Runs a dialog against a server; one Reply per expected reply (the greeting first). */
async function runDialog(port: number, dialog: Dialog): Promise<Reply[]> {
  const out: Reply[] = [];
  const push = (raw: string): void => {
    out.push({ raw, norm: normalise(raw) });
  };
  let c: LineClient;
  try {
    c = await LineClient.connect(port);
  } catch (e) {
    push(`connect failed: ${String(e)}`);
    return out;
  }
  try {
    let broken = false;
    push(await readReply(c));
    for (const step of dialog.steps) {
      if (!broken && !c.closed)
        c.sendRaw(typeof step.send === "string" ? Buffer.from(step.send, "utf8") : step.send);
      for (let i = 0; i < step.replies; i++) {
        if (broken) {
          push("skipped");
          continue;
        }
        const r = await readReply(c);
        push(r);
        if (r === "closed" || r.endsWith("(closed)") || r === "timeout" || r.endsWith("(timeout)"))
          broken = true;
      }
    }
  } finally {
    c.close();
  }
  return out;
}

/** The labels of a dialog's replies: "greeting", then each step's label (with #n for a group). */
function replyLabels(dialog: Dialog): string[] {
  const out = ["greeting"];
  for (const s of dialog.steps) {
    for (let i = 0; i < s.replies; i++) out.push(s.replies > 1 ? `${s.label} #${i + 1}` : s.label);
  }
  return out;
}

/** The explained differences: dialog name -> reason, from the table in docs/differences.md. */
export function explained(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\|\s*`?([a-z0-9][a-z0-9-]*)`?\s*\|(.*)\|\s*$/.exec(line);
    if (m === null || m[1] === undefined || m[2] === undefined) continue;
    const reason = m[2].split("|").pop()?.trim() ?? "";
    if (reason !== "") out.set(m[1], reason);
  }
  return out;
}

test(
  "differential oracle: the same SMTP dialogs against Postfix and Postern",
  { timeout: 900_000 },
  async (t) => {
    // .ci/run installs Debian's postfix package and runs the suite as root, which this test needs.
    const missing = postfixMissing();
    assert.equal(missing, null, missing ?? "");
    const dialogs = [...DIALOGS, ...generated()];
    const names = new Set<string>();
    for (const dl of dialogs) {
      assert.ok(!names.has(dl.name), `duplicate dialog name ${dl.name}`);
      names.add(dl.name);
    }
    const postfix = await startPostfix(t, SHARED);
    const port = await freePort();
    await startInstance(t, { main: SHARED, master: shippedMaster(port) });
    await waitGreeting(port, 60_000, "Postern");

    const doc = explained(readFileSync(join(installRoot(), "docs", "differences.md"), "utf8"));
    const report: string[] = [];
    const unexplained: string[] = [];
    let identical = 0;
    for (const dialog of dialogs) {
      const [a, b] = await Promise.all([runDialog(postfix.port, dialog), runDialog(port, dialog)]);
      const labels = replyLabels(dialog);
      const diffs: string[] = [];
      for (let i = 0; i < Math.max(a.length, b.length); i++) {
        const x = a[i];
        const y = b[i];
        if (x?.norm === y?.norm) continue;
        const show = (r: Reply | undefined): string =>
          JSON.stringify(r?.raw.split("\n").slice(-1)[0] ?? "(none)");
        diffs.push(
          `  ${dialog.name} step ${i} (${labels[i] ?? "?"}): postfix ${x?.norm ?? "-"} ${show(x)} | postern ${y?.norm ?? "-"} ${show(y)}`,
        );
      }
      if (diffs.length === 0) {
        identical++;
        continue;
      }
      const reason = doc.get(dialog.name);
      report.push(...diffs.map((l) => `${l}\n    -> ${reason ?? "UNEXPLAINED"}`));
      if (reason === undefined) unexplained.push(dialog.name);
    }
    const differing = dialogs.length - identical;
    console.log(`oracle: ${dialogs.length} dialogs, ${identical} identical, ${differing} differing (listed)`);
    if (report.length > 0) console.log(report.join("\n"));
    const stale = [...doc.keys()].filter(
      (n) => names.has(n) && !report.some((l) => l.startsWith(`  ${n} step `)),
    );
    if (stale.length > 0)
      console.log(`oracle: explained in docs/differences.md but now identical: ${stale.join(", ")}`);
    assert.deepEqual(unexplained, [], "differences not explained in docs/differences.md");
  },
);
