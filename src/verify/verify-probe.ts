/*
 * verify-probe - post an address verification probe through the normal queue
 *
 * SYNOPSIS
 *   const r = await sendProbe(cfg, "user@example.com");   // { ok, id } or { ok: false, reason }
 *
 * DESCRIPTION
 *   A probe is a message with one recipient, the address to verify, from
 *   address_verify_sender (empty or "<>": the null sender; a name without
 *   a domain gets @$myorigin; with address_verify_sender_ttl a time-
 *   dependent suffix is added to the local part, so that next hops that
 *   cache sender verdicts see a new sender every ttl), and with the trace
 *   flag MTA_VRFY. It goes through cleanup (address mapping only, no
 *   content checks) and qmgr like any mail, is routed with the
 *   address_verify_* transports and relayhost (trivial-rewrite's "verify"
 *   context, chosen by the MTA_VRFY flag), and no agent delivers it: each
 *   reports what would happen to the verify service. A probe has a few
 *   header lines and no body; it is never bounced or delivered to anyone.
 */
import type { Config } from "../global/config.js";
import { CleanupClient } from "../global/cleanup-client.js";
import { CLEANUP_FLAG } from "../global/cleanup-proto.js";
import { DEL_REQ_FLAG, TRACE_FLAGS_ATTR } from "../global/deliver-proto.js";
import { DSN_NOTIFY } from "../global/queue-file.js";

export type ProbeResult = { ok: true; id: string } | { ok: false; reason: string };

/** The probe sender (see the module comment). */
export function probeSender(cfg: Config, nowSec: number): string {
  const s = cfg.get("address_verify_sender").trim();
  if (s === "" || s === "<>") return "";
  const at = s.lastIndexOf("@");
  let local = at < 0 ? s : s.slice(0, at);
  const domain = at < 0 ? cfg.get("myorigin") : s.slice(at + 1);
  const ttl = cfg.time("address_verify_sender_ttl");
  if (ttl > 0) local += Math.floor(nowSec / ttl).toString(36);
  return `${local}@${domain}`;
}

/** Posts one probe through cleanup. */
export async function sendProbe(cfg: Config, address: string): Promise<ProbeResult> {
  const c = await CleanupClient.open(cfg.get("queue_directory"), {
    timeoutMs: cfg.time("ipc_timeout") * 1000,
  });
  if (!c.ok) return c;
  const s = c.client;
  try {
    await s.flags(CLEANUP_FLAG.MAP);
    await s.attr(TRACE_FLAGS_ATTR, String(DEL_REQ_FLAG.MTA_VRFY));
    await s.attr("log_message_origin", "verify");
    await s.sender(probeSender(cfg, Date.now() / 1000));
    await s.rcpt({ address, original: address, notify: DSN_NOTIFY.NEVER });
    await s.data(Buffer.from(`Subject: probe\nTo: <${address}>\n`));
    const r = await s.end();
    return r.status === "ok" ? { ok: true, id: r.queueId } : { ok: false, reason: `cleanup: ${r.reason}` };
  } catch (err) {
    s.abort();
    return { ok: false, reason: (err as Error).message };
  }
}
