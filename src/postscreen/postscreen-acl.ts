/*
 * postscreen-acl - postscreen_access_list, the permanent allow and deny list
 *
 * DESCRIPTION
 *   The list is evaluated left to right for the client address:
 *   permit_mynetworks (allow a client in mynetworks), permit, reject, dunno,
 *   and type:table, whose lookup result (for the address, as a cidr table
 *   gives it) is itself such a list of permit, reject or dunno; tables
 *   inside a table's result are not allowed. The first permit or reject
 *   decides; "dunno" or the end of the list means no decision. A table
 *   that cannot be read, or an unknown word, stops the evaluation with
 *   "error" and a warning, which postscreen treats as no decision.
 */
import { msg } from "../util/msg.js";
import { dictOpen, DictFlag, type Dict } from "../global/dict.js";
import type { NamadrList } from "../global/namadr-list.js";

export type AclVerdict = "permit" | "reject" | "dunno" | "error";

type Element = { kind: "word"; word: string } | { kind: "table"; table: Dict; spec: string };

const RESULT_LIMIT = 1000;

export class PsAccessList {
  #elements: Element[];
  #mynetworks: NamadrList;
  #origin: string;

  constructor(origin: string, items: readonly string[], mynetworks: NamadrList) {
    this.#origin = origin;
    this.#mynetworks = mynetworks;
    this.#elements = items.map((it) =>
      it.includes(":")
        ? { kind: "table", spec: it, table: dictOpen(it, { flags: DictFlag.FOLD_FIX }) }
        : { kind: "word", word: it.toLowerCase() },
    );
  }

  /** Evaluates the list for a client address. */
  async eval(addr: string): Promise<AclVerdict> {
    for (const e of this.#elements) {
      const v = e.kind === "word" ? await this.#word(e.word, addr, this.#origin) : await this.#table(e, addr);
      if (v !== "dunno") return v;
      if (e.kind === "word" && e.word === "dunno") return "dunno";
    }
    return "dunno";
  }

  /** One word of the list; "dunno" also means "no match, go on" for permit_mynetworks. */
  async #word(word: string, addr: string, origin: string): Promise<AclVerdict> {
    switch (word) {
      case "permit":
        return "permit";
      case "reject":
        return "reject";
      case "dunno":
        return "dunno";
      case "permit_mynetworks": {
        const r = await this.#mynetworks.match("", addr);
        if (r.status === "tempfail") {
          msg.warn(
            `${origin}: ${word}: mynetworks lookup error -- ignoring the remainder of this access list`,
          );
          return "error";
        }
        return r.status === "match" ? "permit" : "dunno";
      }
      default:
        msg.warn(`${origin}: unknown command: ${word} -- ignoring the remainder of this access list`);
        return "error";
    }
  }

  /** A table element: its result is a list of words. */
  async #table(e: { table: Dict; spec: string }, addr: string): Promise<AclVerdict> {
    const r = await e.table.lookup(addr);
    if (r.status === "tempfail") {
      msg.warn(
        `${this.#origin}: ${e.spec}: table lookup error -- ignoring the remainder of this access list`,
      );
      return "error";
    }
    if (r.status === "notfound") return "dunno";
    for (const w of r.value
      .slice(0, RESULT_LIMIT)
      .split(/[\s,]+/)
      .filter((x) => x !== "")) {
      if (w.includes(":")) {
        msg.warn(`table ${e.spec}: lookup result "${w}" is not allowed -- ignoring remainder of access list`);
        return "dunno";
      }
      const v = await this.#word(w.toLowerCase(), addr, e.spec);
      if (v !== "dunno" || w.toLowerCase() === "dunno") return v;
    }
    return "dunno";
  }
}
