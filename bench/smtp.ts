/*
 * smtp - relaying from the queue to smtp-sink, Postern next to Postfix
 *
 * SYNOPSIS
 *   npm run build && node dist/bench/smtp.js [--messages N] [--budget S]   (Postfix part as root)
 *
 * DESCRIPTION
 *   Three runs, each on a queue filled while no queue manager runs and
 *   timed from the moment qmgr is added (reload) until the queue is empty:
 *     1 destination    N single-recipient messages (default 2,000) to one
 *                      next hop
 *     20 destinations  N single-recipient messages spread over 20 next hops
 *     fan-out          one message to 1,000 recipients in 100 domains
 *   Every next hop is [127.0.X.Y]:port of one Postfix smtp-sink listening
 *   on all addresses (Debian package postfix), reached through
 *   transport_maps, so no DNS is involved and each domain is a destination
 *   of its own for the queue managers. Postern's queue is filled with
 *   queue files written directly (global/queue-file.ts), Postfix's
 *   through its own smtpd (filling is not timed). Both use their default
 *   concurrency and recipient limits (20 sessions and 50 recipients per
 *   destination).
 *
 *   Postfix is Debian's /usr/sbin/postfix as a private instance (needs
 *   root; skipped otherwise). Each run stops after --budget seconds
 *   (default 300) with what it has.
 */
import { spawn } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Config } from "../src/global/config.js";
import { QueueFileWriter } from "../src/global/queue-file.js";
import { QueuePaths } from "../src/global/queue-path.js";
import { freePort, makeInstance, sleep } from "../src/testing/instance.js";
import { option, queued, smtpSend, startPostfix, waitUntil } from "./bench-common.js";

const POSTFIX = "/usr/sbin/postfix";
const SINK = "/usr/sbin/smtp-sink";
const FILL_PARALLEL = 8;
const BODY = Array.from({ length: 20 }, (_, j) => `line ${j} ${"-".repeat(70)}`);

interface Message {
  rcpts: string[];
  subject: string;
}

interface Scenario {
  name: string;
  messages: Message[];
  /** domain -> [address]:port */
  routes: Map<string, string>;
}

/** The next hop of the k-th destination: a loopback address of its own. */
function hop(k: number, port: number): string {
  return `[127.0.${Math.floor(k / 200) + 1}.${(k % 200) + 2}]:${port}`;
}

/** Builds the three scenarios. */
function scenarios(n: number, port: number): Scenario[] {
  const routesFor = (count: number): Map<string, string> =>
    new Map(Array.from({ length: count }, (_, k) => [`d${k}.bench.test`, hop(k, port)]));
  return [
    {
      name: "1 destination",
      messages: Array.from({ length: n }, (_, i) => ({
        rcpts: [`u${i}@d0.bench.test`],
        subject: `one ${i}`,
      })),
      routes: routesFor(1),
    },
    {
      name: "20 destinations",
      messages: Array.from({ length: n }, (_, i) => ({
        rcpts: [`u${i}@d${i % 20}.bench.test`],
        subject: `twenty ${i}`,
      })),
      routes: routesFor(20),
    },
    {
      name: "fan-out 1000 rcpts / 100 domains",
      messages: [
        { rcpts: Array.from({ length: 1000 }, (_, i) => `u${i}@d${i % 100}.bench.test`), subject: "fan-out" },
      ],
      routes: routesFor(100),
    },
  ];
}

/** Writes the scenario's messages as queue files into incoming/. */
async function fillPostern(etc: string, messages: Message[]): Promise<void> {
  const paths = new QueuePaths(Config.load(etc));
  const owner = statSync(join(paths.root, "incoming"));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < messages.length) {
      const m = messages[next++] as Message;
      const w = await QueueFileWriter.create(paths, false);
      w.sender("bench@example.org");
      w.attr("log_ident", w.id);
      for (const r of m.rcpts) w.rcpt({ address: r, original: r });
      w.beginContent();
      await w.line(Buffer.from(`Subject: ${m.subject}`));
      await w.line(Buffer.alloc(0));
      for (const l of BODY) await w.line(Buffer.from(l));
      await w.commit();
      chownSync(paths.path("incoming", w.id), owner.uid, owner.gid);
    }
  };
  await Promise.all(Array.from({ length: FILL_PARALLEL }, worker));
}

interface Figures {
  recipients: number;
  seconds: number;
  note: string;
}

/** The transport_maps text of a scenario. */
function transportMap(s: Scenario): string {
  return [...s.routes].map(([d, h]) => `${d} smtp:${h}`).join("\n") + "\n";
}

/** Times Postern on one scenario. */
async function postern(s: Scenario, budgetMs: number): Promise<Figures> {
  const services = [
    "cleanup unix - - n - 0 cleanup",
    "rewrite unix - - n - - trivial-rewrite",
    "smtp unix - - n - - smtp",
  ];
  const inst = makeInstance({
    main: "mydestination =\nrelay_domains =\n",
    master: services.join("\n") + "\n",
  });
  try {
    writeFileSync(join(inst.etc, "transport"), transportMap(s));
    writeFileSync(
      join(inst.etc, "main.cf"),
      readFileSync(join(inst.etc, "main.cf"), "utf8") + `transport_maps = texthash:${inst.etc}/transport\n`,
    );
    const r = await inst.start();
    if (r.code !== 0) throw new Error(`postern start: ${r.stderr}`);
    await fillPostern(inst.etc, s.messages);
    const t0 = Date.now();
    inst.writeMaster([...services, "qmgr unix n - n 300 1 qmgr", ""].join("\n"));
    const rl = await inst.postern("reload");
    if (rl.code !== 0) throw new Error(`postern reload: ${rl.stderr}`);
    const queues = ["incoming", "active", "deferred"];
    const ok = await waitUntil(() => queued(inst.spool, queues) === 0, t0 + budgetMs);
    const seconds = (Date.now() - t0) / 1000;
    await sleep(500);
    const sent = (inst.log().match(/ status=sent /g) ?? []).length;
    const deferred = (inst.log().match(/ status=deferred /g) ?? []).length;
    return {
      recipients: sent,
      seconds,
      note: (ok ? "" : "budget reached ") + (deferred > 0 ? `${deferred} deferrals` : ""),
    };
  } finally {
    await inst.postern("abort");
    inst.cleanup();
  }
}

/** Times a private Postfix instance on one scenario. */
async function postfix(dir: string, s: Scenario, budgetMs: number): Promise<Figures> {
  rmSync(join(dir, "postfix"), { recursive: true, force: true });
  const transport = join(dir, "postfix-transport");
  writeFileSync(transport, transportMap(s));
  const port = await freePort();
  const services = [`127.0.0.1:${port} inet n - n - - smtpd`, "smtp unix - - n - - smtp"];
  const pf = await startPostfix(
    dir,
    [
      "myhostname = bench.example.test",
      "mydestination =",
      "relay_domains =",
      `transport_maps = texthash:${transport}`,
      "smtp_dns_support_level = disabled",
      "smtpd_recipient_limit = 1000",
    ],
    services,
  );
  try {
    const per = Math.ceil(s.messages.length / FILL_PARALLEL);
    await Promise.all(
      Array.from({ length: FILL_PARALLEL }, (_, k) =>
        smtpSend(port, Math.max(0, Math.min(per, s.messages.length - k * per)), (i) => {
          const m = s.messages[k * per + i] as Message;
          return { rcpt: m.rcpts, content: [`Subject: ${m.subject}`, "", ...BODY, ""].join("\n") };
        }),
      ),
    );
    const spool = pf.spool;
    await waitUntil(() => queued(spool, ["incoming"]) >= s.messages.length, Date.now() + 60_000);
    const t0 = Date.now();
    pf.reload([...services, "qmgr unix n - n 300 1 qmgr"]);
    const ok = await waitUntil(() => queued(spool, ["incoming", "active", "deferred"]) === 0, t0 + budgetMs);
    const seconds = (Date.now() - t0) / 1000;
    await sleep(500);
    const log = readFileSync(pf.maillog, "utf8");
    const sent = (log.match(/ status=sent /g) ?? []).length;
    const deferred = (log.match(/ status=deferred /g) ?? []).length;
    return {
      recipients: sent,
      seconds,
      note: (ok ? "" : "budget reached ") + (deferred > 0 ? `${deferred} deferrals` : ""),
    };
  } finally {
    pf.stop();
  }
}

/** One result cell. */
function cell(s: Scenario, f: Figures): string {
  const rate =
    s.messages.length > 1
      ? `${(s.messages.length / f.seconds).toFixed(0)} msg/s`
      : `${f.seconds.toFixed(2)} s`;
  return `${rate} (${f.recipients} rcpts sent${f.note !== "" ? ", " + f.note : ""})`;
}

/** Runs the benchmark and prints the table. */
async function main(): Promise<void> {
  const n = option("messages", 2000);
  const budgetMs = option("budget", 300) * 1000;
  if (!existsSync(SINK)) throw new Error(`${SINK} is missing: install the Debian package postfix`);
  const port = await freePort();
  const root = process.getuid?.() === 0;
  const sink = spawn(SINK, [...(root ? ["-u", "nobody"] : []), `:${port}`, "1000"], { stdio: "ignore" });
  const withPostfix = existsSync(POSTFIX) && root;
  const dir = mkdtempSync(join(tmpdir(), "postern-bench-smtp-"));
  chmodSync(dir, 0o755);
  try {
    await sleep(300);
    console.log("scenario".padEnd(36) + "Postern".padEnd(40) + "Postfix".padEnd(40) + "ratio");
    for (const s of scenarios(n, port)) {
      const p = await postern(s, budgetMs);
      const f = withPostfix ? await postfix(dir, s, budgetMs) : null;
      const ratio = f === null ? "-" : (f.seconds / p.seconds).toFixed(2);
      console.log(
        s.name.padEnd(36) +
          cell(s, p).padEnd(40) +
          (f === null ? "(needs root)" : cell(s, f)).padEnd(40) +
          ratio,
      );
    }
    console.log(
      "ratio: Postern's speed / Postfix's (Postfix time / Postern time); above 1 Postern is faster",
    );
  } finally {
    sink.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
