/*
 * postlogd - the postlog service: log lines from the postlog command
 *
 * SYNOPSIS
 *   master.cf: postlog unix-dgram n - n - 1 postlogd
 *
 * DESCRIPTION
 *   Postfix's postlogd writes maillog_file for every program. In Postern
 *   master writes the log, and daemons reach it through their standard
 *   error; postlogd is how a program that is not master's child (the
 *   postlog command, a site's scripts) gets its lines into the same log,
 *   in its own name. A client connects to public/postlog and sends records
 *   in the on-behalf form of msg-sinks.ts (one per line: level, tag, pid,
 *   text); postlogd checks each one and hands it to master, which honours
 *   such records from this service only. A malformed line is dropped with a
 *   warning in postlogd's own name.
 *
 *   Limits: lines of at most LINE_MAX bytes, LINES_MAX lines per
 *   connection, and a connection idle for IDLE_MS is closed.
 */
import type { Socket } from "node:net";
import { msg } from "../util/msg.js";
import { decodeOnBehalf, encodeOnBehalf } from "../util/msg-sinks.js";
import { multiServer } from "../master/mail-server.js";

const LINE_MAX = 8192;
const LINES_MAX = 10_000;
const IDLE_MS = 10_000;

/** Passes one client's records on to master. */
function serve(sock: Socket): Promise<void> {
  return new Promise((resolve) => {
    let pending = "";
    let n = 0;
    const take = (line: string): boolean => {
      if (++n > LINES_MAX) {
        msg.warn(`a client sent more than ${LINES_MAX} lines: connection closed`);
        return false;
      }
      const rec = decodeOnBehalf(line.replace(/\r$/, ""));
      if (rec === null) msg.warn("malformed log record from a client dropped");
      else process.stderr.write(encodeOnBehalf(rec.level, rec.tag, rec.pid, rec.text));
      return true;
    };
    sock.setTimeout(IDLE_MS, () => sock.destroy());
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      pending += chunk;
      for (let nl = pending.indexOf("\n"); nl !== -1; nl = pending.indexOf("\n")) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (!take(line)) {
          sock.destroy();
          return;
        }
      }
      if (pending.length > LINE_MAX) {
        msg.warn(`a log record longer than ${LINE_MAX} bytes: connection closed`);
        sock.destroy();
      }
    });
    sock.on("end", () => {
      if (pending !== "") take(pending);
      sock.destroy();
    });
    sock.on("error", () => undefined);
    sock.on("close", () => resolve());
  });
}

await multiServer({ name: "postlogd", onConnection: serve });
