/*
 * qmgr-trigger - the one-byte requests that wake the queue manager
 *
 * DESCRIPTION
 *   Programs wake qmgr by writing request bytes to its public trigger
 *   socket (public/qmgr), as Postfix programs write to its FIFO:
 *     I  scan the incoming queue     D  scan the deferred queue
 *     A  ignore time stamps: try all deferred mail now
 *     F  forget "dead" destinations so that they are tried again
 *     W  the periodic wakeup from master
 *   sendTrigger() connects, writes, and closes; it never waits for an answer.
 */
import { connect } from "node:net";
import { join } from "node:path";

export const QMGR_SCAN_INCOMING = "I";
export const QMGR_SCAN_DEFERRED = "D";
export const QMGR_SCAN_ALL = "A";
export const QMGR_FLUSH_DEAD = "F";
export const TRIGGER_WAKEUP = "W";

/** Writes trigger bytes to a service's socket; resolves to null or an error text. */
export function sendTrigger(
  queueDir: string,
  klass: "public" | "private",
  service: string,
  bytes: string,
  timeoutMs = 5000,
): Promise<string | null> {
  return new Promise((resolve) => {
    const path = join(queueDir, klass, service);
    const sock = connect({ path });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(`${path}: timed out`);
    }, timeoutMs);
    sock.on("error", (err) => {
      clearTimeout(timer);
      resolve(`connect to ${path}: ${err.message}`);
    });
    sock.on("connect", () => sock.end(bytes));
    sock.on("close", (hadError) => {
      clearTimeout(timer);
      if (!hadError) resolve(null);
    });
  });
}
