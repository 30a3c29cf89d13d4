"""Self-checking message bodies: varied sizes and content types, text and binary.

Every body starts with a header naming its token (unique per POST) and the length and SHA-256
of the rest, so a body read back says which POST it came from and whether it is whole:

    SOAK1 <token> <length of the rest> <sha256 of the rest, hex>\\n<the rest>

A JSON body carries the same header as its ``soak`` member and the rest as its ``pad`` member.
``check`` verifies a body on its own (header and checksum) and against what was posted under
its token (the SHA-256 of the whole body, and the Content-Type the store must keep).
"""

import base64
import hashlib
import json
import random
import re

MAX_BYTES = 262_144  # MAX_MESSAGE_BYTES's default: the largest accepted message

# name: (Content-Type sent, or None for no header; the Content-Type the store keeps; binary)
KINDS = {
    "text": ("text/plain; charset=utf-8", "text/plain; charset=utf-8", False),
    "controls": ("text/plain", "text/plain", False),  # control characters: 6x once JSON-escaped
    "json": ("application/json", "application/json", False),
    "html": ("text/html; charset=utf-8", "text/html; charset=utf-8", False),
    "octets": ("application/octet-stream", "application/octet-stream", True),
    "png": ("image/png", "image/png", True),
    "untyped": (None, "application/octet-stream", True),
}
KIND_WEIGHTS = {"text": 35, "json": 15, "html": 5, "controls": 5, "octets": 20, "png": 10,
                "untyped": 10}

# (weight, smallest, largest) total body bytes; the last class is exactly the largest allowed.
SIZE_CLASSES = [(55, 40, 400), (25, 1_024, 8_192), (12, 16_384, 65_536),
                (5, 100_000, 200_000), (3, MAX_BYTES, MAX_BYTES)]

_HEADER = re.compile(rb"^SOAK1 ([A-Za-z0-9-]+) ([0-9]+) ([0-9a-f]{64})\n")
_ALPHABET = ("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?\n"
             "éèüß ✓ Ω 中文 😀 𝄞 \"quotes\" <b>&amp;</b> \\ ")


class Body:
    __slots__ = ("token", "data", "content_type", "expected_type", "kind", "sha256")

    def __init__(self, token, data, content_type, expected_type, kind):
        self.token, self.data, self.kind = token, data, kind
        self.content_type, self.expected_type = content_type, expected_type
        self.sha256 = hashlib.sha256(data).hexdigest()


def _header(token, rest):
    return f"SOAK1 {token} {len(rest)} {hashlib.sha256(rest).hexdigest()}\n".encode()


def _rest_length(token, total):
    """The length of the rest that makes a body of exactly `total` bytes."""
    n = total - len(_header(token, b""))
    for _ in range(3):
        n = total - (len(_header(token, b"")) + len(str(n)) - 1)
    return max(1, n)


def _text(rng, n, controls=False):
    """Exactly `n` bytes of valid UTF-8."""
    if controls:
        chars = "".join(rng.choice("\x01\x02\x07\x1b\x1f\t") for _ in range(min(n, 64)))
        return (chars * (n // len(chars) + 1)).encode()[:n]
    chunk = "".join(rng.choice(_ALPHABET) for _ in range(min(n, 2048)))
    data = (chunk * (n // max(1, len(chunk.encode())) + 2)).encode()[:n]
    return data.decode("utf-8", errors="ignore").encode().ljust(n, b"x")


def _binary(rng, n):
    """Exactly `n` bytes that are not UTF-8."""
    data = rng.randbytes(n)
    return (b"\xff\xfe" + data[2:])[:n] if n >= 2 else b"\xff"[:n]


def make(token, rng, kind=None, size=None):
    """A body for `token`: a random kind and size unless given."""
    kind = kind or rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
    sent_type, kept_type, binary = KINDS[kind]
    if size is None:
        weight, low, high = rng.choices(SIZE_CLASSES, weights=[c[0] for c in SIZE_CLASSES])[0]
        size = rng.randint(low, high)
    if kind == "json":
        # The pad is plain ASCII text (JSON-escaping it would change its length).
        head_room = 120
        pad = _text(rng, max(1, size - head_room)).decode().encode("ascii", errors="ignore")
        pad = pad.replace(b"\\", b"/").replace(b'"', b"'").replace(b"\n", b" ")
        data = json.dumps({"soak": _header(token, pad).decode().rstrip("\n"),
                           "pad": pad.decode()}).encode()
        return Body(token, data, sent_type, kept_type, kind)
    rest_length = _rest_length(token, size)
    rest = _binary(rng, rest_length) if binary else _text(rng, rest_length, kind == "controls")
    return Body(token, _header(token, rest) + rest, sent_type, kept_type, kind)


def parse(data):
    """(token, problem): the token a body names, and what is wrong with it on its own (None)."""
    if data[:1] == b"{":
        try:
            doc = json.loads(data)
            header, rest = doc["soak"].encode() + b"\n", doc["pad"].encode()
        except (ValueError, KeyError, TypeError, AttributeError):
            return None, "a JSON body that is not a soak body"
    else:
        header = data[:data.find(b"\n") + 1] if b"\n" in data[:200] else b""
        rest = data[len(header):]
    match = _HEADER.match(header)
    if not match:
        return None, "no soak header"
    token, length, digest = match.group(1).decode(), int(match.group(2)), match.group(3).decode()
    if len(rest) != length:
        return token, f"the body is {len(rest)} bytes after its header, it says {length}"
    if hashlib.sha256(rest).hexdigest() != digest:
        return token, "the body does not match its own checksum"
    return token, None


def check(data, content_type, posted):
    """(token, problem) for a body read back with `content_type`; `posted` maps tokens to the
    Body posted (problem None: whole and as posted)."""
    token, problem = parse(data)
    if problem:
        return token, problem
    body = posted.get(token)
    if body is None:
        return token, "a token nobody posted"
    if hashlib.sha256(data).hexdigest() != body.sha256:
        return token, "the body differs from what was posted"
    if content_type != body.expected_type:
        return token, f"Content-Type {content_type!r}, posted {body.expected_type!r}"
    return token, None


def listed_bytes(entry):
    """A listed message's body as bytes (`bodyEncoding` utf8 or base64), or None."""
    body, encoding = entry.get("body"), entry.get("bodyEncoding")
    if not isinstance(body, str):
        return None
    if encoding == "base64":
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            return None
    if encoding == "utf8":
        return body.encode("utf-8")
    return None


if __name__ == "__main__":  # a quick self-test
    rng = random.Random(1)
    registry = {}
    for n in range(300):
        b = make(f"t-{n}", rng)
        registry[b.token] = b
        assert len(b.data) <= MAX_BYTES, (b.kind, len(b.data))
        if b.kind != "json" and n % 50 == 0:
            assert len(make("x", rng, b.kind, MAX_BYTES).data) == MAX_BYTES
        assert check(b.data, b.expected_type, registry) == (b.token, None), (b.kind, b.data[:90])
        if KINDS[b.kind][2]:
            try:
                b.data.decode()
                raise AssertionError("binary body is UTF-8")
            except UnicodeDecodeError:
                pass
        torn = bytearray(b.data)
        torn[-1] ^= 1
        assert check(bytes(torn), b.expected_type, registry)[1] is not None
    print("ok")
