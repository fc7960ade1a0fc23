/*
 * submit-instance - an instance for the local submission tests
 *
 * SYNOPSIS
 *   const s = await submitInstance(t, "fast_flush_domains = flush.example\n");
 *   await s.as(NOBODY, "sendmail", ["-t", "-i"], "To: a@x.example\n\nhi\n");
 *   await s.until("delivery", () => s.deliveries().length === 1);
 *
 * DESCRIPTION
 *   Starts an instance (instance.ts) with pickup, cleanup, qmgr,
 *   trivial-rewrite, showq, flush and a recording sink (flaky-agent.ts)
 *   as the default transport. Started as root, the daemons run as the
 *   "mail" account (mail_owner; the tests' unprivileged users are nobody
 *   and a uid without an account, so that neither owns the queue).
 *   pickup and showq run chrooted, in the jail, as the
 *   stock master.cf has them (pickupChroot: false runs pickup outside the
 *   jail, as a site must when pickup looks users up). as() runs a Postern command as a given
 *   uid/gid with MAIL_CONFIG set; script() runs a Node snippet as one.
 */
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getUser } from "../util/unix-users.js";
import { makeInstance, shippedEntries, sleep, type Instance } from "./instance.js";
import { runCli, type CliResult } from "./run-cli.js";

export interface Who {
  uid: number;
  gid: number;
}

export const NOBODY: Who = { uid: 65534, gid: 65534 };
/** A uid and gid that no account has. */
export const STRANGER: Who = { uid: 4242, gid: 4242 };

export interface Delivery {
  id: string;
  nexthop: string;
  rcpt: string;
}

export interface SubmitInstance extends Instance {
  record: string;
  as(who: Who | null, tool: string, args: string[], input?: string): Promise<CliResult>;
  script(who: Who, code: string): Promise<CliResult>;
  deliveries(): Delivery[];
  until(what: string, cond: () => boolean, timeoutMs?: number): Promise<void>;
}

/** Whether the tests can run: as root, with a "mail" account for mail_owner. */
export function submitTestsSkip(): string | false {
  if (process.getuid?.() !== 0) return "needs root (the tests run commands as other users)";
  if (getUser("mail") === null) return 'needs a "mail" account to be mail_owner';
  return false;
}

/** Runs a Node snippet (an ES module) as a user; the snippet gets the spool path as process.argv[1]. */
function runScript(who: Who, code: string, spool: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", code, spool], {
      uid: who.uid,
      gid: who.gid,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 30_000,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts the instance; it is stopped and removed after the test. */
export async function submitInstance(
  t: { after: (fn: () => Promise<void>) => void },
  main = "",
  opts: { pickupChroot?: boolean } = {},
): Promise<SubmitInstance> {
  const recDir = mkdtempSync(join(tmpdir(), "postern-rec-"));
  chmodSync(recDir, 0o1777);
  const record = join(recDir, "deliveries.log");
  const inst = makeInstance({
    main: `mail_owner = mail\ndefault_transport = sink\nmydestination =\nrelay_domains =\n${main}`,
    // The shipped services of local submission, with their columns (pickupChroot: false is for the tests
    // of tables that name login users, which a jailed pickup cannot look up), and a recording agent.
    master: [
      opts.pickupChroot === false ? "pickup unix n - n 60 1 pickup\n" : shippedEntries("pickup"),
      shippedEntries("cleanup", "qmgr", "rewrite", "showq", "flush"),
      `sink unix - - n - 20 flaky-agent.js ${record}`,
      "",
    ].join("\n"),
  });
  const r = await inst.start();
  if (r.code !== 0) throw new Error(`instance did not start: ${r.stderr}`);
  t.after(async () => {
    await inst.postern("abort");
    inst.cleanup();
    rmSync(recDir, { recursive: true, force: true });
  });
  const deliveries = (): Delivery[] => {
    let text: string;
    try {
      text = readFileSync(record, "utf8");
    } catch {
      return [];
    }
    return text
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => {
        const [id = "", nexthop = "", rcpt = ""] = l.split(" ");
        return { id, nexthop, rcpt };
      });
  };
  return Object.assign(inst, {
    record,
    as: (who: Who | null, tool: string, args: string[], input?: string) =>
      runCli(tool, args, {
        env: { MAIL_CONFIG: inst.etc },
        ...(input !== undefined ? { input } : {}),
        ...(who !== null ? { uid: who.uid, gid: who.gid } : {}),
      }),
    script: (who: Who, code: string) => runScript(who, code, inst.spool),
    deliveries,
    until: async (what: string, cond: () => boolean, timeoutMs = 20_000) => {
      const deadline = Date.now() + timeoutMs;
      while (!cond()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; log:\n${inst.log()}`);
        await sleep(50);
      }
    },
  });
}
