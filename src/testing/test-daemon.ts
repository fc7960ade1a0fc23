/*
 * test-daemon - a daemon on Postern's skeleton, for master's tests
 *
 * SYNOPSIS
 *   master.cf: NAME inet n - n - 2 test-daemon.js echo        (daemon_directory = dist/src/testing)
 *              NAME unix - - y - 1 test-daemon.js readfile /etc/passwd
 *              NAME unix - - n 1 1 test-daemon.js trigger
 *              NAME unix - - n - 1 test-daemon.js crash
 *
 * DESCRIPTION
 *   echo      greets with "220 pid=P uid=U stress=S max_idle=I", then echoes
 *             each line; "SLOW n" waits n ms before it answers; "QUIT" ends
 *   single    as echo, one client at a time
 *   readfile  answers whether it could read the named file, start a child
 *             process and load a native add-on (the jail test), then closes
 *   trigger   logs each trigger it receives
 *   crash     exits before it is ready (the throttle test)
 */
import type { Socket } from "node:net";
import { readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import { msg } from "../util/msg.js";
import { multiServer, singleServer, triggerServer, type ServerContext } from "../master/mail-server.js";

/** Greets and echoes lines. */
async function echo(sock: Socket, ctx: ServerContext): Promise<void> {
  sock.write(
    `220 pid=${process.pid} uid=${process.getuid?.()} stress=${ctx.config.get("stress")} max_idle=${ctx.config.get("max_idle")}\r\n`,
  );
  const rl = createInterface({ input: sock, crlfDelay: Infinity });
  for await (const line of rl) {
    if (line === "QUIT") break;
    const slow = /^SLOW (\d+)$/.exec(line);
    if (slow) await new Promise((r) => setTimeout(r, Number(slow[1])));
    sock.write(`250 ${line}\r\n`);
  }
  sock.end("221 bye\r\n");
}

/** Reports what the jail allows. */
function readfile(sock: Socket, ctx: ServerContext): void {
  const path = ctx.args[1] ?? "/etc/passwd";
  let read = "ok";
  try {
    readFileSync(path);
  } catch (err) {
    read = `denied ${(err as NodeJS.ErrnoException).code ?? "?"}`;
  }
  let child = "ok";
  try {
    const r = spawnSync("true");
    if (r.error) child = `denied ${(r.error as NodeJS.ErrnoException).code ?? "?"}`;
  } catch (err) {
    child = `denied ${(err as NodeJS.ErrnoException).code ?? "?"}`;
  }
  let addon = "ok";
  try {
    process.dlopen({ exports: {} }, "/nonexistent/postern-test.node");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "?";
    addon = code === "ERR_DLOPEN_DISABLED" || code === "ERR_ACCESS_DENIED" ? `denied ${code}` : "ok";
  }
  sock.end(`read=${read} spawn=${child} addon=${addon}\r\n`);
}

const mode = process.argv
  .slice(2)
  .find((a, i, all) => !a.startsWith("-") && !["-n", "-t", "-o"].includes(all[i - 1] ?? ""));
switch (mode) {
  case "crash":
    process.exit(1);
    break;
  case "trigger":
    await triggerServer({
      name: "test-daemon",
      onTrigger: (data) => msg.info(`trigger: ${data.toString("latin1")}`),
    });
    break;
  case "readfile":
    await singleServer({ name: "test-daemon", onConnection: readfile });
    break;
  case "single":
    await singleServer({ name: "test-daemon", onConnection: echo });
    break;
  default:
    await multiServer({ name: "test-daemon", onConnection: echo });
}
