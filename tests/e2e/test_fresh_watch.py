"""A cargo-lambda user's first move: plain `cargo lambda watch` in a fresh clone, with no `.efs/`
yet. Cargo.toml's watch settings let the local functions create it; the cloud never does (the
handlers' tests check that a missing directory is a 503 without the setting)."""

from __future__ import annotations

import subprocess
import time

from conftest import REPO, LocalApi, free_port, settle, stop


def test_plain_watch_answers_without_an_efs_directory(tmp_path):
    port = free_port()
    log = tmp_path / "watch.log"
    assert not (tmp_path / ".efs").exists()
    with open(log, "wb") as out:
        # No scripts/local: the working directory has no .efs/, as in a fresh clone.
        proc = subprocess.Popen(
            [str(REPO / ".venv/bin/cargo-lambda"), "lambda", "watch",
             "--manifest-path", str(REPO / "Cargo.toml"),
             "--invoke-address", "127.0.0.1", "--invoke-port", str(port), "--ignore-changes"],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    api = LocalApi(f"http://127.0.0.1:{port}", tmp_path / ".efs", log)
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                reply = api.request("GET", "/messages", timeout=60)
                break
            except OSError:
                assert proc.poll() is None, log.read_text()[-4000:]
                assert time.monotonic() < deadline, log.read_text()[-4000:]
                time.sleep(0.25)
        assert reply.status == 200, reply.body
        assert reply.json() == {"messages": [], "next": None}
        assert (tmp_path / ".efs").is_dir()
        posted = api.request("POST", "/messages", b"first", {"content-type": "text/plain"})
        assert posted.status == 201, posted.body
        settle()
        assert [m["body"] for m in api.request("GET", "/messages").json()["messages"]] == ["first"]
        # Plain watch from a clone: no CORS grant for another website either (Cargo.toml).
        foreign = api.request("GET", "/messages", headers={"origin": "http://evil.example"})
        assert "access-control-allow-origin" not in foreign.headers, foreign.headers
    finally:
        stop(proc)
