"""A webhook receiver, as an app runs one: every delivery is verified with the
`standardwebhooks` library (the Standard Webhooks reference implementation; not written here)
against each secret it was given, by name. One JSON line per request, in arrival order:
{"refused": 503} while it plays "down", else {"verified_with": [names], "id": webhook-id,
"payload": the parsed body, or null when no secret verified it}.

Usage: python receiver.py FAIL_FIRST NAME=whsec_... [NAME=whsec_... ...]
Prints {"port": N} once it listens on 127.0.0.1.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

down_for = int(sys.argv[1])
hooks = {name: Webhook(secret) for name, secret in (arg.split("=", 1) for arg in sys.argv[2:])}


def say(line):
    print(json.dumps(line), flush=True)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        global down_for
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if down_for > 0:
            down_for -= 1
            say({"refused": 503})
            self.send_response(503)
            self.end_headers()
            return
        headers = dict(self.headers.items())
        verified, payload = [], None
        for name, hook in hooks.items():
            try:
                payload = hook.verify(body, headers)
                verified.append(name)
            except WebhookVerificationError:
                pass
        say({"verified_with": verified, "id": headers.get("webhook-id"), "payload": payload})
        self.send_response(204 if verified else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


# One request at a time, so the lines are in the order the deliveries arrived.
server = HTTPServer(("127.0.0.1", 0), Receiver)
say({"port": server.server_address[1]})
server.serve_forever()
