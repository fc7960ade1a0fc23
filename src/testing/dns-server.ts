/*
 * dns-server - a real authoritative DNS server (NSD) on loopback for tests
 *
 * SYNOPSIS
 *   const dns = await startNsd({ "example.test": zoneText, ... });
 *   main.cf: postern_dns_servers = 127.0.0.1:${dns.port}
 *   await dns.stop();
 *
 * DESCRIPTION
 *   Writes the zones and an nsd.conf into a temporary directory, starts
 *   nsd in the foreground on 127.0.0.1 and a free port (UDP and TCP), and
 *   waits until it answers for the first zone. NSD never recurses: names
 *   outside the zones get REFUSED, so tests can never reach the internet.
 *   available() tells whether nsd is installed (tests skip otherwise).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DnsLookup } from "../global/dns-lookup.js";
import { freePort, sleep } from "./instance.js";

export interface NsdServer {
  port: number;
  server: string;
  stop(): Promise<void>;
}

const NSD = "/usr/sbin/nsd";

/** Whether the nsd binary is installed. */
export function nsdAvailable(): boolean {
  return spawnSync(NSD, ["-v"]).status === 0;
}

/** A zone's text with an SOA and NS record in front of the given records. */
export function zone(origin: string, records: string): string {
  return [
    `$ORIGIN ${origin}.`,
    "$TTL 60",
    `@ IN SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 60`,
    `  IN NS ns1.example.test.`,
    records,
    "",
  ].join("\n");
}

/** Starts nsd with the given zones (origin -> zone file text). */
export async function startNsd(zones: Record<string, string>): Promise<NsdServer> {
  const dir = mkdtempSync(join(tmpdir(), "postern-nsd-"));
  const port = await freePort();
  const conf = [
    "server:",
    `  ip-address: 127.0.0.1@${port}`,
    `  port: ${port}`,
    '  username: ""',
    '  chroot: ""',
    `  zonesdir: "${dir}"`,
    '  database: ""',
    `  zonelistfile: "${dir}/zone.list"`,
    `  xfrdfile: "${dir}/xfrd.state"`,
    `  xfrdir: "${dir}"`,
    `  pidfile: "${dir}/nsd.pid"`,
    `  logfile: "${dir}/nsd.log"`,
    "  server-count: 1",
    "  do-ip6: no",
    "remote-control:",
    "  control-enable: no",
  ];
  for (const [origin, text] of Object.entries(zones)) {
    writeFileSync(join(dir, `${origin}.zone`), text);
    conf.push("zone:", `  name: ${origin}`, `  zonefile: ${origin}.zone`);
  }
  writeFileSync(join(dir, "nsd.conf"), conf.join("\n") + "\n");
  const child = spawn(NSD, ["-d", "-c", join(dir, "nsd.conf")], { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const server = `127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    child.kill("SIGTERM");
    await Promise.race([exited, sleep(3000)]);
    rmSync(dir, { recursive: true, force: true });
  };
  const probe = new DnsLookup([server], 1000);
  const first = Object.keys(zones)[0] ?? "";
  for (let i = 0; i < 50; i++) {
    if ((await probe.query(first, "NS")).status !== "tempfail") return { port, server, stop };
    await sleep(100);
  }
  await stop();
  throw new Error(`nsd did not start on ${server}`);
}
