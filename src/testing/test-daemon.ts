/*
 * test-daemon - a daemon on Postern's skeleton, for master's tests
 *
 * SYNOPSIS
 *   master.cf: NAME inet n - n - 2 test-daemon.js echo        (daemon_directory = dist/src/testing)
 *              NAME unix - - y - 1 test-daemon.js probe /root-only/file
 *              NAME unix - - n 1 1 test-daemon.js trigger
 *              NAME unix - - n - 1 test-daemon.js crash
 *
 * DESCRIPTION
 *   echo      greets with "220 pid=P uid=U stress=S max_idle=I", then echoes
 *             each line; "SLOW n" waits n ms before it answers; "QUIT" ends
 *   single    as echo, one client at a time
 *   probe     answers, in one line of JSON, what the daemon could read,
 *             write and start (the jail test), then closes
 *   trigger   logs each trigger it receives
 *   crash     exits before it is ready (the throttle test)
 */
import type { Socket } from "node:net";
import {
  closeSync,
  fdatasyncSync,
  fsyncSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

/** "ok", or the error code of what fn threw. */
function attempt(fn: () => void): string {
  try {
    fn();
    return "ok";
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? "error";
  }
}

/** "ok" when the program ran, else the error code of the attempt. */
function run(program: string): string {
  const r = spawnSync(program, ["-e", "0"], { stdio: "ignore", timeout: 10_000 });
  return r.error === undefined ? "ok" : ((r.error as NodeJS.ErrnoException).code ?? "error");
}

/**
 * Reports, as one line of JSON, what the daemon may do: its uid; reading
 * the file named as its argument (a root-only file the configuration
 * names), /etc/passwd, /etc/shadow and /proc; writing outside the queue
 * (the configuration directory, /tmp); writing and fsyncing a file in the
 * queue; starting /bin/sh and another Node.
 */
function probe(sock: Socket, ctx: ServerContext): void {
  const queue = ctx.config.get("queue_directory");
  const inQueue = join(queue, "incoming", `probe.${process.pid}`);
  const report = {
    uid: process.getuid?.(),
    secret: attempt(() => readFileSync(ctx.args[1] ?? "/nonexistent")),
    passwd: attempt(() => readFileSync("/etc/passwd")),
    shadow: attempt(() => readFileSync("/etc/shadow")),
    proc: attempt(() => readFileSync("/proc/self/status")),
    writeConfig: attempt(() => writeFileSync(join(ctx.config.dir, "probe.out"), "x")),
    writeTmp: attempt(() => writeFileSync(join(tmpdir(), `probe.${process.pid}`), "x")),
    fsync: attempt(() => {
      const fd = openSync(inQueue, "w", 0o600);
      try {
        writeSync(fd, "durable");
        fsyncSync(fd);
        fdatasyncSync(fd);
      } finally {
        closeSync(fd);
        unlinkSync(inQueue);
      }
    }),
    shell: run("/bin/sh"),
    node: run(process.execPath),
  };
  sock.end(`${JSON.stringify(report)}\r\n`);
}

const mode = process.argv
  .slice(2)
  .find((a, i, all) => !a.startsWith("-") && !["-n", "-t", "-o", "-U", "-X"].includes(all[i - 1] ?? ""));
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
  case "probe":
    await singleServer({ name: "test-daemon", onConnection: probe });
    break;
  case "single":
    await singleServer({ name: "test-daemon", onConnection: echo });
    break;
  default:
    await multiServer({ name: "test-daemon", onConnection: echo });
}
