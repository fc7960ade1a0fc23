/*
 * smtpd-support - ETRN, the header rewrite context, Received:, the disconnect line
 *
 * DESCRIPTION
 *   etrnSite() checks the ETRN argument (a domain, optionally written
 *   "@domain"); etrnFlush() asks the flush service to deliver the mail it
 *   has logged for the site and turns its answer into Postfix's replies:
 *   "250 Queuing started", "459 4.1.0 <site>: service unavailable" for a
 *   site that fast_flush_domains does not cover, "458 Unable to queue
 *   messages" when the flush service cannot be reached.
 *   rewriteContext() decides whether cleanup rewrites the message headers in
 *   the local context (append $myorigin, $mydomain) or leaves them alone, by
 *   local_header_rewrite_clients: permit_inet_interfaces (the client is this
 *   host), permit_mynetworks, permit_sasl_authenticated, and check_address_map
 *   type:table (the client address found in the table).
 *   receivedHeader() makes the Received: header in Postfix's form;
 *   cleanupAttrs() lists what cleanup is told about a new message;
 *   sendActions() passes HOLD, DISCARD, FILTER, REDIRECT and BCC from the
 *   access tables to cleanup and returns the PREPEND headers;
 *   disconnectLine() formats "disconnect from ... ehlo=1 ... commands=N".
 */
import { networkInterfaces } from "node:os";
import { rfc5322Date } from "../global/mail-date.js";
import { dictOpen } from "../global/dict.js";
import { DictFlag } from "../global/dict-types.js";
import { flushRequest } from "../global/flush-client.js";
import type { Config } from "../global/config.js";
import type { NamadrList } from "../global/namadr-list.js";
import type { MailArgs } from "./smtpd-params.js";
import type { MessageAction } from "./smtpd-access.js";
import type { CleanupClient } from "../global/cleanup-client.js";

/** The site an ETRN argument names, or null when it is malformed. */
export function etrnSite(arg: string): string | null {
  const site = arg.replace(/^@/, "").toLowerCase();
  return /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(site) && site.length <= 255
    ? site
    : null;
}

/** Asks the flush service to deliver a site's mail; returns the SMTP reply. */
export async function etrnFlush(queueDir: string, site: string): Promise<string> {
  const r = await flushRequest(queueDir, { request: "send_site", site }, { timeoutMs: 10_000 });
  if (r.status === "ok") return "250 Queuing started";
  if (r.status === "deny" || r.status === "bad") return `459 <${site}>: service unavailable`;
  return "458 Unable to queue messages";
}

let own: { at: number; addrs: Set<string> } | null = null;

/** The addresses of this host's interfaces, loopback included (read again after 10 s). */
function ownAddresses(): Set<string> {
  const now = Date.now();
  if (own !== null && now - own.at < 10_000 && now >= own.at) return own.addrs;
  const out = new Set<string>(["127.0.0.1", "::1"]);
  for (const addrs of Object.values(networkInterfaces())) for (const a of addrs ?? []) out.add(a.address);
  own = { at: now, addrs: out };
  return out;
}

/** "local" or "remote": how cleanup rewrites this client's message headers. */
export async function rewriteContext(
  cfg: Config,
  mynetworks: NamadrList,
  client: { name: string; addr: string; saslUser: string | null },
): Promise<"local" | "remote"> {
  const list = cfg.list("local_header_rewrite_clients");
  for (let i = 0; i < list.length; i++) {
    const item = (list[i] ?? "").toLowerCase();
    if (item === "permit_inet_interfaces" && ownAddresses().has(client.addr)) return "local";
    if (item === "permit_mynetworks" && (await mynetworks.match(client.name, client.addr)).status === "match")
      return "local";
    if (item === "permit_sasl_authenticated" && client.saslUser !== null) return "local";
    if (item === "check_address_map" && i + 1 < list.length) {
      const r = await dictOpen(list[++i] ?? "", { flags: DictFlag.FOLD_FIX }).lookup(client.addr);
      if (r.status === "found") return "local";
    }
  }
  return "remote";
}

/** The line Postfix logs when a session ends. */
export function disconnectLine(client: string, counts: ReadonlyMap<string, [number, number]>): string {
  let total = 0;
  let ok = 0;
  const parts: string[] = [];
  for (const [k, [good, all]] of counts) {
    parts.push(good === all ? `${k}=${all}` : `${k}=${good}/${all}`);
    ok += good;
    total += all;
  }
  const cmds = ok === total ? `commands=${total}` : `commands=${ok}/${total}`;
  return `disconnect from ${client}${parts.length ? " " + parts.join(" ") : ""} ${cmds}`;
}

/** The Received: header smtpd adds, in Postfix's form ("for <rcpt>" only with one recipient). */
export function receivedHeader(
  env: { myhostname: string; mailName: string },
  r: {
    helo: string;
    name: string;
    addr: string;
    proto: string;
    id: string;
    rcpts: readonly string[];
    /** Comment lines (TLS, authenticated sender) between the from and by parts, each starting with a tab. */
    comments?: readonly string[];
  },
): string {
  const one = r.rcpts.length === 1 ? `\n\tfor <${r.rcpts[0] ?? ""}>` : "";
  const by = `by ${env.myhostname} (${env.mailName}) with ${r.proto} id ${r.id}${one}`;
  const extra = (r.comments ?? []).map((c) => `${c}\n`).join("");
  return `Received: from ${r.helo || "unknown"} (${r.name} [${r.addr}])\n${extra}\t${by}; ${rfc5322Date()}\n`;
}

/** The attributes smtpd hands cleanup with a new message. */
export function cleanupAttrs(
  f: { name: string; addr: string; helo: string; proto: string },
  m: MailArgs | null,
  queueId: string,
  context: string,
): Array<[string, string]> {
  const all: Array<[string, string | undefined]> = [
    ["client_name", f.name],
    ["client_address", f.addr],
    ["helo", f.helo],
    ["protocol", f.proto],
    ["log_ident", queueId],
    ["dsn_envid", m?.envid],
    ["dsn_ret", m?.ret],
    ["encoding", m?.body],
    ["smtputf8", m?.smtputf8 ? "1" : undefined],
    ["rewrite_context", context],
  ];
  return all.filter((kv): kv is [string, string] => kv[1] !== undefined);
}

/** Tells cleanup the message actions of smtpd's access tables; returns the PREPEND headers (with newlines). */
export async function sendActions(c: CleanupClient, actions: readonly MessageAction[]): Promise<string[]> {
  const prepend: string[] = [];
  const attr: Record<string, string> = {
    HOLD: "access_hold",
    DISCARD: "access_discard",
    FILTER: "access_filter",
    REDIRECT: "access_redirect",
    BCC: "access_bcc",
  };
  for (const a of actions) {
    if (a.action === "PREPEND") {
      if (/^[!-9;-~]+:/.test(a.arg)) prepend.push(`${a.arg}\n`);
    } else if (attr[a.action] !== undefined) {
      await c.attr(attr[a.action] ?? "", a.arg || "1");
    }
  }
  return prepend;
}
