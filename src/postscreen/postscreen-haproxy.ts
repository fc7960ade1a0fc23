/*
 * postscreen-haproxy - the PROXY protocol header in front of a connection (postscreen_upstream_proxy_protocol)
 *
 * DESCRIPTION
 *   Behind a load balancer, each connection starts with a PROXY header
 *   (version 1 text or version 2 binary) that names the real client and
 *   server. parseProxy() looks at the bytes received so far and answers
 *   "need" (more bytes, up to a limit), "bad" with a reason, or the
 *   endpoints and how many bytes the header used. "LOCAL" (v2) and
 *   "UNKNOWN" (v1) headers keep the connection's own endpoints (null).
 */
import { isIP } from "node:net";

export interface ProxyEndpoints {
  addr: string;
  port: number;
  serverAddr: string;
  serverPort: number;
}

export type ProxyParse =
  | { status: "need" }
  | { status: "bad"; reason: string }
  | { status: "ok"; used: number; endpoints: ProxyEndpoints | null };

const V2_SIG = Buffer.from("0d0a0d0a000d0a515549540a", "hex");
const V1_MAX = 107;
const V2_MAX = 16 + 216;

/** Whether a text is a port number. */
function portOf(s: string | undefined): number | null {
  return s !== undefined && /^\d{1,5}$/.test(s) && Number(s) <= 65535 ? Number(s) : null;
}

/** Parses a version 1 (text) header. */
function v1(buf: Buffer): ProxyParse {
  const nl = buf.indexOf("\r\n");
  if (nl < 0)
    return buf.length >= V1_MAX ? { status: "bad", reason: "v1 header too long" } : { status: "need" };
  const f = buf.subarray(0, nl).toString("latin1").split(" ");
  if (f[1] === "UNKNOWN") return { status: "ok", used: nl + 2, endpoints: null };
  const fam = f[1] === "TCP4" ? 4 : f[1] === "TCP6" ? 6 : 0;
  const [addr = "", serverAddr = ""] = [f[2], f[3]];
  const port = portOf(f[4]);
  const serverPort = portOf(f[5]);
  if (
    f.length !== 6 ||
    fam === 0 ||
    isIP(addr) !== fam ||
    isIP(serverAddr) !== fam ||
    port === null ||
    serverPort === null
  )
    return {
      status: "bad",
      reason: `bad v1 header: ${buf.subarray(0, Math.min(nl, V1_MAX)).toString("latin1")}`,
    };
  return { status: "ok", used: nl + 2, endpoints: { addr, port, serverAddr, serverPort } };
}

/** An IPv6 address from 16 bytes. */
function v6(b: Buffer): string {
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(b.readUInt16BE(i).toString(16));
  return new URL(`http://[${words.join(":")}]/`).hostname.replace(/^\[|\]$/g, "");
}

/** Parses a version 2 (binary) header. */
function v2(buf: Buffer): ProxyParse {
  if (buf.length < 16) return { status: "need" };
  const verCmd = buf[12] ?? 0;
  const fam = buf[13] ?? 0;
  const len = buf.readUInt16BE(14);
  if (verCmd >> 4 !== 2 || 16 + len > V2_MAX) return { status: "bad", reason: "bad v2 header" };
  if (buf.length < 16 + len) return { status: "need" };
  const body = buf.subarray(16, 16 + len);
  const used = 16 + len;
  if ((verCmd & 0xf) === 0 || fam === 0) return { status: "ok", used, endpoints: null };
  if (fam === 0x11 && len >= 12)
    return {
      status: "ok",
      used,
      endpoints: {
        addr: [...body.subarray(0, 4)].join("."),
        serverAddr: [...body.subarray(4, 8)].join("."),
        port: body.readUInt16BE(8),
        serverPort: body.readUInt16BE(10),
      },
    };
  if (fam === 0x21 && len >= 36)
    return {
      status: "ok",
      used,
      endpoints: {
        addr: v6(body.subarray(0, 16)),
        serverAddr: v6(body.subarray(16, 32)),
        port: body.readUInt16BE(32),
        serverPort: body.readUInt16BE(34),
      },
    };
  return { status: "bad", reason: `unsupported v2 address family ${fam}` };
}

/** Parses the PROXY header at the start of buf. */
export function parseProxy(buf: Buffer): ProxyParse {
  const head = buf.subarray(0, Math.min(buf.length, 6)).toString("latin1");
  if ("PROXY ".startsWith(head) && head.length < 6) return { status: "need" };
  if (head === "PROXY ") return v1(buf);
  const sig = buf.subarray(0, Math.min(buf.length, V2_SIG.length));
  if (!sig.equals(V2_SIG.subarray(0, sig.length)))
    return { status: "bad", reason: "not a proxy protocol header" };
  return v2(buf);
}
