/*
 * cleanup-content - the header and body hooks of one message
 *
 * SYNOPSIS
 *   const content = new CleanupContent({ st, tables, env, headerContext: "local", missing });
 *   const m = new CleanupMessage(writer, limits, content.hooks());
 *   ... content.eightBit
 *
 * DESCRIPTION
 *   Wires cleanup's content processing into cleanup-message.ts:
 *   primary headers  shown to the MIME parser; with CLEANUP_FLAG.EXTRACT
 *                    the recipients of To/Cc/Bcc (Resent-*) are collected;
 *                    header_checks (mime_header_checks for Content-* and
 *                    MIME-Version) are applied; sender and recipient
 *                    headers are rewritten (cleanup-hdr-addr.ts) when there
 *                    is a header rewrite context; message_drop_headers are
 *                    removed.
 *   end of headers   the missing headers of local submissions are added.
 *   body             every line goes through the MIME parser
 *                    (cleanup-mime.ts): headers of body parts get
 *                    mime_header_checks or nested_header_checks, body lines
 *                    get body_checks within body_checks_size_limit bytes of
 *                    each part; a MIME error that is to be reported
 *                    rejects the message.
 *   Checks run only with CLEANUP_FLAG.FILTER and stop after REJECT, DISCARD,
 *   REDIRECT or PASS. Text is matched as UTF-8 when it is valid UTF-8.
 */
import { CLEANUP_FLAG } from "../global/cleanup-proto.js";
import type { RewriteContextName } from "../global/rewrite-addr.js";
import type { EnvelopeAddresses } from "./cleanup-addr.js";
import { contentCheck } from "./cleanup-checks.js";
import {
  decodeHeader,
  extractKind,
  headerAddrKind,
  headerAddresses,
  rewriteHeaderAddresses,
} from "./cleanup-hdr-addr.js";
import type { BodyPiece, Header, HeaderVerdict, MessageHooks } from "./cleanup-message.js";
import { isMimeHeader, MIME_ERR, MIME_ERR_DETAIL, MimeState, type MimeEvent } from "./cleanup-mime.js";
import type { CleanupState } from "./cleanup-state.js";
import { ADDR_CLASS, type CleanupTables } from "./cleanup-tables.js";

export interface ContentEnv {
  st: CleanupState;
  tables: CleanupTables;
  env: EnvelopeAddresses;
  /** The header rewrite context, or null for no header address rewriting. */
  headerContext: RewriteContextName | null;
  /** The headers to add at the end of the primary headers. */
  missing: (seen: ReadonlySet<string>) => string[];
}

/** The MIME_ERR bits to report for a message. */
function mimeReport(st: CleanupState, t: CleanupTables): number {
  if ((st.flags & CLEANUP_FLAG.FILTER) === 0) return 0;
  let bits = 0;
  if (t.strict.header8bit) bits |= MIME_ERR.BIT8_IN_HEADER;
  if (t.strict.body8bit) bits |= MIME_ERR.BIT8_IN_7BIT_BODY;
  if (t.strict.domain) bits |= MIME_ERR.ENCODING_DOMAIN;
  const anyChecks = t.headerChecks !== null || t.mimeHeaderChecks !== null || t.nestedHeaderChecks !== null;
  if (bits !== 0 || anyChecks) bits |= MIME_ERR.NESTING;
  return bits;
}

/** A line of latin1 text as a complete piece. */
function piece(latin1: string): BodyPiece {
  return { data: Buffer.from(latin1, "latin1"), complete: true };
}

export class CleanupContent {
  readonly #e: ContentEnv;
  readonly #mime: MimeState;
  #cte8bit = false;

  constructor(e: ContentEnv) {
    this.#e = e;
    const t = e.tables;
    this.#mime = new MimeState({ ...t.mime, report: mimeReport(e.st, t) });
  }

  /** Whether the message has 8-bit content (data, or Content-Transfer-Encoding 8bit/binary). */
  get eightBit(): boolean {
    return this.#mime.eightBit || this.#cte8bit;
  }

  /** The hooks for CleanupMessage. */
  hooks(): MessageHooks {
    return {
      header: (h) => this.#header(h),
      endOfHeaders: (seen) => this.#e.missing(seen),
      body: (line, complete) => this.#events(this.#mime.update(line, complete)),
      endOfBody: () => this.#events(this.#mime.end()),
    };
  }

  /** Rejects the message for a MIME error, with Postfix's log line. */
  #mimeError(ev: Extract<MimeEvent, { t: "error" }>): void {
    const st = this.#e.st;
    const d = MIME_ERR_DETAIL.find((x) => x.code === ev.code) ?? MIME_ERR_DETAIL[0];
    if (d === undefined) return;
    st.act("reject", "mime-error", `${d.text}: ${decodeHeader(ev.text).text}`, "");
    st.fail({ kind: "reject", code: `550 ${d.dsn}`, reason: d.text });
  }

  /** Handles one primary header. */
  async #header(h: Header): Promise<HeaderVerdict> {
    const { st, tables } = this.#e;
    for (const ev of this.#mime.primaryHeader(h.text)) if (ev.t === "error") this.#mimeError(ev);
    const lower = h.name.toLowerCase();
    if (
      lower === "content-transfer-encoding" &&
      /^\s*(8bit|binary)\s*$/i.test(h.text.slice(h.text.indexOf(":") + 1))
    )
      this.#cte8bit = true;
    this.#extract(lower, h.text);
    const key = decodeHeader(h.text);
    const maps = isMimeHeader(lower) ? tables.mimeHeaderChecks : tables.headerChecks;
    const r = await contentCheck(st, maps, key.text, "header");
    if (r.drop || st.failure !== null) return { keep: false };
    const prepend = r.prepend !== undefined ? [key.encode(r.prepend)] : [];
    let text = r.replace !== undefined ? key.encode(r.replace) : h.text;
    const name = text.slice(0, text.indexOf(":")).trim();
    const kind = headerAddrKind(name.toLowerCase());
    if (kind !== null && this.#e.headerContext !== null)
      text = (await this.#rewrite(name, text, kind)) ?? text;
    if (tables.dropHeaders.has(name.toLowerCase()))
      return prepend.length > 0 ? { keep: true, text: prepend.join("\n") } : { keep: false };
    return { keep: true, text, prepend };
  }

  /** Collects recipients for sendmail -t. */
  #extract(lower: string, text: string): void {
    const st = this.#e.st;
    if ((st.flags & CLEANUP_FLAG.EXTRACT) === 0) return;
    const kind = extractKind(lower);
    if (kind === null) return;
    const addrs = headerAddresses(text, this.#e.tables.tokenLimit);
    if (kind === "resent") {
      st.resentExtract = true;
      st.resentExtracted.push(...addrs);
    } else st.extracted.push(...addrs);
  }

  /** Rewrites the addresses of a header; null when nothing changed. */
  #rewrite(name: string, text: string, kind: "sender" | "recipient"): Promise<string | null> {
    const { st, tables, env, headerContext } = this.#e;
    const mapOk = (st.flags & CLEANUP_FLAG.MAP) !== 0;
    return rewriteHeaderAddresses({ name, text }, kind, {
      params: tables.rewrite,
      context: headerContext ?? "local",
      tokenLimit: tables.tokenLimit,
      canonical: mapOk
        ? (a, k) => env.canonical(a, k === "sender" ? ADDR_CLASS.HDR_FROM : ADDR_CLASS.HDR_RCPT)
        : null,
    });
  }

  /** Turns MIME events into what is to be written. */
  async #events(events: MimeEvent[]): Promise<BodyPiece[]> {
    const out: BodyPiece[] = [];
    for (const ev of events) {
      if (this.#e.st.failure !== null) break;
      if (ev.t === "error") this.#mimeError(ev);
      else if (ev.t === "header") await this.#partHeader(ev, out);
      else await this.#bodyLine(ev, out);
    }
    return out;
  }

  /** A header of a body part: mime_header_checks or nested_header_checks. */
  async #partHeader(ev: Extract<MimeEvent, { t: "header" }>, out: BodyPiece[]): Promise<void> {
    const t = this.#e.tables;
    const maps = ev.mime || ev.cls === "multipart" ? t.mimeHeaderChecks : t.nestedHeaderChecks;
    const key = decodeHeader(ev.text);
    const r = await contentCheck(this.#e.st, maps, key.text, "header");
    if (r.drop) return;
    if (r.prepend !== undefined) out.push(...key.encode(r.prepend).split("\n").map(piece));
    const text = r.replace !== undefined ? key.encode(r.replace) : ev.text;
    out.push(...text.split("\n").map(piece));
  }

  /** A body line: body_checks within body_checks_size_limit. */
  async #bodyLine(ev: Extract<MimeEvent, { t: "body" }>, out: BodyPiece[]): Promise<void> {
    const t = this.#e.tables;
    const inLimit = t.bodyChecksSizeLimit === 0 || ev.offset < t.bodyChecksSizeLimit;
    if (t.bodyChecks === null || !inLimit) {
      out.push({ data: ev.data, complete: ev.complete });
      return;
    }
    const key = decodeHeader(ev.data.toString("latin1"));
    const r = await contentCheck(this.#e.st, t.bodyChecks, key.text, "body");
    if (r.drop) return;
    if (r.prepend !== undefined) out.push(piece(key.encode(r.prepend)));
    if (r.replace !== undefined)
      out.push({ data: Buffer.from(key.encode(r.replace), "latin1"), complete: ev.complete });
    else out.push({ data: ev.data, complete: ev.complete });
  }
}
