"""The emulator shim against a tiny local upstream that plays cargo lambda watch: it retries only
the emulator's own harmless failure, once, counts it, and hides no function that crashes or
answers garbage, and no POST or DELETE on a dropped connection."""

from __future__ import annotations

import http.client
import socket
import socketserver
import threading
from dataclasses import dataclass, field

import pytest

from emulator_shim import (EMULATOR_PROBLEM, MAX_ATTEMPTS, RETRY_ALLOWANCE, EmulatorShim,
                           is_emulator_problem)

PROBLEM_HEADERS = {"content-type": "text/plain; charset=utf-8"}
OK = (200, {"content-type": "application/json", "x-served-by": "get-messages; instance=0"},
      b'{"messages":[],"next":null}')
EMULATOR_500 = (500, PROBLEM_HEADERS, EMULATOR_PROBLEM)
# What the emulator passes on when a function reports an error (a panic) through the Runtime API.
FUNCTION_ERROR = (500, {"content-type": "application/json"},
                  b'{"errorType":"&str","errorMessage":"boom"}')
DROP = "drop"  # close the connection without answering
CLOSE_AFTER = "close-after"  # answer OK, then close the kept-alive connection silently


@dataclass
class Upstream:
    """Answers each request with the next of `script` (its last entry repeats) and records them."""

    script: list
    seen: list = field(default_factory=list)
    connections: int = 0

    def __post_init__(self):
        upstream = self
        lock = threading.Lock()

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                with lock:
                    upstream.connections += 1
                while True:
                    request_line = self.rfile.readline()
                    if not request_line:
                        return
                    headers = {}
                    while (line := self.rfile.readline()) not in (b"\r\n", b""):
                        key, _, value = line.decode().partition(":")
                        headers[key.strip().lower()] = value.strip()
                    body = self.rfile.read(int(headers.get("content-length", 0)))
                    method, path, _ = request_line.decode().split(" ", 2)
                    with lock:
                        upstream.seen.append((method, path, body))
                        step = upstream.script[min(len(upstream.seen), len(upstream.script)) - 1]
                    if step == DROP:
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    status, reply_headers, reply = OK if step == CLOSE_AFTER else step
                    head = [f"HTTP/1.1 {status} X", f"content-length: {len(reply)}"]
                    head += [f"{k}: {v}" for k, v in reply_headers.items()]
                    self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + reply)
                    self.wfile.flush()
                    if step == CLOSE_AFTER:
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream():
    servers = []

    def make(*script):
        servers.append(Upstream(list(script)))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def through_shim(upstream, requests):
    """Sends (method, path, body) requests through a shim on one client connection."""
    with EmulatorShim(upstream.url) as shim:
        host, port = shim.url.removeprefix("http://").split(":")
        client = http.client.HTTPConnection(host, int(port), timeout=10)
        answers = []
        for method, path, body in requests:
            client.request(method, path, body=body, headers={"content-type": "text/plain"})
            resp = client.getresponse()
            answers.append((resp.status, resp.read()))
        client.close()
    return shim, answers


def test_only_the_emulators_exact_document_counts_as_its_own():
    assert is_emulator_problem(500, PROBLEM_HEADERS, EMULATOR_PROBLEM)
    assert not is_emulator_problem(503, PROBLEM_HEADERS, EMULATOR_PROBLEM)
    # A function's own answer is never the emulator's, whatever its body.
    assert not is_emulator_problem(500, {**PROBLEM_HEADERS, "X-Served-By": "get-messages"},
                                   EMULATOR_PROBLEM)
    assert not is_emulator_problem(500, {"content-type": "application/problem+json"},
                                   EMULATOR_PROBLEM)
    assert not is_emulator_problem(500, PROBLEM_HEADERS, EMULATOR_PROBLEM[:-1] + b',"detail":""}')
    assert not is_emulator_problem(500, FUNCTION_ERROR[1], FUNCTION_ERROR[2])
    ours = b'{"error":{"code":"storage_unavailable","message":"The message storage is unavailable."}}'
    assert not is_emulator_problem(500, {"content-type": "application/json"}, ours)


def test_a_lost_answer_to_a_get_is_asked_for_again_once_and_counted(upstream):
    api = upstream(EMULATOR_500, OK)
    shim, answers = through_shim(api, [("GET", "/messages", None)])
    assert answers == [(200, OK[2])]
    assert [m for m, _, _ in api.seen] == ["GET", "GET"]
    assert [str(r) for r in shim.retries] == ["GET /messages (emulator's own 500)"]
    shim.assert_retry_rate()


def test_a_get_that_fails_every_time_reaches_the_test(upstream):
    # A function answering garbage, or crashing mid-answer, every time: the emulator's document
    # on every attempt. The shim gives up after MAX_ATTEMPTS and hands it on.
    api = upstream(EMULATOR_500)
    shim, answers = through_shim(api, [("GET", f"/messages?n={n}", None) for n in range(10)])
    assert answers == [(500, EMULATOR_PROBLEM)] * 10
    assert len(api.seen) == 10 * MAX_ATTEMPTS
    assert len(shim.retries) == 10 and len(shim.passed_on) == 10
    # Retries at that rate fail the run even though every answer reached the test.
    assert len(shim.retries) > RETRY_ALLOWANCE
    with pytest.raises(AssertionError, match="is a function failing"):
        shim.assert_retry_rate()


def test_a_function_failing_now_and_then_exceeds_the_stated_rate(upstream):
    # Half the answers lost: each GET succeeds on its second attempt, so only the count shows it.
    api = upstream(EMULATOR_500, OK, EMULATOR_500, OK, EMULATOR_500, OK, EMULATOR_500, OK,
                   EMULATOR_500, OK, EMULATOR_500, OK, OK)
    shim, answers = through_shim(api, [("GET", "/", None)] * 7)
    assert answers == [(200, OK[2])] * 7
    assert len(shim.retries) == 6
    with pytest.raises(AssertionError, match="more retries than"):
        shim.assert_retry_rate()


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_a_post_or_delete_is_never_sent_twice(upstream, method):
    api = upstream(EMULATOR_500)
    shim, answers = through_shim(api, [(method, "/messages", b"hello")])
    assert answers == [(500, EMULATOR_PROBLEM)]
    assert api.seen == [(method, "/messages", b"hello")], "sent once"
    assert shim.retries == [] and len(shim.passed_on) == 1


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_a_post_or_delete_on_a_dropped_connection_is_a_502_not_a_resend(upstream, method):
    api = upstream(DROP, OK)
    shim, answers = through_shim(api, [(method, "/messages", b"hello")])
    status, body = answers[0]
    assert status == 502 and b"not resent" in body
    assert [m for m, _, _ in api.seen] == [method], "sent once"
    assert shim.retries == []
    assert [r.reason for r in shim.passed_on] == ["dropped fresh connection"]


def test_a_post_never_uses_a_kept_alive_connection(upstream):
    # The upstream closes each connection after answering: a POST that reused one would be sent
    # into a dead connection. Each POST opens its own, and each is sent exactly once.
    api = upstream(CLOSE_AFTER)
    shim, answers = through_shim(api, [("GET", "/", None), ("POST", "/messages", b"a"),
                                       ("GET", "/", None), ("POST", "/messages", b"b")])
    assert [s for s, _ in answers] == [200] * 4
    assert [m for m, _, _ in api.seen] == ["GET", "POST", "GET", "POST"]
    assert shim.retries == []


def test_a_get_dropped_on_a_kept_alive_connection_is_retried_once_and_counted(upstream):
    api = upstream(OK, DROP, OK)
    shim, answers = through_shim(api, [("GET", "/", None), ("GET", "/messages", None)])
    assert answers == [(200, OK[2])] * 2
    assert [p for _, p, _ in api.seen] == ["/", "/messages", "/messages"]
    assert [str(r) for r in shim.retries] == ["GET /messages (dropped kept-alive connection)"]


def test_a_get_dropped_twice_reaches_the_test(upstream):
    api = upstream(OK, DROP)
    shim, answers = through_shim(api, [("GET", "/", None), ("GET", "/messages", None)])
    assert answers[1][0] == 502
    assert len(api.seen) == 1 + MAX_ATTEMPTS and len(shim.retries) == 1


def test_a_get_dropped_on_a_fresh_connection_is_not_retried(upstream):
    api = upstream(DROP, OK)
    shim, answers = through_shim(api, [("GET", "/messages", None)])
    assert answers[0][0] == 502
    assert len(api.seen) == 1 and shim.retries == []


def test_a_function_error_is_handed_on_untouched(upstream):
    api = upstream(FUNCTION_ERROR, OK)
    shim, answers = through_shim(api, [("GET", "/messages", None)])
    assert answers == [(500, FUNCTION_ERROR[2])]
    assert len(api.seen) == 1 and shim.retries == [] and shim.passed_on == []


def test_the_rate_allows_the_emulators_own_rare_failure(upstream):
    api = upstream(*([EMULATOR_500, OK] + [OK] * 20))
    shim, answers = through_shim(api, [("GET", "/", None)] * 21)
    assert answers == [(200, OK[2])] * 21
    assert shim.forwarded == 21 and len(shim.retries) == 1
    shim.assert_retry_rate()
    assert "1 retried" in shim.report()
