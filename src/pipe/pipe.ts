/*
 * pipe - delivery to external commands configured in master.cf
 *
 * SYNOPSIS
 *   master.cf: uucp unix - n n - - pipe
 *                flags=Fqhu user=uucp argv=uux -r -n -z -a$sender - $nexthop!rmail ($recipient)
 *              filter unix - n n - 10 pipe
 *                flags=Rq user=filter null_sender= argv=/usr/local/bin/filter -f ${sender} -- ${recipient}
 *   main.cf:   filter_destination_recipient_limit = 1    (for flags D and O)
 *
 * DESCRIPTION
 *   As Postfix's pipe(8): the attributes after the command name (see
 *   pipe-args.ts) say how to run the command and how to write the message
 *   to its standard input. Each request runs the command once, for all its
 *   recipients (as many as <service>_destination_recipient_limit lets qmgr
 *   put in one request); arguments that mention a recipient macro repeat
 *   per recipient. The command runs with the user= rights, directly (no
 *   shell), in its own process group, with the export_environment
 *   variables only, for at most <service>_time_limit (command_time_limit).
 *
 *   Every recipient gets the command's status (global/pipe-command.ts):
 *   exit 0 is delivered ("delivered via SERVICE service", plus its output);
 *   a non-zero exit maps through <sysexits.h> (EX_TEMPFAIL defers,
 *   EX_NOUSER bounces, ...) or through an enhanced status code at the start
 *   of its output; the output is part of the DSN text. Before running:
 *   size= bounces larger mail (5.2.3); flags D or O with more than one
 *   recipient defer (a configuration error); with D, a Delivered-To: header
 *   that already names the recipient bounces as a loop.
 *
 *   Privileges: the agent runs as root (unpriv "n") only so that it can
 *   start the command with the user= uid and gid; it does no other work as
 *   anyone else. A bad attribute, an unknown user or group, or rights of
 *   root, mail_owner or setgid_group are fatal at start-up.
 */
import { agentServer } from "../master/agent-server.js";
import type { ServerContext } from "../master/mail-server.js";
import type { Config } from "../global/config.js";
import { traceOnly, type DeliveryRequest, type RcptResult } from "../global/deliver-proto.js";
import { MAIL_COPY, deliveredKey, deliveredTo, mailCopy } from "../global/mail-copy.js";
import { pipeCommand } from "../global/pipe-command.js";
import { contentLines, readEnvelope } from "../global/queue-file.js";
import { QueuePaths, type QueueName } from "../global/queue-path.js";
import { quote822Local } from "../global/quote-822-local.js";
import { grByName, pwByName } from "../util/unix-passwd.js";
import { msg } from "../util/msg.js";
import { PIPE_OPT, expandArgv, parsePipeArgs, type PipeAttr } from "./pipe-args.js";

interface PipeService {
  attr: PipeAttr;
  uid: number;
  gid: number;
  timeSec: number;
  exportEnv: string[];
  delimiter: string;
  paths: QueuePaths;
}

let svc: PipeService | null = null;

/** The service's time limit: <service>_time_limit, else command_time_limit. */
function timeLimit(cfg: Config, service: string): number {
  const own = `${service}_time_limit`;
  const v = cfg.raw(own) !== undefined ? cfg.expand(cfg.raw(own) ?? "", own).trim() : "";
  const m = /^(\d+)([smhdw]?)$/.exec(v);
  if (m === null) return cfg.time("command_time_limit");
  const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2] ?? ""] ?? 1;
  return Number(m[1]) * unit;
}

/** Resolves user= and checks the rights (fatal when unsafe). */
async function rights(cfg: Config, a: PipeAttr): Promise<{ uid: number; gid: number }> {
  const pw = await pwByName(a.user);
  if (pw.status !== "found") return msg.fatal(`unknown username: ${a.user}`);
  let gid = pw.pw.gid;
  if (a.group !== null) {
    const g = await grByName(a.group);
    if (g.status !== "found") return msg.fatal(`unknown group: ${a.group}`);
    gid = g.gid;
  }
  const owner = await pwByName(cfg.get("mail_owner"));
  const sgid = await grByName(cfg.get("setgid_group"));
  if (pw.pw.uid === 0) return msg.fatal("user= command-line attribute specifies root privileges");
  if (owner.status === "found" && pw.pw.uid === owner.pw.uid)
    return msg.fatal(`user= command-line attribute specifies mail system owner ${cfg.get("mail_owner")}`);
  if (gid === 0) return msg.fatal("user= command-line attribute specifies privileged group id 0");
  if (owner.status === "found" && gid === owner.pw.gid)
    return msg.fatal(`user= command-line attribute specifies mail system owner group id ${gid}`);
  if (sgid.status === "found" && gid === sgid.gid)
    return msg.fatal(
      `user= command-line attribute specifies mail system ${cfg.get("setgid_group")} group id ${gid}`,
    );
  return { uid: pw.pw.uid, gid };
}

/** Every recipient gets the same result. */
function all(req: DeliveryRequest, status: RcptResult["status"], dsn: string, text: string): RcptResult[] {
  return req.recipients.map(() => ({ status, dsn, text }));
}

/** Delivers one request by running the command once. */
async function deliver(s: PipeService, req: DeliveryRequest, ctx: ServerContext): Promise<RcptResult[]> {
  const a = s.attr;
  const service = ctx.service;
  const many = req.recipients.length > 1;
  for (const [bit, flag] of [
    [MAIL_COPY.DELIVERED, "D"],
    [MAIL_COPY.ORIG_RCPT, "O"],
  ] as const) {
    if (a.copy & bit && many) {
      msg.warn(`pipe flag \`${flag}' requires ${service}_destination_recipient_limit = 1`);
      return all(req, "deferred", "4.3.5", "mail system configuration error");
    }
  }
  const path = s.paths.path(req.queueName as QueueName, req.queueId);
  const e = await readEnvelope(path);
  if (!e.ok) {
    msg.warn(`${req.queueId}: queue file ${path}: ${e.reason} at offset ${e.offset}`);
    return all(req, "deferred", "4.3.0", "queue file read error");
  }
  const env = e.env;
  if (a.sizeLimit !== 0 && env.contentSize > a.sizeLimit)
    return all(req, "bounced", "5.2.3", "message too large");
  // A verify probe or sendmail -bv: say what would run, run nothing.
  if (traceOnly(req.flags)) return all(req, "sent", "2.0.0", `delivers to command: ${a.argv[0] ?? ""}`);
  const first = req.recipients[0];
  if (a.copy & MAIL_COPY.DELIVERED && first !== undefined) {
    const seen = await deliveredTo(contentLines(path, env));
    if (seen.has(deliveredKey(first.address)))
      return all(req, "bounced", "5.4.6", `mail forwarding loop for ${first.address}`);
  }
  const sender = req.sender !== "" ? req.sender : a.nullSender;
  const at = req.attrs;
  const common: Record<string, string> = {
    sender: sender !== "" && a.opts & PIPE_OPT.QUOTE ? quote822Local(sender) : sender,
    nexthop: a.opts & PIPE_OPT.FOLD_HOST ? req.nexthop.toLowerCase() : req.nexthop,
    size: String(env.contentSize),
    client_address: at["client_address"] ?? "",
    client_helo: at["helo"] ?? "",
    client_hostname: at["client_name"] ?? "",
    client_port: at["client_port"] ?? "",
    client_protocol: at["protocol"] ?? "",
    sasl_method: at["sasl_method"] ?? "",
    sasl_sender: at["sasl_sender"] ?? "",
    sasl_username: at["sasl_username"] ?? "",
    queue_id: req.queueId,
    envid: at["dsn_envid"] ?? "",
  };
  const argv = expandArgv(a, common, req.recipients, s.delimiter);
  if ("error" in argv) {
    msg.warn(`file master.cf: service ${service}: ${argv.error}`);
    return all(req, "deferred", "4.3.5", "mail system configuration error");
  }
  let r;
  try {
    r = await pipeCommand({
      argv,
      rights: process.getuid?.() === 0 ? { uid: s.uid, gid: s.gid } : null,
      exportNames: s.exportEnv,
      ...(a.directory !== null ? { cwd: a.directory } : {}),
      timeLimitMs: s.timeSec * 1000,
      input: mailCopy(contentLines(path, env), {
        flags: a.copy,
        sender,
        origRcpt: first?.original ?? "",
        delivered: first?.address ?? "",
        eol: a.eol,
      }),
    });
  } catch (err) {
    msg.warn(`${req.queueId}: ${(err as Error).message}`);
    return all(req, "deferred", "4.3.0", "error reading message: queue file read error");
  }
  if (r.status === "ok") {
    const out = r.output !== "" ? ` (${r.output.slice(0, 100)})` : "";
    return all(req, "sent", "2.0.0", `delivered via ${service} service${out}`);
  }
  return all(req, r.status === "defer" ? "deferred" : "bounced", r.dsn, r.text);
}

await agentServer({
  name: "pipe",
  /** Parses the master.cf attributes and checks the command's rights. */
  async onStart(ctx) {
    const a = parsePipeArgs(ctx.args);
    if ("error" in a) return msg.fatal(`service ${ctx.service}: ${a.error}`);
    const { uid, gid } = await rights(ctx.config, a);
    svc = {
      attr: a,
      uid,
      gid,
      timeSec: timeLimit(ctx.config, ctx.service),
      exportEnv: ctx.config.list("export_environment"),
      delimiter: ctx.config.get("recipient_delimiter"),
      paths: new QueuePaths(ctx.config),
    };
  },
  /** Runs the command for one request from qmgr. */
  async deliver(req, ctx) {
    if (svc === null) throw new Error("pipe agent not initialized");
    return { relay: ctx.service, siteFail: false, results: await deliver(svc, req, ctx) };
  },
});
