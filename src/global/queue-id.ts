/*
 * queue-id - queue IDs: unique for as long as their file exists
 *
 * SYNOPSIS
 *   const id = makeQueueId({ sec, usec }, inode, long);
 *   queueIdOk(id); queueIdHashChars(id, depth)
 *
 * DESCRIPTION
 *   A queue ID names a queue file and appears in every log line about its
 *   message. It is made from the time the file was created and the file's
 *   inode number: no two files on one file system have the same inode at the
 *   same time, so no two queue files have the same ID while both exist.
 *   (cleanup renames a file to its ID only if that name is free, so a reused
 *   inode in the same microsecond cannot collide either.)
 *   Short IDs (the default) are 5 hexadecimal digits of microseconds plus
 *   the inode in hexadecimal: "3F2A1C0B7D". Long IDs (enable_long_queue_ids)
 *   sort by time and are unique for the life of the queue: seconds (6
 *   digits) and microseconds (4 digits) in base 51, the letter "z", then the
 *   inode in base 51: "4ZR8Wv0Lkxz3Mq". Both are safe as file names.
 */

const B51 = "0123456789BCDFGHJKLMNPQRSTVWXYbcdfghjklmnpqrstvwxy";
const ALPHABET = B51 + "Z";

/** Encodes a non-negative integer in base 51, padded to a width. */
function base51(n: number, width: number): string {
  let s = "";
  let v = Math.floor(n);
  do {
    s = (ALPHABET[v % 51] ?? "0") + s;
    v = Math.floor(v / 51);
  } while (v > 0);
  return s.padStart(width, "0");
}

export interface QueueTime {
  sec: number;
  usec: number;
}

/** The current time with microseconds. */
export function queueTimeNow(): QueueTime {
  const ns = process.hrtime.bigint();
  const ms = Date.now();
  return { sec: Math.floor(ms / 1000), usec: (ms % 1000) * 1000 + Number((ns / 1000n) % 1000n) };
}

/** Makes the ID for a file created at a time with an inode number. */
export function makeQueueId(t: QueueTime, inode: number | bigint, long: boolean): string {
  const ino = Number(BigInt(inode) % BigInt(Number.MAX_SAFE_INTEGER));
  if (!long) return t.usec.toString(16).toUpperCase().padStart(5, "0") + ino.toString(16).toUpperCase();
  return base51(t.sec, 6) + base51(t.usec, 4) + "z" + base51(ino, 1);
}

/** True for a well-formed short or long queue ID. */
export function queueIdOk(id: string): boolean {
  return /^[0-9A-F]{6,21}$/.test(id) || /^[0-9A-Za-y]{10}z[0-9A-Za-y]{1,12}$/.test(id);
}

/** True for a long queue ID. */
export function queueIdIsLong(id: string): boolean {
  return id.length > 10 && id[10] === "z";
}

/** The characters a hashed queue directory uses for this ID, one per level. */
export function queueIdHashChars(id: string, depth: number): string[] {
  const src = queueIdIsLong(id) ? id.slice(6, 10) : id.slice(0, 5);
  return [...src.slice(0, depth)];
}
