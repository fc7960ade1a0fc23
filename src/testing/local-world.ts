/*
 * local-world - users, an instance and mailbox readers for local delivery tests
 *
 * SYNOPSIS
 *   const w = makeWorld();                    // a 0755 temp dir, users created lazily
 *   const alice = w.user("a");                // useradd; w.cleanup() removes them
 *   const inst = await localInstance(t, w, "home_mailbox = Maildir/\n");
 *   const id = await submit(inst, ["user@mail.example.test"], "Subject: x\n\nbody\n");
 *   readMailbox("maildir", path)              // via Python's mailbox module
 *   await readNotices(maildir, n)             // n messages in Maildir/new, DSN parts parsed
 *
 * DESCRIPTION
 *   End-to-end tests of local, virtual and pipe run as root, against real
 *   accounts: users are made with useradd(8) (home directories under the
 *   world's directory, a group of their own) and removed with userdel(8).
 *   Mailboxes are read back with /usr/bin/python3's mailbox module, an
 *   independent reader of Maildir and mbox.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { CleanupClient } from "../global/cleanup-client.js";
import { shippedEntries, sleep, startInstance, type Instance } from "./instance.js";

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface World {
  dir: string;
  user(tag: string): TestUser;
  cleanup(): void;
}

export const DOMAIN = "mail.example.test";

/** Makes a world: a directory everyone may traverse, and a user factory. */
export function makeWorld(): World {
  const dir = mkdtempSync(join(tmpdir(), "postern-local-"));
  chmodSync(dir, 0o755);
  const users = new Map<string, TestUser>();
  return {
    dir,
    user(tag) {
      const known = users.get(tag);
      if (known !== undefined) return known;
      const name = `pt${tag}${process.pid % 100000}`;
      const home = join(dir, "home", name);
      execFileSync("mkdir", ["-p", join(dir, "home")]);
      execFileSync("useradd", ["-m", "-d", home, "-s", "/bin/sh", "-U", name], { stdio: "pipe" });
      chmodSync(home, 0o755);
      const uid = Number(execFileSync("id", ["-u", name], { encoding: "utf8" }).trim());
      const gid = Number(execFileSync("id", ["-g", name], { encoding: "utf8" }).trim());
      const u = { name, uid, gid, home };
      users.set(tag, u);
      return u;
    },
    cleanup() {
      for (const u of users.values()) {
        try {
          execFileSync("userdel", [u.name], { stdio: "pipe" });
        } catch {
          /* already gone */
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts an instance with cleanup, qmgr, trivial-rewrite and local (plus extra master.cf lines). */
export async function localInstance(
  t: { after: (fn: () => Promise<void>) => void },
  main: string,
  master = "",
): Promise<Instance> {
  const inst = await startInstance(t, {
    main: [
      `myhostname = ${DOMAIN}`,
      "mydestination = $myhostname, localhost",
      "relay_domains =",
      "default_transport = error:5.0.0 no remote mail in tests",
      "recipient_delimiter = +",
      "queue_run_delay = 1s",
      "minimal_backoff_time = 1s",
      "maximal_backoff_time = 2s",
      main,
    ].join("\n"),
    // The shipped services local delivery needs, with their columns (no smtp: tests reach no network).
    master: [shippedEntries("cleanup", "qmgr", "rewrite", "local", "error"), master, ""].join("\n"),
  });
  return inst;
}

/** Submits a message through cleanup; returns its queue ID. */
export async function submit(
  inst: Instance,
  rcpts: string[],
  content: string,
  sender = "sender@example.org",
): Promise<string> {
  const c = await CleanupClient.open(inst.spool);
  assert.ok(c.ok, c.ok ? "" : c.reason);
  await c.client.sender(sender);
  for (const r of rcpts) await c.client.rcpt({ address: r, original: r });
  await c.client.data(Buffer.from(content));
  const r = await c.client.end();
  assert.equal(r.status, "ok", JSON.stringify(r));
  return c.client.queueId;
}

export interface ReadMessage {
  subject: string | null;
  from: string | null;
  returnPath: string | null;
  deliveredTo: string[];
  originalTo: string | null;
  body: string;
  fromLine: string | null;
}

const PY = `
import json, mailbox, sys
kind, path = sys.argv[1], sys.argv[2]
box = mailbox.Maildir(path, factory=None, create=False) if kind == "maildir" else mailbox.mbox(path, create=False)
out = []
for m in box:
    out.append({"subject": m["Subject"], "from": m["From"], "returnPath": m["Return-Path"],
                "deliveredTo": m.get_all("Delivered-To") or [], "originalTo": m["X-Original-To"],
                "body": m.get_payload(), "fromLine": m.get_from() if kind == "mbox" else None})
print(json.dumps(out))
`;

/** Reads a Maildir or mbox with Python's mailbox module (sorted by subject). */
export function readMailbox(kind: "maildir" | "mbox", path: string): ReadMessage[] {
  const out = execFileSync("/usr/bin/python3", ["-c", PY, kind, path], {
    encoding: "utf8",
    maxBuffer: 256 << 20,
  });
  const list = JSON.parse(out) as ReadMessage[];
  return list.sort((a, b) => (a.subject ?? "").localeCompare(b.subject ?? ""));
}

/** master.cf lines of the bounce, defer and trace services (notices), as local tests run them. */
export const BOUNCE_SERVICES = [
  shippedEntries("bounce"),
  shippedEntries("defer"),
  shippedEntries("trace"),
].join("\n");

const NOTICE_PARSER = `
import email, json, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"))
dsn = []
text = ""
for p in (m.get_payload() if m.is_multipart() else []):
    if p.get_content_type() == "message/delivery-status":
        dsn = [dict(b.items()) for b in p.get_payload()]
    elif p.get_content_type() == "text/plain":
        text = p.get_payload(decode=True).decode("utf-8", "replace")
print(json.dumps({"subject": m["Subject"], "from": m["From"], "type": m.get_content_type(), "text": text, "dsn": dsn}))
`;

/** A message as read by Python's email package: its DSN fields per part (none when not a notice). */
export interface Notice {
  subject: string;
  from: string;
  type: string;
  /** The text/plain part of a multipart message. */
  text: string;
  dsn: Array<Record<string, string>>;
}

/**
 * Waits (30 s at most) until maildir/new holds n messages; returns them parsed, by file
 * name. The error when they do not come shows log() (e.g. the instance's log).
 */
export async function readNotices(
  maildir: string,
  n: number,
  log: () => string = () => "",
): Promise<Notice[]> {
  const dir = join(maildir, "new");
  const deadline = Date.now() + 30_000;
  while (!existsSync(dir) || readdirSync(dir).length < n) {
    if (Date.now() > deadline) throw new Error(`fewer than ${n} messages in ${dir}; log:\n${log()}`);
    await sleep(50);
  }
  return readdirSync(dir)
    .sort()
    .map(
      (f) =>
        JSON.parse(
          execFileSync("/usr/bin/python3", ["-c", NOTICE_PARSER, join(dir, f)], { encoding: "utf8" }),
        ) as Notice,
    );
}
