/*
 * cleanup-addr - envelope sender and recipients: rewrite, map, expand, copy
 *
 * SYNOPSIS
 *   const env = new EnvelopeAddresses(st, tables, duplicateFilterLimit);
 *   const sender = await env.sender("alice");          // "alice@$myorigin"
 *   await env.recipient({ address: "bob", original: "bob" });
 *   await env.bcc("archive@example.com");
 *   env.redirect("quarantine@example.com");
 *   for (const r of env.recipients) w.rcpt(r);
 *
 * DESCRIPTION
 *   As Postfix's cleanup does for every envelope address:
 *   sender     rewritten in the local context; mailer-daemon@$myorigin
 *              becomes the null sender; then (with CLEANUP_FLAG.MAP)
 *              sender_canonical_maps and canonical_maps (as their classes
 *              say) and masquerading (masquerade_classes); then
 *              sender_bcc_maps adds a copy recipient.
 *   recipient  rewritten in the local context (the null recipient becomes
 *              empty_address_recipient); with CLEANUP_FLAG.MAP
 *              recipient_canonical_maps, canonical_maps, masquerading,
 *              recipient_bcc_maps, and virtual_alias_maps expansion. The
 *              original recipient is the address as the client gave it;
 *              a missing DSN ORCPT becomes "rfc822;address".
 *   bcc        always_bcc, *_bcc_maps results and BCC actions: rewritten,
 *              canonical and masquerade as a recipient, then expanded.
 *   Duplicates are dropped after expansion: with enable_original_recipient
 *   recipients differ by address, original recipient and DSN fields
 *   (case-insensitively), else by address only; at most
 *   duplicate_filter_limit of them are remembered.
 *   redirect() replaces every recipient's address (REDIRECT action), keeping
 *   the original recipient and DSN fields.
 *
 *   Copy recipients (BCC) are added with CLEANUP_FLAG.MAP only, like
 *   Postfix's receive_override_options=no_address_mappings.
 */
import { CLEANUP_FLAG } from "../global/cleanup-proto.js";
import { addrFind } from "../global/dict-search.js";
import { quote822Local, unquote822Local } from "../global/quote-822-local.js";
import type { Recipient } from "../global/queue-file.js";
import { rewriteInternal } from "../global/rewrite-addr.js";
import { AddressMapper } from "./cleanup-map.js";
import type { CleanupState } from "./cleanup-state.js";
import { ADDR_CLASS, type CleanupTables, type NamedMaps } from "./cleanup-tables.js";

const MAILER_DAEMON = "MAILER-DAEMON";

export class EnvelopeAddresses {
  readonly #st: CleanupState;
  readonly #t: CleanupTables;
  readonly #map: AddressMapper;
  readonly #dupLimit: number;
  #dups = new Set<string>();
  #rcpts: Recipient[] = [];

  constructor(st: CleanupState, t: CleanupTables, duplicateFilterLimit: number) {
    this.#st = st;
    this.#t = t;
    this.#map = new AddressMapper(st, t);
    this.#dupLimit = duplicateFilterLimit;
  }

  /** The recipients so far, after expansion and duplicate removal. */
  get recipients(): readonly Recipient[] {
    return this.#rcpts;
  }

  /** The address mapper (header rewriting shares it). */
  get mapper(): AddressMapper {
    return this.#map;
  }

  /** Whether address mapping is on for this message. */
  #mapOk(): boolean {
    return (this.#st.flags & CLEANUP_FLAG.MAP) !== 0;
  }

  /** Canonical mapping and masquerading of an address of a class (ADDR_CLASS bit). */
  async canonical(addr: string, cls: number): Promise<string> {
    const t = this.#t;
    const sender = (cls & (ADDR_CLASS.ENV_FROM | ADDR_CLASS.HDR_FROM)) !== 0;
    let a = addr;
    for (const c of [sender ? t.senderCanonical : t.recipientCanonical, t.commonCanonical]) {
      if (c !== null && (c.classes & cls) !== 0) a = await this.#map.map11(a, c.maps, t.propagateCanonical);
    }
    if ((t.masqClasses & cls) !== 0) a = await this.#map.masquerade(a);
    return a;
  }

  /** Processes the envelope sender; returns it as it is to be recorded. */
  async sender(raw: string): Promise<string> {
    const p = this.#t.rewrite;
    let a = rewriteInternal(p, "local", raw);
    if (a.toLowerCase() === rewriteInternal(p, "local", MAILER_DAEMON).toLowerCase()) a = "";
    if (this.#mapOk()) a = await this.canonical(a, ADDR_CLASS.ENV_FROM);
    this.#st.sender = a;
    if (this.#mapOk() && a !== "") await this.#bccLookup(this.#t.senderBcc, a);
    return a;
  }

  /** Processes an envelope (or extracted) recipient. */
  async recipient(r: Recipient): Promise<void> {
    const raw = r.address;
    let a = rewriteInternal(this.#t.rewrite, "local", raw === "" ? this.#t.emptyRecipient : raw);
    if (this.#mapOk()) a = await this.canonical(a, ADDR_CLASS.ENV_RCPT);
    const out: Recipient = { address: a, original: r.original ?? raw };
    if (r.notify !== undefined) out.notify = r.notify;
    const orcpt = r.orcpt ?? (a !== "" ? `rfc822;${a}` : undefined);
    if (orcpt !== undefined) out.orcpt = orcpt;
    await this.#output(out);
    this.#st.lastRcpt = a;
    if (this.#mapOk() && a !== "") await this.#bccLookup(this.#t.recipientBcc, a);
  }

  /** Adds a copy recipient (always_bcc, *_bcc_maps, BCC actions). */
  async bcc(addr: string): Promise<void> {
    let a = rewriteInternal(this.#t.rewrite, "local", addr);
    if (this.#mapOk()) a = await this.canonical(a, ADDR_CLASS.ENV_RCPT);
    await this.#output({ address: a, original: a });
  }

  /** Looks up a *_bcc_maps table (the extension is not propagated) and adds the copy recipient. */
  async #bccLookup(maps: NamedMaps | null, addr: string): Promise<void> {
    if (maps === null) return;
    const r = await addrFind(maps.lookup, quote822Local(addr), this.#t.find);
    if (r.status === "found") await this.bcc(unquote822Local(r.value));
    else if (r.status === "tempfail")
      this.#st.tempfail(
        `${maps.title} map lookup problem -- message not accepted, try again later`,
        "4.3.0 Error: temporary lookup table failure",
      );
  }

  /** Expands a recipient (virtual aliases) and adds what is not a duplicate. */
  async #output(r: Recipient): Promise<void> {
    const expanded =
      this.#mapOk() && this.#t.virtual !== null ? await this.#map.map1n(r.address) : [r.address];
    for (const address of expanded) this.#add({ ...r, address });
  }

  /** Adds one recipient unless it is a duplicate. */
  #add(r: Recipient): void {
    const key = (
      this.#t.originalRecipient
        ? `${r.orcpt ?? ""}\n${r.notify ?? 0}\n${r.original ?? ""}\n${r.address}`
        : r.address
    ).toLowerCase();
    if (this.#dups.has(key)) return;
    if (this.#dups.size < this.#dupLimit) this.#dups.add(key);
    this.#rcpts.push(r);
  }

  /** Removes the recipients given as an address (as received or as rewritten); returns how many. */
  drop(address: string): number {
    const a = address.toLowerCase();
    const before = this.#rcpts.length;
    this.#rcpts = this.#rcpts.filter(
      (r) => r.address.toLowerCase() !== a && (r.original ?? "").toLowerCase() !== a,
    );
    return before - this.#rcpts.length;
  }

  /** Sends every recipient to one address instead (REDIRECT). */
  redirect(to: string): void {
    const old = this.#rcpts;
    this.#rcpts = [];
    this.#dups = new Set();
    for (const r of old) this.#add({ ...r, address: to });
  }
}
