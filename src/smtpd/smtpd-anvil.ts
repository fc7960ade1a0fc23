/*
 * smtpd-anvil - per-client connection, message and recipient limits
 *
 * DESCRIPTION
 *   A session reports its connect, each MAIL FROM and RCPT TO, and its end
 *   to anvil (global/anvil-client.ts), unless the client matches
 *   smtpd_client_event_limit_exceptions, and refuses as Postfix does:
 *     smtpd_client_connection_count_limit, smtpd_client_connection_rate_limit
 *       "421 4.7.0 <myhostname> Error: too many connections from <addr>"
 *       (and the session ends)
 *     smtpd_client_message_rate_limit
 *       "450 4.7.1 Error: too much mail from <addr>"
 *     smtpd_client_recipient_rate_limit
 *       "450 4.7.1 Error: too many recipients from <addr>"
 *     smtpd_client_auth_rate_limit (AUTH commands)
 *     smtpd_client_new_tls_session_rate_limit (new TLS sessions: checked
 *       before STARTTLS or a wrapper-mode handshake, counted after a
 *       handshake that did not resume a session)
 *       "450 4.7.1 Error: too many AUTH commands from <addr>"
 *   with a warning naming the limit, the count and the service. A limit of
 *   0 is no limit. When anvil cannot be reached there are no limits.
 */
import { msg } from "../util/msg.js";
import type { SmtpdEnv } from "./smtpd-env.js";

export class SessionLimits {
  #env: SmtpdEnv;
  #addr: string;
  #client: string;
  #active = false;

  /** Limits for one session of a client (client is "name[addr]" for logs). */
  constructor(env: SmtpdEnv, addr: string, client: string) {
    this.#env = env;
    this.#addr = addr;
    this.#client = client;
  }

  /** Reports the connect; a reply to hang up with when a connection limit is exceeded. */
  async connect(name: string): Promise<string | null> {
    const env = this.#env;
    if ((await env.hoggers.match(name, this.#addr)).status === "match") return null;
    const r = await env.anvil.connect(env.service, this.#addr);
    if (!r.ok) return null;
    this.#active = true;
    const refuse = `421 4.7.0 ${env.myhostname} Error: too many connections from ${this.#addr}`;
    if (env.limits.count > 0 && r.count > env.limits.count) {
      msg.warn(
        `Connection concurrency limit exceeded: ${r.count} from ${this.#client} for service ${env.service}`,
      );
      return refuse;
    }
    if (env.limits.rate > 0 && r.rate > env.limits.rate) {
      msg.warn(`Connection rate limit exceeded: ${r.rate} from ${this.#client} for service ${env.service}`);
      return refuse;
    }
    return null;
  }

  /** Reports a MAIL FROM; a reply when the message rate is exceeded. */
  async message(): Promise<string | null> {
    const limit = this.#env.limits.messages;
    if (!this.#active || limit <= 0) return null;
    const r = await this.#env.anvil.message(this.#env.service, this.#addr);
    if (!r.ok || r.rate <= limit) return null;
    msg.warn(
      `Message delivery request rate limit exceeded: ${r.rate} from ${this.#client} for service ${this.#env.service}`,
    );
    return `450 4.7.1 Error: too much mail from ${this.#addr}`;
  }

  /** Reports a RCPT TO; a reply when the recipient rate is exceeded. */
  async recipient(): Promise<string | null> {
    const limit = this.#env.limits.recipients;
    if (!this.#active || limit <= 0) return null;
    const r = await this.#env.anvil.recipient(this.#env.service, this.#addr);
    if (!r.ok || r.rate <= limit) return null;
    msg.warn(
      `Recipient address rate limit exceeded: ${r.rate} from ${this.#client} for service ${this.#env.service}`,
    );
    return `450 4.7.1 Error: too many recipients from ${this.#addr}`;
  }

  /** Reports an AUTH command; a reply when smtpd_client_auth_rate_limit is exceeded. */
  async auth(): Promise<string | null> {
    const limit = this.#env.cfg.int("smtpd_client_auth_rate_limit");
    if (!this.#active || limit <= 0) return null;
    const r = await this.#env.anvil.auth(this.#env.service, this.#addr);
    if (!r.ok || r.rate <= limit) return null;
    msg.warn(
      `AUTH command rate limit exceeded: ${r.rate} from ${this.#client} for service ${this.#env.service}`,
    );
    return `450 4.7.1 Error: too many AUTH commands from ${this.#addr}`;
  }

  /** True when the client may not start another TLS session (checked before the handshake). */
  async tlsRefused(what: "STARTTLS request" | "TLS service request"): Promise<boolean> {
    const limit = this.#env.cfg.int("smtpd_client_new_tls_session_rate_limit");
    if (!this.#active || limit <= 0) return false;
    const r = await this.#env.anvil.newTlsStat(this.#env.service, this.#addr);
    if (!r.ok || r.rate <= limit) return false;
    msg.warn(`Refusing ${what} from ${this.#client} for service ${this.#env.service}`);
    return true;
  }

  /** Reports a new (not resumed) TLS session; true when the rate is exceeded. */
  async newTls(): Promise<boolean> {
    const limit = this.#env.cfg.int("smtpd_client_new_tls_session_rate_limit");
    if (!this.#active || limit <= 0) return false;
    const r = await this.#env.anvil.newTls(this.#env.service, this.#addr);
    if (!r.ok || r.rate <= limit) return false;
    msg.warn(
      `New TLS session rate limit exceeded: ${r.rate} from ${this.#client} for service ${this.#env.service}`,
    );
    return true;
  }

  /** Reports the end of the session. */
  async end(): Promise<void> {
    if (!this.#active) return;
    this.#active = false;
    await this.#env.anvil.disconnect(this.#env.service, this.#addr);
  }
}
