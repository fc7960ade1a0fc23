/*
 * local-forward - resubmit mail for forwarded addresses as new queue files
 *
 * DESCRIPTION
 *   For reliability, as in Postfix, mail that an alias with an owner-, a
 *   .forward file or an :include: file sends elsewhere (and every address
 *   that this transport does not deliver) is not delivered directly but
 *   queued again through the cleanup service, so that each new recipient
 *   has its own status in the new queue file. One new message is made per
 *   (Delivered-To address, envelope sender) pair, with all its recipients.
 *
 *   forwardAppend() collects a recipient (with its original address and
 *   DSN ORCPT/NOTIFY, SUCCESS removed from NOTIFY). forwardFinish() runs
 *   when the queue-file recipient is done: unless a destination deferred
 *   (then nothing is sent: the whole recipient is tried again), each
 *   message goes to cleanup with the BOUNCE and MAP flags (cleanup bounces
 *   what it cannot take; canonical and virtual mapping apply), the
 *   original envelope ID and RET, the client attributes, and content
 *   that starts with
 *     Received: by myhostname (mail_name)
 *             id NEWID; date
 *     Delivered-To: the forwarding address   (prepend_delivered_header "forward")
 *   followed by the original message. A message that cleanup does not
 *   accept defers the recipient; one that it accepts records "forwarded
 *   as NEWID".
 */
import { CleanupClient } from "../global/cleanup-client.js";
import { CLEANUP_FLAG } from "../global/cleanup-proto.js";
import { mailDate } from "../global/mail-copy.js";
import { msg } from "../util/msg.js";
import { DEFER, DONE, HDR, type ForwardRcpt, type LocalRun, type MsgAttr } from "./local-state.js";

const PASS_ATTRS = ["dsn_envid", "dsn_ret", "log_ident", "client_name", "client_address", "protocol", "helo"];

/** Adds a recipient to the message for its (Delivered-To, sender) pair. */
export function forwardAppend(run: LocalRun, a: MsgAttr): void {
  const delivered = a.delivered ?? a.rcpt.address;
  let bySender = run.forwards.get(delivered);
  if (bySender === undefined) {
    bySender = new Map();
    run.forwards.set(delivered, bySender);
  }
  const list = bySender.get(a.sender) ?? [];
  bySender.set(a.sender, list);
  const r: ForwardRcpt = { address: a.rcpt.address, original: a.rcpt.original };
  if (a.rcpt.orcpt !== undefined && a.rcpt.orcpt !== "") r.orcpt = a.rcpt.orcpt;
  if (a.rcpt.notify !== undefined) r.notify = a.rcpt.notify === 2 ? 1 : a.rcpt.notify & ~2;
  list.push(r);
}

/** Sends one forwarded message; its new queue ID, or an error text. */
async function forwardSend(
  run: LocalRun,
  delivered: string,
  sender: string,
  rcpts: ForwardRcpt[],
): Promise<string | Error> {
  const c = await CleanupClient.open(run.set.queueDir, { timeoutMs: run.set.ipcTimeoutMs });
  if (!c.ok) return new Error(c.reason);
  const cl = c.client;
  try {
    await cl.flags(CLEANUP_FLAG.BOUNCE | CLEANUP_FLAG.MAP);
    for (const name of PASS_ATTRS) {
      const v = run.req.attrs[name];
      if (v !== undefined && v !== "") await cl.attr(name, v);
    }
    await cl.sender(sender);
    for (const r of rcpts) await cl.rcpt(r);
    let head = `Received: by ${run.set.myhostname} (${run.set.mailName})\n\tid ${cl.queueId}; ${mailDate(new Date())}\n`;
    if (run.set.deliverHdr & HDR.FWD) head += `Delivered-To: ${delivered.toLowerCase()}\n`;
    const parts: Buffer[] = [Buffer.from(head)];
    let size = parts[0]?.length ?? 0;
    for await (const line of run.content()) {
      parts.push(line, Buffer.from("\n"));
      size += line.length + 1;
      if (size >= 65536) {
        await cl.data(Buffer.concat(parts));
        parts.length = 0;
        size = 0;
      }
    }
    if (parts.length > 0) await cl.data(Buffer.concat(parts));
  } catch (err) {
    cl.abort();
    return err instanceof Error ? err : new Error(String(err));
  }
  const r = await cl.end();
  if (r.status === "ok") return r.queueId;
  return new Error(r.reason);
}

/** Sends every collected message unless the recipient is deferred (see the module comment). */
export async function forwardFinish(run: LocalRun, a: MsgAttr, status: number): Promise<number> {
  if (status !== DONE || run.forwards.size === 0) return status;
  let result = DONE;
  for (const [delivered, bySender] of run.forwards) {
    for (const [sender, rcpts] of bySender) {
      const id = await forwardSend(run, delivered, sender, rcpts);
      if (id instanceof Error) {
        msg.warn(
          `${run.req.queueId}: cannot forward to ${rcpts.map((r) => r.address).join(", ")}: ${id.message}`,
        );
        result = run.defer(a, "4.3.0", "unable to forward message");
        return result;
      }
      for (const r of rcpts) {
        if (r.address !== run.top.address)
          msg.info(
            `${run.req.queueId}: to=<${r.address}>, orig_to=<${run.top.address}>, relay=${run.service}, status=sent (forwarded as ${id})`,
          );
      }
      run.sent(a, `forwarded as ${id}`);
    }
  }
  return result === DEFER ? DEFER : DONE;
}
