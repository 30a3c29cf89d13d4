"""Shared fixtures: the whole API running locally under `cargo lambda watch`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: How long after a message is stored an oldest-first page may list it (`shared::store::SETTLE`,
#: shared/src/store/clock.rs): pages oldest first never pass a message still being published.
SETTLE_SECONDS = 1.25


def settle() -> None:
    """Waits until what was just posted has settled, for an oldest-first (default) listing."""
    time.sleep(SETTLE_SECONDS + 0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class LocalApi:
    """A running `scripts/local`: its base URL and the directory standing in for EFS."""

    url: str
    efs: Path
    log: Path

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 60) -> Reply:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                             resp.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


def start_local_api(tmp: Path, concurrency: int, startup_timeout: float = 600) -> tuple[subprocess.Popen, LocalApi]:
    port = free_port()
    log = tmp / "local-api.log"
    env = dict(os.environ, PORT=str(port), DATA_DIR=str(tmp), CONCURRENCY=str(concurrency))
    with open(log, "wb") as out:
        # A session of its own, so that stopping it stops every process it started.
        proc = subprocess.Popen([str(REPO / "scripts/local")], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    api = LocalApi(f"http://127.0.0.1:{port}", tmp / ".efs", log)
    deadline = time.monotonic() + startup_timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"scripts/local exited early:\n{log.read_text()[-4000:]}")
        try:
            if api.request("GET", "/messages", timeout=5).status == 200:
                return proc, api
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"the local API did not answer:\n{log.read_text()[-4000:]}")
        time.sleep(0.25)


def stop(proc: subprocess.Popen) -> None:
    """Stops the whole process group, politely first."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            # The group may outlive its leader for a moment.
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def local_api(tmp_path_factory):
    """The API with three instances per function sharing one directory."""
    tmp = tmp_path_factory.mktemp("local-api")
    started = time.monotonic()
    proc, api = start_local_api(tmp, concurrency=3)
    print(f"\nlocal API answered {time.monotonic() - started:.1f}s after start")
    try:
        yield api
    finally:
        stop(proc)
