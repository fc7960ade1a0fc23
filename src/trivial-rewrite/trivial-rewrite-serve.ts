/*
 * trivial-rewrite-serve - answers one request of the rewrite protocol
 *
 * SYNOPSIS
 *   import { rewriteHandler } from "./trivial-rewrite-serve.js";
 *   serveAttrConnection(socket, { ..., handler: rewriteHandler({ resolver, rewrite }) });
 *
 * DESCRIPTION
 *   The request is checked against rewrite-proto.ts; a bad one (missing
 *   or oversized attributes, "rewrite" without a rule) is logged and gets
 *   { status: "tempfail", reason }, and the connection stays usable.
 *
 *   "resolve" asks the resolver (global/resolve-addr.ts) in the request's
 *   context ("regular" unless it says "verify") and answers
 *   { status: "ok", transport, nexthop, recipient, flags }, or the
 *   resolver's tempfail. "rewrite" applies the rewrite rules of
 *   global/rewrite-addr.ts in the "local" or "remote" context to the
 *   internal-form address and answers { status: "ok", address }.
 *
 *   An answer that would not fit the protocol's limits (a very long
 *   relocated_maps text, say) is logged and becomes a tempfail, so that
 *   the client never sees a reply it must reject.
 */
import type { AttrList } from "../util/attr-codec.js";
import { msg } from "../util/msg.js";
import type { ResolveContext, Resolver } from "../global/resolve-addr.js";
import { rewriteInternal, type RewriteParams } from "../global/rewrite-addr.js";
import { RewriteReply, RewriteRequest } from "../global/rewrite-proto.js";

/** What the handler works with: the resolver and the rewrite rules, made once per process. */
export interface RewriteServiceState {
  resolver: Resolver;
  rewrite: RewriteParams;
}

const LIMITS = { transport: 128, nexthop: 1024, recipient: 2048, address: 2048 } as const;

/** A temporary-failure reply. */
function tempfail(reason: string): AttrList {
  return RewriteReply.build({ status: "tempfail", reason: reason.slice(0, 1000) });
}

/** The first field that is longer than the protocol allows, or null. */
function oversized(fields: Partial<Record<keyof typeof LIMITS, string>>): string | null {
  for (const [name, value] of Object.entries(fields)) {
    if (Buffer.byteLength(value) > LIMITS[name as keyof typeof LIMITS]) return name;
  }
  return null;
}

/** Answers a resolve request. */
async function resolveReply(
  state: RewriteServiceState,
  sender: string,
  address: string,
  context: ResolveContext,
): Promise<AttrList> {
  const r = await state.resolver.resolve(sender, address, context);
  if (r.status === "tempfail") return tempfail(r.reason);
  msg.debug(
    `${context} '${sender}' '${address}' -> '${r.transport}' '${r.nexthop}' '${r.recipient}' ${r.flags}`,
  );
  const big = oversized({ transport: r.transport, nexthop: r.nexthop, recipient: r.recipient });
  if (big !== null) {
    msg.warn(`resolve <${address}>: the ${big} is too long for a reply`);
    return tempfail(`resolver result too long (${big})`);
  }
  const { transport, nexthop, recipient, flags } = r;
  return RewriteReply.build({ status: "ok", transport, nexthop, recipient, flags });
}

/** Answers a rewrite request. */
function rewriteReply(state: RewriteServiceState, rule: "local" | "remote", address: string): AttrList {
  const out = rewriteInternal(state.rewrite, rule, address);
  msg.debug(`'${rule}' '${address}' -> '${out}'`);
  if (oversized({ address: out }) !== null) {
    msg.warn(`rewrite <${address}>: the result is too long for a reply`);
    return tempfail("rewrite result too long");
  }
  return RewriteReply.build({ status: "ok", address: out });
}

/** The request handler of one process. */
export function rewriteHandler(state: RewriteServiceState): (req: AttrList) => Promise<AttrList> {
  return async (req) => {
    const p = RewriteRequest.parse(req);
    if (!p.ok) {
      msg.warn(`bad request: ${p.error}`);
      return tempfail(`bad request: ${p.error}`);
    }
    const { request, rule, sender, address, context } = p.value;
    if (request === "resolve") return resolveReply(state, sender ?? "", address, context ?? "regular");
    if (rule === undefined) {
      msg.warn("bad request: rewrite without a rule");
      return tempfail("bad request: rewrite without a rule");
    }
    return rewriteReply(state, rule, address);
  };
}
