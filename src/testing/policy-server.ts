/*
 * policy-server - a recording policy server for smtpd tests (Postfix's policy delegation protocol)
 *
 * SYNOPSIS
 *   const p = await policyServer(t, (attrs) => "DUNNO");
 *   ... check_policy_service inet:127.0.0.1:${p.port} ... p.requests, p.connections()
 *
 * DESCRIPTION
 *   Listens on a free loopback port; reads requests (name=value lines
 *   ended by an empty line), records each as a Map, and answers
 *   "action=<answer(request)>" or, when answer returns null, nothing at
 *   all. Closed, with every connection, when the test ends.
 */
import { createServer, type Socket } from "node:net";

export interface PolicyServer {
  port: number;
  requests: Map<string, string>[];
  connections: () => number;
}

/** Starts a policy server that answers each request with answer(request) (null: no answer). */
export async function policyServer(
  t: { after: (fn: () => Promise<void>) => void },
  answer: (request: Map<string, string>) => string | null,
): Promise<PolicyServer> {
  const requests: Map<string, string>[] = [];
  const socks: Socket[] = [];
  const server = createServer((s) => {
    socks.push(s);
    let buf = "";
    s.setEncoding("latin1");
    s.on("data", (d: string) => {
      buf += d;
      for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
        const attrs = new Map(
          buf
            .slice(0, end)
            .split("\n")
            .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as [string, string]),
        );
        buf = buf.slice(end + 2);
        requests.push(attrs);
        const action = answer(attrs);
        if (action !== null) s.write(`action=${action}\n\n`);
      }
    });
    s.on("error", () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  t.after(async () => {
    for (const s of socks) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const addr = server.address();
  return {
    port: typeof addr === "object" && addr !== null ? addr.port : 0,
    requests,
    connections: () => socks.length,
  };
}
