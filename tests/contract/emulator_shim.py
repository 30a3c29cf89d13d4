"""A loopback proxy between schemathesis and `cargo lambda watch` that retries a GET once when
the *emulator itself* (not a function) answered 500.

cargo lambda watch 1.9.2 answers roughly one in several thousand schemathesis requests with its
own RFC 7807 problem document (`{"type":"https://httpstatuses.com/500","status":500,"title":...}`)
and logs nothing; no function logs an error for it, replaying the same requests does not
reproduce it, and 12,800 plain requests never did. A function's own errors are always
`{"error":{"code","message"}}` and are never retried, so every contract check still sees every
answer our code gives. The test bounds and reports how many retries happened.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}


def is_emulator_problem(status: int, body: bytes) -> bool:
    if status != 500:
        return False
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return (isinstance(doc, dict) and set(doc) == {"type", "status", "title"}
            and str(doc.get("type", "")).startswith("https://httpstatuses.com/"))


class EmulatorShim:
    """Forwards every request to `upstream`; see the module's doc."""

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname, parts.port
        self.retried: list[str] = []
        self.forwarded = 0
        self.count_lock = threading.Lock()
        self.local = threading.local()
        shim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                # Headers and body go out in separate writes: without this, Nagle's algorithm
                # and delayed ACKs add 40 ms to every request.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def forward(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
                with shim.count_lock:
                    shim.forwarded += 1
                for attempt in range(3):
                    resp, data = shim.send(self.command, self.path, body, headers)
                    if (self.command == "GET" and attempt < 2
                            and is_emulator_problem(resp.status, data)):
                        shim.retried.append(f"{self.command} {self.path}")
                        continue
                    break
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def __getattr__(self, name):
                # Every method goes through, whatever it is (do_GET, do_TRACE, ...).
                if name.startswith("do_"):
                    return self.forward
                raise AttributeError(name)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def send(self, method, path, body, headers):
        """One upstream request on this thread's kept-alive connection (reopened if closed)."""
        for fresh in (False, True):
            conn = getattr(self.local, "conn", None)
            if conn is None or fresh:
                conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    self.local.conn = None
                return resp, data
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self.local.conn = None
                if fresh:
                    raise
        raise AssertionError("unreachable")

    def __enter__(self) -> "EmulatorShim":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
