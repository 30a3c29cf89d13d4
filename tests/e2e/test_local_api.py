"""The original pattern's flow over real HTTP, through `cargo lambda watch`'s per-method router
and the real Lambda runtime loop of each function binary."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import REPO, settle

pytestmark = pytest.mark.usefixtures("local_api")


@pytest.fixture(autouse=True)
def empty_store(local_api):
    assert local_api.request("DELETE", "/messages").status == 204
    yield


def post(api, body: bytes, content_type: str | None):
    headers = {"content-type": content_type} if content_type else {}
    reply = api.request("POST", "/messages", body, headers)
    assert reply.status == 201, reply.body
    return reply


def test_the_original_flow(local_api):
    api = local_api
    text = post(api, b"Hello from EFS!", "text/plain; charset=utf-8")
    doc = post(api, json.dumps({"greeting": "hello", "n": 1}).encode(), "application/json")
    binary_bytes = bytes(range(256)) + b"\x00\xff\x80"
    binary = post(api, binary_bytes, "application/octet-stream")

    ids = [r.json()["id"] for r in (text, doc, binary)]
    for reply, ident in zip((text, doc, binary), ids):
        assert reply.headers["location"] == f"/messages/{ident}"
        assert uuid.UUID(ident).version == 7
    assert binary.json()["size"] == len(binary_bytes)

    settle()
    listing = api.request("GET", "/messages")
    assert listing.status == 200
    messages = listing.json()["messages"]
    assert [m["id"] for m in messages] == ids, "oldest first"
    assert messages[0]["body"] == "Hello from EFS!" and messages[0]["bodyEncoding"] == "utf8"
    assert json.loads(messages[1]["body"]) == {"greeting": "hello", "n": 1}
    assert messages[2]["bodyEncoding"] == "base64"
    assert messages[2]["contentType"] == "application/octet-stream"
    assert listing.json()["next"] is None
    # The root path is the same collection.
    assert api.request("GET", "/").json()["messages"] == messages

    one = api.request("GET", f"/messages/{ids[2]}")
    assert one.status == 200
    assert one.body == binary_bytes, "raw bytes, byte for byte"
    assert one.headers["content-type"] == "application/octet-stream"
    one = api.request("GET", f"/messages/{ids[0]}")
    assert one.body == b"Hello from EFS!"
    assert one.headers["content-type"] == "text/plain; charset=utf-8"

    assert api.request("DELETE", f"/messages/{ids[1]}").status == 204
    assert api.request("GET", f"/messages/{ids[1]}").status == 404
    assert [m["id"] for m in api.request("GET", "/messages").json()["messages"]] == [ids[0], ids[2]]

    newest_first = api.request("GET", "/messages?order=desc&limit=1").json()
    assert [m["id"] for m in newest_first["messages"]] == [ids[2]]
    assert newest_first["next"] == ids[2]
    deleted = api.request("DELETE", "/messages")
    assert deleted.status == 204 and deleted.body == b""
    for order in ("asc", "desc"):
        assert api.request("GET", f"/messages?order={order}").json() == {"messages": [], "next": None}
    assert api.request("GET", f"/messages/{ids[0]}").status == 404
    # The files wait for reclaiming (the delete function's schedule); the cut-off hides them.
    assert (api.efs / "cutoff").is_file()
    later = api.request("POST", "/messages", b"after the delete", {"content-type": "text/plain"})
    assert later.status == 201
    # Newest first at once (oldest first once it settled).
    newest = api.request("GET", "/messages?order=desc").json()["messages"]
    assert [m["id"] for m in newest] == [later.json()["id"]]


def test_errors_are_json_over_http(local_api):
    api = local_api
    for method, path, body, status, code in [
        ("POST", "/messages", b"", 400, "empty_message"),
        ("GET", "/messages/not-an-id", None, 400, "invalid_id"),
        ("GET", f"/messages/{uuid.uuid4()}", None, 400, "invalid_id"),
        ("DELETE", "/messages/..%2F..%2Fetc", None, 400, "invalid_id"),
        ("GET", "/messages?limit=0", None, 400, "invalid_query"),
        ("GET", "/messages?limit=10&limit=20", None, 400, "invalid_query"),
        ("GET", "/messages/01936b2e-1e2d-7c3a-8b4c-5d6e7f8a9b0c", None, 404, "not_found"),
    ]:
        reply = api.request(method, path, body, {"content-type": "text/plain"})
        assert reply.status == status, (method, path, reply.body)
        assert reply.json()["error"]["code"] == code


def test_oversized_message_is_413(local_api):
    reply = local_api.request("POST", "/messages", b"x" * 262_145, {"content-type": "text/plain"})
    assert reply.status == 413
    assert reply.json()["error"]["code"] == "message_too_large"


def test_200_concurrent_posts_are_all_listed(local_api):
    api = local_api

    def one(i: int) -> str:
        reply = post(api, f"concurrent {i}".encode(), "text/plain")
        return reply.json()["id"]

    with ThreadPoolExecutor(max_workers=32) as pool:
        ids = list(pool.map(one, range(200)))
    assert len(set(ids)) == 200

    settle()
    listed, after = [], None
    while True:
        query = "?limit=75" + (f"&after={after}" if after else "")
        page = api.request("GET", "/messages" + query).json()
        listed += page["messages"]
        after = page["next"]
        if after is None:
            break
    assert sorted(m["id"] for m in listed) == sorted(ids)
    assert [m["id"] for m in listed] == sorted(m["id"] for m in listed), "id order"
    assert {m["body"] for m in listed} == {f"concurrent {i}" for i in range(200)}


def function_pids(name: str) -> set[int]:
    out = subprocess.run(["pgrep", "-f", f"target/debug/{name}$"], capture_output=True, text=True)
    return {int(pid) for pid in out.stdout.split()}


def invoke(api, function: str, event: dict, tmp_path) -> dict:
    """One invocation through cargo lambda's runtime API, bypassing the HTTP router."""
    data = tmp_path / "event.json"
    data.write_text(json.dumps(event))
    port = api.url.rsplit(":", 1)[1]
    out = subprocess.run(
        ["cargo", "lambda", "invoke", function, "--invoke-address", "127.0.0.1", "--invoke-port", port, "--data-file", str(data),
         "--output-format", "json"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env=dict(os.environ, PATH=f"{REPO / '.venv/bin'}:{os.environ['PATH']}"))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_invalid_base64_is_answered_and_the_process_survives(local_api, tmp_path):
    """lambda_http's own decoder panics on this event; our adapter answers 400 and the very same
    function processes go on to serve the next invocation."""
    fixture = json.loads((REPO / "test-support/fixtures/events/post-message-binary.json").read_text())
    assert invoke(local_api, "post-message", fixture, tmp_path)["statusCode"] == 201
    before = function_pids("post-message")
    assert before, "post-message instances are running"

    bad = dict(fixture, body="this is *not* base64!")
    reply = invoke(local_api, "post-message", bad, tmp_path)
    assert reply["statusCode"] == 400
    assert json.loads(reply["body"])["error"]["code"] == "invalid_body"

    good = invoke(local_api, "post-message", fixture, tmp_path)
    assert good["statusCode"] == 201
    assert function_pids("post-message") >= before, "no instance died"


def test_a_10000_character_path_and_a_header_flood_over_http(local_api):
    reply = local_api.request("GET", "/messages/" + "a" * 10_000)
    assert reply.status == 400 and reply.json()["error"]["code"] == "invalid_id"
    # As many headers as the front door lets through reach the function and are served...
    headers = {f"x-flood-{i}": "y" * 64 for i in range(90)}
    assert local_api.request("GET", "/messages?limit=1", headers=headers).status == 200
    # ...more are refused by the front door itself (cargo lambda watch's HTTP server says 431;
    # API Gateway caps request headers too), and the API goes on serving.
    headers = {f"x-flood-{i}": "y" * 64 for i in range(500)}
    assert local_api.request("GET", "/messages?limit=1", headers=headers).status == 431
    assert local_api.request("GET", "/messages?limit=1").status == 200


FOREIGN = "http://evil.example:8080"


def test_another_website_gets_no_cors_grant(local_api):
    """cargo lambda watch would grant every origin (credentials included); Cargo.toml's watch
    table turns that off, so a page on another site (or another local port) can neither read the
    messages nor send a DELETE (which needs a preflight)."""
    api = local_api
    reply = api.request("GET", "/messages", headers={"origin": FOREIGN})
    assert reply.status == 200
    assert not any(h.startswith("access-control-") for h in reply.headers), reply.headers
    for method in ("DELETE", "POST"):
        preflight = api.request("OPTIONS", "/messages", headers={
            "origin": FOREIGN, "access-control-request-method": method,
            "access-control-request-headers": "content-type"})
        assert "access-control-allow-origin" not in preflight.headers, (method, preflight)
        assert "access-control-allow-methods" not in preflight.headers, (method, preflight)
    # Every answer also tells the browser not to let another origin embed it.
    assert reply.headers["cross-origin-resource-policy"] == "same-origin"


def test_scripts_local_listens_on_loopback_only(local_api):
    port = local_api.url.rsplit(":", 1)[1]
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                               text=True).stdout
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening.splitlines()}
    assert addresses == {"127.0.0.1"}, listening
