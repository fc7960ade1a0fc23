/*
 * local-alias - alias_maps expansion with owner- aliases and alias-file rights
 *
 * DESCRIPTION
 *   deliverAlias() looks a name up in each alias table in turn (the quoted
 *   form that postalias stores first, then the name as it is). The first
 *   table that has it decides:
 *     - rights: a table file owned by root gives no user rights (files and
 *       commands then get default_privs); a table owned by someone else
 *       gives that owner's rights; an owner that cannot be found defers;
 *     - the owner: when "owner-<name>" exists (and owner_request_special
 *       is on) it becomes the envelope sender and the owner attribute, so
 *       problems go to the list owner and list members are forwarded as
 *       new mail (expand_owner_alias uses its expansion instead of the
 *       owner-<name> address); the DSN parameters of the original message
 *       are then not passed on;
 *     - the value is delivered as a list of addresses, "|commands",
 *       "/files" and ":include:" files (local-token.ts); a value without
 *       any address defers ("alias database unavailable").
 *   A name found in its own expansion is delivered to the user instead; a
 *   table that fails defers. Tables are opened with NO_REGSUB (no $1
 *   substitution into aliases), and "proxy:" is ignored (local opens the
 *   table itself, as Postfix does).
 */
import { stat } from "node:fs/promises";
import { dbSuffix } from "../global/dict-db.js";
import { quote822Local } from "../global/quote-822-local.js";
import { pwByUid } from "../util/unix-passwd.js";
import { msg } from "../util/msg.js";
import { deliverTokenString } from "./local-token.js";
import {
  EXPAND,
  NO_USER,
  casefold,
  type AliasTable,
  type LocalRun,
  type MsgAttr,
  type UserAttr,
} from "./local-state.js";

const NESTING_LIMIT = 100;
const FILE_TYPES: Readonly<Record<string, string>> = {
  hash: dbSuffix("hash"),
  btree: dbSuffix("btree"),
  lmdb: dbSuffix("lmdb"),
  cdb: ".cdb",
  texthash: "",
  regexp: "",
  pcre: "",
  cidr: "",
};

type Owner = { status: "trusted" } | { status: "user"; uid: number } | { status: "unknown"; reason: string };

/** Who owns an alias table: root-owned files and non-file tables are trusted. */
async function tableOwner(t: AliasTable): Promise<Owner> {
  const suffix = FILE_TYPES[t.dict.type];
  if (suffix === undefined) return { status: "trusted" };
  try {
    const st = await stat(t.dict.name + suffix);
    return st.uid === 0 ? { status: "trusted" } : { status: "user", uid: st.uid };
  } catch (err) {
    return { status: "unknown", reason: (err as Error).message };
  }
}

/** Looks a name up in one table: quoted form, then as is. */
async function getAlias(t: AliasTable, name: string): Promise<{ value: string } | "notfound" | "tempfail"> {
  const key = quote822Local(name, { bareLocalPart: true });
  let r = await t.dict.lookup(key);
  if (r.status === "notfound" && key !== name) r = await t.dict.lookup(name);
  if (r.status === "found") return { value: r.value };
  return r.status;
}

/** Looks a name up in all alias tables (for owner- aliases). */
async function findAlias(run: LocalRun, name: string): Promise<{ value: string } | "notfound" | "tempfail"> {
  for (const t of run.set.aliasMaps) {
    const r = await getAlias(t, name);
    if (r !== "notfound") return r;
  }
  return "notfound";
}

/** The rights for deliveries made on behalf of a table. */
async function tableRights(run: LocalRun, a: MsgAttr, t: AliasTable): Promise<UserAttr | number> {
  const owner = await tableOwner(t);
  if (owner.status === "trusted") return { ...NO_USER };
  if (owner.status === "unknown") {
    msg.warn(`deliver_alias: no owner UID for alias database ${t.spec}: ${owner.reason}`);
    return run.defer(a, "4.3.0", "mail system configuration error");
  }
  const pw = await pwByUid(owner.uid);
  if (pw.status !== "found") {
    msg.warn(
      `cannot find alias database owner for ${t.spec}${pw.status === "error" ? `: ${pw.reason}` : ""}`,
    );
    return run.defer(a, "4.3.0", "cannot find alias database owner");
  }
  return { uid: pw.pw.uid, gid: pw.pw.gid, home: pw.pw.home, shell: pw.pw.shell, logname: pw.pw.name };
}

/** Expands an alias; null when no table has the name (see the module comment). */
export async function deliverAlias(
  run: LocalRun,
  a0: MsgAttr,
  _u: UserAttr,
  name: string,
): Promise<number | null> {
  const a: MsgAttr = { ...a0, level: a0.level + 1 };
  if (a.expFrom !== null && casefold(a.expFrom) === casefold(name)) return null;
  if (a.level > NESTING_LIMIT) {
    msg.warn(`alias database loop for ${name}`);
    return run.bounce(a, "5.4.6", `alias database loop for ${name}`);
  }
  a.expFrom = name;
  for (const t of run.set.aliasMaps) {
    const found = await getAlias(t, name);
    if (found === "tempfail") {
      msg.warn(`${t.spec}: lookup of '${name}' failed`);
      return run.defer(a, "4.3.0", "alias database unavailable");
    }
    if (found === "notfound") continue;
    if (run.mtaVerify) return run.sent(a, `aliased to ${found.value}`.slice(0, 500));
    a.expType = EXPAND.ALIAS;
    const u = await tableRights(run, a, t);
    if (typeof u === "number") return u;
    return expandFound(run, a, u, name, found.value);
  }
  return null;
}

/** Delivers a found alias: owner handling, DSN adjustments, then the value's destinations. */
async function expandFound(
  run: LocalRun,
  a: MsgAttr,
  u: UserAttr,
  name: string,
  value: string,
): Promise<number> {
  let owned = false;
  if (run.set.ownerRequestSpecial) {
    const owner = await findAlias(run, `owner-${name}`);
    if (owner === "tempfail") return run.defer(a, "4.3.0", "alias database unavailable");
    if (owner !== "notfound") {
      const who = run.set.expandOwnerAlias ? owner.value : `owner-${name}`;
      const canon = who.includes("@") ? who : `${who}@${run.set.myorigin}`;
      a.owner = canon;
      a.sender = canon;
      owned = true;
    } else if (run.set.resetOwnerAlias) a.owner = null;
  }
  if (!run.set.frozenDelivered) a.delivered = a.rcpt.address;
  const notify = a.rcpt.notify;
  const rcpt = { ...a.rcpt };
  if (notify !== undefined) rcpt.notify = notify === 2 ? 1 : notify & ~2;
  if (owned) {
    rcpt.original = "";
    delete rcpt.orcpt;
  }
  a.rcpt = rcpt;
  const count = { n: 0 };
  const status = await deliverTokenString(run, a, u, value, count);
  if (count.n < 1) {
    msg.warn(`no recipient in alias lookup result for ${name}`);
    return run.defer(a, "4.3.0", "alias database unavailable");
  }
  return status;
}
