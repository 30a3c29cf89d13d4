"""The command line: the options, and ``main``, which runs the parts in order and writes the results.

The parts: machine facts, the Lambda model (``lambda_model``), the in-process design comparison
(``designs``), the functions (``functions``); then results.json, the plots (``plots``) and
report.md (``report``). Ctrl-C and SIGTERM unwind through every part's clean-up: latfs is
unmounted, the cgroups removed, the scratch directory deleted.
"""

import argparse
import atexit
import json
import os
import shutil
import signal
import time
from pathlib import Path

import lambdasim as L  # bench/lambdasim.py: bench/ is on sys.path (see __init__)

from . import designs, functions, lambda_model
from .common import BENCH, MESSAGE_SIZE, PAGE, log
from .lambda_model import MEMORY_TUNING, SEED_RATE
from .latfs import LAT_META_US, LAT_READ_US, LAT_WRITE_US, LatFs
from .machine import BusySampler, cpu_busy, fs_type, git_describe, machine
from .plots import designs_plot, lambda_plot
from .report import write_report

DESCRIPTION = ("The benchmark harness: the Lambda model, the in-process design comparison, "
               "the functions.")


def parse_sizes(text):
    """Stored counts: "10,1k,1m" is [10, 1000, 1000000]."""
    out = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        if not part:
            continue
        mult = 1
        if part[-1] in "km":
            mult = 1_000 if part[-1] == "k" else 1_000_000
            part = part[:-1]
        out.append(int(float(part) * mult))
    return out


def build_parser():
    """The options (bench/run.sh passes its arguments on to them)."""
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    parser.add_argument("--work", default=os.environ.get("BENCH_WORK", "/tmp/efs-bench"),
                        help="scratch directory on local disk (default /tmp/efs-bench)")
    parser.add_argument("--out", default=None,
                        help="where the report goes (default results/, or results/tmp/quick "
                             "for --quick, so a smoke test never overwrites the recorded run)")
    parser.add_argument("--sizes", type=parse_sizes, default=None,
                        help="stored counts for the Lambda model, e.g. 10,1k,10k,100k,1m "
                             "(default all five; --quick: 10,1k)")
    parser.add_argument("--tuning-count", type=parse_sizes, default=None,
                        help="stored count of the power-tuning table (default 10k; --quick: 1k); "
                             "it must be one of --sizes")
    parser.add_argument("--tuning-memory", type=lambda t: [int(x) for x in t.split(",")],
                        default=MEMORY_TUNING, help="memory sizes (MB) of the power-tuning table")
    parser.add_argument("--rate", type=float, default=SEED_RATE,
                        help="seeded messages per second on the timeline (default 100)")
    parser.add_argument("--no-burst", action="store_true", help="skip the burst dataset")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="invocation timeout in s (default 10, the deployed function timeout)")
    parser.add_argument("--no-cgroups", action="store_true",
                        help="no CPU share: every instance at full CPU")
    parser.add_argument("--memory-limit", action="store_true",
                        help="also limit each instance's memory to its memory size (cgroup v1)")
    parser.add_argument("--latfs-model", choices=["nfs", "plain"], default="nfs",
                        help="the Lambda model's file system: nfs (default) is latfs --nfs-cache, "
                             "the NFS client model with nfs(5)'s default cache times, each set of "
                             "binaries on a client of its own; plain is the earlier latency file "
                             "system without client caches (the design comparison and the "
                             "functions part always use plain)")
    parser.add_argument("--binaries", default=None,
                        help="where the function binaries measured are (default the root "
                             "workspace's target/release)")
    parser.add_argument("--label", default="main",
                        help="the name of those binaries in the report (default main)")
    parser.add_argument("--compare-binaries", action="append", metavar="LABEL=DIR",
                        help="also run the Lambda model's main memory sizes (128 and 1,769 MB) "
                             "with the function binaries in DIR, in the same run, e.g. "
                             "v2=/tmp/efs-v2/target/release (repeatable); the report compares "
                             "them with the main binaries")
    parser.add_argument("--page-samples", type=int, default=None,
                        help="samples per page variant in the Lambda model (default 9; --quick 2)")
    parser.add_argument("--op-samples", type=int, default=None,
                        help="samples of GET by id, POST and DELETE by id (default 20; --quick 5)")
    parser.add_argument("--skip-lambda", action="store_true", help="skip the Lambda model")
    parser.add_argument("--skip-designs", action="store_true",
                        help="skip the in-process comparison of the original, naive and our design")
    parser.add_argument("--skip-functions", action="store_true",
                        help="skip zip sizes and the large-message RSS workload")
    return parser


def main():
    """The whole run (bench/run.sh calls this through bench/harness.py)."""
    args = build_parser().parse_args()
    if args.tuning_count:
        args.tuning_count = args.tuning_count[0]

    # Ctrl-C and SIGTERM unwind through the finally blocks: latfs unmounted, cgroups removed.
    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # also when started in the background (SIGINT ignored)
    atexit.register(L.remove_all_groups)

    started = time.monotonic()
    work = Path(args.work) / f"run-{os.getpid()}"
    out = Path(args.out or (BENCH / "results" / "tmp" / "quick" if args.quick else BENCH / "results"))
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True)
    counts = [10, 100] if args.quick else [10, 1_000, 10_000]
    local_delete_counts = [1_000] if args.quick else [100_000]
    local_samples = {"post": 50, "page": 5, "get": 20} if args.quick else {"post": 200, "page": 20, "get": 100}
    latfs_samples = {"post": 10, "page": 3, "get": 10} if args.quick else {"post": 50, "page": 5, "get": 30}

    report = {"machine": machine(), "work_fs": fs_type(work), "counts": counts,
              "cpu_busy_before_pct": cpu_busy(),
              "message_size": MESSAGE_SIZE, "page": PAGE,
              "latency_us": {"meta": LAT_META_US, "read": LAT_READ_US, "write": LAT_WRITE_US},
              "samples": {"local": local_samples, "latfs": latfs_samples}, "results": [],
              "git": git_describe()}
    log(f"machine: {report['machine']}; work directory {work} ({report['work_fs']}); "
        f"CPUs {report['cpu_busy_before_pct']} % busy before the run")

    why_not = LatFs.unavailable()
    busy = BusySampler()
    busy.start()
    try:
        # ---- the Lambda model (first: it is what the store is judged by)
        if not args.skip_lambda:
            report["lambda"], why_not = lambda_model.run(args, work, why_not)
            report["lambda"]["cpu_busy_during_pct"] = busy.mark()
            # Written at once, so a later failure does not lose it.
            (out / "results.json").write_text(json.dumps(report, indent=1))

        # ---- the in-process design comparison
        if not args.skip_designs:
            why_not = designs.compare(report, work, counts, local_delete_counts, local_samples,
                                      latfs_samples, why_not, args.quick)
            report["designs_cpu_busy_during_pct"] = busy.mark()

        # ---- functions
        if not args.skip_functions:
            report["functions"] = functions.measure_all(work, why_not, args.quick)
    finally:
        busy.stop()
        L.remove_all_groups()
        shutil.rmtree(work, ignore_errors=True)

    report["elapsed_s"] = time.monotonic() - started
    report["design_failures"] = designs.FAILURES
    report["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    report["cpu_busy_other_pct"] = busy.summary()
    (out / "results.json").write_text(json.dumps(report, indent=1))
    has_plot = bool(report["results"]) and designs_plot(report["results"], out / "latency-designs.png")
    has_lplot = "lambda" in report and "skipped" not in report["lambda"] and \
        lambda_plot(report["lambda"], out / "latency.png")
    write_report(report, out / "report.md", has_plot, has_lplot, counts, local_delete_counts)
    log(f"done in {report['elapsed_s']:.0f} s: {out / 'report.md'}, {out / 'results.json'}"
        + (f", {out / 'latency.png'}" if has_lplot else "")
        + (f", {out / 'latency-designs.png'}" if has_plot else ""))
