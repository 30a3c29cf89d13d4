#!/usr/bin/env python3
"""Visibility lag across NFS clients: how long after a POST's 201 another instance sees it.

Several post instances and several get instances, each on its own client of one store (its own
mount of the EFS client model, `latfs --nfs-cache`, the default cache times of nfs(5):
acregmin 3, acregmax 60, acdirmin 30, acdirmax 60 s), release binaries through the Lambda
Runtime API (bench/lambdasim.py), at Lambda's CPU share of each function's deployed memory size
unless --no-cpu-share. For each message, from its 201 to:

  (a) by id:        the first GET /messages/{id} from each reader that answers 200;
  (b) newest first: the first GET /messages?order=desc&limit=N (no cursor) from each reader
                    that lists it;
  (c) oldest first: the first page of a follower (order=asc, following `next`, asking again
                    after its last id on the last page) that lists it.

A lag is the time from the 201 reaching the harness to the start of the first request that saw
the message (so a message seen by the first request after the 201 has the lag of starting that
request: milliseconds). Readers alternate (a) and (b) until both have seen it, in a random order
per message. Their caches are realistic: they have listed and read before, and half of them
("look-ahead" readers) also look up ids of the next seconds (and, now and then, of the next
mid-level directory's time) before each message, so their clients cache "no such name" for
directories that do not exist yet. Messages come one at a time, in bursts from every poster at
once, and after idle gaps long enough for cached attributes to age.

Targets (issue 15, the contract): (a) 0 s; (b) at most 1 s; (c) about the settle horizon
(1.25 s after the id's time), by design.

Writes bench/results/visibility.md and visibility.json. Needs root (FUSE, cgroups).
"""

import argparse
import json
import queue
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.common import pct  # noqa: E402
from soak import bodies  # noqa: E402
from soak.cluster import (Cluster, code_version, cpu_share_problem, get_event,  # noqa: E402
                          id_ms, latfs_problem, list_event, machine_load, now_ns,
                          other_benchmarks, post_event, uuid7_at)

RESULTS = Path(__file__).resolve().parent / "results"
SETTLE_S = 1.25
LEAF_MS, MID_MS = 1 << 8, 1 << 16


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


class Reader:
    """A get instance that, for each message handed to it, asks by id and newest first until it
    has seen it both ways."""

    def __init__(self, node, look_ahead, limit, timeout_s, rng):
        self.node, self.look_ahead, self.limit = node, look_ahead, limit
        self.timeout_ns = int(timeout_s * 1e9)
        self.rng = rng
        self.jobs = queue.Queue()
        self.results = []   # dicts: message, reader, kind, lag_s, requests, first_kind
        self.failures = []  # answers other than 200/404
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            job = self.jobs.get()
            if job is None:
                return
            kind, payload, done = job
            try:
                if kind == "look-ahead":
                    self.do_look_ahead(payload)
                elif kind == "warm":
                    self.warm(payload)
                else:
                    self.observe(payload)
            finally:
                done.release()

    def _get(self, event):
        answer = self.node.invoke(event)
        if answer.status not in (200, 404):
            self.failures.append({"reader": self.node.name, "status": answer.status,
                                  "error": answer.error, "body": answer.body[:200].decode(
                                      errors="replace")})
        return answer

    def do_look_ahead(self, far):
        """Looks up ids of the next 3 s, one per leaf directory (256 ms); with `far`, also ids
        in the next mid-level directory's time (65.5 s)."""
        now = int(time.time() * 1000)
        for ahead in range(0, 3000, LEAF_MS):
            self._get(get_event(uuid7_at(now + ahead)))
        if far:
            next_mid = (now // MID_MS + 1) * MID_MS
            for ahead in (0, 300, 2000):
                self._get(get_event(uuid7_at(next_mid + ahead)))

    def warm(self, ids):
        """Lists and reads as a reader that has been in use does."""
        for order in ("desc", "asc"):
            self._get(list_event(order, self.limit))
        for mid in ids:
            self._get(get_event(mid))

    def observe(self, messages):
        """`messages`: [(id, acked_ns)]. Alternates GET by id and a newest-first first page
        (which first: random per batch) until every message has been seen both ways."""
        pending = {(mid, kind) for mid, _ in messages for kind in ("id", "desc")}
        acked = dict(messages)
        requests = {key: 0 for key in pending}
        first = self.rng.choice(["id", "desc"])
        order = [first, "desc" if first == "id" else "id"]
        start = now_ns()
        turn = 0
        while pending and now_ns() - start < self.timeout_ns:
            kind = order[turn % 2]
            turn += 1
            wanted = [mid for mid, k in pending if k == kind]
            if not wanted:
                continue
            if kind == "id":
                mid = wanted[0]
                requests[(mid, "id")] += 1
                answer = self._get(get_event(mid))
                if answer.status == 200:
                    self._seen(mid, "id", answer.t0, acked[mid], requests, first, pending)
            else:
                for mid in wanted:
                    requests[(mid, "desc")] += 1
                answer = self._get(list_event("desc", self.limit))
                if answer.status == 200:
                    listed = {m["id"] for m in (answer.json() or {}).get("messages", [])}
                    for mid in wanted:
                        if mid in listed:
                            self._seen(mid, "desc", answer.t0, acked[mid], requests, first,
                                       pending)
        for mid, kind in pending:
            self.results.append({"message": mid, "reader": self.node.name, "kind": kind,
                                 "lag_s": None, "requests": requests[(mid, kind)],
                                 "first_kind": first, "look_ahead": self.look_ahead})

    def _seen(self, mid, kind, t0, acked_ns, requests, first, pending):
        pending.discard((mid, kind))
        self.results.append({"message": mid, "reader": self.node.name, "kind": kind,
                             "lag_s": max(0, t0 - acked_ns) / 1e9,
                             "requests": requests[(mid, kind)], "first_kind": first,
                             "look_ahead": self.look_ahead})


class Follower:
    """An oldest-first follower: follows `next`, and on the last page asks again after its last
    id every `poll` seconds; notes when each id first appeared."""

    def __init__(self, node, limit, poll):
        self.node, self.limit, self.poll = node, limit, poll
        self.first_seen = {}  # id -> t0 of the first page that listed it
        self.seen_twice = []
        self.failures = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        after = None
        while not self.stop.is_set():
            answer = self.node.invoke(list_event("asc", self.limit, after))
            if answer.status != 200:
                self.failures.append({"status": answer.status, "error": answer.error})
                self.stop.wait(self.poll)
                continue
            page = answer.json() or {}
            for m in page.get("messages", []):
                if m["id"] in self.first_seen:
                    self.seen_twice.append(m["id"])
                else:
                    self.first_seen[m["id"]] = answer.t0
            if page.get("next"):
                after = page["next"]
                continue
            if page.get("messages"):
                after = page["messages"][-1]["id"]
            self.stop.wait(self.poll)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="bench/visibility.py", description=__doc__.split("\n\n")[0] + " See the module's "
        "docstring and bench/README.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--messages", type=int, default=600, help="messages to measure")
    p.add_argument("--posters", type=int, default=3, help="post-message instances")
    p.add_argument("--readers", type=int, default=4,
                   help="get-messages instances reading by id and newest first (half of them "
                   "look ahead)")
    p.add_argument("--followers", type=int, default=2,
                   help="get-messages instances following oldest first")
    p.add_argument("--limit", type=int, default=20, help="the newest-first page's limit")
    p.add_argument("--poll", type=float, default=0.05,
                   help="seconds a follower waits after a last page")
    p.add_argument("--burst-rate", type=float, default=0.1,
                   help="share of steps where every poster posts at once")
    p.add_argument("--idle-rate", type=float, default=0.04,
                   help="share of steps followed by a long idle gap")
    p.add_argument("--idle", default="5-45", help="a long idle gap, seconds (a range)")
    p.add_argument("--gap", type=float, default=0.4, help="longest short gap between steps, s")
    p.add_argument("--timeout", type=float, default=90,
                   help="seconds a reader keeps trying before a message counts as never seen")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cache", default="",
                   help="extra latfs options for every client; default: nfs(5)'s cache times")
    p.add_argument("--no-cpu-share", action="store_true",
                   help="full CPU instead of Lambda's share of the deployed memory size")
    p.add_argument("--bin-dir", type=Path, default=None,
                   help="the binaries to run (python3 -m soak.build's output, from bench/); "
                   "default: the working tree's target/release, as the last build left it")
    p.add_argument("--work", type=Path, default=None, help="scratch directory")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--out", type=Path, default=RESULTS,
                   help="where visibility.md and visibility.json go")
    p.add_argument("--name", default="visibility", help="the results' file name stem")
    p.add_argument("--force", action="store_true",
                   help="start even if the main benchmark or a build is running")
    args = p.parse_args(argv)
    low, _, high = args.idle.partition("-")
    args.idle = (float(low), float(high or low))
    return args


def main(argv=None):
    args = parse_args(argv)
    problem = latfs_problem(args.bin_dir)
    if problem:
        sys.exit(f"cannot measure: {problem}")
    busy = other_benchmarks()
    if busy and not args.force:
        sys.exit("another benchmark or build is running (--force to start anyway):\n  "
                 + "\n  ".join(busy))
    cpu_problem = None if args.no_cpu_share else cpu_share_problem()
    if cpu_problem:
        log(f"NO CPU SHARE: {cpu_problem}; instances run at full CPU")
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="efs-visibility-"))
    config = {
        "command": " ".join(["bench/visibility.py", *(argv if argv is not None else sys.argv[1:])]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "code": code_version(args.bin_dir), "other_benchmarks_at_start": busy,
        "load_before": machine_load(),
        "cache_options": args.cache or "default (acregmin 3, acregmax 60, acdirmin 30, "
                                       "acdirmax 60)",
        "cpu_share": "none (full CPU)" if (args.no_cpu_share or cpu_problem) else
                     "Lambda's share of the deployed memory size (cgroup v1 cpu quota)",
        **{k: v for k, v in vars(args).items()
           if k not in ("work", "out", "keep", "force", "bin_dir")},
    }
    cluster = Cluster(work, client_options=args.cache.split(),
                      cgroups=not (args.no_cpu_share or cpu_problem), bin_dir=args.bin_dir)
    try:
        posters = [cluster.add("post-message") for _ in range(args.posters)]
        reader_nodes = [cluster.add("get-messages") for _ in range(args.readers)]
        follower_nodes = [cluster.add("get-messages") for _ in range(args.followers)]
        config["binaries"] = cluster.binaries
        config["nodes"] = [{"name": n.name, "function": n.function, "memory_mb": n.memory_mb}
                           for n in cluster.nodes]
        readers = [Reader(n, i % 2 == 0, args.limit, args.timeout, random.Random(rng.random()))
                   for i, n in enumerate(reader_nodes)]
        post_answers = []
        failures = []

        def post(node, token):
            body = bodies.make(token, rng, rng.choice(["text", "json", "octets"]),
                               rng.choice([64, 300, 2000, 20000]))
            answer = node.invoke(post_event(body.data, body.content_type))
            if answer.status != 201:
                failures.append({"node": node.name, "status": answer.status,
                                 "error": answer.error})
                return None
            mid = answer.json()["id"]
            post_answers.append({"id": mid, "t0": answer.t0, "t1": answer.t1, "ms": answer.ms})
            return mid, answer.t1

        def run_on(targets, kind, payload):
            done = threading.Semaphore(0)
            for r in targets:
                r.jobs.put((kind, payload, done))
            for _ in targets:
                done.acquire()

        # Warm-up: messages to list and read, every reader has listed and read before.
        log("warming up")
        warm = [post(posters[i % len(posters)], f"warm-{i}") for i in range(20)]
        warm_ids = [w[0] for w in warm if w]
        run_on(readers, "warm", warm_ids[-5:])
        followers = [Follower(n, 100, args.poll) for n in follower_nodes]
        time.sleep(SETTLE_S + 1)
        log(f"measuring {args.messages} messages")
        measured = []  # {id, acked_ns, poster, burst, new_leaf, new_mid}
        leaves, mids = set(), set()
        for mid in warm_ids:
            leaves.add(id_ms(mid) // LEAF_MS)
            mids.add(id_ms(mid) // MID_MS)
        step = 0
        last_far = 0
        started = time.monotonic()
        while len(measured) < args.messages:
            step += 1
            look_ahead = [r for r in readers if r.look_ahead]
            far = time.monotonic() - last_far > 20
            if far:
                last_far = time.monotonic()
            run_on(look_ahead, "look-ahead", far)
            burst = rng.random() < args.burst_rate
            chosen = posters if burst else [posters[step % len(posters)]]
            results = [None] * len(chosen)
            threads = [threading.Thread(target=lambda i=i, n=n: results.__setitem__(
                i, post(n, f"v{args.seed}-{step}-{i}"))) for i, n in enumerate(chosen)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            batch = [r for r in results if r]
            for (mid, acked_ns), node in zip(batch, chosen):
                leaf, midd = id_ms(mid) // LEAF_MS, id_ms(mid) // MID_MS
                measured.append({"id": mid, "acked_ns": acked_ns, "burst": burst,
                                 "new_leaf": leaf not in leaves, "new_mid": midd not in mids})
                leaves.add(leaf)
                mids.add(midd)
            if batch:
                run_on(readers, "observe", batch)
            if rng.random() < args.idle_rate:
                idle = rng.uniform(*args.idle)
                log(f"{len(measured)} messages; idle {idle:.0f} s")
                time.sleep(idle)
            else:
                time.sleep(rng.uniform(0, args.gap))
        # The followers: give them the settle horizon and a little more.
        time.sleep(SETTLE_S + 2)
        for f in followers:
            f.stop.set()
        for f in followers:
            f.thread.join(timeout=30)
        for r in readers:
            r.jobs.put(None)
        elapsed = time.monotonic() - started
        config["load_after"] = machine_load()
        config["other_benchmarks_at_end"] = other_benchmarks()
        summary = summarize(config, measured, readers, followers, post_answers, failures, elapsed)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{args.name}.json").write_text(json.dumps(summary, indent=1))
        (args.out / f"{args.name}.md").write_text(markdown(summary))
        log(f"wrote {args.out / (args.name + '.md')} and .json")
        for line in summary["verdicts"]:
            print(line)
        return 0
    finally:
        cluster.close()
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def stats(lags):
    seen = [v for v in lags if v is not None]
    return {"n": len(lags), "never_seen": len(lags) - len(seen), "p50_s": pct(seen, 50),
            "p99_s": pct(seen, 99), "max_s": max(seen, default=None)}


def summarize(config, measured, readers, followers, post_answers, failures, elapsed):
    by_id = {m["id"]: m for m in measured}
    rows = [r for reader in readers for r in reader.results if r["message"] in by_id]
    kinds = {}
    for kind, name in (("id", "by id"), ("desc", "newest-first first page")):
        sel = [r for r in rows if r["kind"] == kind]
        kinds[name] = {**stats([r["lag_s"] for r in sel]),
                       "seen_by_first_request": sum(1 for r in sel if r["requests"] == 1),
                       "pairs": len(sel)}
        for label, cond in (("look-ahead readers", lambda r: r["look_ahead"]),
                            ("plain readers", lambda r: not r["look_ahead"]),
                            ("first message of a new leaf directory",
                             lambda r: by_id[r["message"]]["new_leaf"]),
                            ("first message of a new mid-level directory",
                             lambda r: by_id[r["message"]]["new_mid"]),
                            ("in a burst from every poster", lambda r: by_id[r["message"]]["burst"]),
                            ("asked this way first", lambda r: r["first_kind"] == kind),
                            ("asked the other way first", lambda r: r["first_kind"] != kind)):
            part = [r for r in sel if cond(r)]
            kinds[name].setdefault("breakdown", {})[label] = {
                **stats([r["lag_s"] for r in part]),
                "seen_by_first_request": sum(1 for r in part if r["requests"] == 1)}
    asc, from_id = [], []
    for f in followers:
        for m in measured:
            t0 = f.first_seen.get(m["id"])
            asc.append(None if t0 is None else max(0, t0 - m["acked_ns"]) / 1e9)
            from_id.append(None if t0 is None else (t0 / 1e6 - id_ms(m["id"])) / 1e3)
    kinds["oldest-first follower"] = {**stats(asc), "pairs": len(asc),
                                      "from_the_id_time": stats(from_id)}
    posts = [p for p in post_answers if p["id"] in by_id]
    post_stats = {"n": len(posts), "latency_p50_ms": pct([p["ms"] for p in posts], 50),
                  "latency_p99_ms": pct([p["ms"] for p in posts], 99),
                  "id_to_201_p50_ms": pct([p["t1"] / 1e6 - id_ms(p["id"]) for p in posts], 50),
                  "id_to_201_max_ms": max((p["t1"] / 1e6 - id_ms(p["id"]) for p in posts),
                                          default=None)}
    a, b, c = kinds["by id"], kinds["newest-first first page"], kinds["oldest-first follower"]
    verdicts = [
        f"(a) by id: p50 {fmt_s(a['p50_s'])}, p99 {fmt_s(a['p99_s'])}, max {fmt_s(a['max_s'])}; "
        f"{a['seen_by_first_request']}/{a['pairs']} seen by the first request after the 201; "
        f"target 0 s: {'met' if a['seen_by_first_request'] == a['pairs'] else 'MISSED'}",
        f"(b) newest first: p50 {fmt_s(b['p50_s'])}, p99 {fmt_s(b['p99_s'])}, max "
        f"{fmt_s(b['max_s'])}; target at most 1 s: "
        f"{'met' if b['never_seen'] == 0 and (b['max_s'] or 0) <= 1 else 'MISSED'}",
        f"(c) oldest first: p50 {fmt_s(c['p50_s'])}, p99 {fmt_s(c['p99_s'])}, max "
        f"{fmt_s(c['max_s'])} after the 201 (after the id's time: max "
        f"{fmt_s(c['from_the_id_time']['max_s'])}); about the settle horizon, 1.25 s, by design",
    ]
    return {"config": config, "elapsed_s": elapsed, "messages": len(measured),
            "new_leaf_messages": sum(1 for m in measured if m["new_leaf"]),
            "new_mid_messages": sum(1 for m in measured if m["new_mid"]),
            "burst_messages": sum(1 for m in measured if m["burst"]),
            "kinds": kinds, "posts": post_stats,
            "failures": {"posts": failures,
                         "readers": [f for r in readers for f in r.failures],
                         "followers": [f for fl in followers for f in fl.failures],
                         "listed_twice_by_a_follower": [i for fl in followers
                                                        for i in fl.seen_twice]},
            "verdicts": verdicts,
            "raw": {"lags": [{k: r[k] for k in ("message", "reader", "kind", "lag_s",
                                                  "requests")} for r in rows],
                    "follower_lags_s": asc}}


def fmt_s(v):
    if v is None:
        return "–"
    return f"{v * 1000:.0f} ms" if v < 10 else f"{v:.1f} s"


def markdown(s):
    c = s["config"]
    out = []
    w = out.append
    w("# Visibility lag across NFS clients\n")
    w(f"`{c['command']}`, started {c['started']} (UTC), code `{c['code']['commit'][:10]}` "
      f"({c['code']['subject']})" + (
          f", with uncommitted changes to the code: "
          f"{', '.join(c['code']['uncommitted_code_changes'])}"
          if c['code']['uncommitted_code_changes'] else "")
      + f"; binaries built from {c['code'].get('built_from', '?')}.\n")
    lb, la = c["load_before"], c.get("load_after", {})
    w("| what | value |\n|---|---|")
    w(f"| instances, each on its own client | " + ", ".join(
        f"{n['name']} ({n['memory_mb']} MB)" for n in c["nodes"]) + " |")
    w(f"| client model | `latfs --nfs-cache`, cache times {c['cache_options']} |")
    w(f"| CPU | {c['cpu_share']} |")
    w(f"| messages | {s['messages']} ({s['burst_messages']} in bursts from every poster at once, "
      f"{s['new_leaf_messages']} the first of a new leaf directory, {s['new_mid_messages']} of "
      f"a new mid-level directory), in {s['elapsed_s'] / 60:.1f} min; newest-first pages of "
      f"{c['limit']}; followers poll every {c['poll']} s at the end |")
    w(f"| machine | {lb['cpus']} CPUs; before: load {' '.join(lb['loadavg'])}, "
      f"{lb['cpu_busy_1s'] * 100:.0f} % busy; after: load {' '.join(la.get('loadavg', []))}; "
      f"other benchmarks or builds at start: {len(c['other_benchmarks_at_start'])}, at end: "
      f"{len(c.get('other_benchmarks_at_end', []))} |")
    w("")
    w("## Lag from the 201 to the first request that saw the message\n")
    w("| kind | (message, reader) pairs | p50 | p99 | max | never seen | seen by the first "
      "request after the 201 | target |\n|---|---|---|---|---|---|---|---|")
    targets = {"by id": "0 s", "newest-first first page": "≤ 1 s",
               "oldest-first follower": "about 1.25 s (settle horizon), by design"}
    for name, k in s["kinds"].items():
        first = (f"{k['seen_by_first_request']:,} of {k['pairs']:,}"
                 if "seen_by_first_request" in k else "–")
        w(f"| {name} | {k['pairs']:,} | {fmt_s(k['p50_s'])} | {fmt_s(k['p99_s'])} | "
          f"{fmt_s(k['max_s'])} | {k['never_seen']} | {first} | {targets[name]} |")
    f = s["kinds"]["oldest-first follower"]["from_the_id_time"]
    w(f"\nOldest first, measured from the id's time instead of the 201: p50 {fmt_s(f['p50_s'])}, "
      f"p99 {fmt_s(f['p99_s'])}, max {fmt_s(f['max_s'])}.\n")
    for name in ("by id", "newest-first first page"):
        w(f"### {name}, by reader and message\n")
        w("| which | pairs | p50 | p99 | max | seen by the first request |\n|---|---|---|---|---|---|")
        for label, b in s["kinds"][name]["breakdown"].items():
            w(f"| {label} | {b['n']:,} | {fmt_s(b['p50_s'])} | {fmt_s(b['p99_s'])} | "
              f"{fmt_s(b['max_s'])} | {b['seen_by_first_request']:,} |")
        w("")
    p = s["posts"]
    w(f"POSTs measured: {p['n']}, p50 {p['latency_p50_ms']:.1f} ms, p99 "
      f"{p['latency_p99_ms']:.1f} ms (the function's time); from the id's time to the 201 "
      f"reaching the harness: p50 {p['id_to_201_p50_ms']:.1f} ms, max "
      f"{p['id_to_201_max_ms']:.1f} ms.\n")
    fl = s["failures"]
    w(f"Failures: {len(fl['posts'])} POSTs not 201, {len(fl['readers'])} reader answers other "
      f"than 200/404, {len(fl['followers'])} follower pages not 200, "
      f"{len(fl['listed_twice_by_a_follower'])} ids listed twice to a follower.\n")
    w("## Verdicts\n")
    for line in s["verdicts"]:
        w(f"- {line}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
