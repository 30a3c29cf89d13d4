"""The soak's actors: one thread per node, plus the schedule.

* **poster** (a post node): POSTs of varied sizes (40 B to 256 KiB, the largest allowed) and
  content types (text, control characters, JSON, HTML, binary, no Content-Type), now and then an
  invalid one (empty, one byte too large, a Content-Type that is not one media type);
* **reader** (a get node): GET by id of recent and older acknowledged messages (deleted ones
  too), of ids nobody posted (in the past and the near future: the client then caches "no such
  name" for directories that do not exist yet) and of invalid ids; newest-first pages (first
  pages, sometimes followed by `next` a few pages, now and then to the end), oldest-first pages
  from the start, invalid queries;
* **follower** (a get node): one oldest-first stream for the whole run, following `next`, and
  on the last page asking again after its last id;
* **deleter** (a delete node): DELETE by id of acknowledged messages (recent and older), again
  of deleted ones, of unknown and invalid ids; a DELETE that answered 5xx is tried again later;
  DELETE all when the schedule says so;
* **scheduler**: the EventBridge scheduled event to a delete node every 10-30 s (one bounded
  reclaiming run), and the DELETE all schedule.

Every answer goes to the Ledger; the actors keep only what they need to choose what to ask.
"""

import collections
import random
import threading
import time

from . import bodies
from .cluster import (delete_all_event, delete_event, get_event, list_event, now_ns, post_event,
                      raw_list_event, scheduled_event, uuid7_at)


class State:
    """What the actors know: acknowledged ids, which are believed live, recent deletions."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = []                 # ids in order of acknowledgement
        self.acked_at = {}              # id -> wall ns of the 201
        self.live = []                  # believed live (not deleted by us, not before a DELETE all)
        self.live_index = {}
        self.deleted = collections.deque(maxlen=500)
        self.retry = collections.deque()
        self.next_token = 0

    def token(self, tag):
        with self.lock:
            self.next_token += 1
            return f"{tag}-{self.next_token:07d}"

    def add(self, mid, t1):
        with self.lock:
            self.acked.append(mid)
            self.acked_at[mid] = t1
            self.live_index[mid] = len(self.live)
            self.live.append(mid)

    def _drop(self, mid):
        i = self.live_index.pop(mid, None)
        if i is None:
            return False
        last = self.live.pop()
        if last != mid:
            self.live[i] = last
            self.live_index[last] = i
        return True

    def take_live(self, rng, recent):
        """Removes and returns a live id (one of the 50 newest if `recent`), or None."""
        with self.lock:
            if not self.live:
                return None
            if recent:
                for mid in reversed(self.acked[-50:]):
                    if mid in self.live_index and rng.random() < 0.5:
                        self._drop(mid)
                        return mid
            mid = self.live[rng.randrange(len(self.live))]
            self._drop(mid)
            return mid

    def delete_all_began(self, t0):
        """Everything acknowledged before `t0` is no longer live."""
        with self.lock:
            for mid in [m for m in self.live if self.acked_at[m] < t0]:
                self._drop(mid)

    def pick_acked(self, rng):
        with self.lock:
            if not self.acked:
                return None
            if rng.random() < 0.7:
                return rng.choice(self.acked[-300:])
            return rng.choice(self.acked)

    def pick_deleted(self, rng):
        with self.lock:
            return rng.choice(self.deleted) if self.deleted else None


class Workload:
    def __init__(self, cluster, ledger, seed, tag, post_gap=0.2, delete_gap=0.7,
                 delete_all_every=(90, 150), reclaim_every=(10, 30)):
        self.cluster, self.ledger, self.tag = cluster, ledger, tag
        self.state = State()
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.threads = []
        self.post_gap, self.delete_gap = post_gap, delete_gap
        self.delete_all_every, self.reclaim_every = delete_all_every, reclaim_every
        self.delete_all_due = threading.Event()
        self.errors = []  # exceptions in actors (a bug in the soak itself)

    def _spawn(self, name, target, *args):
        rng = random.Random(self.rng.random())

        def run():
            try:
                target(rng, *args)
            except Exception as e:  # noqa: BLE001 - reported, and the run is marked broken
                import traceback
                self.errors.append(f"{name}: {e!r}\n{traceback.format_exc()}")
                self.stop.set()

        thread = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def start(self, posters, readers, followers, deleters):
        for node in posters:
            self._spawn(f"poster {node.name}", self.poster, node)
        for node in readers:
            self._spawn(f"reader {node.name}", self.reader, node)
        for node in followers:
            self._spawn(f"follower {node.name}", self.follower, node)
        for node in deleters:
            self._spawn(f"deleter {node.name}", self.deleter, node)
        self._spawn("scheduler", self.scheduler, deleters)

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _pause(self, rng, mean):
        self.stop.wait(rng.expovariate(1 / mean))

    # ---------------------------------------------------------------------------------------

    def poster(self, rng, node):
        while not self.stop.is_set():
            roll = rng.random()
            if roll < 0.01:
                self.ledger.invalid_done("post-empty", node.invoke(post_event(b"", "text/plain")))
            elif roll < 0.02:
                big = bodies.make(self.state.token(self.tag), rng, "octets", bodies.MAX_BYTES)
                self.ledger.invalid_done("post-too-large", node.invoke(
                    post_event(big.data + b"!", "application/octet-stream")))
            elif roll < 0.03:
                self.ledger.invalid_done("post-bad-type", node.invoke(
                    post_event(b"two types", "text/plain, text/html")))
            else:
                body = bodies.make(self.state.token(self.tag), rng)
                self.ledger.will_post(body)
                answer = node.invoke(post_event(body.data, body.content_type))
                mid = self.ledger.post_done(body, answer)
                if mid:
                    self.state.add(mid, answer.t1)
            self._pause(rng, self.post_gap)

    def reader(self, rng, node):
        streams = 0
        last_to_end = time.monotonic()
        while not self.stop.is_set():
            roll = rng.random()
            if roll < 0.25:
                mid = self.state.pick_acked(rng)
                if mid:
                    self.ledger.read_done(mid, node.invoke(get_event(mid)), "acked")
            elif roll < 0.32:
                mid = self.state.pick_deleted(rng)
                if mid:
                    self.ledger.read_done(mid, node.invoke(get_event(mid)), "deleted")
            elif roll < 0.40:
                # Ids nobody posted: of the last minute, or of the next few seconds (look-ahead).
                offset = rng.uniform(-60_000, -1_000) if rng.random() < 0.4 else \
                    rng.uniform(0, 5_000)
                mid = uuid7_at(int(time.time() * 1000 + offset))
                self.ledger.read_done(mid, node.invoke(get_event(mid)), "unknown")
            elif roll < 0.41:
                bad = rng.choice(["not-a-uuid", "01a23ce1-e593-4465-b1f7-5440bea78ef8",
                                  "01A23CE1-E593-7465-B1F7-5440BEA78EF8"])
                self.ledger.invalid_done("get-invalid", node.invoke(get_event(bad)))
            elif roll < 0.42:
                query = rng.choice(["limit=0", "limit=1001", "order=sideways", "after=xyz",
                                    "limit=ten"])
                self.ledger.invalid_done("list-invalid", node.invoke(raw_list_event(query)))
            elif roll < 0.85:
                streams += 1
                to_end = time.monotonic() - last_to_end > 40
                if to_end:
                    last_to_end = time.monotonic()
                pages = 10_000 if to_end else (1 if rng.random() < 0.7 else rng.randint(2, 4))
                limit = 100 if to_end else rng.choice([5, 10, 20, 50])
                self.follow(node, f"{node.name}-desc-{streams}", "desc", limit, pages)
            else:
                streams += 1
                self.follow(node, f"{node.name}-asc-{streams}", "asc", rng.choice([10, 50]),
                            rng.randint(1, 3))
            self._pause(rng, 0.05)

    def follow(self, node, stream, order, limit, pages, after=None):
        """Follows `next` from `after` for up to `pages` pages (a page that fails is asked again,
        up to 3 times); returns the last cursor."""
        seq = failures = 0
        while seq < pages and not self.stop.is_set():
            got = self.ledger.page_done(stream, seq, order, after, limit,
                                        node.invoke(list_event(order, limit, after)))
            if got is None:
                failures += 1
                if failures > 3:
                    break
                continue
            seq += 1
            ids, next_id = got
            if next_id is None:
                break
            after = next_id
        return after

    def follower(self, rng, node):
        after = None
        seq = 0
        stream = f"{node.name}-follow"
        while not self.stop.is_set():
            limit = rng.choice([20, 50, 100])
            got = self.ledger.page_done(stream, seq, "asc", after, limit,
                                        node.invoke(list_event("asc", limit, after)))
            if got is None:
                self._pause(rng, 0.1)
                continue
            seq += 1
            ids, next_id = got
            if next_id is not None:
                after = next_id
                continue
            if ids:
                after = ids[-1]
            self.stop.wait(rng.uniform(0.1, 0.6))

    def deleter(self, rng, node):
        while not self.stop.is_set():
            if self.delete_all_due.is_set():
                self.delete_all_due.clear()
                answer = node.invoke(delete_all_event())
                self.state.delete_all_began(answer.t0)
                self.ledger.delete_all_done(answer)
                continue
            roll = rng.random()
            if roll < 0.08 and self.state.retry:
                mid = self.state.retry.popleft()
                self._delete(node, mid, "retry")
            elif roll < 0.13:
                mid = self.state.pick_deleted(rng)
                if mid:
                    self._delete(node, mid, "again")
            elif roll < 0.18:
                mid = uuid7_at(int(time.time() * 1000 - rng.uniform(0, 30_000)))
                self.ledger.delete_done(mid, node.invoke(delete_event(mid)), "unknown")
            elif roll < 0.20:
                self.ledger.invalid_done("delete-invalid", node.invoke(delete_event("nope")))
            else:
                mid = self.state.take_live(rng, recent=rng.random() < 0.5)
                if mid:
                    self._delete(node, mid, "live")
            self._pause(rng, self.delete_gap)

    def _delete(self, node, mid, intent):
        answer = node.invoke(delete_event(mid))
        self.ledger.delete_done(mid, answer, intent)
        if answer.status in (204, 404):
            with self.state.lock:
                self.state.deleted.append(mid)
        elif intent != "again":
            self.state.retry.append(mid)

    def scheduler(self, rng, deleters):
        next_reclaim = time.monotonic() + rng.uniform(*self.reclaim_every)
        next_delete_all = time.monotonic() + rng.uniform(*self.delete_all_every)
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_delete_all:
                self.delete_all_due.set()
                next_delete_all = now + rng.uniform(*self.delete_all_every)
            if now >= next_reclaim:
                node = rng.choice(deleters)
                self.ledger.reclaim_done(node.invoke(scheduled_event()))
                next_reclaim = time.monotonic() + rng.uniform(*self.reclaim_every)
            self.stop.wait(0.2)
