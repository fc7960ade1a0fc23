/*
 * pickup - take local submissions from the maildrop directory to cleanup
 *
 * SYNOPSIS
 *   master.cf: pickup unix n - y 60 1 pickup
 *
 * DESCRIPTION
 *   pickup is the single-threaded facade between local users and the mail
 *   system. It wakes when a submitter writes to public/pickup (sendmail,
 *   postdrop) and on master's wakeup timer, scans maildrop/, and hands each
 *   complete file to cleanup as the message of the user who owns the file
 *   (pickup-file.ts); it scans again as long as the previous pass took
 *   something, as Postfix's pickup does. Files are handled one at a time,
 *   so one process (maxproc 1) serves the whole maildrop. It also removes
 *   identity-proof files (global/uid-proof.ts) that their clients left
 *   behind. pickup never exits because of what it finds in a file.
 */
import { readdir, lstat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { msg } from "../util/msg.js";
import { MAILDROP_NAME_RE } from "../global/maildrop.js";
import { PROOF_NAME_RE, proofIsStale } from "../global/uid-proof.js";
import type { Config } from "../global/config.js";
import { triggerServer } from "../master/mail-server.js";
import { pickupFile, type PickupEnv } from "./pickup-file.js";

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
/** The most recipients one local submission may carry. */
const RCPT_MAX = 100_000;
/** The most names read from maildrop/ in one pass. */
const SCAN_MAX = 10_000;

/** An RFC 5322 date in local time, as Postfix's mail_date() writes it. */
function mailDate(d: Date): string {
  const pad = (n: number): string => String(n).padStart(2, "0");
  const off = -d.getTimezoneOffset();
  const zone = `${off >= 0 ? "+" : "-"}${pad(Math.floor(Math.abs(off) / 60))}${pad(Math.abs(off) % 60)}`;
  const name =
    new Intl.DateTimeFormat("en-US", { timeZoneName: "short" })
      .formatToParts(d)
      .find((p) => p.type === "timeZoneName")?.value ?? "";
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return `${DAYS[d.getDay()]}, ${d.getDate()} ${MONTHS[d.getMonth()]} ${d.getFullYear()} ${hms} ${zone}${name !== "" ? ` (${name})` : ""}`;
}

/** Removes a proof file that its client left behind. */
async function dropStaleProof(path: string): Promise<void> {
  try {
    const st = await lstat(path);
    if (proofIsStale(st.ctimeMs)) await unlink(path);
  } catch {
    /* gone already */
  }
}

/** One pass over maildrop/; returns how many files were taken (removed). */
async function scanOnce(env: PickupEnv): Promise<number> {
  const dir = join(env.queueDir, "maildrop");
  let names: string[];
  try {
    names = (await readdir(dir)).slice(0, SCAN_MAX);
  } catch (err) {
    msg.warn(`scan ${dir}: ${(err as Error).message}`);
    return 0;
  }
  let taken = 0;
  for (const name of names) {
    if (PROOF_NAME_RE.test(name)) {
      await dropStaleProof(join(dir, name));
      continue;
    }
    if (!MAILDROP_NAME_RE.test(name)) continue;
    try {
      if ((await pickupFile(env, name)) === "removed") taken++;
    } catch (err) {
      msg.warn(`maildrop file ${name.slice(0, 8)}...: ${(err as Error).message}; will try again`);
    }
  }
  return taken;
}

/** Scans until a pass takes nothing. */
async function scan(env: PickupEnv): Promise<void> {
  while ((await scanOnce(env)) > 0) {
    /* more may have arrived meanwhile */
  }
}

/** The environment pickup works in, from the configuration. */
async function pickupEnv(cfg: Config): Promise<PickupEnv> {
  const queueDir = cfg.get("queue_directory");
  const st = await lstat(join(queueDir, "maildrop"));
  return { cfg, queueDir, dirGid: st.gid, rcptMax: RCPT_MAX, date: mailDate };
}

let env: PickupEnv | null = null;

await triggerServer({
  name: "pickup",
  async onStart(ctx) {
    env = await pickupEnv(ctx.config);
  },
  async onTrigger() {
    if (env !== null) await scan(env);
  },
});
