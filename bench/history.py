#!/usr/bin/env python3
"""A page after a history of emptied directories, against a fresh store, under the Lambda model.

    bench/history.py --compare-binaries v2=/tmp/efs-v2/target/release
    bench/history.py --count 2000 --skip-reclaim          a quick look

The history: ``--count`` messages (20,000), one every ``--interval`` (300 ms: each in a leaf
directory of its own, a leaf being 256 ms), over 100 minutes ending ``--end-ago`` (5 minutes)
ago; a handful of them (``--live``, 5, spread evenly) are kept, every other one is deleted one
by one through the store: the delete function (``DELETE /messages/{id}``) of each build, run on
the backing directory at full CPU (set-up, not measured). Three stores, each measured with each
build's get function at 128 and 256 MB (the deployed size) on the NFS client model (one latfs
mount per build over the one backing directory, default cache times):

* ``fresh``: only the live messages, in the same files at the same paths;
* ``emptied by <build>``: the history after that build's deletes. Store v3 removes a directory
  when a DELETE empties it and its time range is over; store v2 leaves every emptied directory
  behind (what v3 inherits when it replaces v2);
* then, on the store v2's deletes left, the main build's delete function gets its scheduled
  event (``test-support/fixtures/events/scheduled.json``) at 128 MB, run after run, and after
  each run the main build's first pages are measured again, until they are within 10 % of the
  fresh store's (the issue's target): how many runs, and what each costs.

Measured: the first page, newest first (``order=desc``) and oldest first (``order=asc``, the
default), ``limit=100``: p50, p99, CPU per page. Writes ``--json`` (default
``bench/results/history.json``) and prints a table. Needs root (cgroups, FUSE), the bench built
(``bench/run.sh``, or ``cargo build --release`` in bench/ and ``cargo build --release -p
efs-model -p get-messages -p post-message -p delete-messages``).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import lambdasim as L
from harness.common import EFS_BENCH, ROOT, fmt, log
from harness.lambda_cells import Cell, LambdaContext, json_body, status_of
from harness import comparison
from harness.comparison import compared_builds
from harness.stores import wipe


def scheduled_event():
    return json.loads((ROOT / "test-support/fixtures/events/scheduled.json").read_text())


def tree_counts(backing):
    """(directories, message files, other files) under `backing`."""
    dirs = files = other = 0
    for _, dnames, fnames in os.walk(backing):
        dirs += len(dnames)
        for name in fnames:
            if len(name) == 36:
                files += 1
            else:
                other += 1
    return {"directories": dirs, "messages": files, "other_files": other}


def delete_through(binary, backing, ids, instances=2):
    """Deletes `ids` one by one with the delete function `binary` on `backing` (full CPU, no
    latfs: set-up). Returns the statuses counted."""
    statuses = {}
    lock = threading.Lock()
    work = Path(tempfile.mkdtemp(prefix="efs-history-delete-"))
    chunks = [ids[i::instances] for i in range(instances)]
    errors = []

    def worker(n, chunk):
        try:
            with L.Instance(binary, "delete-messages", L.FULL_CPU_MB, backing, work / f"d{n}.log",
                            cgroups=False) as inst:
                for message_id in chunk:
                    _, resp = inst.invoke(L.delete_event(message_id), 30)
                    with lock:
                        st = str(status_of(resp))
                        statuses[st] = statuses.get(st, 0) + 1
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n, c)) for n, c in enumerate(chunks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shutil.rmtree(work, ignore_errors=True)
    if errors:
        raise errors[0]
    return statuses


def first_pages(ctx, view, mb, live, samples, budget_s=30):
    """The first page, newest first and oldest first, limit 100, on a fresh get instance at `mb`:
    p50, p99, CPU per page; each checked to hold exactly the live messages."""
    cell = Cell(ctx, "latfs", view, mb)
    out = {}
    try:
        cell.warm("get-messages", L.get_event(live[0]))
        for order in ("desc", "asc"):
            want = live[::-1] if order == "desc" else live

            def check(resp, want=want):
                if status_of(resp) != 200:
                    return f"status {status_of(resp)}"
                got = [m.get("id") for m in (json_body(resp) or {}).get("messages") or []]
                return None if got == want else f"{len(got)} messages, not the {len(want)} live ones in order"
            event = L.list_event(100, order)
            out[order] = cell.run("get-messages", (event for _ in range(samples)), check, budget_s)
    finally:
        cell.close()
    return out


def page_line(label, r):
    def one(x):
        if x.get("timeouts"):
            return f"> {x['timeout_s']:g} s (timed out)"
        return (f"p50 {fmt(x['p50'])} ms, p99 {fmt(x['p99'])} ms, CPU {fmt(x.get('cpu_ms_per_request'))} ms"
                + (f" [{'; '.join(x['notes'])}]" if x.get("notes") else ""))
    return f"{label}: desc {one(r['desc'])} | asc {one(r['asc'])}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000, help="messages in the history")
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between them")
    parser.add_argument("--end-ago", type=float, default=300, help="the history ended this many s ago")
    parser.add_argument("--live", type=int, default=5, help="messages kept")
    parser.add_argument("--memory", default="128,256", help="memory sizes (MB) of the get function")
    parser.add_argument("--samples", type=int, default=9, help="samples per page")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--max-runs", type=int, default=50, help="scheduled reclaiming runs at most")
    parser.add_argument("--skip-reclaim", action="store_true")
    comparison.add_arguments(parser, "history.json")
    args = parser.parse_args()
    mems = [int(m) for m in args.memory.split(",")]
    if not EFS_BENCH.exists():
        sys.exit("build first: bench/run.sh")
    result = {"count": args.count, "interval_s": args.interval, "live": args.live,
              "memory_mb": mems, "samples": args.samples, "stores": {}, "reclaim": None}
    with compared_builds(args, "efs-history-", result) as run:
        builds, mounts, work = run.builds, run.mounts, run.work
        labels = run.labels
        main_label = labels[0]
        backing = run.backing
        ctxs = {label: LambdaContext(work, b, True, False, args.timeout, label) for label, b in builds}
        views = {label: mounts[label].mountpoint for label in labels}

        # The history, seeded once and kept as a template (same ids for every store).
        end_ms = int((time.time() - args.end_ago) * 1000)
        ids_file = work / "ids.txt"
        t = time.monotonic()
        subprocess.run([str(EFS_BENCH), "seed", "--dir", str(backing), "--count", str(args.count),
                        "--size", "256", "--rate", str(1 / args.interval), "--end-ms", str(end_ms),
                        "--threads", "4", "--ids-out", str(ids_file)], check=True,
                       stdout=subprocess.DEVNULL)
        ids = ids_file.read_text().split()
        step = max(1, len(ids) // args.live)
        live = ids[step // 2::step][:args.live]
        doomed = sorted(set(ids) - set(live))
        template = work / "template"
        shutil.copytree(backing, template, symlinks=True)
        history = tree_counts(backing)
        log(f"history: {len(ids):,} messages, one every {args.interval:g} s, ending "
            f"{args.end_ago:g} s ago, in {history['directories']:,} directories; "
            f"{len(live)} kept ({time.monotonic() - t:.1f} s)")
        result["history"] = {**history, "first": ids[0], "last": ids[-1], "live": live}

        def restore(only_live):
            wipe(backing)
            if only_live:
                for message_id in live:
                    rel = next(template.rglob(message_id)).relative_to(template)
                    (backing / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(template / rel, backing / rel)
            else:
                shutil.copytree(template, backing, symlinks=True, dirs_exist_ok=True)

        def measure_store(name):
            log(f"{name}: {tree_counts(backing)}")
            store = {"tree": tree_counts(backing), "pages": {}}
            for mb in mems:
                for label in labels:
                    r = first_pages(ctxs[label], views[label], mb, live, args.samples)
                    store["pages"][f"{label} {mb}"] = r
                    log("  " + page_line(f"{label} {mb} MB", r))
            result["stores"][name] = store
            args.json.write_text(json.dumps(result, indent=1))
            return store

        # 1. fresh: only the live messages
        restore(only_live=True)
        fresh = measure_store("fresh")

        # 2. the history after each build's deletes
        for label, binaries in builds:
            restore(only_live=False)
            t = time.monotonic()
            statuses = delete_through(binaries["delete-messages"], backing, doomed)
            log(f"deleted {len(doomed):,} through {label}'s delete function in "
                f"{time.monotonic() - t:.0f} s: {statuses}")
            store = measure_store(f"emptied by {label}")
            store["delete_statuses"] = statuses

        # 3. store v2's leftovers (the last build's deletes, when it is not the main one), swept by
        # the main build's scheduled reclaiming at 128 MB until its pages are within 10 %.
        if not args.skip_reclaim:
            if labels[-1] == main_label:
                restore(only_live=False)
                delete_through(builds[-1][1]["delete-messages"], backing, doomed)
            target_mb = 128
            base = {o: fresh["pages"][f"{main_label} {target_mb}"][o]["p50"] for o in ("desc", "asc")}
            runs = []
            binary = builds[0][1]["delete-messages"]
            with L.Instance(binary, "delete-messages", 128, views[main_label], work / "reclaim.log",
                            cgroups=True) as inst:
                for n in range(1, args.max_runs + 1):
                    cpu0 = inst.cpu_ns()
                    latency, answer = inst.invoke(scheduled_event(), timeout=args.timeout)
                    done = answer.get("reclaimed") or {}
                    run = {"run": n, "ms": latency / 1e6, "cpu_ms": (inst.cpu_ns() - cpu0) / 1e6,
                           **{k: done.get(k) for k in ("messages", "directories", "skipped", "finished")},
                           "tree": tree_counts(backing)}
                    if "error" in answer:
                        run["error"] = answer["error"]
                    pages = first_pages(ctxs[main_label], views[main_label], target_mb, live,
                                        max(5, args.samples // 2))
                    run["pages"] = pages
                    within = all(not pages[o].get("timeouts") and pages[o]["p50"] is not None
                                 and pages[o]["p50"] <= 1.1 * base[o] for o in ("desc", "asc"))
                    run["within_10pct_of_fresh"] = within
                    runs.append(run)
                    log(f"reclaiming run {n}: {run['ms']:.0f} ms, CPU {run['cpu_ms']:.0f} ms, removed "
                        f"{run['directories']} directories, finished {run['finished']}; "
                        + page_line(f"{main_label} {target_mb} MB after it", pages))
                    if run.get("error") or (within and run["finished"]):
                        break
            result["reclaim"] = {"memory_mb": 128, "pages_memory_mb": target_mb,
                                 "fresh_p50": base, "runs": runs,
                                 "runs_until_within_10pct": next(
                                     (r["run"] for r in runs if r["within_10pct_of_fresh"]), None)}


if __name__ == "__main__":
    main()
