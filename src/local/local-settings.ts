/*
 * local-settings - the local(8) parameters, read once when the agent starts
 *
 * DESCRIPTION
 *   Reads every parameter local delivery uses (see params-table.ts, "local
 *   delivery") into LocalSettings and opens its tables. As in Postfix,
 *   forward_path, mailbox_command, luser_relay and
 *   command_execution_directory are taken raw: their $names are expanded
 *   per recipient (local-expand.ts), not from main.cf. A bad name in
 *   allow_mail_to_commands, allow_mail_to_files, prepend_delivered_header
 *   or mailbox_delivery_lock, an unknown default_privs account, or a
 *   default_privs of root is fatal at start-up, as is a mailbox_size_limit
 *   below message_size_limit (mail would be delivered again and again).
 *   mailbox_delivery_lock: see global/mbox-conf.ts (both kernel lock names
 *   are realised with flock(1)).
 */
import type { Config } from "../global/config.js";
import { dictOpen, DictFlag } from "../global/dict.js";
import { mapsLookup, type LookupFn } from "../global/dict-search.js";
import { mboxLockMethods } from "../global/mbox-conf.js";
import { pwByName } from "../util/unix-passwd.js";
import { msg } from "../util/msg.js";
import { EXPAND, HDR, type LocalSettings } from "./local-state.js";

/** Maps a list of names to bits; an unknown name is fatal. */
export function nameMask(cfg: Config, param: string, names: Readonly<Record<string, number>>): number {
  let mask = 0;
  for (const n of cfg.list(param)) {
    const bit = names[n.toLowerCase()];
    if (bit === undefined) return msg.fatal(`parameter ${param}: unknown name "${n}"`);
    mask |= bit;
  }
  return mask;
}

/** Opens tables for a list parameter; null when it is empty. */
export function tableLookup(cfg: Config, param: string, flags: number): LookupFn | null {
  const specs = cfg.list(param);
  if (specs.length === 0) return null;
  return mapsLookup(
    specs.map((s) => dictOpen(s, { flags })),
    param,
  );
}

/** A raw parameter value (no $name expansion), trimmed. */
function raw(cfg: Config, name: string): string {
  return (cfg.raw(name) ?? "").trim();
}

/** Reads the local(8) settings (see the module comment). */
export async function loadLocalSettings(cfg: Config): Promise<LocalSettings> {
  const privsName = cfg.get("default_privs");
  const pw = await pwByName(privsName);
  if (pw.status !== "found") return msg.fatal(`unknown default_privs user "${privsName}"`);
  if (pw.pw.uid === 0) return msg.fatal(`default_privs "${privsName}" has root privileges`);
  const mailboxLimit = cfg.int("mailbox_size_limit");
  const messageLimit = cfg.int("message_size_limit");
  if (mailboxLimit !== 0 && (messageLimit === 0 || mailboxLimit < messageLimit))
    return msg.fatal("configuration error: mailbox_size_limit is smaller than message_size_limit");
  const aliasFlags = DictFlag.FOLD_FIX | DictFlag.NO_REGSUB | DictFlag.NO_PROXY | DictFlag.NO_UNAUTH;
  const aliasMaps = cfg.list("alias_maps").map((spec) => {
    const direct = spec.replace(/^proxy:/, "");
    return { spec: direct, dict: dictOpen(direct, { flags: aliasFlags }) };
  });
  const locks = mboxLockMethods(cfg, "mailbox_delivery_lock");
  const paths = { alias: EXPAND.ALIAS, forward: EXPAND.FWD, include: EXPAND.INCL };
  const tflags = DictFlag.FOLD_FIX | DictFlag.NO_REGSUB;
  return {
    queueDir: cfg.get("queue_directory"),
    myhostname: cfg.get("myhostname"),
    myorigin: cfg.get("myorigin"),
    mailName: cfg.get("mail_name"),
    aliasMaps,
    forwardPath: raw(cfg, "forward_path")
      .split(/[\s,]+/)
      .filter((s) => s !== ""),
    delimiter: cfg.get("recipient_delimiter"),
    mailboxTransport: cfg.get("mailbox_transport"),
    mailboxTransportMaps: tableLookup(cfg, "mailbox_transport_maps", tflags),
    mailboxCommand: raw(cfg, "mailbox_command"),
    mailboxCommandMaps: tableLookup(cfg, "mailbox_command_maps", tflags),
    homeMailbox: cfg.get("home_mailbox"),
    spoolDir: cfg.get("mail_spool_directory"),
    fallbackTransport: cfg.get("fallback_transport"),
    fallbackTransportMaps: tableLookup(cfg, "fallback_transport_maps", tflags),
    luserRelay: raw(cfg, "luser_relay"),
    allowCommands: nameMask(cfg, "allow_mail_to_commands", paths),
    allowFiles: nameMask(cfg, "allow_mail_to_files", paths),
    deliverHdr: nameMask(cfg, "prepend_delivered_header", {
      command: HDR.CMD,
      file: HDR.FILE,
      forward: HDR.FWD,
    }),
    propagate: nameMask(cfg, "propagate_unmatched_extensions", {
      canonical: 0,
      virtual: 0,
      generic: 0,
      ...paths,
    }),
    ...locks,
    lockAttempts: cfg.int("deliver_lock_attempts"),
    lockDelayMs: cfg.time("deliver_lock_delay") * 1000,
    staleLockSec: cfg.time("stale_lock_time"),
    mailboxSizeLimit: mailboxLimit,
    commandTimeMs: cfg.time("command_time_limit") * 1000,
    cmdFilter: cfg.get("command_expansion_filter"),
    fwdFilter: cfg.get("forward_expansion_filter"),
    execFilter: cfg.get("execution_directory_expansion_filter"),
    execDirectory: raw(cfg, "command_execution_directory"),
    commandShell: cfg.get("local_command_shell"),
    exportEnv: cfg.list("export_environment"),
    defaultPrivs: {
      uid: pw.pw.uid,
      gid: pw.pw.gid,
      home: pw.pw.home,
      shell: pw.pw.shell,
      logname: pw.pw.name,
    },
    expandOwnerAlias: cfg.bool("expand_owner_alias"),
    resetOwnerAlias: cfg.bool("reset_owner_alias"),
    frozenDelivered: cfg.bool("frozen_delivered_to"),
    requireHome: cfg.bool("require_home_directory"),
    strictOwner: cfg.bool("strict_mailbox_ownership"),
    ownerRequestSpecial: cfg.bool("owner_request_special"),
    dupLimit: cfg.int("duplicate_filter_limit"),
    lineLimit: cfg.int("line_length_limit"),
    enableOrigRcpt: cfg.bool("enable_original_recipient"),
    ipcTimeoutMs: cfg.time("ipc_timeout") * 1000,
    asRoot: process.getuid?.() === 0,
    config: cfg,
  };
}
