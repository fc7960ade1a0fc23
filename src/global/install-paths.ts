/*
 * install-paths - where this Postern installation lives
 *
 * DESCRIPTION
 *   Postern runs from its package directory (a checkout or a global npm
 *   install). The compiled modules are under <root>/dist/src; the commands
 *   are in <root>/bin; programs named in master.cf that are not Postern
 *   daemons are looked for in <root>/libexec unless daemon_directory says
 *   otherwise. The default configuration directory is /etc/postern, and
 *   MAIL_CONFIG or -c override it.
 */
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));

/** The package root (the directory holding package.json). */
export function installRoot(): string {
  return resolve(HERE, "..", "..", "..");
}

/** The compiled module of a Postern program, e.g. daemonModule("smtpd") or cliModule("postconf"). */
export function daemonModule(name: string): string {
  const dir = DAEMON_FOLDER[name] ?? name;
  return join(installRoot(), "dist", "src", dir, `${name}.js`);
}

/** Programs that live in another program's folder (lmtp is the smtp agent in LMTP mode). */
const DAEMON_FOLDER: Record<string, string> = { lmtp: "smtp" };

/** The compiled module of a command-line tool. */
export function cliModule(name: string): string {
  return join(installRoot(), "dist", "src", "cli", name, `${name}.js`);
}

/** The version from package.json. */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(installRoot(), "package.json"), "utf8")) as {
      version?: unknown;
    };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}

/** The configuration directory: -c, else $MAIL_CONFIG, else /etc/postern. */
export function configDirectory(fromFlag: string | undefined): string {
  return resolve(fromFlag ?? process.env["MAIL_CONFIG"] ?? "/etc/postern");
}
