"""A real SMTP server for the tests, on loopback, built on aiosmtpd.

Messages are written to a maildir. Recipients starting with "reject" are refused with a 550
(permanent) and those starting with "defer" with a 451 (transient). With --tls-cert/--tls-key
the server offers STARTTLS and requires it, or with --implicit-tls speaks TLS from the first
byte (SMTPS); with --auth USER:PASSWORD it requires that login. It prints "READY <port>" once listening and
"DELIVERED <recipient>" after each stored message, and stops when its standard input closes.
"""

import argparse
import socket
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword


class TestHandler(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 mailbox unavailable"
        if address.startswith("defer"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def handle_message(self, message):
        super().handle_message(message)
        for recipient in message["X-RcptTo"].split(","):
            print(f"DELIVERED {recipient.strip()}", flush=True)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--auth")
    args = parser.parse_args()

    tls_context = None
    if args.tls_cert:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)

    options = {}
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
                and auth_data.password.decode() == password
            return AuthResult(success=ok)

        options.update(authenticator=authenticator, auth_required=True)
    if args.implicit_tls:
        options.update(ssl_context=tls_context)
    else:
        options.update(tls_context=tls_context, require_starttls=tls_context is not None)

    port = free_port()
    controller = Controller(TestHandler(args.maildir), hostname="127.0.0.1", port=port, **options)
    controller.start()
    print(f"READY {port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
