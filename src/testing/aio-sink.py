#!/usr/bin/python3
# aio-sink - an aiosmtpd (Debian python3-aiosmtpd) SMTP server for Postern's tests.
#
# usage: /usr/bin/python3 aio-sink.py HOST PORT DIR [SIZE-LIMIT [IDLE-TIMEOUT]]
#
# Also logs each connection to DIR/conns.log: "open PORT MS", "mail PORT SENDER",
# "close PORT MS" (PORT: the client's port, MS: the time in milliseconds since the
# epoch). IDLE-TIMEOUT (seconds, default 300) is how long a silent client may stay.
#
# Logs every command it receives to DIR/commands.log (one line each) and writes
# each accepted message to DIR/msg-N.eml with X-Mail-From/X-Rcpt-To lines in front.
# Recipients are answered by their local part: soft-* gets 450 4.2.0, hard-* gets
# 550 5.1.1, everything else 250. It prints "ready" once it listens.
# With AIO_TLS_CERT and AIO_TLS_KEY in the environment it offers STARTTLS
# (AIO_TLS_MAXVER=TLSv1.2 caps the protocol) and logs, after each EHLO
# under TLS, "TLS <protocol> <cipher> reused=<0|1>". AIO_TLS_WRAPPER=1: implicit TLS
# (the handshake comes first, port 465 style) instead of STARTTLS. AIO_LMTP=1: speak
# LMTP (LHLO; one reply after DATA, so one recipient per message). AIO_STARTTLS_REPLY:
# offer STARTTLS but answer it with that reply.
import asyncio
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
size_limit = int(sys.argv[4]) if len(sys.argv) > 4 else 33554432
idle_timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 300
log = open(os.path.join(out, "commands.log"), "a", buffering=1)
conns = open(os.path.join(out, "conns.log"), "a", buffering=1)
count = 0


def now_ms():
    return int(time.time() * 1000)


class LoggingSMTP(LMTP if os.environ.get("AIO_LMTP") == "1" else SMTP):
    def connection_made(self, transport):
        super().connection_made(transport)
        self.conn_port = transport.get_extra_info("peername")[1]
        conns.write(f"open {self.conn_port} {now_ms()}\n")

    def connection_lost(self, error):
        conns.write(f"close {getattr(self, 'conn_port', 0)} {now_ms()}\n")
        super().connection_lost(error)

    # The DATA command itself is logged, before any content arrives.
    async def smtp_DATA(self, arg):
        log.write("DATA-COMMAND\n")
        return await super().smtp_DATA(arg)

    # AIO_STARTTLS_REPLY: STARTTLS is offered but answered with this reply.
    async def smtp_STARTTLS(self, arg):
        log.write("STARTTLS\n")
        refusal = os.environ.get("AIO_STARTTLS_REPLY")
        if refusal:
            return await self.push(refusal)
        return await super().smtp_STARTTLS(arg)


class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        log.write(f"EHLO {hostname}\n")
        sslobj = server.transport.get_extra_info("ssl_object") if server.transport else None
        if sslobj is not None:
            log.write(f"TLS {sslobj.version()} {sslobj.cipher()[0]} reused={int(sslobj.session_reused)}\n")
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        log.write(f"HELO {hostname}\n")
        session.host_name = hostname
        return "250 {}".format(server.hostname)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        log.write(f"MAIL {address} {' '.join(mail_options)}\n")
        conns.write(f"mail {session.peer[1]} {address}\n")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        log.write(f"RCPT {address} {' '.join(rcpt_options)}\n")
        local = address.split("@")[0]
        if local.startswith("soft-"):
            return "450 4.2.0 <%s>: mailbox busy, try later" % address
        if local.startswith("hard-"):
            return "550 5.1.1 <%s>: no such user here" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        global count
        log.write("DATA\n")
        count += 1
        name = os.path.join(out, "msg-%d.eml" % count)
        with open(name + ".tmp", "wb") as f:
            f.write(("X-Mail-From: %s\n" % envelope.mail_from).encode())
            for r in envelope.rcpt_tos:
                f.write(("X-Rcpt-To: %s\n" % r).encode())
            f.write(envelope.original_content)
        os.rename(name + ".tmp", name)
        return "250 2.0.0 Ok: queued as aio%d" % count

    async def handle_RSET(self, server, session, envelope):
        log.write("RSET\n")
        return "250 2.0.0 Ok"

    async def handle_QUIT(self, server, session, envelope):
        log.write("QUIT\n")
        return "221 2.0.0 Bye"


class Ctl(Controller):
    def factory(self):
        return LoggingSMTP(self.handler, hostname="aio.example.test", decode_data=False, enable_SMTPUTF8=True,
            data_size_limit=size_limit, tls_context=None if wrapper else tls_context, require_starttls=False,
            timeout=idle_timeout)


tls_context = None
wrapper = os.environ.get("AIO_TLS_WRAPPER") == "1"
if os.environ.get("AIO_TLS_CERT"):
    tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_context.load_cert_chain(os.environ["AIO_TLS_CERT"], os.environ["AIO_TLS_KEY"])
    if os.environ.get("AIO_TLS_MAXVER") == "TLSv1.2":
        tls_context.maximum_version = ssl.TLSVersion.TLSv1_2


ctl = Ctl(Handler(), hostname=host, port=port, **({"ssl_context": tls_context} if wrapper else {}))
ctl.start()
print("ready", flush=True)
try:
    sys.stdin.read()
finally:
    ctl.stop()
