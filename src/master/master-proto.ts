/*
 * master-proto - the status channel between master and its children
 *
 * DESCRIPTION
 *   master talks to each child over Node's IPC channel, which is also how
 *   master hands over an accepted connection (the socket travels with the
 *   message, as a file descriptor). The messages are small and few:
 *
 *   child to master
 *     ready  { capacity }   the skeleton is up and takes `capacity` clients at once
 *     done                  one client connection or trigger has been handled
 *     pass   { service }    with a socket: hand this connection to a "pass" service
 *   master to child
 *     conn                  with a socket: serve this client
 *     trigger { data }      a wakeup or other trigger (a few bytes)
 *     retire                take no more work; exit when the current work is done
 *
 *   master treats what a child says as untrusted: every message is checked
 *   with parseChildMessage() and anything else is logged and ignored.
 */

export type ChildMessage = { t: "ready"; capacity: number } | { t: "done" } | { t: "pass"; service: string };
export type MasterMessage = { t: "conn" } | { t: "trigger"; data: string } | { t: "retire" };

const MAX_CAPACITY = 100_000;

/** Returns a plain object's own string-keyed fields, or null. */
function fields(m: unknown): Record<string, unknown> | null {
  return typeof m === "object" && m !== null && !Array.isArray(m) ? (m as Record<string, unknown>) : null;
}

/** Validates a message from a child. */
export function parseChildMessage(m: unknown): ChildMessage | null {
  const f = fields(m);
  if (f === null) return null;
  switch (f["t"]) {
    case "ready": {
      const c = f["capacity"];
      return typeof c === "number" && Number.isInteger(c) && c >= 1 && c <= MAX_CAPACITY
        ? { t: "ready", capacity: c }
        : null;
    }
    case "done":
      return { t: "done" };
    case "pass": {
      const s = f["service"];
      return typeof s === "string" && /^[A-Za-z0-9_.:[\]-]{1,100}$/.test(s)
        ? { t: "pass", service: s }
        : null;
    }
    default:
      return null;
  }
}

/** Validates a message from master (the child's side of the same care). */
export function parseMasterMessage(m: unknown): MasterMessage | null {
  const f = fields(m);
  if (f === null) return null;
  switch (f["t"]) {
    case "conn":
      return { t: "conn" };
    case "retire":
      return { t: "retire" };
    case "trigger": {
      const d = f["data"];
      return typeof d === "string" && d.length <= 1024 ? { t: "trigger", data: d } : null;
    }
    default:
      return null;
  }
}
