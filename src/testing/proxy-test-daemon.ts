/*
 * proxy-test-daemon - a daemon that looks keys up in tables, for proxymap's test
 *
 * SYNOPSIS
 *   master.cf: proxytest unix - - y - - proxy-test-daemon.js   (daemon_directory = dist/src/testing)
 *
 * DESCRIPTION
 *   Run jailed (chroot=y), it shows what a jailed daemon can reach: a
 *   table outside the queue directory only through proxy:. It reads
 *   command lines from each client and answers each with one line:
 *     lookup TABLE KEY   "found VALUE", "notfound" or "tempfail REASON"
 *                        (KEY is the rest of the line)
 *     read PATH          "read ok" or "read denied CODE"
 *     quit               closes the connection
 *   Anything else gets "error unknown command".
 */
import type { Socket } from "node:net";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import "../global/dict-proxy.js";
import { dictOpen } from "../global/dict.js";
import { multiServer } from "../master/mail-server.js";

/** Looks a key up and describes the result in one line. */
async function lookup(table: string, key: string): Promise<string> {
  const d = dictOpen(table);
  const r = await d.lookup(key);
  if (r.status === "found") return `found ${r.value}`;
  if (r.status === "notfound") return "notfound";
  return `tempfail ${r.reason}`.replace(/[\r\n]+/g, " ");
}

/** Tries to read a file directly. */
function read(path: string): string {
  try {
    readFileSync(path);
    return "read ok";
  } catch (err) {
    return `read denied ${(err as NodeJS.ErrnoException).code ?? "?"}`;
  }
}

/** Answers one client's commands. */
async function serve(sock: Socket): Promise<void> {
  const rl = createInterface({ input: sock, crlfDelay: Infinity });
  for await (const line of rl) {
    const [cmd = "", arg = "", ...rest] = line.split(" ");
    if (cmd === "quit") break;
    let answer = "error unknown command";
    if (cmd === "lookup") answer = await lookup(arg, rest.join(" "));
    else if (cmd === "read") answer = read(arg);
    sock.write(`${answer}\n`);
  }
  sock.end();
}

await multiServer({ name: "proxy-test-daemon", onConnection: serve });
