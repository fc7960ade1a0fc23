import { test } from "node:test";
import assert from "node:assert/strict";
import { constants } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TLSSocket, connect, createSecureContext } from "node:tls";
import { makeTestCerts } from "../testing/tls-certs.js";
import { isTls13Session, ticketCipherAllows } from "./smtpd-tlsmgr.js";

/** The sessions a TLS server saves for a client of each protocol version (Node's newSession event). */
async function serverSessions(version: "TLSv1.2" | "TLSv1.3"): Promise<Buffer[]> {
  const dir = mkdtempSync(join(tmpdir(), "postern-tls13-"));
  try {
    const certs = makeTestCerts(dir);
    const context = createSecureContext({
      sessionIdContext: "test",
      // Stateful sessions: the server saves them (with tickets, TLS 1.2 sessions are not saved).
      secureOptions: constants.SSL_OP_NO_TICKET,
      key: readFileSync(certs.ecKey),
      cert: readFileSync(certs.ecCert),
    });
    const events = createServer();
    const saved: Buffer[] = [];
    events.on("newSession", (_id: Buffer, s: Buffer, done: () => void) => {
      saved.push(s);
      done();
    });
    const srv = createServer((raw) => {
      const s = new TLSSocket(raw, { isServer: true, secureContext: context, server: events });
      s.on("secure", () => s.end("x"));
      s.on("error", () => s.destroy());
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const addr = srv.address();
    const port = typeof addr === "object" && addr !== null ? addr.port : 0;
    await new Promise<void>((resolve, reject) => {
      const c = connect({
        port,
        host: "127.0.0.1",
        rejectUnauthorized: false,
        maxVersion: version,
        minVersion: version,
      });
      c.on("data", () => undefined);
      c.on("end", () => resolve());
      c.on("error", reject);
    });
    for (let i = 0; i < 40 && saved.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    srv.close();
    return saved;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("isTls13Session tells TLS 1.3 sessions from TLS 1.2 ones", async () => {
  const v13 = await serverSessions("TLSv1.3");
  const v12 = await serverSessions("TLSv1.2");
  assert.ok(v13.length > 0 && v12.length > 0);
  for (const s of v13) assert.equal(isTls13Session(s), true);
  for (const s of v12) assert.equal(isTls13Session(s), false);
  assert.equal(isTls13Session(Buffer.alloc(0)), false);
  assert.equal(isTls13Session(Buffer.from("30820000", "hex")), false);
});

test("tls_session_ticket_cipher: empty or not a usable CBC cipher turns tickets off", () => {
  assert.equal(ticketCipherAllows("aes-256-cbc"), true);
  assert.equal(ticketCipherAllows(" AES-128-CBC "), true);
  assert.equal(ticketCipherAllows(""), false);
  assert.equal(ticketCipherAllows("aes-256-gcm"), false);
  assert.equal(ticketCipherAllows("no-such-cipher"), false);
});
