/*
 * milter-conn - the milter connection: dialling, reading packets, the events' protocol bits
 *
 * SYNOPSIS
 *   const sock = await dialMilter({ host, port } | { path }, connectTimeoutMs);  // a Socket or a failure text
 *   const reader = new PacketReader(sock);
 *   const p = await reader.next(timeoutMs);                  // a Packet or a failure text ("timeout", ...)
 *   const spec = EV["rcpt"];                                 // command, no-send and no-reply bits, macro stage
 *
 * DESCRIPTION
 *   The transport under milter-client.ts. dialMilter() connects within
 *   milter_connect_timeout. PacketReader decodes the milter's packets
 *   (milter-proto.ts, each at most MILTER_PACKET_MAX bytes) and hands them
 *   out one at a time, each wait bounded; a decoding error, a closed
 *   connection or a socket error is kept and returned from then on.
 *   EV describes each event the MTA sends: its command byte, the protocol
 *   flags by which the milter asks not to get it (SMFIP_NO*) or not to
 *   answer it (SMFIP_NR_*), the macro stage whose list goes before it
 *   (and the SMFIM index of the list the milter may have asked for), and
 *   whether its reply waits milter_content_timeout (content events) or
 *   milter_command_timeout.
 */
import { connect as netConnect, type Socket } from "node:net";
import { Wakeup } from "../util/wakeup.js";
import { MILTER_PACKET_MAX, PacketDecoder, SMFIC, SMFIM, SMFIP, type Packet } from "./milter-proto.js";
import type { MacroLists } from "./milter-conf.js";

/** Opens the socket within the connect timeout; a failure is its text. */
export function dialMilter(
  opts: { host: string; port: number } | { path: string },
  timeoutMs: number,
): Promise<Socket | string> {
  return new Promise((resolve) => {
    const sock = netConnect(opts);
    const t = setTimeout(() => {
      sock.destroy();
      resolve("Connection timed out");
    }, timeoutMs);
    sock.once("connect", () => {
      clearTimeout(t);
      sock.removeAllListeners("error");
      sock.on("error", () => undefined);
      sock.setNoDelay(true);
      resolve(sock);
    });
    sock.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(err.code === "ECONNREFUSED" ? "Connection refused" : err.message);
    });
  });
}

/** Reads packets from the milter socket with a deadline per wait. */
export class PacketReader {
  #dec = new PacketDecoder(MILTER_PACKET_MAX);
  #packets: Packet[] = [];
  #failure: string | null = null;
  readonly #wakeup = new Wakeup();

  constructor(sock: Socket) {
    sock.on("data", (chunk: Buffer) => {
      const r = this.#dec.push(chunk);
      if (r.ok) this.#packets.push(...r.packets);
      else this.#failure ??= r.why;
      this.#wakeup.notify();
    });
    sock.on("close", () => {
      this.#failure ??= "connection closed by milter";
      this.#wakeup.notify();
    });
    sock.on("error", (err) => {
      this.#failure ??= err.message;
      this.#wakeup.notify();
    });
  }

  /** The next packet, or a failure text. */
  async next(timeoutMs: number): Promise<Packet | string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = this.#packets.shift();
      if (p !== undefined) return p;
      if (this.#failure !== null) return this.#failure;
      const left = deadline - Date.now();
      if (left <= 0) return "timeout";
      await this.#wakeup.wait(left);
    }
  }
}

/** The event a command is, for the protocol flags. */
export interface EventSpec {
  cmd: number;
  noSend: number;
  noReply: number;
  stage: keyof MacroLists | null;
  smfim: number | null;
  content: boolean;
}

export const EV: Record<string, EventSpec> = {
  connect: {
    cmd: SMFIC.CONNECT,
    noSend: SMFIP.NOCONNECT,
    noReply: SMFIP.NR_CONN,
    stage: "connect",
    smfim: SMFIM.CONNECT,
    content: false,
  },
  helo: {
    cmd: SMFIC.HELO,
    noSend: SMFIP.NOHELO,
    noReply: SMFIP.NR_HELO,
    stage: "helo",
    smfim: SMFIM.HELO,
    content: false,
  },
  mail: {
    cmd: SMFIC.MAIL,
    noSend: SMFIP.NOMAIL,
    noReply: SMFIP.NR_MAIL,
    stage: "mail",
    smfim: SMFIM.ENVFROM,
    content: false,
  },
  rcpt: {
    cmd: SMFIC.RCPT,
    noSend: SMFIP.NORCPT,
    noReply: SMFIP.NR_RCPT,
    stage: "rcpt",
    smfim: SMFIM.ENVRCPT,
    content: false,
  },
  data: {
    cmd: SMFIC.DATA,
    noSend: SMFIP.NODATA,
    noReply: SMFIP.NR_DATA,
    stage: "data",
    smfim: SMFIM.DATA,
    content: false,
  },
  unknown: {
    cmd: SMFIC.UNKNOWN,
    noSend: SMFIP.NOUNKNOWN,
    noReply: SMFIP.NR_UNKN,
    stage: "unknown",
    smfim: null,
    content: false,
  },
  header: {
    cmd: SMFIC.HEADER,
    noSend: SMFIP.NOHDRS,
    noReply: SMFIP.NR_HDR,
    stage: null,
    smfim: null,
    content: true,
  },
  eoh: {
    cmd: SMFIC.EOH,
    noSend: SMFIP.NOEOH,
    noReply: SMFIP.NR_EOH,
    stage: "eoh",
    smfim: SMFIM.EOH,
    content: true,
  },
  body: {
    cmd: SMFIC.BODY,
    noSend: SMFIP.NOBODY,
    noReply: SMFIP.NR_BODY,
    stage: null,
    smfim: null,
    content: true,
  },
  eom: { cmd: SMFIC.BODYEOB, noSend: 0, noReply: 0, stage: "eom", smfim: SMFIM.EOM, content: true },
};
