/*
 * embedded - the self-contained instance that "npm start" runs
 *
 * DESCRIPTION
 *   makeEmbeddedInstance(root) creates, on first use, an instance under
 *   root (./var by default) that needs no root privileges and no outside
 *   services: root/etc holds main.cf and master.cf (from conf/, with the
 *   queue in root/spool, master's state in root/lib, log lines on standard
 *   output, and the SMTP service on 127.0.0.1:2525). An instance that
 *   already exists is left as it is, so edits made with postconf stay.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { installRoot } from "./install-paths.js";

export const EMBEDDED_SMTP = "127.0.0.1:2525";

/** Creates the embedded instance if needed; returns its configuration directory. */
export function makeEmbeddedInstance(rootDir: string): string {
  const root = resolve(rootDir);
  const etc = join(root, "etc");
  mkdirSync(etc, { recursive: true });
  const mainPath = join(etc, "main.cf");
  const masterPath = join(etc, "master.cf");
  if (!existsSync(mainPath)) {
    const main = `# Embedded Postern instance, made by "npm start" (see the README).
compatibility_level = 3.6
queue_directory = ${join(root, "spool")}
data_directory = ${join(root, "lib")}
maillog_file = /dev/stdout
myhostname = localhost.localdomain
mydestination = $myhostname, localhost
inet_interfaces = 127.0.0.1
mynetworks = 127.0.0.0/8 [::1]/128
alias_maps =
${process.getuid?.() === 0 ? "# Started as root: the daemons run as this unprivileged account.\nmail_owner = nobody\n" : ""}`;
    writeFileSync(mainPath, main);
  }
  if (!existsSync(masterPath)) {
    const stock = readFileSync(join(installRoot(), "conf", "master.cf"), "utf8");
    writeFileSync(masterPath, stock.replace(/^smtp(\s+)inet /m, `${EMBEDDED_SMTP} inet `));
  }
  return etc;
}
