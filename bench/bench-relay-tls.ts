/*
 * bench-relay-tls - the "relay-tls" workload: the smtp client delivering over STARTTLS
 *
 * SYNOPSIS
 *   npm run bench -- relay-tls [--messages N] [--repeat N]
 *
 * DESCRIPTION
 *   As "relay" (smtp-source sends 2 KB messages over 20 sessions into
 *   smtpd; the smtp transport relays them to relayhost), but the relay
 *   host is a STARTTLS sink that runs in the benchmark process (the same
 *   one for both systems): it offers PIPELINING and STARTTLS, answers
 *   every command at once, and after STARTTLS speaks TLS with an RSA 2048
 *   certificate from the test PKI (src/testing/tls-certs.ts). Both systems
 *   run with "smtp_tls_security_level = encrypt" and otherwise their
 *   default TLS settings (Postfix: no session cache database, so every
 *   delivery is a full handshake; Postern: sessions resumed from the agent
 *   process's memory). The clock runs until the last "status=sent"; the
 *   sink must have seen every message under TLS, or the run fails.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TLSSocket, createSecureContext, type SecureContext } from "node:tls";
import { freePort } from "../src/testing/instance.js";
import { makeTestCerts } from "../src/testing/tls-certs.js";
import type { Service, Sut, SutSpec, SystemName } from "./bench-sut.js";
import type { Options, RunResult, Workload } from "./bench-workloads.js";

/** The longest line the sink takes before dropping the session. */
const LINE_MAX = 8192;

export interface TlsSink {
  port: number;
  /** Messages accepted over TLS, and in plaintext. */
  counts(): { tls: number; plain: number; handshakes: number; resumed: number };
  close(): void;
}

/** One SMTP conversation of the sink (plaintext, then maybe TLS). */
function converse(sock: Socket | TLSSocket, ctx: SecureContext, sink: Counts, tls: boolean): void {
  let buf = "";
  let inData = false;
  sock.setEncoding("latin1");
  sock.on("error", () => undefined);
  const onData = (d: string): void => {
    buf += d;
    const out: string[] = [];
    for (;;) {
      if (inData) {
        const end = buf.indexOf("\r\n.\r\n");
        if (end < 0) {
          // Keep the tail that may hold the start of the terminator.
          if (buf.length > 4) buf = buf.slice(-4);
          break;
        }
        buf = buf.slice(end + 5);
        inData = false;
        if (tls) sink.tls++;
        else sink.plain++;
        out.push("250 2.0.0 Ok: queued");
        continue;
      }
      const nl = buf.indexOf("\r\n");
      if (nl < 0) {
        if (buf.length > LINE_MAX) sock.destroy();
        break;
      }
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 2);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === "EHLO")
        out.push(
          `250-sink.bench.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n${tls ? "" : "250-STARTTLS\r\n"}250 SIZE 0`,
        );
      else if (verb === "HELO") out.push("250 sink.bench.example");
      else if (verb === "DATA") {
        out.push("354 End data with <CR><LF>.<CR><LF>");
        inData = true;
      } else if (verb === "QUIT") {
        sock.end([...out, "221 2.0.0 Bye", ""].join("\r\n"));
        return;
      } else if (line.toUpperCase() === "STARTTLS" && !tls) {
        sock.off("data", onData);
        sock.write("220 2.0.0 Ready to start TLS\r\n");
        const t = new TLSSocket(sock, { isServer: true, secureContext: ctx });
        t.once("secure", () => {
          sink.handshakes++;
          if (t.isSessionReused()) sink.resumed++;
        });
        converse(t, ctx, sink, true);
        return;
      } else out.push("250 2.0.0 Ok");
    }
    if (out.length > 0) sock.write(out.join("\r\n") + "\r\n");
  };
  sock.on("data", onData);
}

interface Counts {
  tls: number;
  plain: number;
  handshakes: number;
  resumed: number;
}

/** Starts the STARTTLS sink on 127.0.0.1. */
export async function startTlsSink(): Promise<TlsSink> {
  const dir = mkdtempSync(join(tmpdir(), "postern-bench-tls-sink-"));
  const certs = makeTestCerts(dir);
  const ctx = createSecureContext({
    key: readFileSync(certs.rsaKey),
    cert: readFileSync(certs.rsaCert),
    minVersion: "TLSv1.2",
  });
  rmSync(dir, { recursive: true, force: true });
  const counts: Counts = { tls: 0, plain: 0, handshakes: 0, resumed: 0 };
  const port = await freePort();
  const server: Server = createServer((sock) => {
    sock.setNoDelay(true);
    sock.write("220 sink.bench.example ESMTP\r\n");
    converse(sock, ctx, counts, false);
  });
  server.maxConnections = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return { port, counts: () => ({ ...counts }), close: () => server.close() };
}

/** What bench-workloads.ts lends the workload (its shared run harness). */
/** What a workload does with a running system: measure() times its work (CPU and peak RSS included). */
export type SutBody = (
  sut: Sut,
  measure: <T>(timed: () => Promise<T>) => Promise<T>,
) => Promise<Omit<RunResult, "cpuPer1000" | "peakRssKiB"> & { count: number }>;

export interface Harness {
  common: readonly string[];
  withSut(system: SystemName, o: Options, spec: SutSpec, fn: SutBody): Promise<RunResult>;
  /** Sends n messages through the system under test to the relay; the milliseconds until all are sent. */
  relaySend(sut: Sut, n: number, budgetMs: number): Promise<number>;
}

/** SMTP in, smtp transport out over STARTTLS (level encrypt) to the TLS sink. */
export function relayTlsWorkload(h: Harness): Workload {
  return {
    name: "relay-tls",
    title: "relay, SMTP in, STARTTLS out",
    unit: "msg/s",
    better: "higher",
    fsyncBound: true,
    run: async (system, o) => {
      const sink = await startTlsSink();
      try {
        const main = [
          ...h.common,
          `relayhost = [127.0.0.1]:${sink.port}`,
          "smtp_tls_security_level = encrypt",
          "smtp_tls_loglevel = 1",
        ];
        const services: Service[] = ["smtpd", "cleanup", "rewrite", "qmgr", "smtp", "bounce"];
        return await h.withSut(system, o, { main, services }, async (sut, measure) => {
          const n = o.messages;
          const ms = await measure(() => h.relaySend(sut, n, o.budgetMs));
          const c = sink.counts();
          if (c.tls < n || c.plain > 0)
            throw new Error(`the sink got ${c.tls} messages over TLS, ${c.plain} in plaintext`);
          return {
            value: (n * 1000) / ms,
            latency: null,
            note: `${c.handshakes} handshakes, ${c.resumed} resumed`,
            count: n,
          };
        });
      } finally {
        sink.close();
      }
    },
  };
}
