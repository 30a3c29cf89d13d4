"""The soak's checks can fail: each check is shown a made-up history that breaks it (and one that
does not), with no functions running. `python3 -m soak.selftest` from bench/."""

import base64
import json

from . import bodies
from .cluster import Answer, uuid7_at
from .ledger import Ledger, evaluate

S = 1_000_000_000
BASE_MS = 1_790_000_000_000  # a fixed time: ids are made from it


def t(seconds):
    return BASE_MS * 1_000_000 + int(seconds * S)


def answer(t0, t1, status, body=b"", headers=None, node="n"):
    raw = {"statusCode": status, "headers": headers or {}, "isBase64Encoded": True,
           "body": base64.b64encode(body).decode()}
    return Answer(node, t(t0), t(t1), raw=raw, ms=(t1 - t0) * 1000)


class History:
    def __init__(self):
        self.ledger = Ledger()
        self.n = 0
        self.bodies = {}

    def post(self, t0, t1, status=201, at_s=None):
        """A POST; its id is of time `at_s` (default: t0)."""
        self.n += 1
        body = bodies.make(f"self-{self.n}", __import__("random").Random(self.n), "text", 60)
        self.ledger.will_post(body)
        mid = uuid7_at(BASE_MS + int((t0 if at_s is None else at_s) * 1000))
        doc = {"id": mid, "createdAt": _created(mid), "size": len(body.data),
               "contentType": body.expected_type}
        a = answer(t0, t1, status, json.dumps(doc).encode() if status == 201 else
                   b'{"error":{"code":"storage_unavailable","message":"x"}}',
                   {"location": f"/messages/{mid}"})
        self.ledger.post_done(body, a)
        self.bodies[mid] = body
        return mid

    def get(self, mid, t0, t1, status, body=None):
        b = self.bodies[mid]
        self.ledger.read_done(mid, answer(t0, t1, status, b.data if body is None else body,
                                          {"content-type": b.expected_type}), "acked")

    def page(self, stream, seq, order, after, ids, next_id, t0, t1, tamper=None):
        entries = []
        for mid in ids:
            b = self.bodies[mid]
            data = tamper(b.data) if tamper else b.data
            entries.append({"id": mid, "createdAt": _created(mid), "size": len(data),
                            "contentType": b.expected_type, "body": data.decode(),
                            "bodyEncoding": "utf8"})
        doc = json.dumps({"messages": entries, "next": next_id}).encode()
        self.ledger.page_done(stream, seq, order, after, 100, answer(t0, t1, 200, doc))

    def delete(self, mid, t0, t1, status):
        self.ledger.delete_done(mid, answer(t0, t1, status), "live")

    def delete_all(self, t0, t1, status=204):
        self.ledger.delete_all_done(answer(t0, t1, status))

    def findings(self):
        f, *_ = evaluate(self.ledger)
        return {check: len(items) for check, items in f.items.items() if items}


def _created(mid):
    import datetime
    from .cluster import id_ms
    ms = id_ms(mid)
    d = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def expect(name, history, wanted):
    got = history.findings()
    ok = got == wanted
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {got}")
    return ok


def main():
    results = []

    h = History()
    a = h.post(0, 0.05)
    b = h.post(1, 1.05)
    h.get(a, 2, 2.01, 200)
    h.page("s", 0, "asc", None, [a, b], None, 5, 5.1)
    h.page("d", 0, "desc", None, [b, a], None, 5, 5.1)
    h.delete(a, 6, 6.1, 204)
    h.get(a, 7, 7.1, 404)
    h.page("d2", 0, "desc", None, [b], None, 8, 8.1)
    results.append(expect("a clean history", h, {}))

    h = History()
    a = h.post(0, 0.05)
    h.get(a, 1, 1.01, 404)
    results.append(expect("404 by id after the 201", h, {"lost": 1}))

    h = History()
    a = h.post(0, 0.05)
    h.delete_all(0.5, 0.7)
    h.get(a, 1, 1.01, 404)
    h.get(a, 0.6, 0.61, 200)  # during the DELETE all: either
    results.append(expect("404 after a DELETE all that began after the 201", h, {}))

    h = History()
    a = h.post(0, 0.05)
    h.delete_all(0.5, 0.7)
    h.get(a, 0.8, 0.81, 200)
    results.append(expect("served after a DELETE all answered", h, {"deleted yet served": 1}))

    h = History()
    a = h.post(0, 0.05)
    h.delete(a, 1, 1.01, 204)
    h.page("d", 0, "desc", None, [a], None, 2, 2.1)
    results.append(expect("listed after its DELETE answered 204", h, {"deleted yet served": 1}))

    h = History()
    a = h.post(0, 0.05)
    h.delete(a, 1, 1.01, 503)
    h.get(a, 2, 2.01, 404)
    h.get(a, 3, 3.01, 200)
    results.append(expect("a DELETE that failed: gone, then back", h, {"deleted yet served": 1}))

    h = History()
    a = h.post(0, 0.05)
    h.delete(a, 1, 1.01, 404)
    results.append(expect("DELETE by id 404 after the 201", h, {"lost": 1}))

    h = History()
    a = h.post(0, 0.05)
    b = h.post(0.1, 0.15)
    h.page("s", 0, "asc", None, [a], None, 5, 5.1)
    results.append(expect("a settled message missing from an oldest-first page", h, {"lost": 1}))

    h = History()
    a = h.post(0, 0.05)
    b = h.post(4.5, 4.55)
    h.page("s", 0, "asc", None, [a], None, 5, 5.1)
    results.append(expect("an unsettled message missing from an oldest-first page", h, {}))

    h = History()
    a = h.post(0, 0.05)
    b = h.post(4.5, 4.55)
    h.page("s", 0, "asc", None, [a, b], None, 5, 5.1)
    results.append(expect("an unsettled message listed oldest first", h, {"out of order": 1}))

    h = History()
    a = h.post(0, 0.05)
    b = h.post(1, 1.05)
    c = h.post(2, 2.05)
    h.page("s", 0, "asc", None, [a, c], c, 5, 5.1)
    results.append(expect("a message skipped inside a page's range", h, {"lost": 1}))

    h = History()
    a = h.post(0, 0.05)
    b = h.post(1, 1.05)
    h.page("d", 0, "desc", None, [a], None, 3, 3.1)
    results.append(expect("missing from a newest-first page 2 s after its 201", h, {"lost": 1}))

    h = History()
    a = h.post(0, 0.05)
    b = h.post(2.5, 2.55)
    h.page("d", 0, "desc", None, [a], None, 3, 3.1)
    results.append(expect("missing from a newest-first page 0.45 s after its 201", h, {}))

    h = History()
    a = h.post(0, 0.05)
    b = h.post(1, 1.05)
    h.page("d", 0, "desc", None, [a, b], None, 3, 3.1)
    results.append(expect("newest first, in the wrong order (in the page and in its stream)", h,
                          {"out of order": 2}))

    h = History()
    a = h.post(0, 0.05)
    b = h.post(1, 1.05)
    h.page("s", 0, "asc", None, [a], a, 5, 5.1)
    h.page("s", 1, "asc", a, [a, b], None, 6, 6.1)
    results.append(expect("an id twice in a stream", h, {"out of order": 2}))

    h = History()
    a = h.post(0, 0.05)
    r = h.post(1, 1.05, status=503)
    h.page("d", 0, "desc", None, [r, a], None, 3, 3.1)
    results.append(expect("a POST answered 503, listed afterwards", h, {"refused yet stored": 1}))

    h = History()
    a = h.post(0, 0.05)
    h.page("d", 0, "desc", None, [a], None, 3, 3.1,
           tamper=lambda d: d[:-1] + (b"y" if d[-1:] != b"y" else b"z"))
    h.get(a, 4, 4.1, 200, body=b"SOAK1 other 0 " + b"0" * 64 + b"\n")
    results.append(expect("torn bodies, listed and by id", h, {"torn": 2}))

    h = History()
    h.ledger.invalid_done("get-invalid", answer(0, 1, 500, b"{}"))
    h.ledger.invalid_done("get-invalid", answer(0, 1, 200, b"{}"))
    results.append(expect("a 500 and a status the contract does not allow", h,
                          {"5xx other than 503/507": 1, "status not allowed": 1}))

    print("all checks can fail" if all(results) else "SELF-TEST FAILED")
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
