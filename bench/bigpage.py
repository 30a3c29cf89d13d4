#!/usr/bin/env python3
"""Peak memory of a page of 1,000 messages of 256 KiB, through the get function at a memory size.

    bench/bigpage.py --compare-binaries v2=/tmp/efs-v2/target/release

For each body (``text``: 256 KiB of printable text; ``ctrl``: 256 KiB of ``\\x01``, valid UTF-8
that JSON escapes six-fold, ``\\u0001``), 1,000 messages are seeded straight into the backing
directory (ids 10 ms apart, ending 5 s before the pages, so oldest-first pages see them all), and
each build's get function, on its own latfs mount (the NFS client model by default), at each
memory size (256 MB, the deployed size, and 128 MB), on a fresh instance, gets
``GET /messages?limit=1000`` and follows ``next`` until the 1,000 messages are read; then the
first page again, ``--samples`` times. Per build, memory size and body: the instance's peak RSS
(``VmHWM``), the size of each response (the body, and the whole document the function sends to
the Runtime API, which is what Lambda's 6 MB limit applies to), how many pages the 1,000 messages
take, and the first page's p50 latency.

Each instance runs in a memory cgroup of its memory size, as Lambda enforces it: an instance that
would need more is killed by the kernel (reported as such, with the group's peak usage,
``memory.max_usage_in_bytes``, which also counts page cache). Writes ``--json`` (default
``bench/results/bigpage.json``). Needs root (cgroups, FUSE) and the bench built.
"""

import argparse
import json
import statistics
import subprocess
import time

import lambdasim as L
from harness.common import EFS_BENCH, fmt, log
from harness.lambda_cells import json_body, status_of
from harness import comparison
from harness.comparison import compared_builds
from harness.stores import wipe

SIZE = 262_144


def seed(backing, count, fill, work):
    wipe(backing)
    ids_file = work / "ids.txt"
    end_ms = int(time.time() * 1000) - 5_000
    subprocess.run([str(EFS_BENCH), "seed", "--dir", str(backing), "--count", str(count),
                    "--size", str(SIZE), "--fill", fill, "--rate", "100", "--end-ms", str(end_ms),
                    "--threads", "4", "--ids-out", str(ids_file)], check=True,
                   stdout=subprocess.DEVNULL)
    return ids_file.read_text().split()


def memory_peak(inst):
    """The memory group's peak usage (bytes), or None."""
    for d in (inst.group.dirs if inst.group else []):
        f = d / "memory.max_usage_in_bytes"
        if f.exists():
            return int(f.read_text())
    return None


def measure(binary, mb, view, ids, samples, timeout, work, limit):
    out = {"memory_mb": mb, "pages": [], "memory_limit": limit}
    inst = L.Instance(binary, "get-messages", mb, view, work / f"get-{mb}-{time.time_ns()}.log",
                      cgroups=True, memory_limit=limit)
    try:
        seen, after, n = [], None, 0
        while True:
            n += 1
            event = L.list_event(1000, None, after)
            try:
                ns, resp = inst.invoke(event, timeout)
            except (L.InvocationTimeout, RuntimeError) as e:
                out["failed"] = (f"page {n}: {e}; " + ("the instance was killed (exit "
                                 f"{inst.proc.returncode})" if inst.proc.poll() is not None else "still running"))
                break
            doc = inst.runtime.last_response_bytes
            body = resp.get("body") or ""
            page = {"ms": ns / 1e6, "status": status_of(resp), "document_bytes": doc,
                    "body_bytes": len(body.encode())}
            b = json_body(resp) or {}
            msgs = b.get("messages") or []
            page["messages"] = len(msgs)
            out["pages"].append(page)
            if page["status"] != 200:
                out["failed"] = f"page {n}: status {page['status']}: {body[:200]}"
                break
            seen += [m.get("id") for m in msgs]
            after = b.get("next")
            if not after or not msgs or len(seen) >= len(ids):
                break
        out["messages_read"] = len(seen)
        out["all_in_order"] = seen == ids
        if "failed" not in out:
            lat = []
            for _ in range(samples):
                ns, resp = inst.invoke(L.list_event(1000), timeout)
                lat.append(ns / 1e6)
            out["first_page_ms"] = lat
            out["first_page_p50"] = statistics.median(lat)
        alive = inst.proc.poll() is None
        out["killed"] = not alive
        if alive:
            st = inst.status()
            out["peak_rss_kb"] = st.get("VmHWM")
        out["group_peak_bytes"] = memory_peak(inst)
    finally:
        inst.close()
    out["n_pages"] = len(out["pages"])
    docs = [p["document_bytes"] for p in out["pages"] if p.get("document_bytes")]
    out["largest_document_bytes"] = max(docs) if docs else None
    per_page = [p["messages"] for p in out["pages"]]
    out["messages_per_page"] = [min(per_page), max(per_page)] if per_page else None
    return out


def line(label, fill, r):
    rss = f"{r['peak_rss_kb'] / 1024:.1f} MiB" if r.get("peak_rss_kb") else "–"
    doc = f"{r['largest_document_bytes'] / 1e6:.2f} MB" if r.get("largest_document_bytes") else "–"
    return (f"{label} {r['memory_mb']} MB {fill}: peak RSS {rss}, largest document {doc}, "
            f"{r['n_pages']} pages ({r['messages_per_page']} messages each), "
            f"{r.get('messages_read')} read, in order {r.get('all_in_order')}, first page p50 "
            f"{fmt(r.get('first_page_p50'))} ms" + (f"; FAILED {r['failed']}" if r.get("failed") else "")
            + ("; KILLED" if r.get("killed") else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--memory", default="256,128")
    parser.add_argument("--fills", default="text,ctrl")
    parser.add_argument("--samples", type=int, default=5, help="first pages timed after the walk")
    parser.add_argument("--no-memory-limit", action="store_true",
                        help="do not limit each instance's memory to its size")
    parser.add_argument("--timeout", type=float, default=30.0)
    comparison.add_arguments(parser, "bigpage.json")
    args = parser.parse_args()
    result = {"count": args.count, "size": SIZE, "memory_limit": not args.no_memory_limit, "results": []}
    with compared_builds(args, "efs-bigpage-", result) as run:
        builds, mounts, work = run.builds, run.mounts, run.work
        for fill in args.fills.split(","):
            ids = seed(run.backing, args.count, fill, work)
            log(f"seeded {len(ids):,} messages of {SIZE:,} B ({fill})")
            for mb in (int(m) for m in args.memory.split(",")):
                for label, binaries in builds:
                    r = measure(binaries["get-messages"], mb, mounts[label].mountpoint, ids,
                                args.samples, args.timeout, work, not args.no_memory_limit)
                    r.update(build=label, fill=fill)
                    result["results"].append(r)
                    log("  " + line(label, fill, r))
                    args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
