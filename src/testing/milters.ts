/*
 * milters - real milter applications for the tests: opendkim, rspamd, clamav-milter
 *
 * SYNOPSIS
 *   const dkim = await startOpendkim(t);          // signs for example.com on 127.0.0.1:dkim.port
 *   dkim.verify(path)                              // an independent opendkim in test mode: its verdict line
 *   const rs = await startRspamd(t);               // rspamd's milter proxy in a network namespace
 *   const clam = await startClamavMilter(t);       // clamd with a one-signature EICAR database
 *
 * DESCRIPTION
 *   Each server is started in the foreground on a free loopback port, in a
 *   fresh directory, and stopped (and its directory removed) when the test
 *   ends. A missing program is an error that names the Debian package.
 *   opendkim signs with a new 2048-bit key (selector sel1, domain
 *   example.com); verify() runs a second opendkim (-t, verify mode) whose
 *   key comes from a local TestDNSData file, so no DNS is needed.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, sleep } from "./instance.js";

export interface TestContext {
  after: (fn: () => Promise<void>) => void;
}

export interface RunningMilter {
  port: number;
  dir: string;
  /** Stops the server (the test's teardown does it too). */
  stop: () => Promise<void>;
}

/** Fails with the Debian package when a program is missing. */
export function needProgram(path: string, pkg: string): void {
  if (!existsSync(path)) throw new Error(`${path} is missing: install the Debian package ${pkg}`);
}

/** Waits until something listens on 127.0.0.1:port. */
export async function waitPort(
  port: number,
  what: string,
  timeoutMs = 30_000,
  logFile?: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ port, host: "127.0.0.1" });
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) {
      const log =
        logFile !== undefined && existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-3000) : "";
      throw new Error(`${what} did not start listening on port ${port}\n${log}`);
    }
    await sleep(100);
  }
}

/** Starts a foreground server; its output goes to a log file; stop() kills it (and only it). */
function launch(
  cmd: string,
  args: string[],
  log: string,
): { child: ChildProcess; stop: () => Promise<void> } {
  writeFileSync(log, "");
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  const append = (d: Buffer): void => {
    try {
      writeFileSync(log, d, { flag: "a" });
    } catch {
      /* the directory is gone */
    }
  };
  child.stdout?.on("data", append);
  child.stderr?.on("data", append);
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once("exit", () => r()));
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 5000);
    await gone;
    clearTimeout(t);
  };
  return { child, stop };
}

export interface Opendkim extends RunningMilter {
  /** The verifier's line for a message file ("... verification (s=sel1 d=example.com, 2048-bit key) succeeded"). */
  verify: (file: string) => string;
}

/** Starts an opendkim that signs mail from example.com; see the module comment. */
export async function startOpendkim(t: TestContext): Promise<Opendkim> {
  needProgram("/usr/sbin/opendkim", "opendkim");
  needProgram("/usr/sbin/opendkim-genkey", "opendkim-tools");
  const dir = mkdtempSync(join(tmpdir(), "postern-dkim-"));
  chmodSync(dir, 0o755);
  execFileSync("/usr/sbin/opendkim-genkey", ["-D", dir, "-d", "example.com", "-s", "sel1", "-b", "2048"]);
  const txt = readFileSync(join(dir, "sel1.txt"), "utf8");
  const record = (txt.match(/"[^"]*"/g) ?? []).map((s) => s.slice(1, -1)).join("");
  writeFileSync(join(dir, "testdns"), `sel1._domainkey.example.com ${record}\n`);
  execFileSync("chown", ["-R", "opendkim:opendkim", dir]);
  chmodSync(join(dir, "sel1.private"), 0o600);
  const port = await freePort();
  const common = [
    "Syslog no",
    "LogWhy yes",
    "UserID opendkim:opendkim",
    "Background no",
    "RequireSafeKeys no",
  ];
  writeFileSync(
    join(dir, "sign.conf"),
    [
      ...common,
      "Mode sv",
      "Domain example.com",
      "Selector sel1",
      `KeyFile ${join(dir, "sel1.private")}`,
      "Canonicalization relaxed/simple",
      "InternalHosts 127.0.0.1,::1",
      `Socket inet:${port}@127.0.0.1`,
      `PidFile ${join(dir, "sign.pid")}`,
      "OversignHeaders From",
      "",
    ].join("\n"),
  );
  writeFileSync(
    join(dir, "verify.conf"),
    [...common, "Mode v", "AuthservID verifier.test", `TestDNSData file:${join(dir, "testdns")}`, ""].join(
      "\n",
    ),
  );
  const log = join(dir, "opendkim.log");
  const p = launch("/usr/sbin/opendkim", ["-f", "-x", join(dir, "sign.conf")], log);
  t.after(async () => {
    await p.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await waitPort(port, "opendkim", 30_000, log);
  return {
    port,
    dir,
    stop: p.stop,
    verify: (file) => {
      const r = spawnSync("/usr/sbin/opendkim", ["-x", join(dir, "verify.conf"), "-t", file], {
        encoding: "utf8",
        timeout: 30_000,
      });
      return `${r.stdout}${r.stderr}`.trim();
    },
  };
}

/** Writes files under a directory (name -> text). */
function writeAll(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
}

/**
 * Starts rspamd's milter proxy (self-scanning) on a free port. Every module that would reach the
 * network is off, maps come from local files and DNS goes to a loopback port where nothing answers.
 */
export async function startRspamd(t: TestContext): Promise<RunningMilter> {
  needProgram("/usr/bin/rspamd", "rspamd");
  const dir = mkdtempSync(join(tmpdir(), "postern-rspamd-"));
  chmodSync(dir, 0o755);
  for (const d of ["local", "local/local.d", "local/override.d", "db", "run", "log"])
    execFileSync("mkdir", ["-p", join(dir, d)]);
  const [proxy, normal, controller] = [await freePort(), await freePort(), await freePort()];
  const off = "enabled = false;\n";
  writeAll(join(dir, "local", "local.d"), {
    "fuzzy_check.conf": off,
    "rbl.conf": off,
    "whitelist.conf": off,
    "phishing.conf": off,
    "multimap.conf": off,
    "asn.conf": off,
    "rspamd_update.conf": off,
    "logging.inc": 'type = "console";\nlevel = "info";\n',
    "options.inc": 'dns {\n  nameserver = ["127.0.0.1:9"];\n  timeout = 1s;\n  retransmits = 1;\n}\n',
    "worker-proxy.inc": `bind_socket = "127.0.0.1:${proxy}";\nmilter = yes;\ntimeout = 120s;\nupstream "local" {\n  default = yes;\n  self_scan = yes;\n}\n`,
    "worker-normal.inc": `bind_socket = "127.0.0.1:${normal}";\n`,
    "worker-controller.inc": `bind_socket = "127.0.0.1:${controller}";\n`,
    "milter_headers.conf":
      'extended_spam_headers = true;\nuse = ["x-spamd-result", "x-rspamd-queue-id", "authentication-results", "x-spam-status"];\nskip_local = false;\nskip_authenticated = false;\n',
  });
  writeAll(join(dir, "local", "override.d"), {
    "mime_types.conf": 'file = ["/etc/rspamd/maps.d/mime_types.inc"];\n',
    "mid.conf": 'source { url = ["/etc/rspamd/maps.d/mid.inc"]; }\n',
  });
  execFileSync("chown", ["-R", "_rspamd:_rspamd", dir]);
  const log = join(dir, "rspamd.log");
  const vars = ["LOCAL_CONFDIR=local", "DBDIR=db", "RUNDIR=run", "LOGDIR=log"].map((v) => {
    const [k, sub] = v.split("=");
    return `--var=${k}=${join(dir, sub ?? "")}`;
  });
  const p = launch(
    "/usr/bin/rspamd",
    ["-f", "-u", "_rspamd", "-g", "_rspamd", "-c", "/etc/rspamd/rspamd.conf", ...vars],
    log,
  );
  t.after(async () => {
    await p.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await waitPort(proxy, "rspamd", 120_000, log);
  return { port: proxy, dir, stop: p.stop };
}

const EICAR_BODY = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE";

/** Starts clamd with a one-signature database (the EICAR test string) and clamav-milter on a free port. */
export async function startClamavMilter(t: TestContext): Promise<RunningMilter> {
  needProgram("/usr/sbin/clamd", "clamav-daemon");
  needProgram("/usr/sbin/clamav-milter", "clamav-milter");
  const dir = mkdtempSync(join(tmpdir(), "postern-clam-"));
  chmodSync(dir, 0o755);
  execFileSync("mkdir", ["-p", join(dir, "db")]);
  writeFileSync(
    join(dir, "db", "eicar.ndb"),
    `Eicar-Test-Local-Body:0:*:${Buffer.from(EICAR_BODY).toString("hex")}\n`,
  );
  const port = await freePort();
  writeAll(dir, {
    "clamd.conf": [
      `LocalSocket ${join(dir, "clamd.sock")}`,
      "LocalSocketMode 666",
      `DatabaseDirectory ${join(dir, "db")}`,
      "Foreground yes",
      `PidFile ${join(dir, "clamd.pid")}`,
      "User clamav",
      "",
    ].join("\n"),
    "clamav-milter.conf": [
      `MilterSocket inet:${port}@127.0.0.1`,
      `ClamdSocket unix:${join(dir, "clamd.sock")}`,
      "Foreground yes",
      "OnInfected Reject",
      "OnClean Accept",
      "RejectMsg Virus found: %v",
      "AddHeader Replace",
      `PidFile ${join(dir, "clamav-milter.pid")}`,
      "User clamav",
      "",
    ].join("\n"),
  });
  execFileSync("chown", ["-R", "clamav:clamav", dir]);
  const clamd = launch("/usr/sbin/clamd", ["-c", join(dir, "clamd.conf")], join(dir, "clamd.log"));
  let milter: { stop: () => Promise<void> } | null = null;
  t.after(async () => {
    await milter?.stop();
    await clamd.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const deadline = Date.now() + 60_000;
  while (!existsSync(join(dir, "clamd.sock"))) {
    if (Date.now() > deadline)
      throw new Error(`clamd did not start\n${readFileSync(join(dir, "clamd.log"), "utf8")}`);
    await sleep(100);
  }
  const m = launch(
    "/usr/sbin/clamav-milter",
    ["-c", join(dir, "clamav-milter.conf")],
    join(dir, "milter.log"),
  );
  milter = m;
  await waitPort(port, "clamav-milter", 30_000, join(dir, "milter.log"));
  return { port, dir, stop: m.stop };
}
