/*
 * smtp-tls - STARTTLS and implicit TLS from Node's tls client, for tests
 *
 * SYNOPSIS
 *   const { c, sock } = await starttls(port, { maxVersion: "TLSv1.2" });
 *   assert.match(await smtpCmd(c, "EHLO client.example"), /^250-/);
 *
 * DESCRIPTION
 *   starttls() connects, reads the greeting, says EHLO and STARTTLS over
 *   plain text, then runs the TLS handshake on the same socket and returns
 *   a LineClient that reads and writes through TLS (the server expects a
 *   new EHLO). wrapped() connects with TLS from the first byte (port 465
 *   style) and returns the client before the greeting is read. Server
 *   certificates are not verified unless the options say so.
 */
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from "node:tls";
import { LineClient } from "./instance.js";

/** Reads plain-text reply lines until a final one; returns them joined by "\n". */
function plainReply(sock: Socket, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const done = (err: Error | null, v = ""): void => {
      clearTimeout(t);
      sock.removeListener("data", onData);
      sock.removeListener("close", onClose);
      sock.pause();
      if (err !== null) reject(err);
      else resolve(v);
    };
    const onData = (d: Buffer): void => {
      buf += d.toString("latin1");
      const lines = buf.split("\r\n");
      const last = lines.findIndex((l) => /^\d{3} /.test(l));
      if (last >= 0) done(null, lines.slice(0, last + 1).join("\n"));
    };
    const onClose = (): void => done(new Error(`connection closed; got: ${buf}`));
    const t = setTimeout(() => done(new Error(`timed out; got: ${buf}`)), timeoutMs);
    sock.on("data", onData);
    sock.on("close", onClose);
    sock.resume();
  });
}

/** Connects to 127.0.0.1:port, optionally from another loopback address. */
function plainConnect(port: number, from: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ port, host: "127.0.0.1", localAddress: from });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** Runs the client handshake on an existing socket (or a new connection). */
export function tlsHandshake(opts: ConnectionOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ rejectUnauthorized: false, servername: "mx.example.org", ...opts });
    s.once("secureConnect", () => {
      s.removeListener("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}

/** EHLO and STARTTLS in plain text, then TLS on the same connection. */
export async function starttls(
  port: number,
  opts: ConnectionOptions = {},
  from = "127.0.0.1",
): Promise<{ c: LineClient; sock: TLSSocket; ehlo: string }> {
  const raw = await plainConnect(port, from);
  const greeting = await plainReply(raw);
  if (!greeting.startsWith("220")) throw new Error(`greeting: ${greeting}`);
  raw.write("EHLO client.example\r\n");
  const ehlo = await plainReply(raw);
  raw.write("STARTTLS\r\n");
  const ready = await plainReply(raw);
  if (ready !== "220 2.0.0 Ready to start TLS") throw new Error(`STARTTLS: ${ready}`);
  const sock = await tlsHandshake({ ...opts, socket: raw });
  return { c: new LineClient(sock), sock, ehlo };
}

/** A connection that starts with the TLS handshake (smtpd_tls_wrappermode). */
export async function wrapped(
  port: number,
  opts: ConnectionOptions = {},
): Promise<{ c: LineClient; sock: TLSSocket }> {
  const sock = await tlsHandshake({ host: "127.0.0.1", port, ...opts });
  return { c: new LineClient(sock), sock };
}
