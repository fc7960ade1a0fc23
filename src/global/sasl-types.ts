/*
 * sasl-types - what SASL server back ends and their users share
 *
 * DESCRIPTION
 *   The mechanism description (with the properties that
 *   smtpd_sasl_security_options filter on), a conversation's steps
 *   (challenge, success, failure), the back-end interface, and the filter
 *   itself. See sasl-server.ts.
 */

/** The SASL server types (smtpd_sasl_type) of this build, as postconf -a lists them. */
export const SASL_SERVER_TYPES: readonly string[] = ["dovecot", "postern"];

/** The SASL client types (smtp_sasl_type) of this build, as postconf -A lists them: the built-in client. */
export const SASL_CLIENT_TYPES: readonly string[] = ["postern"];

export interface SaslMechanism {
  name: string;
  plaintext: boolean;
  anonymous: boolean;
  dictionary: boolean;
  active: boolean;
  forwardSecrecy: boolean;
  mutualAuth: boolean;
}

export type SaslStep =
  | { kind: "more"; challenge: string }
  | { kind: "ok"; user: string }
  | { kind: "fail"; reason: string; temp: boolean; user?: string };

export interface SaslConversation {
  /** Starts a mechanism with the client's initial response (base64; "=" is an empty one), if any. */
  first(mech: string, initial: string | null): Promise<SaslStep>;
  /** The client's answer (base64) to the last challenge. */
  next(response: string): Promise<SaslStep>;
  close(): void;
}

export interface SaslPeer {
  service: string;
  localAddr: string;
  clientAddr: string;
  secured: boolean;
}

export interface SaslBackend {
  /** The mechanisms on offer, or a reason why the back end cannot be used now. */
  mechanisms(): Promise<SaslMechanism[] | { error: string }>;
  conversation(peer: SaslPeer): SaslConversation;
}

/** A mechanism described by name and Dovecot-style flags. */
export function mechanism(name: string, flags: readonly string[] = []): SaslMechanism {
  return {
    name: name.toUpperCase(),
    plaintext: flags.includes("plaintext"),
    anonymous: flags.includes("anonymous"),
    dictionary: flags.includes("dictionary"),
    active: flags.includes("active"),
    forwardSecrecy: flags.includes("forward-secrecy"),
    mutualAuth: flags.includes("mutual-auth"),
  };
}

/** Drops the mechanisms that smtpd_sasl_security_options (or its TLS form) rules out. */
export function filterMechanisms(
  mechs: readonly SaslMechanism[],
  options: readonly string[],
): SaslMechanism[] {
  const o = new Set(options.map((x) => x.toLowerCase()));
  return mechs.filter(
    (m) =>
      !(o.has("noanonymous") && m.anonymous) &&
      !(o.has("noplaintext") && m.plaintext) &&
      !(o.has("nodictionary") && m.dictionary) &&
      !(o.has("noactive") && m.active) &&
      !(o.has("forward_secrecy") && !m.forwardSecrecy) &&
      !(o.has("mutual_auth") && !m.mutualAuth),
  );
}
