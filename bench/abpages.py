#!/usr/bin/env python3
"""Pages of two builds, interleaved request by request: an A/B test at one CPU share.

    bench/abpages.py --compare-binaries v2=/tmp/efs-v2/target/release --binaries /tmp/efs-v3/target/release

At Lambda's 128 MB share a page of 100 takes a whole number of 100 ms CPU periods, so a page's
latency moves in steps of 100 ms with small changes in its CPU time, and two builds measured a
minute apart can land on different steps because the host did. Here the builds take turns
request by request (the first of each pair alternating), each with a warm get-messages instance
at `--memory` on its own latfs mount (the NFS client model by default) of one backing directory,
so both see the same host at the same moment. For each stored count (``--sizes``), each page of
100 (first, middle, last; oldest and newest first) is asked ``--rounds`` times of each build:
p50, p99, mean CPU per page, and the latfs requests per page (in all and by kind: the kernel's
FUSE requests, and the round trips to the server); then the same pages on local disk
at full CPU (the store's own CPU, without FUSE). Then, on the mounts again at ``--memory``,
the other operations, interleaved the same way (``--op-rounds`` each): GET by id of a seeded
message, POST of 256 bytes, DELETE by id of a message that build just posted, DELETE by id of a
seeded message (older than its directory), and last (``--delete-all-rounds``) DELETE all. Writes ``--json`` (default
``bench/results/abpages.json``) and prints a table.

The seeded store has an empty ``cutoff`` file, as store v3 leaves a store after its first POST
(it creates the file before the first message exists; store v2 creates it at its first DELETE
all): store v3 never sees messages without one, and a reader that finds none confirms the
absence (an open of the messages directory: one more round trip per request), a cost no store
v3 deployment pays once a message was posted. ``--no-cutoff-file`` seeds without it, as the
harness (``run.sh``) does.
"""

import argparse
import collections
import json
import random
import statistics

import lambdasim as L
from harness.cli import parse_sizes
from harness.common import PAGE, fmt, log, pct
from harness.common import LATFS, MESSAGE_SIZE
from harness.lambda_cells import json_body, per_call, status_of
from harness import comparison
from harness.comparison import compared_builds
from harness.lambda_model import SEED_RATE, page_positions, wait_settled
from harness.stores import Dataset, body, seed_dataset, wipe


def variants(ds):
    out = []
    for order in ("asc", "desc"):
        ordered = ds.ids if order == "asc" else ds.ids[::-1]
        for pos, start in page_positions(ds.count).items():
            after = ordered[start - 1] if start > 0 else None
            out.append((f"page_{pos}_{order}", L.list_event(PAGE, order, after),
                        ordered[start], min(PAGE, ds.count - start)))
    return out


def interleave(instances, stats, events, rounds, timeout):
    """`rounds` of each event on each build, taking turns; returns per build and variant the
    latencies, CPU and latfs requests."""
    labels = list(instances)
    out = {label: {} for label in labels}
    for key, event, first, n in events:
        for label in labels:
            out[label][key] = {"ms": [], "cpu_ms": [], "bad": 0, "requests": [], "round_trips": [],
                               "by_kind": [], "trips_by_kind": []}
        for r in range(rounds):
            order = labels if r % 2 == 0 else labels[::-1]
            for label in order:
                inst = instances[label]
                s0 = stats[label]() if stats else None
                c0 = inst.cpu_ns()
                ns, resp = inst.invoke(event, timeout)
                cpu = (inst.cpu_ns() - c0) / 1e6
                rec = out[label][key]
                rec["ms"].append(ns / 1e6)
                rec["cpu_ms"].append(cpu)
                msgs = (json_body(resp) or {}).get("messages") or []
                if status_of(resp) != 200 or len(msgs) != n or msgs[0].get("id") != first:
                    rec["bad"] += 1
                if stats:
                    reqs, trips = per_call(s0, stats[label](), 1)
                    rec["requests"].append(sum(reqs.values()))
                    rec["round_trips"].append(sum(trips.values()))
                    rec["by_kind"].append(reqs)
                    rec["trips_by_kind"].append(trips)
    return out


def interleave_ops(instances, stats, ds, rounds, delete_all_rounds, timeout, seed):
    """The other operations, taking turns like the pages: per build and operation the latencies,
    CPU (of the instance that served it) and latfs requests. `instances`: {label: {function:
    Instance}}."""
    labels = list(instances)
    rng = random.Random(seed)
    out = {label: {} for label in labels}
    posted = {label: [] for label in labels}
    ok = {"get": (200,), "post": (201,), "delete": (200, 204), "delete_old": (200, 204),
          "delete_all": (200, 204)}

    def one(label, op, function, event):
        inst = instances[label][function]
        rec = out[label].setdefault(op, {"ms": [], "cpu_ms": [], "bad": 0, "requests": [],
                                         "round_trips": [], "by_kind": [], "trips_by_kind": []})
        s0 = stats[label]()
        c0 = inst.cpu_ns()
        ns, resp = inst.invoke(event, timeout)
        rec["cpu_ms"].append((inst.cpu_ns() - c0) / 1e6)
        rec["ms"].append(ns / 1e6)
        reqs, trips = per_call(s0, stats[label](), 1)
        rec["requests"].append(sum(reqs.values()))
        rec["round_trips"].append(sum(trips.values()))
        rec["by_kind"].append(reqs)
        rec["trips_by_kind"].append(trips)
        if status_of(resp) not in ok[op]:
            rec["bad"] += 1
        return resp

    plan = [("get", "get-messages"), ("post", "post-message"), ("delete", "delete-messages")]
    for op, function in plan:
        for r in range(rounds):
            pick = ds.ids[rng.randrange(ds.count)]
            for label in (labels if r % 2 == 0 else labels[::-1]):
                if op == "get":
                    one(label, op, function, L.get_event(pick))
                elif op == "post":
                    resp = one(label, op, function, L.post_event(body(MESSAGE_SIZE, r)))
                    if (json_body(resp) or {}).get("id"):
                        posted[label].append(json_body(resp)["id"])
                elif posted[label]:
                    one(label, op, function, L.delete_event(posted[label].pop()))
    # DELETE by id of seeded messages (older than their directory's time range, with others
    # beside them): the case of a deployed store, where store v3 also tries to remove the
    # directory (by_id.rs, remove_emptied). Each build deletes messages of its own.
    old = rng.sample(ds.ids, min(ds.count, 2 * rounds))
    for r in range(rounds if len(old) >= 2 * rounds else 0):
        for i, label in enumerate(labels if r % 2 == 0 else labels[::-1]):
            one(label, "delete_old", "delete-messages", L.delete_event(old[2 * r + i]))
    for r in range(delete_all_rounds):
        for label in (labels if r % 2 == 0 else labels[::-1]):
            one(label, "delete_all", "delete-messages", L.delete_all_event())
    return out


def mean_by_kind(samples):
    """The mean count per kind over samples of {kind: count} (a kind missing from one is 0)."""
    kinds = sorted({kind for sample in samples for kind in sample})
    return {kind: sum(sample.get(kind, 0) for sample in samples) / len(samples) for kind in kinds}


def periods(ms):
    """How many requests took about 0, 1, 2, ... 100 ms CPU periods (at a CPU share a request's
    latency is near a whole number of periods): {periods: count}, by the nearest whole number."""
    return dict(sorted(collections.Counter(str(round(x / 100)) for x in ms).items()))


def summary(rec):
    return {"n": len(rec["ms"]), "periods": periods(rec["ms"]),
            "p50": pct(rec["ms"], 50), "p99": pct(rec["ms"], 99),
            "mean_ms": statistics.mean(rec["ms"]), "cpu_ms_mean": statistics.mean(rec["cpu_ms"]),
            "cpu_ms_p50": statistics.median(rec["cpu_ms"]), "bad": rec["bad"],
            "requests_mean": statistics.mean(rec["requests"]) if rec["requests"] else None,
            "round_trips_mean": statistics.mean(rec["round_trips"]) if rec["round_trips"] else None,
            "requests_by_kind": mean_by_kind(rec["by_kind"]) if rec["by_kind"] else None,
            "round_trips_by_kind": mean_by_kind(rec["trips_by_kind"]) if rec["trips_by_kind"] else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[10_000, 100_000])
    parser.add_argument("--memory", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--local-rounds", type=int, default=15)
    parser.add_argument("--op-rounds", type=int, default=50,
                        help="GET by id, POST and DELETE by id per build (0: none)")
    parser.add_argument("--delete-all-rounds", type=int, default=5,
                        help="DELETE alls per build, last (0: none)")
    parser.add_argument("--no-cutoff-file", action="store_true",
                        help="seed without the empty cutoff file store v3's first POST creates")
    parser.add_argument("--timeout", type=float, default=10.0)
    comparison.add_arguments(parser, "abpages.json")
    args = parser.parse_args()
    result = {"memory_mb": args.memory, "rounds": args.rounds, "cutoff_file": not args.no_cutoff_file,
              "latfs": str(LATFS), "sizes": {}}
    with compared_builds(args, "efs-ab-", result) as run:
        builds, mounts, work = run.builds, run.mounts, run.work
        backing = run.backing
        for count in args.sizes:
            ds = Dataset(count, SEED_RATE, f"{SEED_RATE:g}/s")
            seed_dataset(backing, ds, work)
            if not args.no_cutoff_file:
                (backing / "cutoff").touch(mode=0o640)
            wait_settled(ds)
            events = variants(ds)
            res = {}
            for where, mb, rounds in (("latfs", args.memory, args.rounds),
                                      ("local", L.FULL_CPU_MB, args.local_rounds)):
                instances = {}
                try:
                    for label, binaries in builds:
                        view = mounts[label].mountpoint if where == "latfs" else backing
                        inst = L.Instance(binaries["get-messages"], "get-messages", mb, view,
                                          work / f"{label}-{where}-{count}.log")
                        instances[label] = inst
                        inst.invoke(L.get_event(ds.ids[len(ds.ids) // 3]), args.timeout)
                        inst.invoke(events[0][1], args.timeout)
                    stats = {label: mounts[label].stats for label in instances} if where == "latfs" else None
                    raw = interleave(instances, stats, events, rounds, args.timeout)
                finally:
                    for inst in instances.values():
                        inst.close()
                res[where] = {label: {key: summary(rec) for key, rec in per.items()}
                              for label, per in raw.items()}
                for label, per in raw.items():
                    allms = [x for rec in per.values() for x in rec["ms"]]
                    allcpu = [x for rec in per.values() for x in rec["cpu_ms"]]
                    res[where][label]["all"] = {"n": len(allms), "p50": pct(allms, 50),
                                                "p99": pct(allms, 99),
                                                "cpu_ms_mean": statistics.mean(allcpu)}
                    log(f"{count:,} {where} {mb} MB {label}: all pages p50 {fmt(pct(allms, 50))} ms, "
                        f"p99 {fmt(pct(allms, 99))} ms, CPU mean {fmt(statistics.mean(allcpu))} ms")
            if args.op_rounds or args.delete_all_rounds:
                instances = {}
                try:
                    for label, binaries in builds:
                        instances[label] = {}
                        for function in ("get-messages", "post-message", "delete-messages"):
                            inst = L.Instance(binaries[function], function, args.memory,
                                              mounts[label].mountpoint,
                                              work / f"{label}-ops-{function}-{count}.log")
                            instances[label][function] = inst
                        # Warm: a read, a POST and the DELETE of what it posted.
                        funcs = instances[label]
                        funcs["get-messages"].invoke(L.get_event(ds.ids[len(ds.ids) // 3]), args.timeout)
                        _, resp = funcs["post-message"].invoke(L.post_event(body(MESSAGE_SIZE, 0)), args.timeout)
                        warm_id = (json_body(resp) or {}).get("id")
                        if warm_id:
                            funcs["delete-messages"].invoke(L.delete_event(warm_id), args.timeout)
                    stats = {label: mounts[label].stats for label in instances}
                    raw = interleave_ops(instances, stats, ds, args.op_rounds,
                                         args.delete_all_rounds, args.timeout, count)
                finally:
                    for funcs in instances.values():
                        for inst in funcs.values():
                            inst.close()
                res["ops"] = {label: {op: summary(rec) for op, rec in per.items()}
                              for label, per in raw.items()}
                for label, per in raw.items():
                    for op, rec in per.items():
                        log(f"{count:,} latfs {args.memory} MB {label} {op}: p50 {fmt(pct(rec['ms'], 50))} ms, "
                            f"p99 {fmt(pct(rec['ms'], 99))} ms, CPU mean {fmt(statistics.mean(rec['cpu_ms']))} ms")
            result["sizes"][str(count)] = res
            args.json.write_text(json.dumps(result, indent=1))
        wipe(backing)


if __name__ == "__main__":
    main()
