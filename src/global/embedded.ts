/*
 * embedded - the self-contained instance that "npm start" runs
 *
 * DESCRIPTION
 *   makeEmbeddedInstance(root) creates, on first use, an instance under
 *   root (./var by default) that needs no root privileges and no outside
 *   services: root/etc holds main.cf and master.cf (from conf/, with the
 *   queue in root/spool, master's state in root/lib, log lines on standard
 *   output, mailboxes in Maildir form under root/mail, and the SMTP service
 *   on 127.0.0.1:2525). An instance that
 *   already exists is left as it is, so edits made with postconf stay.
 *
 *   On first start (when main.cf names no server certificate and
 *   root/etc/smtpd-chain.pem does not exist) it also makes a self-signed
 *   certificate for localhost with the openssl command, and turns on
 *   STARTTLS (smtpd_tls_security_level = may) and SMTP AUTH with the
 *   built-in SASL type over TLS only (users: postern sasl-passwd add). The
 *   command says so on standard error, and smtpd logs that the certificate
 *   is self-signed. Without openssl the instance runs without TLS, and the
 *   message says why.
 */
import { execFileSync } from "node:child_process";
import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { getUser } from "../util/unix-users.js";
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
syslog_name = postern
myhostname = localhost.localdomain
mydestination = $myhostname, localhost
inet_interfaces = 127.0.0.1
mynetworks = 127.0.0.0/8 [::1]/128
alias_maps =
# Mailboxes (Maildir) inside the instance: a normal user cannot write /var/mail.
mail_spool_directory = ${join(root, "mail")}/
${process.getuid?.() === 0 ? "# Started as root: the daemons run as this unprivileged account.\nmail_owner = nobody\n" : ""}`;
    writeFileSync(mainPath, main);
    mkdirSync(join(root, "mail"), { recursive: true });
    chmodSync(join(root, "mail"), 0o1777);
  }
  addSelfSignedTls(etc, mainPath);
  if (!existsSync(masterPath)) {
    const stock = readFileSync(join(installRoot(), "conf", "master.cf"), "utf8");
    writeFileSync(masterPath, stock.replace(/^smtp(\s+)inet /m, `${EMBEDDED_SMTP} inet `));
  }
  return etc;
}

/** Makes a self-signed certificate and key (one PEM file, key first); an error text when openssl fails. */
function makeSelfSigned(chain: string, host: string): string | null {
  const key = `${chain}.key.tmp`;
  const cert = `${chain}.crt.tmp`;
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        `/CN=${host}`,
        "-addext",
        `subjectAltName=DNS:${host},DNS:localhost,IP:127.0.0.1`,
        "-keyout",
        key,
        "-out",
        cert,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    writeFileSync(chain, readFileSync(key, "utf8") + readFileSync(cert, "utf8"), { mode: 0o600 });
    return null;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    return e.code === "ENOENT"
      ? "the openssl command is missing (Debian package openssl)"
      : (e.stderr?.toString() ?? e.message);
  } finally {
    rmSync(key, { force: true });
    rmSync(cert, { force: true });
  }
}

/** Turns on STARTTLS with a self-signed certificate (and AUTH over TLS) when main.cf has no certificate yet. */
function addSelfSignedTls(etc: string, mainPath: string): void {
  const chain = join(etc, "smtpd-chain.pem");
  const main = readFileSync(mainPath, "utf8");
  if (existsSync(chain) || /^\s*smtpd_tls_(cert_file|chain_files|eccert_file)\s*=/m.test(main)) return;
  const host = /^\s*myhostname\s*=\s*(\S+)/m.exec(main)?.[1] ?? "localhost.localdomain";
  const err = makeSelfSigned(chain, host);
  if (err !== null) {
    process.stderr.write(
      `postern: no STARTTLS in the embedded instance: cannot make a certificate: ${err}\n`,
    );
    return;
  }
  // The key stays root's (mode 600): smtpd reads it before it drops its privileges.
  chmodSync(chain, 0o600);
  const owner =
    process.getuid?.() === 0 ? getUser(/^\s*mail_owner\s*=\s*(\S+)/m.exec(main)?.[1] ?? "nobody") : null;
  const passwd = join(etc, "sasl_passwd");
  if (!existsSync(passwd))
    writeFileSync(passwd, "# user  scrypt hash (postern -c DIR sasl-passwd add USER)\n");
  if (owner !== null) chownSync(passwd, owner.uid, owner.gid);
  chmodSync(passwd, 0o600);
  appendFileSync(
    mainPath,
    `
# STARTTLS with a SELF-SIGNED certificate made at first start: clients that
# verify certificates will not trust it; replace ${chain} for real use.
smtpd_tls_security_level = may
smtpd_tls_chain_files = ${chain}
smtpd_tls_loglevel = 1
# SMTP AUTH (over TLS only) with the built-in SASL type; add users with
# postern -c ${etc} sasl-passwd add USER
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = postern
postern_sasl_password_maps = texthash:${passwd}
smtpd_tls_auth_only = yes
`,
  );
  process.stderr.write(
    `postern: made a self-signed certificate for STARTTLS: ${chain} (clients that verify certificates will not trust it)\n`,
  );
}
