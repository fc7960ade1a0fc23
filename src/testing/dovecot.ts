/*
 * dovecot - a private Dovecot auth server for tests
 *
 * SYNOPSIS
 *   const d = await startDovecot(t, [["alice@example.test", "secret"]]);
 *   // d.port (TCP auth listener on 127.0.0.1), d.socket (Unix auth socket)
 *
 * DESCRIPTION
 *   Runs a real Dovecot (Debian package dovecot-core) in the foreground
 *   with everything under a temporary directory: no mail protocols, only
 *   the auth service with a passwd-file of the given users (PLAIN and
 *   LOGIN mechanisms unless opts.mechanisms says otherwise, plaintext allowed), a TCP listener on a free
 *   loopback port and a Unix socket (mode 0666). Stopped and removed when
 *   the test ends. A missing dovecot is an error naming the package.
 */
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, sleep } from "./instance.js";

export interface Dovecot {
  dir: string;
  port: number;
  socket: string;
  log(): string;
}

/** True once something accepts connections on the port. */
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

/** Starts Dovecot's auth service for the users; stopped after the test. */
export async function startDovecot(
  t: { after: (fn: () => Promise<void>) => void },
  users: ReadonlyArray<[string, string]>,
  opts: { mechanisms?: string } = {},
): Promise<Dovecot> {
  const dir = mkdtempSync(join(tmpdir(), "postern-dovecot-"));
  chmodSync(dir, 0o755);
  for (const d of ["run", "state"]) mkdirSync(join(dir, d), { mode: 0o755 });
  const port = await freePort();
  writeFileSync(
    join(dir, "users"),
    users.map(([u, p]) => `${u}:{PLAIN}${p}:65534:65534::${dir}::\n`).join(""),
  );
  chmodSync(join(dir, "users"), 0o644);
  const conf = `protocols = none
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = ${opts.mechanisms ?? "plain login"}
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/users
}
userdb {
  driver = passwd-file
  args = username_format=%u ${dir}/users
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
  inet_listener auth-inet {
    address = 127.0.0.1
    port = ${port}
  }
}
`;
  writeFileSync(join(dir, "dovecot.conf"), conf);
  const child = spawn("dovecot", ["-c", join(dir, "dovecot.conf"), "-F"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const failed = new Promise<Error>((resolve) =>
    child.once("error", (err) =>
      resolve(new Error(`dovecot: ${err.message} (install the Debian package dovecot-core)`, { cause: err })),
    ),
  );
  t.after(async () => {
    if (child.exitCode === null) {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([gone, sleep(5000)]);
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const log = (): string =>
    existsSync(join(dir, "dovecot.log")) ? readFileSync(join(dir, "dovecot.log"), "utf8") : "";
  for (let i = 0; i < 200; i++) {
    const err = await Promise.race([failed, sleep(50).then(() => null)]);
    if (err !== null) throw err;
    if (child.exitCode !== null) throw new Error(`dovecot exited (${child.exitCode}): ${out}${log()}`);
    if (existsSync(join(dir, "run", "auth-client")) && (await listening(port)))
      return { dir, port, socket: join(dir, "run", "auth-client"), log };
  }
  throw new Error(`dovecot did not start: ${out}${log()}`);
}
