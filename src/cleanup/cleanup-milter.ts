/*
 * cleanup-milter - milter verdicts and modifications, applied before the file is published
 *
 * SYNOPSIS
 *   const cm = new CleanupMilter(st);
 *   cm.take(frame);                          // smtpd's milter frames (cleanup-proto.ts MilterFrame)
 *   const stop = await cm.finish(host);      // before commit: run non_smtpd_milters, apply everything
 *
 * DESCRIPTION
 *   Two sources of milter results meet here. smtpd runs smtpd_milters
 *   itself (the milter conversation belongs to the SMTP session) and sends
 *   what they decided at the end of the message as "milter" frames. For
 *   local submissions (CLEANUP_FLAG.MILTER: sendmail, pickup) cleanup runs
 *   non_smtpd_milters itself, with Postfix's ersatz events: connect from
 *   localhost[127.0.0.1] port 0, HELO localhost, MAIL, one RCPT per
 *   recipient, DATA, then the content exactly as written to the queue file.
 *
 *   Then, before the file is committed:
 *     reject (4xx/5xx)  the message is not queued; logged as
 *                       "QID: milter-reject: END-OF-MESSAGE from
 *                       client[addr]: 5.7.1 text; from=<> to=<> proto= helo=<>"
 *     discard           accepted and thrown away (milter-discard)
 *     hold              queued in hold/ (milter-hold, quarantine)
 *     change sender     the new sender is rewritten like an envelope sender
 *     add recipient     rewritten, mapped and expanded like any recipient
 *     delete recipient  recipients given as that address (as received or
 *                       as rewritten) are removed
 *     header edits      add (at the end), insert (at an index, 0 = top),
 *                       change or delete (the n-th header of a name, from
 *                       1; changing one that does not exist adds it)
 *     replace body      the new body (CRLF or LF line ends) replaces the old
 *   Header and body edits rewrite the envelope and content of the queue
 *   file (still unpublished) from what was written, with the edits applied.
 *   Headers that milters add or change go through milter_header_checks.
 *   Every input is bounded: the number of edits and their bytes.
 */
import { msg } from "../util/msg.js";
import type { Config } from "../global/config.js";
import { CLEANUP_FLAG } from "../global/cleanup-proto.js";
import { MilterChain, type ChainEom } from "../global/milter-chain.js";
import type { MilterEdit, Verdict } from "../global/milter-client.js";
import type { QueueFileWriter } from "../global/queue-file.js";
import type { EnvelopeAddresses } from "./cleanup-addr.js";
import { contentCheck } from "./cleanup-checks.js";
import type { Stop } from "./cleanup-message.js";
import type { CleanupState } from "./cleanup-state.js";
import { openMaps } from "./cleanup-tables.js";

const MAX_EDITS = 10000;

/** What cleanup offers for applying milter results. */
export interface MilterHost {
  cfg: Config;
  w: QueueFileWriter;
  addrs: EnvelopeAddresses;
  sender: () => string;
  /** Sets a new envelope sender (rewritten as the sender record is). */
  setSender: (raw: string) => Promise<void>;
  /** Writes the sender and attribute records again after the writer restarted. */
  writeEnvelope: () => void;
}

/** A "milter" frame from smtpd, decoded. */
export interface MilterFrameValue {
  op: string;
  name?: string | undefined;
  value?: Buffer | undefined;
  index?: number | undefined;
  data?: Buffer | undefined;
}

/** Removes angle brackets around an address. */
function unbracket(a: string): string {
  const t = a.trim();
  return t.startsWith("<") && t.endsWith(">") ? t.slice(1, -1) : t;
}

/** Splits an SMTP reply into the code part ("550 5.7.1") and the text. */
export function splitReply(reply: string): { code: string; text: string } {
  const first = reply.split(/\r?\n/).pop() ?? reply;
  const m = /^([45]\d\d)[ -](?:([45]\.\d{1,3}\.\d{1,3}) )?(.*)$/s.exec(first);
  if (m === null) return { code: "451 4.3.0", text: "Error: milter reply error" };
  const enh = m[2] ?? `${(m[1] ?? "4").charAt(0)}.7.1`;
  return { code: `${m[1] ?? "451"} ${enh}`, text: m[3] ?? "" };
}

/** Collects and applies milter results; see the module comment. */
export class CleanupMilter {
  #st: CleanupState;
  #edits: MilterEdit[] = [];
  #verdict: Verdict = { kind: "continue" };
  #hold: string | null = null;
  #bytes = 0;
  #limit: number;

  constructor(st: CleanupState, sizeLimit: number) {
    this.#st = st;
    this.#limit = sizeLimit > 0 ? sizeLimit + 65536 : 1 << 30;
  }

  /** Takes a frame from smtpd; returns an error text for a bad one. */
  take(f: MilterFrameValue): string | null {
    const value = f.value?.toString("latin1") ?? "";
    this.#bytes += value.length + (f.data?.length ?? 0) + (f.name?.length ?? 0);
    if (this.#edits.length >= MAX_EDITS || this.#bytes > this.#limit) return "too many milter modifications";
    const name = f.name ?? "";
    const index = f.index ?? 0;
    switch (f.op) {
      case "reject":
        this.#verdict = { kind: "reject", reply: value };
        return /^[45]\d\d/.test(value) ? null : "bad milter reply";
      case "discard":
        this.#verdict = { kind: "discard" };
        return null;
      case "hold":
        this.#hold ??= value;
        return null;
      case "addheader":
      case "insheader":
      case "chgheader":
        if (name === "") return "milter header edit without a name";
        this.#edits.push(f.op === "addheader" ? { op: f.op, name, value } : { op: f.op, name, value, index });
        return null;
      case "addrcpt":
      case "chgfrom":
        this.#edits.push({ op: f.op, address: value, args: name });
        return null;
      case "delrcpt":
        this.#edits.push({ op: "delrcpt", address: value });
        return null;
      case "replbody":
        this.#edits.push({ op: "replbody", data: f.data ?? Buffer.alloc(0) });
        return null;
      default:
        return `unknown milter operation ${f.op}`;
    }
  }

  /** Runs non_smtpd_milters when asked to, then applies every result; returns a stop or null. */
  async finish(h: MilterHost): Promise<Stop | null> {
    let r: ChainEom = { verdict: this.#verdict, hold: this.#hold, edits: this.#edits };
    if ((this.#st.flags & CLEANUP_FLAG.MILTER) !== 0 && h.cfg.list("non_smtpd_milters").length > 0)
      r = await this.#runLocal(h);
    const v = r.verdict;
    if (v.kind === "reject" || v.kind === "shutdown") {
      const reply = v.kind === "shutdown" ? "421 4.7.0 Service unavailable" : v.reply;
      const s = splitReply(reply);
      this.#log("milter-reject", `${s.code.slice(4)} ${s.text}`);
      const stop: Stop = { kind: "reject", code: s.code, reason: s.text };
      this.#st.fail(stop);
      return stop;
    }
    if (v.kind === "discard") {
      this.#log("milter-discard", "milter triggers DISCARD action");
      return { kind: "discard" };
    }
    if (r.hold !== null && !this.#st.hold) {
      this.#st.hold = true;
      this.#log("milter-hold", r.hold !== "" ? r.hold : "milter triggers HOLD action");
    }
    return this.#apply(h, r.edits);
  }

  /** Logs a milter action in Postfix's form. */
  #log(action: string, text: string): void {
    const st = this.#st;
    const origin = st.origin() === "local" ? "localhost[127.0.0.1]" : st.origin();
    msg.info(`${st.queueId}: ${action}: END-OF-MESSAGE from ${origin}: ${text};${st.context()}`);
  }

  /** non_smtpd_milters with the ersatz connect and HELO events, over the content as written. */
  async #runLocal(h: MilterHost): Promise<ChainEom> {
    const cfg = h.cfg;
    let rcpt = "";
    const macros: Record<string, string> = {
      i: this.#st.queueId,
      j: cfg.get("myhostname"),
      daemon_name: cfg.get("milter_macro_daemon_name"),
      daemon_addr: "127.0.0.1",
      v: cfg.get("milter_macro_v"),
      _: "localhost [127.0.0.1]",
      client_addr: "127.0.0.1",
      client_name: "localhost",
      client_ptr: "localhost",
      client_port: "0",
    };
    const chain = MilterChain.fromConfig(cfg, "non_smtpd_milters", (n) => {
      if (n === "mail_addr") return h.sender();
      if (n === "rcpt_addr") return rcpt;
      return macros[n];
    });
    try {
      await chain.open();
      let v = await chain.connect("localhost", "127.0.0.1", 0);
      if (v.kind === "continue") v = await chain.helo("localhost");
      if (v.kind === "continue") v = await chain.mail([`<${h.sender()}>`]);
      for (const r of h.addrs.recipients) {
        if (v.kind !== "continue") break;
        rcpt = r.address;
        v = await chain.rcpt([`<${r.address}>`]);
      }
      if (v.kind === "continue") v = await chain.data();
      if (v.kind !== "continue") return { verdict: v, hold: v.kind === "hold" ? v.reason : null, edits: [] };
      for await (const line of h.w.written()) await chain.line(line);
      return await chain.eom();
    } finally {
      chain.quit();
    }
  }

  /** Applies the envelope edits, then rewrites the content when headers or body change. */
  async #apply(h: MilterHost, edits: readonly MilterEdit[]): Promise<Stop | null> {
    let content = false;
    for (const e of edits) {
      if (e.op === "chgfrom") await h.setSender(unbracket(e.address));
      else if (e.op === "addrcpt") await h.addrs.recipient({ address: unbracket(e.address) });
      else if (e.op === "delrcpt") h.addrs.drop(unbracket(e.address));
      else content = true;
    }
    if (!content) return this.#st.failure;
    const { headers, body } = await readBack(h.w);
    const next = await this.#editContent(h.cfg, headers, body, edits);
    await h.w.restart();
    h.writeEnvelope();
    h.w.beginContent();
    const lineLimit = h.cfg.int("line_length_limit");
    for (const hd of next.headers)
      for (const l of hd.split("\n")) await h.w.line(Buffer.from(l, "latin1"), lineLimit);
    for (const l of next.body) await h.w.line(l, lineLimit);
    return this.#st.failure;
  }

  /** The header and body after the edits (milter_header_checks apply to new and changed headers). */
  async #editContent(
    cfg: Config,
    headers: string[],
    body: Buffer[],
    edits: readonly MilterEdit[],
  ): Promise<{ headers: string[]; body: Buffer[] }> {
    const checks = openMaps(cfg, "milter_header_checks", 0);
    const out = [...headers];
    let newBody: Buffer[] | null = null;
    let lastWasBody = false;
    for (const e of edits) {
      if (e.op === "replbody") {
        newBody = lastWasBody && newBody !== null ? [...newBody, e.data] : [e.data];
        lastWasBody = true;
        continue;
      }
      lastWasBody = false;
      if (e.op !== "addheader" && e.op !== "insheader" && e.op !== "chgheader") continue;
      let text = headerText(e.name, e.value);
      if (e.value !== "" || e.op !== "chgheader") {
        const c = await contentCheck(this.#st, checks, text, "header");
        if (c.drop) continue;
        if (c.replace !== undefined) text = c.replace;
        if (c.prepend !== undefined) out.push(c.prepend);
      }
      if (e.op === "addheader") out.push(text);
      else if (e.op === "insheader") out.splice(Math.min(e.index, out.length), 0, text);
      else changeHeader(out, e.name, Math.max(e.index, 1), e.value === "" ? null : text);
    }
    return { headers: out, body: newBody === null ? body : bodyLines(Buffer.concat(newBody)) };
  }
}

/** "Name: value" with the milter's line ends made LF. */
function headerText(name: string, value: string): string {
  const v = value.replace(/\r\n/g, "\n");
  return `${name}:${/^[ \t]/.test(v) ? "" : " "}${v}`;
}

/** Changes (or with null deletes) the index-th header of a name; a missing one is added. */
function changeHeader(hs: string[], name: string, index: number, text: string | null): void {
  const lower = name.toLowerCase();
  let n = 0;
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i] ?? "";
    if (h.slice(0, h.indexOf(":")).trimEnd().toLowerCase() !== lower || ++n !== index) continue;
    if (text === null) hs.splice(i, 1);
    else hs[i] = text;
    return;
  }
  if (text !== null) hs.push(text);
}

/** Splits a replacement body into lines (CRLF or LF), without a last empty piece. */
function bodyLines(b: Buffer): Buffer[] {
  const out: Buffer[] = [Buffer.alloc(0)];
  let start = 0;
  for (let i = 0; i < b.length; i++) {
    if (b[i] !== 0x0a) continue;
    const end = i > start && b[i - 1] === 0x0d ? i - 1 : i;
    out.push(b.subarray(start, end));
    start = i + 1;
  }
  if (start < b.length) out.push(b.subarray(start));
  return out;
}

/** Reads the written content back: logical headers (folded with "\n") and the body lines (blank line first). */
async function readBack(w: QueueFileWriter): Promise<{ headers: string[]; body: Buffer[] }> {
  const headers: string[] = [];
  const body: Buffer[] = [];
  let inHeaders = true;
  for await (const line of w.written()) {
    if (inHeaders) {
      const s = line.toString("latin1");
      if ((s.startsWith(" ") || s.startsWith("\t")) && headers.length > 0) {
        headers[headers.length - 1] += `\n${s}`;
        continue;
      }
      if (/^[!-9;-~]+:/.test(s)) {
        headers.push(s);
        continue;
      }
      inHeaders = false;
      if (s !== "") body.push(Buffer.alloc(0));
    }
    body.push(line);
  }
  if (body.length === 0) body.push(Buffer.alloc(0));
  return { headers, body };
}
