/*
 * uid-proof - who is on the other end of a public socket, without SO_PEERCRED
 *
 * SYNOPSIS
 *   server: const nonce = makeNonce(); send it; ...; const who = await checkProof(queueDir, nonce);
 *   client: const err = await createProof(queueDir, nonce); ...; await dropProof(queueDir, nonce);
 *
 * DESCRIPTION
 *   Node cannot ask the kernel for the uid of a Unix-socket peer. The
 *   public services that must know who asks (showq for
 *   authorized_mailq_users, flush for authorized_flush_users) use the
 *   file system instead: the server sends a fresh random nonce; the client
 *   creates the empty file maildrop/cred.<nonce> (O_EXCL, O_NOFOLLOW); the
 *   server looks at that file's owner, which the kernel set to the
 *   client's uid, and removes it.
 *
 *   Why a client cannot claim another uid: it cannot chown a file; a file
 *   it renames or hard-links into maildrop/ keeps the group it was created
 *   with, while every file created in maildrop/ (mode 3733, set-group-ID)
 *   gets the directory's group, and a hard link has a link count above 1;
 *   nobody can list maildrop/ to learn another client's nonce, and the
 *   nonce changes with every connection. checkProof() therefore accepts
 *   only a regular, empty file with one link, the directory's group and a
 *   recent change time.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { lstat, open, unlink } from "node:fs/promises";
import { join } from "node:path";

/** A proof file name in maildrop/. */
export const PROOF_NAME_RE = /^cred\.[0-9a-f]{32}$/;
/** A nonce as servers send it. */
export const NONCE_RE = /^[0-9a-f]{32}$/;
/** How old a proof may be. */
const PROOF_MAX_AGE_MS = 5 * 60_000;

export type ProofResult = { ok: true; uid: number } | { ok: false; reason: string };

/** A fresh nonce. */
export function makeNonce(): string {
  return randomBytes(16).toString("hex");
}

/** The path of the proof file for a nonce. */
function proofPath(queueDir: string, nonce: string): string {
  if (!NONCE_RE.test(nonce)) throw new RangeError("bad nonce");
  return join(queueDir, "maildrop", `cred.${nonce}`);
}

/** Client side: creates the proof file; null on success, else the reason. */
export async function createProof(queueDir: string, nonce: string): Promise<string | null> {
  if (!NONCE_RE.test(nonce)) return "malformed nonce from the server";
  try {
    const fh = await open(
      proofPath(queueDir, nonce),
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    await fh.close();
    return null;
  } catch (err) {
    return `create ${proofPath(queueDir, nonce)}: ${(err as Error).message}`;
  }
}

/** Client side: removes the proof file if the server has not. */
export async function dropProof(queueDir: string, nonce: string): Promise<void> {
  if (NONCE_RE.test(nonce)) await unlink(proofPath(queueDir, nonce)).catch(() => undefined);
}

/** Server side: checks the proof file of a nonce and removes it; the uid of its creator. */
export async function checkProof(queueDir: string, nonce: string, now = Date.now()): Promise<ProofResult> {
  const path = proofPath(queueDir, nonce);
  try {
    const [st, dir] = await Promise.all([lstat(path), lstat(join(queueDir, "maildrop"))]);
    if (!st.isFile()) return { ok: false, reason: "proof is not a regular file" };
    if (st.nlink !== 1) return { ok: false, reason: "proof file has more than one link" };
    if (st.size !== 0) return { ok: false, reason: "proof file is not empty" };
    if (st.gid !== dir.gid)
      return { ok: false, reason: "proof file was not created in the maildrop directory" };
    if (Math.abs(now - st.ctimeMs) > PROOF_MAX_AGE_MS) return { ok: false, reason: "proof file is stale" };
    return { ok: true, uid: st.uid };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { ok: false, reason: e.code === "ENOENT" ? "no proof file" : `proof file: ${e.message}` };
  } finally {
    await unlink(path).catch(() => undefined);
  }
}

/** Whether a proof file is old enough for housekeeping to remove. */
export function proofIsStale(ctimeMs: number, now = Date.now()): boolean {
  return now - ctimeMs > PROOF_MAX_AGE_MS;
}
