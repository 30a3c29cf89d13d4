"""Stored content stays inert, over HTTP through the local API: every Content-Type case a POST can
bring, and the headers every answer carries (the contract's "Stored bytes are never active content
on the API's origin")."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

INLINE = ["text/plain", "text/plain; charset=utf-8", "application/json", "image/png", "image/jpeg",
          "image/gif", "image/webp", "image/avif"]
ATTACHMENT = ["text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml",
              "text/javascript", "application/javascript", "application/pdf", "text/css",
              "application/octet-stream", "multipart/x-mixed-replace; boundary=x", "video/mp4"]
REFUSED = ["text/plain;a=b,text/html", "text/plain; charset=utf-8, text/html",
           "application/json;x=1,image/svg+xml", "text/plain, text/html", "text/plain; charset",
           "text/html text/plain", "text", "/html"]


def hardened(reply) -> None:
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert reply.headers["cross-origin-resource-policy"] == "same-origin"


@pytest.mark.parametrize("content_type", INLINE + ATTACHMENT)
def test_a_stored_type_is_inline_only_if_allowlisted(local_api, content_type):
    body = b"<svg xmlns='http://www.w3.org/2000/svg'><script>document.title='ran'</script></svg>"
    posted = local_api.request("POST", "/messages", body, {"content-type": content_type})
    assert posted.status == 201, posted.body
    hardened(posted)
    ident = posted.json()["id"]
    reply = local_api.request("GET", f"/messages/{ident}")
    assert reply.status == 200
    assert reply.body == body
    assert reply.headers["content-type"] == content_type
    hardened(reply)
    disposition = reply.headers.get("content-disposition")
    if content_type in INLINE:
        assert disposition is None, disposition
    else:
        assert disposition == f'attachment; filename="{ident}"'


@pytest.mark.parametrize("content_type", REFUSED)
def test_anything_but_one_media_type_is_refused(local_api, content_type):
    reply = local_api.request("POST", "/messages", b"<p>spoof</p>", {"content-type": content_type})
    assert reply.status == 400, reply.body
    assert reply.json()["error"]["code"] == "invalid_content_type"
    hardened(reply)


def test_two_content_type_headers_never_store_a_list(local_api):
    """A client may send the header twice. API Gateway joins the two with a comma (refused: the
    handler tests send that event); the local emulator passes the first alone. Either way no list
    is ever stored, so what a browser reads is what was checked."""
    parts = urlsplit(local_api.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("POST", "/messages")
    connection.putheader("content-type", "text/plain")
    connection.putheader("content-type", "text/html")
    connection.putheader("content-length", "5")
    connection.endheaders(b"<b>x!")
    reply = connection.getresponse()
    body = reply.read()
    connection.close()
    if reply.status == 400:
        return
    assert reply.status == 201, body
    stored = local_api.request("GET", f"/messages/{json.loads(body)['id']}")
    assert stored.headers["content-type"] == "text/plain", stored.headers
    assert "," not in stored.headers["content-type"]
