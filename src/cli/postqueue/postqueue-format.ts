/*
 * postqueue-format - the mailq listing and the JSON lines listing
 *
 * SYNOPSIS
 *   const f = new CompatFormat(longIds, write);   // or new JsonFormat(write)
 *   for await (const item of items) f.item(item);
 *   f.end();
 *
 * DESCRIPTION
 *   CompatFormat writes the classic sendmail-style listing exactly as
 *   Postfix's postqueue -p does:
 *
 *   -Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
 *   3F2A1C0B7D*     421 Thu Nov 20 21:38:00  alice@example.com
 *                                                       (connect to ...: Connection refused)
 *                                            bob@example.net
 *
 *   -- 1 Kbytes in 2 Requests.
 *
 *   The ID is followed by "*" for the active queue and "!" for hold (and
 *   "#" for forced expiry); the time is the arrival time as asctime()
 *   prints it, cut to 20 characters; the size is the message size. A
 *   "(reason)" line, right-aligned to column 78, precedes a recipient
 *   whose reason differs from the previous recipient's ("reason
 *   unavailable" when the previous one had a reason and this one has
 *   none). Messages are separated by an empty line; the footer counts
 *   the sizes (in whole Kbytes) and the messages, or says "Mail queue is
 *   empty". With enable_long_queue_ids the columns are 17, 8 and 19 wide.
 *
 *   JsonFormat writes one JSON object per message and line, with
 *   Postfix's member names and order: queue_name, queue_id, arrival_time,
 *   message_size, forced_expire, sender, recipients (address,
 *   orig_address, and delay_reason or bounce_reason when known).
 */
import type { ShowqItemValue } from "../../global/showq-client.js";

type Item = Exclude<ShowqItemValue, { kind: "error" }>;
type Write = (text: string) => void;

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** asctime(localtime(t)) without its newline: "Thu Nov 20 21:38:00 2026". */
export function asctime(secs: number): string {
  const d = new Date(secs * 1000);
  const pad = (n: number): string => String(n).padStart(2, "0");
  return `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, " ")} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${d.getFullYear()}`;
}

/** printf's %-Ns. */
function left(s: string, n: number): string {
  return s.padEnd(n);
}

/** printf's %Ns. */
function right(s: string, n: number): string {
  return s.padStart(n);
}

export class CompatFormat {
  #long: boolean;
  #write: Write;
  #count = 0;
  #total = 0;
  #reason = "";

  constructor(longIds: boolean, write: Write) {
    this.#long = longIds;
    this.#write = write;
  }

  /** One line in the four-column layout. */
  #row(id: string, size: string, time: string, addr: string): string {
    return this.#long
      ? `${left(id, 17)} ${right(size, 8)} ${left(time, 19)} ${addr}\n`
      : `${left(id, 11)} ${right(size, 7)} ${left(time, 20)} ${addr}\n`;
  }

  /** Takes one item of the listing. */
  item(it: Item): void {
    if (it.kind === "msg") return this.#message(it);
    if (it.why !== this.#reason) {
      this.#reason = it.why;
      const show = it.why !== "" ? it.why : "reason unavailable";
      this.#write(`${" ".repeat(Math.max(0, 76 - show.length))}(${show})\n`);
    }
    this.#write(this.#row("", "", "", it.address));
  }

  /** The first line of a message. */
  #message(m: Extract<Item, { kind: "msg" }>): void {
    if (this.#count > 0) this.#write("\n");
    else
      this.#write(
        this.#long
          ? this.#row("----Queue ID-----", "--Size--", "---Arrival Time----", "--Sender/Recipient------")
          : this.#row("-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------"),
      );
    const status = m.queue_name === "active" ? "*" : m.queue_name === "hold" ? "!" : "";
    const id = `${m.queue_id}${status}${m.forced_expire === 1 ? "#" : ""}`;
    const time = asctime(m.arrival_time).slice(0, this.#long ? 19 : 20);
    this.#write(this.#row(id, String(m.message_size), right(time, this.#long ? 19 : 20), m.sender));
    this.#count++;
    this.#total += m.message_size;
    this.#reason = "";
  }

  /** The footer. */
  end(): void {
    if (this.#count === 0) this.#write("Mail queue is empty\n");
    else
      this.#write(
        `\n-- ${Math.floor(this.#total / 1024)} Kbytes in ${this.#count} Request${this.#count === 1 ? "" : "s"}.\n`,
      );
  }
}

export class JsonFormat {
  #write: Write;
  #open = false;
  #rcpts = 0;

  constructor(write: Write) {
    this.#write = write;
  }

  /** Takes one item of the listing. */
  item(it: Item): void {
    if (it.kind === "msg") {
      this.#close();
      const j = JSON.stringify;
      this.#write(
        `{"queue_name": ${j(it.queue_name)}, "queue_id": ${j(it.queue_id)}, "arrival_time": ${it.arrival_time}, ` +
          `"message_size": ${it.message_size}, "forced_expire": ${it.forced_expire === 1}, "sender": ${j(it.sender)}, "recipients": [`,
      );
      this.#open = true;
      this.#rcpts = 0;
      return;
    }
    if (!this.#open) return;
    const reason =
      it.why === ""
        ? ""
        : `, ${JSON.stringify(it.log_class === "defer" ? "delay_reason" : it.log_class === "bounce" ? "bounce_reason" : "other_reason")}: ${JSON.stringify(it.why)}`;
    this.#write(
      `${this.#rcpts++ > 0 ? ", " : ""}{"orig_address": ${JSON.stringify(it.orig_address)}, "address": ${JSON.stringify(it.address)}${reason}}`,
    );
  }

  /** Ends the open message object. */
  #close(): void {
    if (this.#open) this.#write("]}\n");
    this.#open = false;
  }

  /** Ends the listing. */
  end(): void {
    this.#close();
  }
}
