/*
 * fake-milter - a scripted milter on loopback for protocol tests
 *
 * SYNOPSIS
 *   const f = await new FakeMilter(script(optneg(6, 0x1ff, 0), { E: [reply(SMFIR.ADDHEADER, ...), C] })).start();
 *   ... f.port ... f.seen (packets received) ... f.cmds ("OCHM...") ... await f.stop();
 *
 * DESCRIPTION
 *   Answers each packet as its script says (null: no answer). script()
 *   negotiates as given, answers "continue" to every event that expects a
 *   reply, and takes overrides per command letter.
 */
import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { PacketDecoder, SMFIC, SMFIR, encodePacket, u32, type Packet } from "../global/milter-proto.js";

export type Script = (p: Packet, sock: Socket) => Buffer[] | null;

/** A milter that answers each packet as its script says (null: no answer). */
export class FakeMilter {
  server: Server;
  seen: Packet[] = [];
  port = 0;
  socks = new Set<Socket>();

  constructor(script: Script) {
    this.server = createServer((sock) => {
      this.socks.add(sock);
      sock.on("close", () => this.socks.delete(sock));
      const dec = new PacketDecoder(1 << 24);
      sock.on("error", () => undefined);
      sock.on("data", (b) => {
        const r = dec.push(b);
        if (!r.ok) {
          sock.destroy();
          return;
        }
        for (const p of r.packets) {
          this.seen.push(p);
          for (const out of script(p, sock) ?? []) sock.write(out);
        }
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  stop(): Promise<void> {
    for (const s of this.socks) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }

  /** The commands seen, as letters. */
  get cmds(): string {
    return this.seen.map((p) => String.fromCharCode(p.cmd)).join("");
  }
}

export const optneg = (version: number, actions: number, protocol: number): Buffer =>
  encodePacket(SMFIR.OPTNEG, u32(version), u32(actions), u32(protocol));
export const reply = (cmd: number, ...parts: Buffer[]): Buffer => encodePacket(cmd, ...parts);
export const C = reply(SMFIR.CONTINUE);

/** A script: negotiation as given, "continue" to every event that expects a reply, and overrides. */
export function script(neg: Buffer, over: Partial<Record<string, Buffer[] | null>> = {}): Script {
  return (p) => {
    const k = String.fromCharCode(p.cmd);
    if (k in over) return over[k] ?? null;
    if (p.cmd === SMFIC.OPTNEG) return [neg];
    if (p.cmd === SMFIC.MACRO || p.cmd === SMFIC.ABORT || p.cmd === SMFIC.QUIT) return null;
    return [C];
  };
}
