/*
 * postgrey - a real postgrey policy server on loopback for tests
 *
 * SYNOPSIS
 *   const pg = await startPostgrey(2);      // greylisting delay in seconds
 *   check_policy_service inet:127.0.0.1:${pg.port}
 *   await pg.stop();
 *
 * DESCRIPTION
 *   Starts postgrey in the foreground on 127.0.0.1 and a free port with
 *   its database in a temporary directory (owned by the postgrey account
 *   when running as root, since postgrey drops to it), and waits until it
 *   accepts connections. postgreyAvailable() tells whether it is installed.
 */
import { spawn, spawnSync } from "node:child_process";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getUser } from "../util/unix-users.js";
import { freePort, sleep } from "./instance.js";

const POSTGREY = "/usr/sbin/postgrey";

export interface Postgrey {
  port: number;
  stop(): Promise<void>;
}

/** Whether postgrey is installed. */
export function postgreyAvailable(): boolean {
  return spawnSync(POSTGREY, ["--help"]).error === undefined;
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: "127.0.0.1" });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** Starts postgrey with the given greylisting delay. */
export async function startPostgrey(delaySeconds: number): Promise<Postgrey> {
  const dir = mkdtempSync(join(tmpdir(), "postern-postgrey-"));
  const user = process.getuid?.() === 0 ? getUser("postgrey") : null;
  if (user !== null) chownSync(dir, user.uid, user.gid);
  const port = await freePort();
  const args = [
    `--inet=127.0.0.1:${port}`,
    `--dbdir=${dir}`,
    `--pidfile=${join(dir, "postgrey.pid")}`,
    `--delay=${delaySeconds}`,
    "--hostname=mta.test",
  ];
  const child = spawn(POSTGREY, args, { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    child.kill("SIGTERM");
    await Promise.race([exited, sleep(3000)]);
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 100; i++) {
    if (await listening(port)) return { port, stop };
    await sleep(100);
  }
  await stop();
  throw new Error(`postgrey did not start on port ${port}`);
}
