/*
 * smtp-output - what the client changes on the way out: generic maps, header and body checks
 *
 * SYNOPSIS
 *   const out = OutputFilter.fromConfig(cfg, "smtp");     // null when nothing is configured
 *   const sender = await out.mapAddress(req.sender);
 *   for await (const line of out.filter(lines, queueId)) ...
 *
 * DESCRIPTION
 *   smtp_generic_maps (lmtp_generic_maps) rewrites the envelope sender and
 *   recipients and the addresses in the sender and recipient headers
 *   (From, Sender, Reply-To, To, Cc, ... as cleanup knows them), looking
 *   up user@domain, user (for local domains) and @domain as generic(5)
 *   says; a result "@domain" keeps the local part.
 *
 *   smtp_header_checks (with smtp_mime_header_checks and
 *   smtp_nested_header_checks applied to the primary header as well) and
 *   smtp_body_checks are the restricted header_checks(5) of the client:
 *   REPLACE, PREPEND, IGNORE, STRIP, WARN, INFO, DUNNO and OK. Actions
 *   that would change where or when mail goes (REJECT, DISCARD, HOLD,
 *   FILTER, REDIRECT, BCC) are not available: they draw a warning and are
 *   skipped. Body checks see each line after the primary header. A table
 *   that fails leaves the text unchanged, with a warning.
 */
import type { Config } from "../global/config.js";
import { ConfigError } from "../global/config.js";
import { dictOpen, dictSplitName, DictFlag } from "../global/dict.js";
import { addrFind, mapsLookup, type LookupFn } from "../global/dict-search.js";
import { quote822Local } from "../global/quote-822-local.js";
import {
  tok822Externalize,
  tok822Grep,
  tok822Internalize,
  tok822Parse,
  tok822ScanAddr,
} from "../global/tok822.js";
import { msg } from "../util/msg.js";

const ADDRESS_HEADERS = new Set(
  [
    "from",
    "sender",
    "reply-to",
    "errors-to",
    "return-path",
    "return-receipt-to",
    "disposition-notification-to",
    "mail-followup-to",
    "resent-from",
    "resent-sender",
    "to",
    "cc",
    "bcc",
    "apparently-to",
    "resent-to",
    "resent-cc",
    "resent-bcc",
    "resent-reply-to",
  ].map((h) => h.toLowerCase()),
);
const HEADER_MAX = 102_400;
const TOKEN_LIMIT = 10_240;

interface Maps {
  title: string;
  lookup: LookupFn;
}

/** Opens the tables of a list parameter; null when it is empty. */
function openMaps(cfg: Config, param: string, flags: number): Maps | null {
  const names = cfg.list(param);
  if (names.length === 0) return null;
  const dicts = names.map((n) => {
    if (dictSplitName(n) === null)
      throw new ConfigError(`${cfg.where(param)}: parameter ${param}: need "type:name" instead of "${n}"`);
    return dictOpen(n, { flags });
  });
  return { title: param, lookup: mapsLookup(dicts, param) };
}

export class OutputFilter {
  #generic: Maps | null;
  #headerChecks: Maps[];
  #bodyChecks: Maps | null;
  #localDomains: Set<string>;

  private constructor(
    generic: Maps | null,
    headerChecks: Maps[],
    bodyChecks: Maps | null,
    local: Set<string>,
  ) {
    this.#generic = generic;
    this.#headerChecks = headerChecks;
    this.#bodyChecks = bodyChecks;
    this.#localDomains = local;
  }

  /** The filter of smtp_* or lmtp_* parameters; null when none is set. */
  static fromConfig(cfg: Config, prefix: string): OutputFilter | null {
    const generic = openMaps(cfg, `${prefix}_generic_maps`, DictFlag.FOLD_FIX);
    const headers = ["header_checks", "mime_header_checks", "nested_header_checks"]
      .map((n) => openMaps(cfg, `${prefix}_${n}`, 0))
      .filter((m): m is Maps => m !== null);
    const body = openMaps(cfg, `${prefix}_body_checks`, 0);
    if (generic === null && headers.length === 0 && body === null) return null;
    const local = new Set(
      [cfg.get("myorigin"), ...cfg.list("mydestination")]
        .map((d) => d.toLowerCase())
        .filter((d) => !d.includes(":")),
    );
    return new OutputFilter(generic, headers, body, local);
  }

  /** True when the message content may change. */
  get changesContent(): boolean {
    return this.#generic !== null || this.#headerChecks.length > 0 || this.#bodyChecks !== null;
  }

  /** The address as smtp_generic_maps rewrites it (unchanged when not found). */
  async mapAddress(addr: string): Promise<string> {
    if (this.#generic === null || addr === "") return addr;
    const r = await addrFind(this.#generic.lookup, addr, {
      isLocalDomain: (d) => this.#localDomains.has(d.toLowerCase()),
    });
    if (r.status === "tempfail") {
      msg.warn(`${this.#generic.title} map lookup problem for ${addr}: address not rewritten`);
      return addr;
    }
    if (r.status !== "found") return addr;
    const v = r.value.trim();
    if (v.startsWith("@"))
      return addr.slice(0, addr.lastIndexOf("@") < 0 ? addr.length : addr.lastIndexOf("@")) + v;
    return v;
  }

  /** Rewrites the addresses of an address header; null when unchanged. */
  async #rewriteHeader(name: string, value: string): Promise<string | null> {
    const tree = tok822Parse(value, TOKEN_LIMIT);
    let changed = false;
    for (const a of tok822Grep(tree)) {
      const addr = tok822Internalize(a.toks);
      const m = await this.mapAddress(addr);
      if (m !== addr) {
        a.toks = tok822ScanAddr(quote822Local(m)).toks;
        changed = true;
      }
    }
    return changed ? `${name}: ${tok822Externalize(tree)}` : null;
  }

  /** Applies the header checks and generic maps to one (logical) header; the lines to send instead. */
  async #header(text: string, queueId: string): Promise<string[]> {
    const out: string[] = [];
    let cur = text;
    for (const maps of this.#headerChecks) {
      const r = await maps.lookup(cur, false);
      if (r.status === "tempfail")
        msg.warn(`${queueId}: ${maps.title} map lookup problem: header left as it is`);
      if (r.status !== "found") continue;
      const act = act1(r.value, maps.title, queueId, "header", cur);
      if (act.prepend !== undefined) out.push(act.prepend);
      if (act.drop) return out;
      if (act.replace !== undefined) cur = act.replace;
    }
    const colon = cur.indexOf(":");
    if (
      this.#generic !== null &&
      colon > 0 &&
      ADDRESS_HEADERS.has(cur.slice(0, colon).trim().toLowerCase())
    ) {
      const re = await this.#rewriteHeader(cur.slice(0, colon), cur.slice(colon + 1).replace(/\n/g, " "));
      if (re !== null) cur = re;
    }
    out.push(cur);
    return out;
  }

  /** Applies body checks to one body line; the lines to send instead. */
  async #body(text: string, queueId: string): Promise<string[]> {
    const maps = this.#bodyChecks;
    if (maps === null) return [text];
    const r = await maps.lookup(text, false);
    if (r.status === "tempfail") msg.warn(`${queueId}: ${maps.title} map lookup problem: line left as it is`);
    if (r.status !== "found") return [text];
    const act = act1(r.value, maps.title, queueId, "body", text);
    const out = act.prepend !== undefined ? [act.prepend] : [];
    if (!act.drop) out.push(act.replace ?? text);
    return out;
  }

  /** Filters the content lines: the primary header through the header work, then the body through body checks. */
  async *filter(lines: AsyncIterable<Buffer>, queueId: string): AsyncGenerator<Buffer> {
    let header: string | null = null;
    let inHeader = true;
    const flush = async function* (self: OutputFilter, h: string): AsyncGenerator<Buffer> {
      for (const out of await self.#header(h, queueId))
        for (const l of out.split("\n")) yield Buffer.from(l, "latin1");
    };
    for await (const line of lines) {
      const text = line.toString("latin1");
      if (inHeader) {
        if (header !== null && /^[ \t]/.test(text) && header.length < HEADER_MAX) {
          header += "\n" + text;
          continue;
        }
        if (header !== null) yield* flush(this, header);
        header = null;
        if (text !== "" && /^[\x21-\x39\x3b-\x7e]+:/.test(text)) {
          header = text;
          continue;
        }
        inHeader = false;
        if (text === "") {
          yield line;
          continue;
        }
      }
      if (this.#bodyChecks === null) yield line;
      else for (const l of await this.#body(text, queueId)) yield Buffer.from(l, "latin1");
    }
    if (header !== null) yield* flush(this, header);
  }
}

/** Carries out one restricted header/body check action. */
function act1(
  value: string,
  title: string,
  queueId: string,
  where: "header" | "body",
  text: string,
): { drop: boolean; replace?: string; prepend?: string } {
  const m = /^(\S*)\s*([\s\S]*)$/.exec(value);
  const cmd = (m?.[1] ?? "").toUpperCase();
  const arg = m?.[2] ?? "";
  const shown = text.replace(/\n/g, " ").slice(0, 200);
  switch (cmd) {
    case "REPLACE":
    case "PREPEND":
      if (arg === "" || (where === "header" && !/^[!-9;-~]+[ \t]*:/.test(arg))) {
        msg.warn(`${title} map: bad ${cmd} argument: "${arg}"`);
        return { drop: false };
      }
      msg.info(`${queueId}: ${cmd.toLowerCase()}: ${where} ${shown}: ${arg}`);
      return cmd === "REPLACE" ? { drop: false, replace: arg } : { drop: false, prepend: arg };
    case "IGNORE":
      return { drop: true };
    case "STRIP":
      msg.info(`${queueId}: strip: ${where} ${shown}${arg !== "" ? ": " + arg : ""}`);
      return { drop: true };
    case "WARN":
    case "INFO":
      msg.info(
        `${queueId}: ${cmd === "WARN" ? "warning" : "info"}: ${where} ${shown}${arg !== "" ? ": " + arg : ""}`,
      );
      return { drop: false };
    case "DUNNO":
    case "OK":
      return { drop: false };
    default:
      msg.warn(
        `unsupported command in ${title} map: ${value} (the SMTP client does not change where or when mail goes)`,
      );
      return { drop: false };
  }
}
