"""The in-process design comparison: the original pattern, the naive per-file design and ours.

Each design runs as a server process behind one line protocol (``bench/README.md``): the original
as ``baseline.py serve``, the two Rust designs as ``efs-bench serve``. Each times its own handler
calls, so pipe and JSON overhead stay out of the figures. ``measure`` takes one design's figures
at one stored count on one file system (with latfs's request counts when on latfs);
``run_designs`` does that for every design and count; ``compare`` is the whole comparison (local
disk, the kernel probes, latfs, latfs with no injected latency).
"""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from .common import BENCH, EFS_BENCH, MESSAGE_SIZE, PAGE, log, ms, pct
from .latfs import LatFs, ops_between
from .stores import clear, seed

DESIGNS = ["original", "naive", "ours"]
DESIGN_LABELS = {
    "original": "original (Python, one file + flock)",
    "naive": "naive per-file (one after another)",
    "ours": "ours (per-file, 64 in flight)",
}


#: Requests of the design comparison that failed (the report lists them).
FAILURES = []


class Server:
    """A design behind the line protocol (efs-bench serve, or baseline.py serve)."""

    def __init__(self, design, messages_dir):
        self.design = design
        if design == "original":
            argv = [sys.executable, str(BENCH / "baseline.py"), "serve",
                    "--file", str(Path(messages_dir) / "content")]
        else:
            argv = [str(EFS_BENCH), "serve", "--design", design, "--dir", str(messages_dir)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)

    def call(self, request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.design} server died")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.design}: {answer['error']}")
        if answer.get("errors"):
            # Reported, not fatal: the run goes on and the report says which figures include
            # failed requests (FAILURES, above), with the first failure's answer.
            text = (f"{self.design}: {answer['errors']} requests failed "
                    f"(first: {answer.get('first_failure')}): {str(request)[:300]}")
            log("FAILED " + text)
            FAILURES.append(text)
        return answer

    def close(self):
        try:
            self.proc.stdin.write('{"op":"quit"}\n')
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def measure(design, server, fs_name, backing, count, samples, latfs, delete_only=False):
    """All figures of one design at one stored count on one file system."""
    out = {"design": design, "fs": fs_name, "count": count}

    def timed(request, calls):
        before = latfs.stats() if latfs else None
        answer = server.call(request)
        if latfs:
            ops, injected = ops_between(before, latfs.stats(), calls)
            answer["ops"], answer["injected_ms"] = ops, injected
        return answer

    if not delete_only:
        # POST: on a store of `count` messages.
        seed(design, backing, count)
        a = timed({"op": "post", "count": samples["post"], "size": MESSAGE_SIZE}, samples["post"])
        v = ms(a["ns"])
        out["post"] = {"p50": pct(v, 50), "p99": pct(v, 99), "n": len(v),
                       "ops": a.get("ops"), "injected_ms": a.get("injected_ms")}
        if "append_ns" in a:
            va = ms(a["append_ns"])
            out["post"]["append_p50"] = pct(va, 50)
            out["post"]["append_p99"] = pct(va, 99)

        # GET a page (first, middle, last), GET by id: on exactly `count` messages.
        ids = seed(design, backing, count)
        last_start = ((count - 1) // PAGE) * PAGE if count else 0
        starts = {"first": 0, "middle": (count // 2 // PAGE) * PAGE, "last": last_start}
        out["page"] = {}
        for name, start in starts.items():
            after = ids[start - 1] if (start > 0 and design != "original") else None
            a = timed({"op": "list", "after": after, "limit": PAGE, "repeat": samples["page"]},
                      samples["page"])
            v = ms(a["ns"])
            out["page"][name] = {"p50": pct(v, 50), "p99": pct(v, 99), "n": len(v),
                                 "messages": a["messages"], "bytes": a["bytes"],
                                 "ops": a.get("ops"), "injected_ms": a.get("injected_ms")}
        rng = random.Random(count)
        picks = [rng.randrange(count) for _ in range(samples["get"])]
        if design == "original":
            a = timed({"op": "get", "positions": picks}, len(picks))
        else:
            a = timed({"op": "get", "ids": [ids[i] for i in picks]}, len(picks))
        v = ms(a["ns"])
        out["get"] = {"p50": pct(v, 50), "p99": pct(v, 99), "n": len(v),
                      "ops": a.get("ops"), "injected_ms": a.get("injected_ms")}
    else:
        seed(design, backing, count)

    # DELETE all: of exactly `count` messages (the store is still as seeded).
    a = timed({"op": "delete_all"}, 1)
    out["delete_all"] = {"ms": ms(a["ns"])[0], "deleted": a.get("deleted"),
                         "status": a.get("status"),
                         "ops": a.get("ops"), "injected_ms": a.get("injected_ms")}
    if a.get("status") == 204:
        # The new contract: the store lays down a cut-off and reclaims the files later, so files
        # may remain; what must hold is that nothing is listed.
        check = server.call({"op": "list", "after": None, "limit": 1, "repeat": 1})
        if check["messages"]:
            raise RuntimeError(f"{design}: messages still listed after DELETE all answered 204")
    else:
        left = [n for _, _, files in os.walk(backing) for n in files
                if len(n) == 36 or n == "content"]
        if left:
            raise RuntimeError(f"{design}: {len(left)} messages left after DELETE all")
    return out


def run_designs(fs_name, backing, messages_dir, counts, extra_delete_counts, samples, latfs,
                designs=DESIGNS):
    """Every design at every one of `counts` on one file system, and DELETE all alone at
    `extra_delete_counts`; empties `backing` afterwards."""
    results = []
    for design in designs:
        server = Server(design, messages_dir)
        try:
            for count in counts:
                t = time.monotonic()
                r = measure(design, server, fs_name, backing, count, samples, latfs)
                results.append(r)
                log(f"  {fs_name:5} {design:8} {count:>6}: "
                    f"POST p50 {r['post']['p50']:.3f} ms, page first/middle/last "
                    f"{r['page']['first']['p50']:.2f}/{r['page']['middle']['p50']:.2f}/"
                    f"{r['page']['last']['p50']:.2f} ms, GET id {r['get']['p50']:.3f} ms, "
                    f"DELETE all {r['delete_all']['ms']:.1f} ms  ({time.monotonic() - t:.0f} s)")
            for count in extra_delete_counts:
                t = time.monotonic()
                r = measure(design, server, fs_name, backing, count, samples, latfs,
                            delete_only=True)
                results.append(r)
                log(f"  {fs_name:5} {design:8} {count:>6}: DELETE all {r['delete_all']['ms']:.1f} ms"
                    f"  ({time.monotonic() - t:.0f} s)")
        finally:
            server.close()
    clear(backing)
    return results


def probe(latfs, quick):
    """`efs-bench probe` on a mounted latfs: how the kernel overlaps requests on it."""
    out = subprocess.run(
        [str(EFS_BENCH), "probe", "--mount", str(latfs.mountpoint), "--backing",
         str(latfs.backing), "--stats", str(latfs.socket)] + (["--quick"] if quick else []),
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def compare(report, work, counts, local_delete_counts, local_samples, latfs_samples,
            why_not_latfs, quick):
    """The whole comparison: every design on local disk; then, unless `why_not_latfs` says why
    not, the probes (on a ``--serial-dirops`` latfs too), every design on latfs and ours on a latfs
    with no injected latency. Adds to `report` (``results``, ``probes_serial_dirops``, ``probes``,
    or ``latfs_skipped``); returns why latfs cannot be used (updated if mounting it failed)."""
    # ---- local disk
    local = work / "local"
    local.mkdir()
    log("designs, local disk:")
    report["results"] += run_designs("local", local, local, counts, local_delete_counts,
                                     local_samples, None)

    # ---- latency file system
    latfs = None
    if why_not_latfs is None:
        try:
            serial = LatFs(work / "serial", ["--serial-dirops"])
            serial.start()
            try:
                report["probes_serial_dirops"] = probe(serial, quick=True)
            finally:
                serial.stop()
            latfs = LatFs(work)
            latfs.start()
        except Exception as e:  # noqa: BLE001 - any failure to mount means: skip, say why
            why_not_latfs = f"mounting latfs failed: {e}"
            latfs = None
    if latfs is None:
        report["latfs_skipped"] = why_not_latfs
        log(f"SKIPPED the latency file system: {why_not_latfs}")
        return why_not_latfs
    try:
        log("latency file system: probes")
        report["probes"] = probe(latfs, quick)
        log("designs, latency file system:")
        report["results"] += run_designs("latfs", latfs.backing, latfs.mountpoint, counts, [],
                                         latfs_samples, latfs)
    finally:
        latfs.stop()
    # The same file system with no injected latency: what FUSE and this machine's CPU add.
    zero = LatFs(work / "zero", ["--meta-us", "0", "--read-us", "0", "--write-us", "0"])
    zero.start()
    try:
        log("latfs with no injected latency (FUSE overhead only):")
        report["results"] += run_designs("latfs0", zero.backing, zero.mountpoint,
                                         counts[-1:], [], latfs_samples, zero,
                                         designs=["ours"])
    finally:
        zero.stop()
    return why_not_latfs
