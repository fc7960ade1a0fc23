/*
 * tls-certs - test certificates made with the openssl command
 *
 * SYNOPSIS
 *   const c = makeTestCerts(dir);   // c.rsaCert, c.rsaKey, c.ecChain, c.ca, c.clientCert, ...
 *
 * DESCRIPTION
 *   Makes, in dir, a small PKI with the openssl command line tool (Debian
 *   package openssl): a CA, an RSA server certificate and an ECDSA server
 *   certificate for mx.example.org (also localhost and 127.0.0.1) signed
 *   by it, a key+chain file of each (smtpd_tls_chain_files form), and a
 *   client certificate signed by the CA plus one that is self-signed. A
 *   missing openssl is an error naming the package.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface TestCerts {
  ca: string;
  rsaCert: string;
  rsaKey: string;
  rsaChain: string;
  ecCert: string;
  ecKey: string;
  ecChain: string;
  clientCert: string;
  clientKey: string;
  strayCert: string;
  strayKey: string;
}

/** Runs openssl with arguments (no shell). */
function openssl(args: string[], cwd: string): void {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === "ENOENT")
      throw new Error("the openssl command is missing: install the Debian package openssl", { cause: err });
    throw new Error(`openssl ${args[0] ?? ""} failed: ${e.stderr?.toString() ?? e.message}`, { cause: err });
  }
}

/** Makes a key and a certificate signed by the CA (or self-signed without one). */
function issue(dir: string, name: string, subj: string, keyArgs: string[], ca: boolean, san: string): void {
  openssl(["genpkey", ...keyArgs, "-out", `${name}.key`], dir);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `subjectAltName=${san}\nbasicConstraints=CA:FALSE\n`);
  if (!ca) {
    openssl(
      ["req", "-x509", "-new", "-key", `${name}.key`, "-subj", subj, "-days", "30", "-out", `${name}.crt`],
      dir,
    );
    return;
  }
  openssl(["req", "-new", "-key", `${name}.key`, "-subj", subj, "-out", `${name}.csr`], dir);
  openssl(
    [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "30",
      "-extfile",
      ext,
      "-out",
      `${name}.crt`,
    ],
    dir,
  );
}

/** Makes the test PKI in dir. */
export function makeTestCerts(dir: string): TestCerts {
  const rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
  const ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
  openssl(["genpkey", ...ec, "-out", "ca.key"], dir);
  openssl(
    [
      "req",
      "-x509",
      "-new",
      "-key",
      "ca.key",
      "-subj",
      "/CN=Postern Test CA",
      "-days",
      "30",
      "-out",
      "ca.crt",
    ],
    dir,
  );
  const san = "DNS:mx.example.org,DNS:localhost,IP:127.0.0.1";
  issue(dir, "rsa", "/CN=mx.example.org", rsa, true, san);
  issue(dir, "ec", "/CN=mx.example.org", ec, true, san);
  issue(dir, "client", "/CN=client.example.com", ec, true, "DNS:client.example.com");
  issue(dir, "stray", "/CN=stray.example.com", ec, false, "DNS:stray.example.com");
  const p = (f: string): string => join(dir, f);
  for (const n of ["rsa", "ec"]) {
    const chain = readFileSync(p(`${n}.key`), "utf8") + readFileSync(p(`${n}.crt`), "utf8");
    writeFileSync(p(`${n}-chain.pem`), chain + readFileSync(p("ca.crt"), "utf8"));
  }
  for (const n of ["ca", "rsa", "ec", "client", "stray"]) chmodSync(p(`${n}.key`), 0o644);
  return {
    ca: p("ca.crt"),
    rsaCert: p("rsa.crt"),
    rsaKey: p("rsa.key"),
    rsaChain: p("rsa-chain.pem"),
    ecCert: p("ec.crt"),
    ecKey: p("ec.key"),
    ecChain: p("ec-chain.pem"),
    clientCert: p("client.crt"),
    clientKey: p("client.key"),
    strayCert: p("stray.crt"),
    strayKey: p("stray.key"),
  };
}
