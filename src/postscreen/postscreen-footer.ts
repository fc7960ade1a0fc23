/*
 * postscreen-footer - postscreen_reject_footer: text added after postscreen's 4XX and 5XX replies
 *
 * SYNOPSIS
 *   const footer = new PsFooter(template, maps);   // postscreen_reject_footer, postscreen_reject_footer_maps
 *   const text = await footer.apply("550 5.5.1 Protocol error", { addr, port, myhostname });
 *
 * DESCRIPTION
 *   As Postfix's smtp_reply_footer: the template comes from the first of
 *   postscreen_reject_footer_maps that has the complete reply (without
 *   CRLF) as a key, else from postscreen_reject_footer. "\n" in the
 *   template starts a new reply line, which gets the reply code (and the
 *   enhanced status code, when the reply has one) of the last line; the
 *   line before it then continues ("550-"). "\c" at the very start puts
 *   the first piece at the end of the last reply line instead. Only these
 *   names are expanded in the template: $client_address, $client_port,
 *   $localtime ("Mmm dd hh:mm:ss") and $server_name (myhostname); an
 *   inserted value keeps only printable ASCII characters (others become
 *   "_"). A template that does not expand (a syntax error), or a reply that
 *   is not made of "ddd " / "ddd-" lines, leaves the reply as it is.
 *   The template text is taken as written in main.cf: it is not expanded
 *   as a parameter value (see footerTemplate).
 */
import { msg } from "../util/msg.js";
import { macExpand } from "../util/mac-expand.js";
import type { Config } from "../global/config.js";
import type { Dict } from "../global/dict.js";
import { mapsLookup, type LookupFn } from "../global/dict-search.js";

/** The characters an inserted value may keep (Postfix's default smtpd_expansion_filter). */
const EXPANSION_FILTER =
  "\t !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
const NAMES = new Set(["client_address", "client_port", "localtime", "server_name"]);
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
/** A footer is short text; a longer result is not added. */
const FOOTER_MAX = 4096;

export interface FooterContext {
  addr: string;
  port: string;
  myhostname: string;
}

/**
 * postscreen_reject_footer as written in main.cf (not expanded); when it is
 * not set, its default $smtpd_reject_footer, expanded once, as Postfix
 * expands the default of a parameter whose value is a template.
 */
export function footerTemplate(cfg: Config): string {
  if (cfg.isSet("postscreen_reject_footer")) return cfg.raw("postscreen_reject_footer") ?? "";
  return cfg.isSet("smtpd_reject_footer") ? (cfg.raw("smtpd_reject_footer") ?? "") : "";
}

/** "Mmm dd hh:mm:ss" in local time. */
function localTime(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${MONTHS[d.getMonth()]} ${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Expands one piece of a template; null on a syntax error. */
function expandPiece(piece: string, ctx: FooterContext): string | null {
  const r = macExpand(
    piece,
    (name) => {
      if (name === "client_address") return ctx.addr;
      if (name === "client_port") return ctx.port;
      if (name === "server_name") return ctx.myhostname;
      if (name === "localtime") return localTime(new Date());
      if (!NAMES.has(name)) msg.warn(`unknown macro name "${name}" in expansion request`);
      return undefined;
    },
    { recurse: false, filter: EXPANSION_FILTER, maxOutput: FOOTER_MAX },
  );
  return r.ok ? r.value : null;
}

/** Adds a footer template to a reply (lines joined by CRLF, no final CRLF); see the module comment. */
export function addFooter(reply: string, template: string, ctx: FooterContext): string {
  if (template === "") return reply;
  const lines = reply.split("\r\n");
  if (!lines.every((l) => /^\d{3}[ -]/.test(l))) return reply;
  const last = lines[lines.length - 1] ?? "";
  const code = last.slice(0, 3);
  const dsn = /^[245]\.\d{1,3}\.\d{1,3}(?= |$)/.exec(last.slice(4))?.[0] ?? "";
  const pieces = template.split("\\n");
  let out = "";
  let added = false;
  for (let i = 0; i < pieces.length; i++) {
    let piece = pieces[i] ?? "";
    if (i === 0 && piece.startsWith("\\c")) piece = piece.slice(2);
    else {
      out += `\r\n${code}${i < pieces.length - 1 ? "-" : " "}${dsn !== "" ? `${dsn} ` : ""}`;
      added = true;
    }
    const text = expandPiece(piece, ctx);
    if (text === null) return reply;
    out += text;
  }
  if (out.length > FOOTER_MAX) return reply;
  const head = lines.slice(0, -1);
  const lastLine = added ? `${code}-${last.slice(4)}` : last;
  return [...head, lastLine].join("\r\n") + out;
}

/** postscreen's footer: the maps, then the plain template. */
export class PsFooter {
  readonly #template: string;
  readonly #maps: LookupFn | null;

  constructor(template: string, maps: readonly Dict[]) {
    this.#template = template;
    this.#maps = maps.length > 0 ? mapsLookup(maps, "postscreen_reject_footer_maps") : null;
  }

  /** True when no footer can apply. */
  get empty(): boolean {
    return this.#template === "" && this.#maps === null;
  }

  /** The reply (lines joined by CRLF, no final CRLF) with its footer, for 4XX and 5XX replies. */
  async apply(reply: string, ctx: FooterContext): Promise<string> {
    if (this.empty || !/^[45]/.test(reply)) return reply;
    let template = this.#template;
    if (this.#maps !== null) {
      const r = await this.#maps(reply, false);
      if (r.status === "found") template = r.value;
      else if (r.status === "tempfail")
        msg.warn(`postscreen_reject_footer_maps: lookup of "${reply.slice(0, 100)}": ${r.reason}`);
    }
    return addFooter(reply, template, ctx);
  }
}
