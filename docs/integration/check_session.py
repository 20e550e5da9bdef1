"""A Python backend that asks magiclink who is signed in (standard library only)."""
import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAGICLINK_URL = os.environ.get("MAGICLINK_URL", "http://127.0.0.1:3000")


def current_user(cookie_header):
    """The signed-in user (a dict) or None, and the Set-Cookie headers to pass on."""
    request = urllib.request.Request(
        f"{MAGICLINK_URL}/api/auth/session",
        headers={"Cookie": cookie_header or "", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        session = json.load(response)  # None when signed out
        set_cookies = response.headers.get_all("Set-Cookie") or []
    return (session or {}).get("user"), set_cookies


class App(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            user, set_cookies = current_user(self.headers.get("Cookie"))
        except OSError:  # unreachable, or an error status (urllib raises HTTPError)
            self.send_response(503)
            self.end_headers()
            return
        self.send_response(200 if user else 401)
        # Pass magiclink's cookies on, so an extended session stays extended in the browser.
        for cookie in set_cookies:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write((f"Hello, {user['email']}\n" if user else "not signed in\n").encode())


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), App)
print(f"listening on {server.server_address[1]}", flush=True)
server.serve_forever()
