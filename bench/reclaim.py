#!/usr/bin/env python3
"""Reclaiming at Lambda's CPU share: how long DELETE all answers, then how the scheduled runs of
the delete function remove what it condemned, run by run.

    bench/reclaim.py                       100,000 messages, 128 MB, on the latency file system
    bench/reclaim.py --count 1000000       a million (about 4 GB of scratch disk)
    bench/reclaim.py --memory 1769 --local

Builds on the harness (``harness/``: latfs, by default the NFS client model, seeding) and ``lambdasim.py`` (the Runtime API, the
cgroup CPU share): the real ``target/release/delete-messages`` binary gets ``DELETE /messages``,
then the EventBridge scheduled event of ``test-support/fixtures/events/scheduled.json`` until a
run reports ``finished``. The messages are seeded an hour old (at 100 per second), so that
reclaiming may also remove their directories. Prints one line per run and a summary; ``--json``
writes every figure. Needs root (cgroups, FUSE) and ``bench/run.sh`` to have built the bench and
the release binaries.
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lambdasim as L
from harness.common import EFS_BENCH, MESSAGE_SIZE, ROOT
from harness.latfs import LatFs


def scheduled_event():
    return json.loads((ROOT / "test-support/fixtures/events/scheduled.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--memory", type=int, default=128, help="memory size in MB (CPU share)")
    parser.add_argument("--local", action="store_true", help="local disk instead of latfs")
    parser.add_argument("--latfs-model", choices=["nfs", "plain"], default="nfs",
                        help="latfs with the NFS client model's caches (nfs, default cache times: "
                             "the default) or without (plain, as the earlier measurements)")
    parser.add_argument("--max-runs", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()

    binary = ROOT / "target/release/delete-messages"
    if not binary.exists() or not EFS_BENCH.exists():
        sys.exit("build first: bench/run.sh (or cargo build --release -p delete-messages, and "
                 "cargo build --release in bench/)")
    why = L.cgroups_unavailable()
    if why:
        print(f"cgroups unavailable ({why}): measuring at full CPU", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="efs-reclaim-"))
    latfs = None
    try:
        if args.local:
            backing = messages_dir = work / "messages"
            backing.mkdir()
        else:
            why_not = LatFs.unavailable()
            if why_not:
                sys.exit(f"latfs unavailable: {why_not} (use --local)")
            latfs = LatFs(work, model=args.latfs_model)
            latfs.start()
            backing, messages_dir = latfs.backing, latfs.mountpoint
        hour_ago = int(time.time() * 1000) - 3_600_000
        t = time.monotonic()
        subprocess.run([str(EFS_BENCH), "seed", "--dir", str(backing), "--count", str(args.count),
                        "--size", str(MESSAGE_SIZE), "--rate", "100", "--end-ms", str(hour_ago),
                        "--threads", "4"], check=True, stdout=subprocess.DEVNULL)
        print(f"seeded {args.count:,} messages an hour old in {time.monotonic() - t:.1f} s",
              flush=True)
        runs = []
        with L.Instance(binary, "delete-messages", args.memory, messages_dir, work / "fn.log",
                        cgroups=not why) as instance:
            latency, answer = instance.invoke(L.delete_all_event(), timeout=10)
            delete_all_ms = latency / 1e6
            print(f"DELETE all: {answer.get('statusCode')} in {delete_all_ms:.1f} ms", flush=True)
            for n in range(1, args.max_runs + 1):
                cpu0 = instance.cpu_ns()
                latency, result = instance.invoke(scheduled_event(), timeout=10)
                done = result.get("reclaimed") or {}
                run = {"run": n, "ms": latency / 1e6, "cpu_ms": (instance.cpu_ns() - cpu0) / 1e6,
                       **{k: done.get(k) for k in ("messages", "temporaries", "directories",
                                                   "finished")}}
                if "error" in result:
                    run["error"] = result["error"]
                runs.append(run)
                print(f"run {n}: {run['ms']:8.1f} ms, CPU {run['cpu_ms']:7.1f} ms, removed "
                      f"{run['messages']} messages, {run['directories']} directories"
                      f"{'' if run['finished'] else ', more to do'}", flush=True)
                if run.get("error") or run["finished"]:
                    break
        removed = sum(r["messages"] or 0 for r in runs)
        summary = {
            "count": args.count, "memory_mb": args.memory,
            "fs": "local" if args.local else f"latfs ({args.latfs_model})",
            "cpu_share": not why, "delete_all_ms": delete_all_ms, "runs": len(runs),
            "removed": removed, "max_run_ms": max(r["ms"] for r in runs),
            "median_run_ms": statistics.median(r["ms"] for r in runs),
            "total_s": sum(r["ms"] for r in runs) / 1e3,
            "left_in_backing": sum(1 for p in backing.rglob("*") if p.is_file()),
        }
        print(json.dumps(summary, indent=2))
        if args.json:
            args.json.write_text(json.dumps({"summary": summary, "runs": runs}, indent=2))
    finally:
        if latfs:
            latfs.stop()
        L.remove_all_groups()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
