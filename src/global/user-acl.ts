/*
 * user-acl - authorized_submit_users, authorized_mailq_users, authorized_flush_users
 *
 * SYNOPSIS
 *   const v = await checkUserAcl(cfg, "authorized_submit_users", uid);
 *   if (v.status === "deny") fatal(`User ${v.name}(${uid}) is not allowed to submit mail`);
 *
 * DESCRIPTION
 *   A user access list names login names and lookup tables, as Postfix's
 *   check_user_acl_byuid() reads it: elements are tried in order, the first
 *   match decides, "!element" turns a match into a refusal, a table matches
 *   when it has the login name as a key, and no match refuses. A list that
 *   starts with "static:" (the default static:anyone) permits everyone
 *   without looking the uid up. A uid without an account is called
 *   "unknown", so "!unknown" refuses accounts that do not exist.
 *   A failing account or table lookup is a temporary failure, never a
 *   permission: a daemon that cannot tell (one in the chroot jail has no
 *   /etc/passwd and no getent) fails safe.
 *   ownerOrRoot() is the exemption postqueue, showq and flush give root
 *   and mail_owner.
 */
import { existsSync } from "node:fs";
import { pwByName, pwByUid } from "../util/unix-passwd.js";
import type { Config } from "./config.js";
import { dictOpen } from "./dict.js";
import { MatchList } from "./resolve-match.js";

export type AclParam = "authorized_submit_users" | "authorized_mailq_users" | "authorized_flush_users";

export type AclVerdict =
  | { status: "permit"; name: string }
  | { status: "deny"; name: string }
  | { status: "tempfail"; reason: string };

/** The login name of a uid ("unknown" when there is no account), or a lookup failure. */
export async function loginName(uid: number): Promise<{ name: string } | { error: string }> {
  try {
    const r = await pwByUid(uid);
    if (r.status === "found") return { name: r.pw.name };
    if (r.status === "notfound") return { name: "unknown" };
    return {
      error: jailedLookup(
        `account lookup for uid ${uid}: ${r.reason}`,
        "a service that checks a user list naming users needs chroot = n in master.cf",
      ),
    };
  } catch (err) {
    return { error: `account lookup for uid ${uid}: ${(err as Error).message}` };
  }
}

/** An account lookup error, with advice when the process runs in the jail (which has no /etc/passwd). */
export function jailedLookup(error: string, advice: string): string {
  return existsSync("/etc/passwd") ? error : `${error}: the chroot jail has no account database (${advice})`;
}

/** Checks a uid against one of the user access lists. */
export async function checkUserAcl(cfg: Config, param: AclParam, uid: number): Promise<AclVerdict> {
  const raw = cfg.get(param).trim();
  if (raw.startsWith("static:")) return { status: "permit", name: "" };
  const who = await loginName(uid);
  if ("error" in who) return { status: "tempfail", reason: who.error };
  const list = new MatchList(param, cfg.list(param), {
    kind: "string",
    parentStyle: false,
    open: (spec, flags) => dictOpen(spec, { flags }),
  });
  try {
    const r = await list.match(who.name);
    if (r.status === "tempfail") return { status: "tempfail", reason: r.reason };
    return { status: r.status === "match" ? "permit" : "deny", name: who.name };
  } finally {
    list.close();
  }
}

/**
 * True for root and for mail_owner, whom the queue listing and flush lists do not restrict.
 * A daemon passes asDaemon: it runs as mail_owner (or, without privilege separation, as
 * the one user everything runs as), so its own uid is mail_owner's.
 */
export async function ownerOrRoot(cfg: Config, uid: number, asDaemon = false): Promise<boolean> {
  if (uid === 0) return true;
  if (asDaemon) return uid === process.getuid?.();
  try {
    const r = await pwByName(cfg.get("mail_owner"));
    return r.status === "found" && r.pw.uid === uid;
  } catch {
    return false;
  }
}
