/*
 * bench-sut - a Postern or a Postfix instance with the same settings, for side-by-side runs
 *
 * SYNOPSIS
 *   const sut = await startSut("Postfix", dir, { main: [...], services: ["smtpd", "cleanup", "rewrite"] });
 *   ... sut.port, sut.spool, sut.masterPid, await sut.tool("flush") ...
 *   await sut.stop();
 *
 * DESCRIPTION
 *   Both systems get the same main.cf lines (the caller's, plus loopback
 *   interfaces and no chroot) and the same named services in master.cf,
 *   each with its own queue, configuration and log under a temporary
 *   directory; an SMTP service, when asked for, listens on a free loopback
 *   port. Postern is this checkout's build (src/testing/instance.ts);
 *   Postfix is Debian's /usr/sbin/postfix run as a private instance (it
 *   needs root), with the support services its daemons always talk to
 *   (postlogd, proxymap, anvil, bounce, ...). Neither touches a system
 *   mail service. tool() runs the system's own postsuper, sendmail or
 *   "flush" on this instance.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { installRoot } from "../src/global/install-paths.js";
import { freePort, sleep } from "../src/testing/instance.js";
import { processTree } from "../src/testing/proc-tree.js";
import {
  POSTFIX,
  startPostern as startPosternInstance,
  startPostfix as startPrivatePostfix,
} from "./bench-common.js";

export type SystemName = "Postern" | "Postfix";

export { POSTFIX };

/** A service both systems can run, by its master.cf name. */
export type Service =
  "smtpd" | "cleanup" | "rewrite" | "qmgr" | "local" | "pickup" | "smtp" | "bounce" | "scache";

export interface SutSpec {
  main: string[];
  services: Service[];
}

export interface ToolResult {
  code: number | null;
  stderr: string;
}

export interface Sut {
  name: SystemName;
  etc: string;
  spool: string;
  /** The SMTP service's port (0 without smtpd). */
  port: number;
  masterPid: number;
  log(): string;
  /** Runs this system's postsuper, sendmail or a queue flush against this instance. */
  tool(name: "postsuper" | "sendmail" | "flush", args?: string[], input?: Buffer): Promise<ToolResult>;
  stop(): Promise<void>;
}

/** The master.cf lines of a service: [Postern, Postfix]. */
function serviceLines(s: Service, port: number): [string, string] {
  switch (s) {
    case "smtpd":
      return [`${port} inet n - n - - smtpd`, `127.0.0.1:${port} inet n - n - - smtpd`];
    case "cleanup":
      return ["cleanup unix - - n - 0 cleanup", "cleanup unix n - n - 0 cleanup"];
    case "rewrite":
      return ["rewrite unix - - n - - trivial-rewrite", "rewrite unix - - n - - trivial-rewrite"];
    case "qmgr":
      return ["qmgr unix n - n 300 1 qmgr", "qmgr unix n - n 300 1 qmgr"];
    case "local":
      return ["local unix - n n - - local", "local unix - n n - - local"];
    case "pickup":
      return ["pickup unix n - n 60 1 pickup", "pickup unix n - n 60 1 pickup"];
    case "smtp":
      return ["smtp unix - - n - - smtp", "smtp unix - - n - - smtp"];
    case "bounce":
      return ["bounce unix - - n - 0 bounce\ndefer unix - - n - 0 bounce\ntrace unix - - n - 0 bounce", ""];
    case "scache":
      return ["scache unix - - n - 1 scache", "scache unix - - n - 1 scache"];
  }
}

/** Runs a program; resolves with its exit code and standard error. */
function run(cmd: string, args: string[], input?: Buffer, env?: NodeJS.ProcessEnv): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["pipe", "ignore", "pipe"], env: env ?? process.env });
    let stderr = "";
    p.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code, stderr }));
    p.stdin.on("error", () => undefined);
    p.stdin.end(input ?? Buffer.alloc(0));
  });
}

/** Reads a log file, "" when it does not exist yet. */
function readLog(path: string): string {
  try {
    return readFileSync(path, "latin1");
  } catch {
    return "";
  }
}

/** Kills whatever is left of a process tree. */
function killTree(root: number): void {
  for (const p of processTree(root).reverse()) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      /* gone */
    }
  }
}

/** Starts this checkout's Postern. */
async function startPostern(spec: SutSpec): Promise<Sut> {
  const port = spec.services.includes("smtpd") ? await freePort() : 0;
  const { inst, masterPid } = await startPosternInstance(
    spec.main,
    spec.services.map((s) => serviceLines(s, port)[0]),
  );
  const bin = (tool: string): string => join(installRoot(), "bin", tool);
  return {
    name: "Postern",
    etc: inst.etc,
    spool: inst.spool,
    port,
    masterPid,
    log: () => inst.log(),
    tool: (name, args = [], input) =>
      name === "flush"
        ? inst.postern("flush")
        : run(
            process.execPath,
            [bin(name), ...(name === "sendmail" ? ["-C"] : ["-c"]), inst.etc, ...args],
            input,
          ),
    stop: async () => {
      await inst.postern("abort");
      killTree(masterPid);
      inst.cleanup();
    },
  };
}

/** Starts Debian's Postfix as a private instance under dir. */
async function startPostfix(dir: string, spec: SutSpec): Promise<Sut> {
  const port = spec.services.includes("smtpd") ? await freePort() : 0;
  const pf = await startPrivatePostfix(
    dir,
    ["biff = no", "smtp_dns_support_level = disabled", ...spec.main],
    spec.services.flatMap((s) => serviceLines(s, port)[1].split("\n")).filter((l) => l !== ""),
    500,
  );
  const { etc, spool, masterPid } = pf;
  return {
    name: "Postfix",
    etc,
    spool,
    port,
    masterPid,
    log: () => readLog(pf.maillog),
    tool: (name, args = [], input) =>
      name === "flush"
        ? run(POSTFIX, ["-c", etc, "flush"])
        : run(`/usr/sbin/${name}`, [name === "sendmail" ? "-C" : "-c", etc, ...args], input),
    stop: async () => {
      spawnSync(POSTFIX, ["-c", etc, "stop"], { stdio: "pipe" });
      const end = Date.now() + 10_000;
      while (processTree(masterPid).length > 0 && Date.now() < end) await sleep(100);
      killTree(masterPid);
    },
  };
}

/** Starts one system with a spec; Postfix lives under dir (made here). */
export function startSut(name: SystemName, dir: string, spec: SutSpec): Promise<Sut> {
  if (name === "Postern") return startPostern(spec);
  mkdirSync(dir, { recursive: true });
  return startPostfix(dir, spec);
}

/** Why Postfix cannot be compared here, or null when it can. */
export function postfixMissing(): string | null {
  if (!existsSync(POSTFIX)) return `${POSTFIX} is not installed (Debian package postfix)`;
  if (process.getuid?.() !== 0) return "a private Postfix instance needs root";
  return null;
}
