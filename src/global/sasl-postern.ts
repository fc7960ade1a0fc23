/*
 * sasl-postern - the built-in SASL type: PLAIN and LOGIN against scrypt hashes
 *
 * SYNOPSIS
 *   smtpd_sasl_type = postern
 *   postern_sasl_password_maps = texthash:/etc/postern/sasl_passwd
 *   (entries "user  $scrypt$ln=15,r=8,p=1$<salt>$<hash>", made by postern sasl-passwd)
 *
 * DESCRIPTION
 *   For the embedded default and for sites without Dovecot. The password
 *   table maps a user name (as the client types it, compared without case)
 *   to a hash in the PHC string style: scrypt from node:crypto with its cost
 *   parameters, a random 16-byte salt and a 32-byte result, all in the
 *   string so that costs can rise later without breaking old entries. A
 *   user who is not in the table costs the same time as a wrong password.
 *   PLAIN (RFC 4616: authzid NUL authcid NUL password; an authzid other
 *   than the authcid is refused) and LOGIN ("Username:", "Password:") are
 *   the mechanisms; both send the password itself, so smtpd offers them
 *   only where smtpd_sasl_security_options allow plaintext (with TLS, by
 *   smtpd_sasl_tls_security_options).
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { dictOpen } from "./dict.js";
import { DictFlag } from "./dict-types.js";
import {
  mechanism,
  type SaslBackend,
  type SaslConversation,
  type SaslMechanism,
  type SaslStep,
} from "./sasl-types.js";

const COST_LOG2 = 15;
const BLOCK = 8;
const PARALLEL = 1;
const KEY_LEN = 32;
const MAX_FIELD = 255;
const FAILURE = "authentication failure";

/** scrypt as a promise (memory allowed for the highest cost accepted). */
function derive(password: Buffer, salt: Buffer, ln: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(
      password,
      salt,
      KEY_LEN,
      { N: 2 ** ln, r, p, maxmem: 256 * 2 ** ln * r + (1 << 20) },
      (err, key) => (err ? reject(err) : resolve(key)),
    ),
  );
}

/** Makes the stored form of a password. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(Buffer.from(password, "utf8"), salt, COST_LOG2, BLOCK, PARALLEL);
  return `$scrypt$ln=${COST_LOG2},r=${BLOCK},p=${PARALLEL}$${salt.toString("base64")}$${key.toString("base64")}`;
}

const DUMMY = "$scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/** Checks a password against a stored hash; false for a malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m =
    /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/=]{1,100})\$([A-Za-z0-9+/=]{1,200})$/.exec(
      stored.trim(),
    );
  if (m === null) return false;
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (ln < 10 || ln > 20 || r < 1 || r > 32 || p < 1 || p > 16) return false;
  const want = Buffer.from(m[5] ?? "", "base64");
  if (want.length !== KEY_LEN) return false;
  const got = await derive(Buffer.from(password, "utf8"), Buffer.from(m[4] ?? "", "base64"), ln, r, p);
  return timingSafeEqual(got, want);
}

/** Decodes a base64 response strictly ("=" is empty); null when it is not base64. */
function decode(b64: string): Buffer | null {
  if (b64 === "=") return Buffer.alloc(0);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) return null;
  return Buffer.from(b64, "base64");
}

/** One PLAIN or LOGIN exchange. */
class PosternConversation implements SaslConversation {
  #maps: readonly string[];
  #mech = "";
  #user: string | null = null;

  constructor(maps: readonly string[]) {
    this.#maps = maps;
  }

  /** Looks the user up and checks the password. */
  async #check(user: string, password: string): Promise<SaslStep> {
    if (user === "" || user.length > MAX_FIELD || password.length > 1024)
      return { kind: "fail", reason: FAILURE, temp: false };
    let stored: string | null = null;
    for (const map of this.#maps) {
      // Opened per lookup and closed again, so that a user added by "postern sasl-passwd" counts at once.
      const d = dictOpen(map, { flags: DictFlag.FOLD_FIX });
      const r = await d.lookup(user).finally(() => d.close());
      if (r.status === "tempfail")
        return { kind: "fail", reason: `${map}: table lookup problem`, temp: true, user };
      if (r.status === "found") {
        stored = r.value;
        break;
      }
    }
    const ok = await verifyPassword(password, stored ?? DUMMY);
    return ok && stored !== null
      ? { kind: "ok", user }
      : { kind: "fail", reason: FAILURE, temp: false, user };
  }

  /** Decodes "authzid NUL authcid NUL password". */
  async #plain(data: Buffer): Promise<SaslStep> {
    const parts = data.toString("utf8").split("\0");
    if (parts.length !== 3) return { kind: "fail", reason: "malformed PLAIN response", temp: false };
    const [authz = "", authc = "", password = ""] = parts;
    if (authz !== "" && authz !== authc) return { kind: "fail", reason: FAILURE, temp: false, user: authc };
    return this.#check(authc, password);
  }

  async first(mech: string, initial: string | null): Promise<SaslStep> {
    this.#mech = mech.toUpperCase();
    if (this.#mech === "PLAIN") {
      if (initial === null) return { kind: "more", challenge: "" };
      return this.next(initial);
    }
    if (this.#mech === "LOGIN") {
      if (initial === null) return { kind: "more", challenge: Buffer.from("Username:").toString("base64") };
      return this.next(initial);
    }
    return { kind: "fail", reason: "Invalid authentication mechanism", temp: false };
  }

  async next(response: string): Promise<SaslStep> {
    const data = decode(response);
    if (data === null)
      return { kind: "fail", reason: "Invalid base64 data in continued response", temp: false };
    if (this.#mech === "PLAIN") return this.#plain(data);
    if (this.#user === null) {
      this.#user = data.toString("utf8");
      return { kind: "more", challenge: Buffer.from("Password:").toString("base64") };
    }
    return this.#check(this.#user, data.toString("utf8"));
  }

  close(): void {
    this.#user = null;
  }
}

/** The built-in back end. */
export class PosternBackend implements SaslBackend {
  #maps: readonly string[];

  constructor(maps: readonly string[]) {
    this.#maps = maps;
  }

  mechanisms(): Promise<SaslMechanism[] | { error: string }> {
    if (this.#maps.length === 0)
      return Promise.resolve({ error: "postern_sasl_password_maps is empty: nobody can authenticate" });
    return Promise.resolve([mechanism("PLAIN", ["plaintext"]), mechanism("LOGIN", ["plaintext"])]);
  }

  conversation(): SaslConversation {
    return new PosternConversation(this.#maps);
  }
}
