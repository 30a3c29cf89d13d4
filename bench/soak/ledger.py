"""Everything the soak asked and was answered, and the checks, run over it afterwards.

Every request is recorded with the wall-clock interval [t0, t1] that contains the function's
work (t0 before the event is handed out, t1 after the response arrived), so "began after" and
"ended before" are certain. The checks (``evaluate``) use only what the contract promises:

* A message is **acknowledged** when its POST answered 201. It **may be gone** from the start of
  the first DELETE of its id (whatever that answered), or of the first DELETE all that had not
  finished when the POST began (one that answers 5xx may or may not have happened; one that ran
  during the POST may have taken it: "wholly present or wholly gone"). It **must be gone** from
  the end of a DELETE of its id that answered 204 or 404, or of a DELETE all that began after its
  201 and answered 204.
* **Lost**: an acknowledged message that must still exist (the request began after its 201 and
  ended before it may be gone) answered 404 by id (GET or DELETE), or missing from a page that
  had to list it: oldest first, a page lists every message in its range (after its cursor, up to
  its `next`, or up to the settle horizon on the last page: ids older than SETTLE before the page
  began); newest first, every message in its range acknowledged more than 1 s before the page
  began (the contract's visibility bound).
* **Deleted yet served**: read (200), listed, or found by a DELETE (204) by a request that began
  after the message must be gone; or served again after a request that began after its 201 was
  answered that it does not exist.
* **Refused yet stored**: a POST answered other than 201 (503, 507, 4xx) whose body was listed
  by a page that began after that answer (a page during the POST is counted apart).
* **Torn**: a body (by id or listed) that does not check (its own header and checksum, the SHA-256
  and Content-Type posted under its token), a 201 or listing whose id, size, type or createdAt is
  inconsistent, a message read by id that carries another message's token.
* **Duplicated**: a token stored under two ids, an id acknowledged twice.
* **Out of order**: ids not strictly in the page's order, at or before its cursor, `next` not the
  page's last id, an id twice in one stream of pages followed by `next`, or (oldest first) an id
  newer than the settle horizon.
* **Statuses**: every answer counted by function, request, status and error code; 5xx other than
  503/507 and answers that never came (timeouts, invocation errors: 502/504 at API Gateway) are
  failures; a status the contract does not allow for that request is a failure.
"""

import bisect
import collections
import threading

from . import bodies
from .cluster import id_ms

SETTLE_MS = 1250          # shared::store::SETTLE
VISIBILITY_NS = 1_000_000_000  # the contract: in every newest-first first page within 1 s
NS = 1_000_000_000

# What the contract allows, by request (503 and 507 are allowed for every request that touches
# storage).
ALLOWED = {
    "post": {201, 503, 507},
    "post-empty": {400},
    "post-too-large": {413},
    "post-bad-type": {400},
    "get": {200, 404, 503, 507},
    "get-unknown": {404, 503, 507},
    "get-invalid": {400},
    "list": {200, 503, 507},
    "list-invalid": {400},
    "delete": {204, 404, 503, 507},
    "delete-unknown": {404, 503, 507},
    "delete-invalid": {400},
    "delete-all": {204, 503, 507},
}
FUNCTION_OF = {"post": "post-message", "get": "get-messages", "list": "get-messages",
               "delete": "delete-messages", "reclaim": "delete-messages"}


class Rec:
    """One request and its answer (attributes set by the Ledger)."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.phases = [(0, "faults")]  # (from wall ns, phase name)
        self.posted = {}          # token -> bodies.Body
        self.posts = []           # Rec: token, node, t0, t1, status, code, id, problems
        self.reads = []           # Rec: id, node, t0, t1, status, token, problem, intent
        self.pages = []           # Rec: stream, seq, node, order, after, limit, t0, t1, status,
        #                           ids, tokens, next, problems
        self.deletes = []         # Rec: id, node, t0, t1, status, intent
        self.delete_alls = []     # Rec: node, t0, t1, status
        self.reclaims = []        # Rec: node, t0, t1, result, error, phase
        self.statuses = collections.Counter()   # (phase, function, request, status, code)
        self.failures = []        # Rec: phase, what, node, t0, detail (5xx-other, no answer, ...)

    # ---------------------------------------------------------------------------------------
    # phases

    def begin_phase(self, name, at_ns):
        with self.lock:
            self.phases.append((at_ns, name))

    def phase(self, t_ns):
        current = self.phases[0][1]
        for start, name in self.phases:
            if t_ns >= start:
                current = name
        return current

    # ---------------------------------------------------------------------------------------
    # answers

    def _count(self, request, answer):
        phase = self.phase(answer.t0)
        function = FUNCTION_OF[request.split("-")[0]]
        status = answer.status if answer.status is not None else "no answer"
        self.statuses[(phase, function, request, status, answer.error_code() or "")] += 1
        allowed = ALLOWED.get(request, set())
        if answer.status is None:
            self.failures.append(Rec(phase=phase, what="no answer", request=request,
                                     node=answer.node, t0=answer.t0, detail=answer.error))
        elif answer.status >= 500 and answer.status not in (503, 507):
            self.failures.append(Rec(phase=phase, what="5xx other than 503/507",
                                     request=request, node=answer.node, t0=answer.t0,
                                     detail=f"{answer.status} {answer.body[:300]!r}"))
        elif answer.status not in allowed:
            self.failures.append(Rec(phase=phase, what="status the contract does not allow",
                                     request=request, node=answer.node, t0=answer.t0,
                                     detail=f"{answer.status} {answer.body[:300]!r}"))

    def will_post(self, body):
        with self.lock:
            self.posted[body.token] = body

    def post_done(self, body, answer):
        """Records a POST of `body`; returns the id when it answered 201."""
        problems = []
        message_id = None
        if answer.status == 201:
            doc = answer.json() or {}
            message_id = doc.get("id")
            if not isinstance(message_id, str) or len(message_id) != 36:
                problems.append(f"201 without an id: {answer.body[:200]!r}")
                message_id = None
            else:
                if answer.headers.get("location") != f"/messages/{message_id}":
                    problems.append(f"Location {answer.headers.get('location')!r}")
                if doc.get("size") != len(body.data):
                    problems.append(f"size {doc.get('size')} for {len(body.data)} bytes")
                if doc.get("contentType") != body.expected_type:
                    problems.append(f"contentType {doc.get('contentType')!r}")
                if not _created_at_matches(message_id, doc.get("createdAt")):
                    problems.append(f"createdAt {doc.get('createdAt')!r} for {message_id}")
        with self.lock:
            self._count("post", answer)
            self.posts.append(Rec(token=body.token, node=answer.node, t0=answer.t0, t1=answer.t1,
                                  status=answer.status, code=answer.error_code(), id=message_id,
                                  size=len(body.data), kind=body.kind, problems=problems,
                                  ms=answer.ms, request_id=answer.request_id))
        return message_id

    def read_done(self, message_id, answer, intent):
        """Records a GET by id; `intent` says what was read ("acked", "unknown", ...)."""
        token = problem = None
        if answer.status == 200:
            token, problem = bodies.check(answer.body, answer.headers.get("content-type"),
                                          self.posted)
        with self.lock:
            self._count("get-unknown" if intent == "unknown" else "get", answer)
            self.reads.append(Rec(id=message_id, node=answer.node, t0=answer.t0, t1=answer.t1,
                                  status=answer.status, token=token, problem=problem,
                                  intent=intent, ms=answer.ms, request_id=answer.request_id))

    def page_done(self, stream, seq, order, after, limit, answer):
        """Records a page; returns (ids, next) when it answered 200, else None."""
        ids, tokens, problems, next_id = [], [], [], None
        ok = answer.status == 200
        if ok:
            doc = answer.json()
            if not isinstance(doc, dict) or not isinstance(doc.get("messages"), list):
                problems.append(("", "not a page: " + repr(answer.body[:200])))
                ok = False
            else:
                next_id = doc.get("next")
                for entry in doc["messages"]:
                    mid = entry.get("id")
                    ids.append(mid)
                    data = bodies.listed_bytes(entry)
                    if data is None:
                        tokens.append(None)
                        problems.append((mid, f"body not decodable ({entry.get('bodyEncoding')})"))
                        continue
                    token, problem = bodies.check(data, entry.get("contentType"), self.posted)
                    tokens.append(token)
                    if problem:
                        problems.append((mid, problem))
                    elif entry.get("size") != len(data):
                        problems.append((mid, f"size {entry.get('size')} for {len(data)} bytes"))
                    elif not _created_at_matches(mid, entry.get("createdAt")):
                        problems.append((mid, f"createdAt {entry.get('createdAt')!r}"))
        with self.lock:
            self._count("list", answer)
            self.pages.append(Rec(stream=stream, seq=seq, node=answer.node, order=order,
                                  after=after, limit=limit, t0=answer.t0, t1=answer.t1,
                                  status=answer.status, ids=ids, tokens=tokens, next=next_id,
                                  problems=problems, ms=answer.ms, request_id=answer.request_id))
        return (ids, next_id) if ok else None

    def delete_done(self, message_id, answer, intent):
        with self.lock:
            self._count("delete-unknown" if intent == "unknown" else "delete", answer)
            self.deletes.append(Rec(id=message_id, node=answer.node, t0=answer.t0, t1=answer.t1,
                                    status=answer.status, intent=intent, ms=answer.ms,
                                    request_id=answer.request_id))

    def delete_all_done(self, answer):
        with self.lock:
            self._count("delete-all", answer)
            self.delete_alls.append(Rec(node=answer.node, t0=answer.t0, t1=answer.t1,
                                        status=answer.status, ms=answer.ms,
                                        request_id=answer.request_id))

    def invalid_done(self, request, answer):
        with self.lock:
            self._count(request, answer)

    def reclaim_done(self, answer):
        raw = answer.raw if isinstance(answer.raw, dict) else {}
        result = raw.get("reclaimed")
        error = answer.error or raw.get("error") or (None if result else f"answer {raw!r}")
        with self.lock:
            phase = self.phase(answer.t0)
            self.statuses[(phase, "delete-messages", "reclaim", "error" if error else "ok",
                           "")] += 1
            self.reclaims.append(Rec(node=answer.node, t0=answer.t0, t1=answer.t1,
                                     result=result, error=error, phase=phase, ms=answer.ms))
        return result, error


def _created_at_matches(message_id, created_at):
    """createdAt is the id's millisecond as RFC 3339 UTC with milliseconds."""
    import datetime
    try:
        ms = id_ms(message_id)
    except (ValueError, TypeError):
        return False
    expected = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return created_at == expected.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# --------------------------------------------------------------------------------------------
# the checks


class Findings:
    """Violations by check, each with its evidence; and what is only counted."""

    CHECKS = ["lost", "deleted yet served", "refused yet stored", "torn", "duplicated",
              "out of order", "5xx other than 503/507", "status not allowed"]

    def __init__(self, ledger):
        self.ledger = ledger
        self.items = collections.defaultdict(list)   # check -> [(phase, detail dict)]
        self.counted = collections.Counter()          # informational counts

    def add(self, check, t0, **detail):
        self.items[check].append((self.ledger.phase(t0), detail))

    def count(self, check, phase=None):
        return sum(1 for p, _ in self.items[check] if phase is None or p == phase)


def evaluate(ledger):
    """Runs every check over the ledger; returns Findings."""
    with ledger.lock:
        posts = list(ledger.posts)
        reads = list(ledger.reads)
        pages = list(ledger.pages)
        deletes = list(ledger.deletes)
        delete_alls = list(ledger.delete_alls)
        failures = list(ledger.failures)
    f = Findings(ledger)

    for rec in failures:
        check = "status not allowed" if rec.what.startswith("status") else "5xx other than 503/507"
        f.add(check, rec.t0, what=rec.what, request=rec.request, node=rec.node,
              detail=rec.detail)

    # Acknowledged messages, and which POST each token belongs to.
    acked = {}
    by_token = {}
    for p in posts:
        by_token[p.token] = p
        for problem in p.problems:
            f.add("torn", p.t0, where="201 answer", id=p.id, token=p.token, problem=problem)
        if p.status == 201 and p.id:
            if p.id in acked:
                f.add("duplicated", p.t0, id=p.id, problem="one id acknowledged to two POSTs",
                      tokens=[acked[p.id].token, p.token])
            acked[p.id] = p
    acked_ids = sorted(acked)

    # When each acknowledged message may be gone, and must be gone.
    deletes_of = collections.defaultdict(list)
    for d in deletes:
        deletes_of[d.id].append(d)
    maybe_gone, must_gone = {}, {}
    for mid, p in acked.items():
        may = [d.t0 for d in deletes_of.get(mid, ())]
        may += [a.t0 for a in delete_alls if a.t1 >= p.t0]
        must = [d.t1 for d in deletes_of.get(mid, ()) if d.status in (204, 404)]
        must += [a.t1 for a in delete_alls if a.t0 > p.t1 and a.status == 204]
        maybe_gone[mid] = min(may, default=float("inf"))
        must_gone[mid] = min(must, default=float("inf"))

    def may_be_gone_by(mid, t, excluding=None):
        if excluding is None:
            return maybe_gone[mid] <= t
        p = acked[mid]
        may = [d.t0 for d in deletes_of.get(mid, ()) if d is not excluding]
        may += [a.t0 for a in delete_alls if a.t1 >= p.t0]
        return min(may, default=float("inf")) <= t

    # Observations per message, for "served again after it was seen gone".
    seen_absent = {}   # id -> earliest t1 of a trusted "does not exist"
    seen_present = collections.defaultdict(list)  # id -> [(t0, what)]

    def absent(mid, t0, t1):
        if mid in acked and t0 >= acked[mid].t1:
            seen_absent[mid] = min(seen_absent.get(mid, float("inf")), t1)

    # Reads by id.
    for r in reads:
        if r.status == 200 and r.problem:
            f.add("torn", r.t0, where=f"GET by id on {r.node}", id=r.id, problem=r.problem,
                  node=r.node, request_id=r.request_id)
        if r.id not in acked:
            if r.status == 200 and r.intent == "unknown":
                f.add("deleted yet served", r.t0, id=r.id, node=r.node,
                      problem="an id nobody posted answered 200")
            continue
        p = acked[r.id]
        if r.status == 200:
            if not r.problem and r.token != p.token:
                f.add("torn", r.t0, id=r.id, node=r.node,
                      problem=f"carries token {r.token}, posted {p.token}")
            if r.t0 > must_gone[r.id]:
                f.add("deleted yet served", r.t0, id=r.id, node=r.node, how="GET by id 200",
                      after_gone_s=(r.t0 - must_gone[r.id]) / NS, request_id=r.request_id)
            seen_present[r.id].append((r.t0, f"GET by id on {r.node}"))
        elif r.status == 404:
            if r.t0 >= p.t1 and not may_be_gone_by(r.id, r.t1):
                f.add("lost", r.t0, id=r.id, node=r.node, how="GET by id 404",
                      after_201_s=(r.t0 - p.t1) / NS, request_id=r.request_id)
            absent(r.id, r.t0, r.t1)

    # DELETEs by id.
    for d in deletes:
        if d.id not in acked:
            if d.status == 204 and d.intent == "unknown":
                f.add("deleted yet served", d.t0, id=d.id, node=d.node,
                      problem="DELETE of an id nobody posted answered 204")
            continue
        p = acked[d.id]
        if d.status == 204 and d.t0 > must_gone[d.id]:
            f.add("deleted yet served", d.t0, id=d.id, node=d.node,
                  how="DELETE by id found it (204)", after_gone_s=(d.t0 - must_gone[d.id]) / NS,
                  request_id=d.request_id)
        if d.status == 404 and d.t0 >= p.t1 and not may_be_gone_by(d.id, d.t1, excluding=d):
            f.add("lost", d.t0, id=d.id, node=d.node, how="DELETE by id 404",
                  after_201_s=(d.t0 - p.t1) / NS, request_id=d.request_id)
        if d.status == 404:
            absent(d.id, d.t0, d.t1)
        if d.status == 204:
            seen_present[d.id].append((d.t0, f"DELETE by id 204 on {d.node}"))

    # Pages.
    streams = collections.defaultdict(list)
    refused_in_flight = 0
    for pg in pages:
        if pg.status != 200:
            continue
        streams[pg.stream].append(pg)
        where = f"{pg.order} page on {pg.node} ({pg.stream} #{pg.seq}, {pg.request_id})"
        for mid, problem in pg.problems:
            f.add("torn", pg.t0, where=where, id=mid, problem=problem)
        # Order within the page, and against its cursor.
        asc = pg.order == "asc"
        previous = pg.after
        for mid in pg.ids:
            if previous is not None and (mid <= previous if asc else mid >= previous):
                f.add("out of order", pg.t0, where=where, id=mid, previous=previous,
                      problem="not strictly after the cursor or the previous id")
            previous = mid
        if pg.next is not None and (not pg.ids or pg.next != pg.ids[-1]):
            f.add("out of order", pg.t0, where=where, next=pg.next,
                  problem="next is not the page's last id" if pg.ids else "an empty page has next")
        if asc:
            horizon_ms = pg.t1 // 1_000_000 - SETTLE_MS
            for mid in pg.ids:
                if id_ms(mid) >= horizon_ms + 2:
                    f.add("out of order", pg.t0, where=where, id=mid,
                          problem="an oldest-first page listed an id newer than the horizon",
                          ms_past_horizon=id_ms(mid) - horizon_ms)
        # What it listed.
        for mid, token in zip(pg.ids, pg.tokens):
            p = by_token.get(token)
            if p is not None and p.status is None:
                f.counted["POST with no answer, listed"] += 1
                continue
            if p is not None and p.status != 201:
                if pg.t0 > p.t1:
                    f.add("refused yet stored", pg.t0, where=where, id=mid, token=token,
                          post_status=p.status, post_node=p.node,
                          post_request_id=p.request_id, listed_after_s=(pg.t0 - p.t1) / NS)
                else:
                    refused_in_flight += 1
                continue
            if p is not None and p.status == 201 and p.id and p.id != mid:
                f.add("duplicated", pg.t0, where=where, id=mid, token=token,
                      problem=f"token acknowledged as {p.id}")
            if mid in acked:
                if pg.t0 > must_gone[mid]:
                    f.add("deleted yet served", pg.t0, where=where, id=mid, how="listed",
                          after_gone_s=(pg.t0 - must_gone[mid]) / NS)
                seen_present[mid].append((pg.t0, where))
        # What it had to list.
        listed = set(pg.ids)
        if asc:
            lo = bisect.bisect_right(acked_ids, pg.after) if pg.after else 0
            hi = (bisect.bisect_right(acked_ids, pg.next) if pg.next is not None
                  else len(acked_ids))
            settled_ms = pg.t0 // 1_000_000 - SETTLE_MS - 2
            for mid in acked_ids[lo:hi]:
                if mid in listed or (pg.next is None and id_ms(mid) >= settled_ms):
                    continue
                absent(mid, pg.t0, pg.t1)
                if maybe_gone[mid] <= pg.t1:
                    continue
                f.add("lost", pg.t0, where=where, id=mid, how="missing from an oldest-first page",
                      settled_s=(pg.t0 // 1_000_000 - SETTLE_MS - id_ms(mid)) / 1000)
        else:
            hi = bisect.bisect_left(acked_ids, pg.after) if pg.after else len(acked_ids)
            lo = bisect.bisect_left(acked_ids, pg.next) if pg.next is not None else 0
            for mid in acked_ids[lo:hi]:
                p = acked[mid]
                if mid in listed or p.t1 >= pg.t0 - VISIBILITY_NS:
                    continue
                absent(mid, pg.t0, pg.t1)
                if maybe_gone[mid] <= pg.t1:
                    continue
                f.add("lost", pg.t0, where=where, id=mid, how="missing from a newest-first page",
                      acked_before_s=(pg.t0 - p.t1) / NS)
    f.counted["refused POST listed while it ran"] = refused_in_flight

    # Streams followed by `next`: no id twice, strictly in order across pages.
    for name, stream in streams.items():
        stream.sort(key=lambda pg: pg.seq)
        seen = set()
        last = None
        for pg in stream:
            asc = pg.order == "asc"
            for mid in pg.ids:
                if mid in seen:
                    f.add("out of order", pg.t0, where=f"stream {name} #{pg.seq}", id=mid,
                          problem="listed twice in one stream")
                elif last is not None and (mid <= last if asc else mid >= last):
                    f.add("out of order", pg.t0, where=f"stream {name} #{pg.seq}", id=mid,
                          previous=last, problem="not after the stream's previous id")
                seen.add(mid)
                last = mid

    # Served again after it was seen gone.
    for mid, when_absent in seen_absent.items():
        for t0, where in seen_present.get(mid, ()):
            if t0 > when_absent and not t0 > must_gone[mid]:  # the latter counted already
                f.add("deleted yet served", t0, id=mid, where=where,
                      how="served again after an answer that it does not exist",
                      after_s=(t0 - when_absent) / NS)

    # Informational counts.
    f.counted["acknowledged"] = len(acked)
    f.counted["pages checked"] = sum(1 for pg in pages if pg.status == 200)
    f.counted["reads checked"] = sum(1 for r in reads if r.status in (200, 404))
    f.counted["streams"] = len(streams)
    return f, acked, must_gone, maybe_gone


def history(ledger, mid=None, token=None, limit=60):
    """Every recorded request about one message (by id, or by its token for a POST that got no
    id), in time order, with times relative to its POST's answer: "the sequence of answers"."""
    post = next((p for p in ledger.posts if (token and p.token == token) or (mid and p.id == mid)),
                None)
    if post and not mid:
        mid = post.id
    origin = post.t1 if post else 0
    events = []
    if post:
        events.append((post.t0, f"POST on {post.node} ({post.request_id}): {post.status} "
                                f"{post.code or ''} id {post.id}, asked at "
                                f"{(post.t0 - origin) / NS:+.3f} s"))
    for r in ledger.reads:
        if r.id == mid:
            events.append((r.t0, f"GET by id on {r.node} ({r.request_id}): {r.status}"))
    for d in ledger.deletes:
        if d.id == mid:
            events.append((d.t0, f"DELETE by id on {d.node} ({d.request_id}): {d.status}"))
    for pg in ledger.pages:
        if pg.status == 200 and (mid in pg.ids or (token and token in pg.tokens)):
            listed = mid if mid in pg.ids else pg.ids[pg.tokens.index(token)]
            events.append((pg.t0, f"listed as {listed} by a {pg.order} page on {pg.node} "
                                  f"({pg.stream} #{pg.seq}, {pg.request_id})"))
    if post:
        for a in ledger.delete_alls:
            if a.t1 >= post.t0:
                events.append((a.t0, f"DELETE all on {a.node} ({a.request_id}): {a.status}, "
                                     f"answered at {(a.t1 - origin) / NS:+.3f} s"))
    events.sort(key=lambda e: e[0])
    out = [f"{(t - origin) / NS:+9.3f} s  {text}" for t, text in events]
    if len(out) > limit:
        out = out[:limit // 2] + [f"... {len(out) - limit} more ..."] + out[-limit // 2:]
    return out
