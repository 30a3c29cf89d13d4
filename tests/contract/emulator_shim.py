"""A loopback proxy between the contract and browser tests and `cargo lambda watch` that retries,
once, the one failure of the *emulator itself* that is known to be harmless, and counts it.

What cargo lambda watch 1.9.2 sends, read from its source (cargo-lambda-watch 1.9.2:
src/error.rs, src/trigger_router.rs, src/runtime/functions_router.rs):

* A function's answer, with the function's status, headers and body. Ours stamp every answer
  with `x-served-by`.
* A function that reports an error (a panic, an `Err`) through the Runtime API: status 500 with
  the function's own error document (`errorType`, `errorMessage`).
* A function that dies after taking an invocation and before answering it: nothing; the request
  waits until the client gives up (the shim's upstream timeout, then a 504 from the shim).
* Every `ServerError` of the emulator: status 500, `text/plain; charset=utf-8`, no
  `x-served-by`, and exactly EMULATOR_PROBLEM below (as seen on the wire): no detail, the same
  bytes whatever went wrong. That covers a function that answers garbage (not an API Gateway
  response: `SerializationError`), a bad base64 body or status code, a function whose connection
  breaks while it sends its answer (a crash mid-answer: `DataDeserialization`), a text request
  body that is not UTF-8 (`StringBody`, before any function runs) and the emulator losing the
  function's answer on its way back to the client (also `DataDeserialization`).

By every sign that last one is the rare failure this shim is for: about one in several thousand
schemathesis requests, more often with large answers (HTML pages), no function logs an error,
replaying the requests does not reproduce it (git log -p tests/contract/emulator_shim.py). The
answer it lost came from a function that ran; for a GET, asking again changes nothing.

The emulator's document cannot tell that case from a function answering garbage or crashing
mid-answer, so the retry is narrow and bounded, and never hides a function that fails:

* only GET and HEAD (reads: a second attempt cannot store or delete anything twice), only the
  exact EMULATOR_PROBLEM bytes with status 500 and without `x-served-by` (a function's own
  answer is never retried, whatever its body);
* at most MAX_ATTEMPTS attempts per request, in every suite: a function that answers garbage or
  crashes every time is passed through to the test on the second attempt;
* a dropped connection is retried only for GET and HEAD, and only when it was a kept-alive
  connection that had already answered (one gone stale while idle; one seen closed before
  sending is simply replaced). POST and DELETE always get a connection of their own and are
  never sent twice: if the emulator drops one, the client gets a 502 from the shim (a resent
  POST could store a message twice);
* every retry is counted with its reason; `assert_retry_rate` fails a test run when retries
  exceed MAX_RETRY_RATE of the requests forwarded (at least RETRY_ALLOWANCE are allowed, for
  short runs), which an intermittently failing function would exceed.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}

# What cargo-lambda-watch 1.9.2 answers for any of its own errors (its HttpApiProblem, serialised
# by serde_json in field order), byte for byte.
EMULATOR_PROBLEM = (b'{"type":"https://httpstatuses.com/500","status":500,'
                    b'"title":"Internal Server Error"}')
EMULATOR_CONTENT_TYPE = "text/plain; charset=utf-8"
RETRYABLE_METHODS = {"GET", "HEAD"}
MAX_ATTEMPTS = 2
# The emulator's own failure was measured at up to about 1 in 2,000 requests (7 in 2,000 at worst,
# with HTML pages). More than 1 in 500 is a problem of its own, such as a function failing.
MAX_RETRY_RATE = 1 / 500
RETRY_ALLOWANCE = 5
UPSTREAM_TIMEOUT = 60


def is_emulator_problem(status: int, headers: Mapping[str, str], body: bytes) -> bool:
    """True only for the emulator's own 500 document: never for anything a function answered."""
    lowered = {key.lower(): value for key, value in headers.items()}
    return (status == 500 and body == EMULATOR_PROBLEM
            and lowered.get("content-type") == EMULATOR_CONTENT_TYPE
            and "x-served-by" not in lowered)


@dataclass(frozen=True)
class Retry:
    method: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.reason})"


class Dropped(Exception):
    """The emulator closed the connection without answering."""


class EmulatorShim:
    """Forwards every request to `upstream`; see the module's doc."""

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname, parts.port
        self.forwarded = 0
        self.retries: list[Retry] = []
        # Emulator problem documents and dropped connections handed on to the client as they were.
        self.passed_on: list[Retry] = []
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
                status, reply_headers, data = shim.exchange(self.command, self.path, body, headers)
                self.send_response(status)
                for key, value in reply_headers:
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def __getattr__(self, name):
                # Every method goes through, whatever it is (do_GET, do_TRACE, ...).
                if name.startswith("do_"):
                    return self.forward
                raise AttributeError(name)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def exchange(self, method, path, body, headers) -> tuple[int, list[tuple[str, str]], bytes]:
        """Sends one request upstream, retrying only as the module's doc says."""
        with self.count_lock:
            self.forwarded += 1
        retryable = method in RETRYABLE_METHODS
        for attempt in range(1, MAX_ATTEMPTS + 1):
            last = attempt == MAX_ATTEMPTS
            try:
                status, reply_headers, data = self.send(method, path, body, headers)
            except Dropped as dropped:
                stale = str(dropped) == "stale"
                if retryable and stale and not last:
                    self.count(self.retries, method, path, "dropped kept-alive connection")
                    continue
                self.count(self.passed_on, method, path, f"dropped {dropped} connection")
                why = ("not resent: it may have reached a function" if not retryable
                       else "dropped again" if stale else "dropped on a fresh connection")
                return 502, [("content-type", "text/plain"), ("x-emulator-shim", "dropped")], (
                    f"emulator shim: cargo lambda watch closed the connection ({why})".encode())
            except TimeoutError:
                self.count(self.passed_on, method, path, "no answer")
                return 504, [("content-type", "text/plain"), ("x-emulator-shim", "timeout")], (
                    f"emulator shim: no answer in {UPSTREAM_TIMEOUT} s".encode())
            if is_emulator_problem(status, dict(reply_headers), data):
                if retryable and not last:
                    self.count(self.retries, method, path, "emulator's own 500")
                    continue
                self.count(self.passed_on, method, path, "emulator's own 500")
            return status, reply_headers, data
        raise AssertionError("unreachable")

    def count(self, into: list[Retry], method: str, path: str, reason: str) -> None:
        with self.count_lock:
            into.append(Retry(method, path, reason))

    def send(self, method, path, body, headers) -> tuple[int, list[tuple[str, str]], bytes]:
        """One upstream attempt. GET and HEAD use this thread's kept-alive connection; any other
        method a connection of its own, so that it can never meet a connection gone stale.
        Raises Dropped("stale") or Dropped("fresh") when the emulator closed it unanswered."""
        own = method not in RETRYABLE_METHODS
        conn = None
        if not own:
            conn, self.local.conn = getattr(self.local, "conn", None), None
            if conn is not None and closed_by_peer(conn):
                # Gone stale while idle, and seen before sending anything: not an attempt.
                conn.close()
                conn = None
        reused = conn is not None
        try:
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=UPSTREAM_TIMEOUT)
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (http.client.HTTPException, ConnectionError) as error:
            conn.close()
            raise Dropped("stale" if reused else "fresh") from error
        except TimeoutError:
            conn.close()
            raise
        if own or resp.will_close:
            conn.close()
        else:
            self.local.conn = conn
        return resp.status, resp.getheaders(), data

    def report(self) -> str:
        reasons = Counter(r.reason for r in self.retries)
        lines = [f"emulator shim: {self.forwarded} requests, {len(self.retries)} retried "
                 f"{dict(reasons)}, at most {self.allowed_retries()} allowed "
                 f"(1 in {round(1 / MAX_RETRY_RATE)}, at least {RETRY_ALLOWANCE})"]
        lines += [f"  retried: {r}" for r in self.retries]
        lines += [f"  passed on: {r}" for r in self.passed_on]
        return "\n".join(lines)

    def allowed_retries(self) -> int:
        return max(RETRY_ALLOWANCE, int(self.forwarded * MAX_RETRY_RATE))

    def assert_retry_rate(self) -> None:
        assert len(self.retries) <= self.allowed_retries(), (
            "more retries than the emulator's own rare failure explains: is a function failing?\n"
            + self.report())

    def __enter__(self) -> "EmulatorShim":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive connection has been closed (or reset) by the other end."""
    if conn.sock is None:
        return True
    # An idle connection has nothing to read: anything readable is its end (or a reset).
    readable, _, _ = select.select([conn.sock], [], [], 0)
    return bool(readable)
