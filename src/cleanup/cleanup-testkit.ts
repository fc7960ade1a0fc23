/*
 * cleanup-testkit - run cleanup cases from golden files (tests only)
 *
 * SYNOPSIS
 *   goldenTests(import.meta.url, "testdata/checks", runCleanupCases);
 *
 * DESCRIPTION
 *   A golden input holds cases separated by "====" lines. A case is
 *   directive lines, then "data:" and the message content:
 *     # text             a comment, copied to the output
 *     main: name = value a main.cf line (repeatable)
 *     flags: FILTER MAP EXTRACT LOCAL_HEADERS
 *     attr: name=value   a client attribute (repeatable)
 *     sender: address
 *     rcpt: address      a recipient (repeatable; "rcpt: a orig=b" sets
 *                        the original recipient)
 *   Each case runs through the real session code (serveCleanup on a
 *   Unix-domain socket, CleanupClient) with a fresh queue directory and
 *   configuration. The output shows the case's log lines, the reply, the
 *   queue the file went to, its envelope (sender, filter, attributes,
 *   recipients) and its content. Queue IDs become "QID"; dates and the
 *   time stamps of generated Message-IDs are masked.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CleanupClient } from "../global/cleanup-client.js";
import { CLEANUP_FLAG } from "../global/cleanup-proto.js";
import { Config } from "../global/config.js";
import { captureLog } from "../global/dict-testkit.js";
import { contentLines, readEnvelope } from "../global/queue-file.js";
import { QueuePaths } from "../global/queue-path.js";
import { serveCleanup } from "./cleanup-session.js";

const log = captureLog();

interface Case {
  comments: string[];
  main: string[];
  flags: number;
  attrs: [string, string][];
  sender: string;
  rcpts: { address: string; original?: string }[];
  data: string;
}

/** Parses one case (see the module comment). */
function parseCase(text: string): Case {
  const c: Case = { comments: [], main: [], flags: 0, attrs: [], sender: "", rcpts: [], data: "" };
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] ?? "";
    const m = /^(\w+):\s?(.*)$/.exec(l);
    if (l.startsWith("#")) c.comments.push(l);
    else if (m?.[1] === "data") {
      c.data = lines.slice(i + 1).join("\n");
      break;
    } else if (m?.[1] === "main") c.main.push(m[2] ?? "");
    else if (m?.[1] === "flags")
      for (const f of (m[2] ?? "").split(/\s+/).filter((x) => x !== ""))
        c.flags |= CLEANUP_FLAG[f as keyof typeof CLEANUP_FLAG];
    else if (m?.[1] === "attr") {
      const v = m[2] ?? "";
      c.attrs.push([v.slice(0, v.indexOf("=")), v.slice(v.indexOf("=") + 1)]);
    } else if (m?.[1] === "sender") c.sender = m[2] ?? "";
    else if (m?.[1] === "rcpt") {
      const [address = "", orig] = (m[2] ?? "").split(" orig=");
      c.rcpts.push(orig === undefined ? { address } : { address, original: orig });
    }
  }
  return c;
}

/** Replaces the queue ID and the variable parts of generated headers. */
function mask(text: string, id: string): string {
  return text
    .split(id)
    .join("QID")
    .replace(/^(\| (Resent-)?Date:).*$/gm, "$1 <date>")
    .replace(/<\d{14}\.QID@/g, "<TIMESTAMP.QID@");
}

/** Runs one case against a real session; returns its report. */
async function runCase(c: Case): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "postern-cleanup-golden-"));
  for (const q of ["incoming", "hold", "private"]) mkdirSync(join(dir, q));
  const base = [`queue_directory = ${dir}`, "compatibility_level = 3.6", "myhostname = mail.example.com"];
  const main = [...base, ...c.main].join("\n");
  const cfg = Config.fromText(join(dir, "etc"), main + "\n");
  const env = { cfg, paths: new QueuePaths(cfg), published: () => undefined };
  const server = createServer((sock) => void serveCleanup(sock, env));
  await new Promise<void>((resolve) => server.listen(join(dir, "private", "cleanup"), resolve));
  log.take();
  let out = "";
  try {
    const open = await CleanupClient.open(dir);
    if (!open.ok) throw new Error(open.reason);
    const s = open.client;
    await s.flags(c.flags);
    for (const [k, v] of c.attrs) await s.attr(k, v);
    await s.sender(c.sender);
    for (const r of c.rcpts) await s.rcpt(r);
    await s.data(Buffer.from(c.data, "utf8"));
    const reply = await s.end();
    out += await report(dir, s.queueId, reply);
    out =
      log
        .take()
        .map((l) => `log: ${l}\n`)
        .join("") + out;
    out = mask(out, s.queueId);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

/** The reply, where the file went and what it holds. */
async function report(
  dir: string,
  id: string,
  reply: Awaited<ReturnType<CleanupClient["end"]>>,
): Promise<string> {
  let out =
    reply.status === "ok"
      ? "reply: ok\n"
      : reply.status === "reject"
        ? `reply: reject ${reply.code} ${reply.reason}\n`
        : `reply: tempfail ${reply.reason}\n`;
  const queue = ["incoming", "hold"].find((q) => readdirSync(join(dir, q)).includes(id));
  out += `queue: ${queue ?? "none"}\n`;
  if (queue === undefined) return out;
  const path = join(dir, queue, id);
  const env = await readEnvelope(path);
  if (!env.ok) return out + `bad queue file: ${env.reason}\n`;
  out += `sender: <${env.env.sender}>\n`;
  if (env.env.filter !== undefined) out += `filter: ${env.env.filter}\n`;
  for (const [k, v] of env.env.attrs) out += `attr: ${k}=${v}\n`;
  for (const r of env.env.recipients) {
    const extra = [
      r.original !== undefined ? `orig=${r.original}` : "",
      r.orcpt !== undefined ? `orcpt=${r.orcpt}` : "",
      r.notify !== undefined ? `notify=${r.notify}` : "",
    ].filter((x) => x !== "");
    out += `rcpt: <${r.address}> ${extra.join(" ")}\n`;
  }
  out += "content:\n";
  for await (const l of contentLines(path, env.env)) out += `| ${l.toString("utf8")}\n`;
  return out;
}

/** Runs every case of a golden input; returns the report of each, in order. */
export async function runCleanupCases(input: string): Promise<string> {
  const cases = input.split(/^====\n/m).filter((t) => t.trim() !== "");
  let out = "";
  for (const [i, text] of cases.entries()) {
    const c = parseCase(text);
    out += `==== case ${i + 1}\n${c.comments.map((l) => `${l}\n`).join("")}${await runCase(c)}`;
  }
  return out;
}
