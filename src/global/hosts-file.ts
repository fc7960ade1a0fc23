/*
 * hosts-file - name and address lookups in /etc/hosts, as the "files" name service does
 *
 * SYNOPSIS
 *   const hosts = new HostsFile();                  // /etc/hosts
 *   await hosts.nameOf("127.0.0.1")                 // "localhost" (the first name on the first line)
 *   await hosts.addressesOf("localhost")            // ["127.0.0.1", "::1"]
 *
 * DESCRIPTION
 *   getnameinfo() and getaddrinfo() consult /etc/hosts before DNS on a
 *   stock system ("hosts: files dns"), which is how Postfix's smtpd comes
 *   to name 127.0.0.1 "localhost". Postern's DNS lookups go through its
 *   own resolver (global/dns-lookup.ts), so this module supplies the
 *   "files" part: the canonical name of an address is the first name on
 *   the first line that has the address; the addresses of a name are
 *   those of every line that names it (case-insensitive), in file order.
 *   Comments ("#" to the end of the line) and malformed addresses are
 *   skipped. The file is read at most HOSTS_FILE_MAX bytes, and again only
 *   when its size or modification time change; a file that cannot be read
 *   (missing, or outside a jailed daemon's reach) acts as an empty one.
 */
import { readFile, stat } from "node:fs/promises";
import { isIP } from "node:net";

export const HOSTS_FILE_MAX = 1 << 20;

interface HostsTable {
  byAddr: Map<string, string>;
  byName: Map<string, string[]>;
}

/** A textual address in one canonical spelling (IPv6 compressed and lower case, IPv4-mapped unwrapped). */
export function canonicalAddr(addr: string): string | null {
  const plain = addr.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1");
  const kind = isIP(plain.replace(/%.*$/, ""));
  if (kind === 4) return plain;
  if (kind !== 6) return null;
  try {
    return new URL(`http://[${plain.replace(/%.*$/, "")}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
}

/** Parses hosts(5) text. */
export function parseHosts(text: string): HostsTable {
  const byAddr = new Map<string, string>();
  const byName = new Map<string, string[]>();
  for (const raw of text.split("\n")) {
    const [addrText, ...names] = raw.replace(/#.*$/, "").trim().split(/\s+/);
    const addr = canonicalAddr(addrText ?? "");
    if (addr === null || names.length === 0 || names[0] === "") continue;
    if (!byAddr.has(addr)) byAddr.set(addr, names[0] ?? "");
    for (const n of names) {
      const key = n.toLowerCase();
      const list = byName.get(key) ?? [];
      if (!list.includes(addr)) list.push(addr);
      byName.set(key, list);
    }
  }
  return { byAddr, byName };
}

export class HostsFile {
  readonly path: string;
  #table: HostsTable = { byAddr: new Map(), byName: new Map() };
  #stamp = "";

  constructor(path = "/etc/hosts") {
    this.path = path;
  }

  /** The table, read again when the file changed. */
  async #load(): Promise<HostsTable> {
    try {
      const st = await stat(this.path);
      const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (stamp !== this.#stamp) {
        const text = st.size > HOSTS_FILE_MAX ? "" : await readFile(this.path, "utf8");
        this.#table = parseHosts(text);
        this.#stamp = stamp;
      }
    } catch {
      this.#table = { byAddr: new Map(), byName: new Map() };
      this.#stamp = "";
    }
    return this.#table;
  }

  /** The canonical name of an address, or null. */
  async nameOf(addr: string): Promise<string | null> {
    const a = canonicalAddr(addr);
    return a === null ? null : ((await this.#load()).byAddr.get(a) ?? null);
  }

  /** The addresses of a name (empty when the file does not name it). */
  async addressesOf(name: string): Promise<string[]> {
    return [...((await this.#load()).byName.get(name.toLowerCase()) ?? [])];
  }
}
