/*
 * queue-fs - the file system calls of the queue file writer
 *
 * DESCRIPTION
 *   Small wrappers: open(2), rename(2) and fsync(2) in libuv's thread pool
 *   (they may block on the disk), whole-buffer positional writes, and the
 *   directory fsync that makes a rename durable.
 */
import { closeSync, constants, fsync, open as openCb, rename as renameCb, writeSync } from "node:fs";

/** Runs synchronous work for a caller that awaits it: a throw becomes a rejection. */
export function asPromise<T>(f: () => T): Promise<T> {
  try {
    return Promise.resolve(f());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

/** Writes a whole buffer at a file position (a short write goes on where it stopped). */
export function writeAll(fd: number, data: Buffer, position: number): void {
  for (let done = 0; done < data.length;) {
    const n = writeSync(fd, data, done, data.length - done, position + done);
    if (n <= 0) throw new Error(`short write (${done} of ${data.length} bytes)`);
    done += n;
  }
}

/** open(2) in libuv's thread pool. */
export function openFd(path: string, flags: number, mode: number): Promise<number> {
  return new Promise((resolve, reject) =>
    openCb(path, flags, mode, (err, fd) => (err === null ? resolve(fd) : reject(err))),
  );
}

/** rename(2) in libuv's thread pool. */
export function renameFile(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) =>
    renameCb(from, to, (err) => (err === null ? resolve() : reject(err))),
  );
}

/** fsync(2) in libuv's thread pool. */
export function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err === null ? resolve() : reject(err))));
}

/** Runs a clean-up call whose failure does not matter. */
export function ignoreErrors(f: () => void): void {
  try {
    f();
  } catch {
    /* already gone */
  }
}

/** Makes a directory's entries durable. */
export async function syncDir(dir: string): Promise<void> {
  const fd = await openFd(dir, constants.O_RDONLY, 0);
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}
