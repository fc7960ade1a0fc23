/*
 * errno-text - system error texts as strerror() writes them
 *
 * SYNOPSIS
 *   import { errnoText, errnoCode } from "../util/errno-text.js";
 *   errnoText(err)   // "No space left on device"
 *   errnoCode(err)   // "ENOSPC"
 *
 * DESCRIPTION
 *   Node's error messages carry the system call and path ("ENOSPC: no
 *   space left on device, write"); delivery reports want the classic
 *   strerror() text. Codes not in the table come back as the code itself.
 */

const TEXT: Readonly<Record<string, string>> = {
  EACCES: "Permission denied",
  EAGAIN: "Resource temporarily unavailable",
  EBADF: "Bad file descriptor",
  EBUSY: "Device or resource busy",
  EDQUOT: "Disk quota exceeded",
  EEXIST: "File exists",
  EFBIG: "File too large",
  EINTR: "Interrupted system call",
  EINVAL: "Invalid argument",
  EIO: "Input/output error",
  EISDIR: "Is a directory",
  ELOOP: "Too many levels of symbolic links",
  EMLINK: "Too many links",
  ENAMETOOLONG: "File name too long",
  ENOENT: "No such file or directory",
  ENOEXEC: "Exec format error",
  ENOMEM: "Cannot allocate memory",
  ENOSPC: "No space left on device",
  ENOTDIR: "Not a directory",
  ENXIO: "No such device or address",
  EPERM: "Operation not permitted",
  EPIPE: "Broken pipe",
  EROFS: "Read-only file system",
  ESTALE: "Stale file handle",
  ETIMEDOUT: "Connection timed out",
  ETXTBSY: "Text file busy",
};

/** The errno code of a thrown value ("EIO" when it has none). */
export function errnoCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code) ? code : "EIO";
}

/** The strerror() text of a thrown value, or of an errno code. */
export function errnoText(err: unknown): string {
  if (typeof err === "string") return TEXT[err] ?? err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (typeof code === "string" && TEXT[code] !== undefined) return TEXT[code];
  if (typeof code === "string" && /^E[A-Z0-9]+$/.test(code)) return code;
  return err instanceof Error ? err.message : String(err);
}
