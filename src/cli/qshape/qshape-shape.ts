/*
 * qshape-shape - the queue shape table: domains by message age
 *
 * SYNOPSIS
 *   const s = new QueueShape({ buckets: 10, tick: 5, linear: false, parents: false, minSubdomains: 5 });
 *   s.add(arrivalSecs, ["a@example.com", "b@example.net"], nowSecs);
 *   process.stdout.write(s.render(80));
 *
 * DESCRIPTION
 *   As Postfix's qshape(1). Each address counts once in the TOTAL row and
 *   once in the row of its domain, in column T (all ages) and in the
 *   column of the message's age. The age columns are "buckets": the
 *   first holds messages younger than tick minutes, each next one twice
 *   as old as the one before (with linear, tick minutes more), and the
 *   last has no upper limit; a column is headed by its upper age limit
 *   in minutes, the last by its lower limit and "+". The domain is the part after
 *   the last "@", in lower case, without a leading or trailing dot, with
 *   ".." made "."; the null address counts as MAILER-DAEMON. With parents
 *   each address also counts for its parent domains (shown with a leading
 *   dot, top-level domains never), and a parent domain is shown only when
 *   it has at least minSubdomains subdomains. Rows are sorted by their
 *   total, then by the length of the name (then by name, so that the
 *   output is the same every time). The table is right-justified to the
 *   width; a name that does not fit keeps its last characters after "+"
 *   (".+" for a parent domain).
 */

export interface ShapeOptions {
  buckets: number;
  /** Minutes of the first bucket. */
  tick: number;
  linear: boolean;
  parents: boolean;
  minSubdomains: number;
}

const MIN_DOMAIN_WIDTH = 18;

export class QueueShape {
  #o: ShapeOptions;
  #rows = new Map<string, number[]>();
  #sub = new Map<string, number>();

  constructor(o: ShapeOptions) {
    this.#o = o;
  }

  /** The bucket (1..buckets) of a message of this age. */
  bucket(ageSecs: number): number {
    const m = ageSecs / (60 * this.#o.tick);
    if (m < 1) return 1;
    const b = this.#o.linear ? Math.floor(m + 1) : 2 + Math.floor(Math.log2(m));
    return Math.min(b, this.#o.buckets);
  }

  /** Counts one address in a row. */
  #count(key: string, b: number): boolean {
    let row = this.#rows.get(key);
    const fresh = row === undefined;
    if (row === undefined) {
      row = new Array<number>(this.#o.buckets + 1).fill(0);
      this.#rows.set(key, row);
    }
    row[0] = (row[0] ?? 0) + 1;
    row[b] = (row[b] ?? 0) + 1;
    return fresh;
  }

  /** The row name of an address. */
  static domainOf(address: string): string {
    const a = address.toLowerCase();
    if (a === "") return "MAILER-DAEMON";
    const d = a.slice(a.lastIndexOf("@") + 1).replace(/\.\./g, ".");
    return d.replace(/^\.?(.+?)\.?$/, "$1");
  }

  /** Counts the addresses (recipients, or the sender with -s) of one message. */
  add(arrivalSecs: number, addresses: readonly string[], nowSecs: number): void {
    const b = this.bucket(nowSecs - arrivalSecs);
    for (const addr of addresses) {
      this.#count("TOTAL", b);
      let d = QueueShape.domainOf(addr);
      let isNew = false;
      for (;;) {
        const seenBefore = !this.#count(d, b);
        if (isNew) this.#sub.set(d, (this.#sub.get(d) ?? 0) + 1);
        isNew = !seenBefore;
        if (!this.#o.parents) break;
        const m = /^(?:\.)?[^.]+\.(.*\.)/.exec(d);
        if (m === null) break;
        d = `.${d.slice(m[0].length - (m[1] ?? "").length)}`;
      }
    }
  }

  /** The column headings: T, then each bucket's upper age limit in minutes, the last "N+". */
  #headings(): string[] {
    const heads = ["T"];
    let t = 0;
    for (let i = 1; i <= this.#o.buckets; i++) {
      if (i === this.#o.buckets) heads.push(`${t}+`);
      else {
        t += t !== 0 && !this.#o.linear ? t : this.#o.tick;
        heads.push(String(t));
      }
    }
    return heads;
  }

  /** The table as text, right-justified to width columns. */
  render(width: number): string {
    const heads = this.#headings();
    const total = this.#rows.get("TOTAL") ?? new Array<number>(this.#o.buckets + 1).fill(0);
    const widths = heads.map((h, i) => {
      const l = Math.max(String(total[i] ?? 0).length, h.length);
      return l > 2 ? l + 1 : 3;
    });
    const dw = Math.max(MIN_DOMAIN_WIDTH, width - widths.reduce((a, b) => a + b, 0));
    const line = (name: string, cells: readonly (string | number)[]): string => {
      let n = name;
      if (n.length > dw)
        n = n.startsWith(".") ? `.+${n.slice(n.length - dw + 2)}` : `+${n.slice(n.length - dw + 1)}`;
      return n.padStart(dw) + cells.map((c, i) => String(c).padStart(widths[i] ?? 3)).join("") + "\n";
    };
    let out = line("", heads);
    const names = [...this.#rows.keys()].sort((a, b) => {
      const d = (this.#rows.get(b)?.[0] ?? 0) - (this.#rows.get(a)?.[0] ?? 0);
      return d !== 0 ? d : a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
    });
    if (!names.includes("TOTAL")) names.unshift("TOTAL");
    for (const name of names) {
      if (name.startsWith(".") && (this.#sub.get(name) ?? 0) < this.#o.minSubdomains) continue;
      out += line(name, this.#rows.get(name) ?? total);
    }
    return out;
  }
}
