"""The soak's options and main: start the cluster, run the workload with faults, switch them off,
run on (recovery), audit the store from every reader, reclaim, check, report."""

import argparse
import collections
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import ledger as ledger_mod
from . import report
from . import BENCH
from .cluster import (Cluster, code_version, cpu_share_problem, get_event, id_ms,
                      latfs_problem, list_event, machine_load, now_ns, other_benchmarks,
                      scheduled_event)
from .workload import Workload

DEFAULT_FAULTS = ("eio:0.01:read+write,eio:0.002:meta,estale:0.005:lookup+open+getattr,"
                  "enospc:0.005:write,spike=200:0.01")
RESULTS = BENCH / "results"


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="bench/soak.py",
        description="The multi-client soak: all three functions, each instance on its own NFS "
        "client (latfs --nfs-cache, default cache times) of one store, faults injected, a mixed "
        "workload; then faults off and a recovery phase; then an audit from every reader. Checks "
        "that nothing acknowledged is lost, nothing deleted is served, no refused POST is stored, "
        "no body is torn, pages are in order without duplicates, and no 5xx but 503/507 (none at "
        "all once faults stop). Writes bench/results/soak.md and soak.json. Needs root.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--minutes", type=float, default=10, help="the phase with faults")
    p.add_argument("--recovery-minutes", type=float, default=3,
                   help="the phase after faults stop")
    p.add_argument("--seed", type=int, default=1,
                   help="the workload's seed; client i injects faults with seed SEED*1000+i")
    p.add_argument("--faults", default=DEFAULT_FAULTS, help="latfs --faults for every client")
    p.add_argument("--posters", type=int, default=2, help="post-message instances")
    p.add_argument("--readers", type=int, default=2, help="get-messages instances that read")
    p.add_argument("--followers", type=int, default=2,
                   help="get-messages instances that follow oldest first")
    p.add_argument("--deleters", type=int, default=2, help="delete-messages instances")
    p.add_argument("--post-gap", type=float, default=0.2,
                   help="mean seconds between a poster's POSTs")
    p.add_argument("--delete-gap", type=float, default=0.7,
                   help="mean seconds between a deleter's requests")
    p.add_argument("--delete-all-every", default="90-150",
                   help="seconds between DELETE alls (a range)")
    p.add_argument("--reclaim-every", default="10-30",
                   help="seconds between scheduled reclaiming events (a range)")
    p.add_argument("--cache", default="",
                   help="extra latfs options for every client (e.g. '--acdirmax 10'); default: "
                   "nfs(5)'s cache times")
    p.add_argument("--no-cpu-share", action="store_true",
                   help="run instances at full CPU (default: Lambda's share of their deployed "
                   "memory size, cgroup v1)")
    p.add_argument("--bin-dir", type=Path, default=None,
                   help="the binaries to run (python3 -m soak.build's output); default: the "
                   "working tree's target/release, as the last build left it")
    p.add_argument("--work", type=Path, default=None,
                   help="scratch directory (default: a new one under /tmp; removed afterwards "
                   "unless --keep)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--out", type=Path, default=RESULTS,
                   help="where soak.md and soak.json go")
    p.add_argument("--name", default="soak", help="the results' file name stem")
    p.add_argument("--wait-for-quiet", type=float, default=0, metavar="MINUTES",
                   help="if the main benchmark (bench/run.sh) or a cargo build is running, wait "
                   "up to this long for it to end (checking each minute); 0: refuse to start")
    p.add_argument("--force", action="store_true",
                   help="start even if the main benchmark or a build is running")
    args = p.parse_args(argv)
    for name in ("delete_all_every", "reclaim_every"):
        low, _, high = getattr(args, name).partition("-")
        setattr(args, name, (float(low), float(high or low)))
    return args


def wait_for_quiet(args):
    deadline = time.monotonic() + args.wait_for_quiet * 60
    while True:
        busy = other_benchmarks()
        if not busy or args.force:
            return busy
        if time.monotonic() >= deadline:
            sys.exit("another benchmark or build is running (use --wait-for-quiet MINUTES, or "
                     "--force):\n  " + "\n  ".join(busy))
        log(f"waiting: {len(busy)} other benchmark or build processes, e.g. {busy[0][:120]}")
        time.sleep(60)


def main(argv=None):
    args = parse_args(argv)
    problem = latfs_problem(args.bin_dir)
    if problem:
        sys.exit(f"cannot run the soak: {problem}")
    cpu_problem = None if args.no_cpu_share else cpu_share_problem()
    if cpu_problem:
        log(f"NO CPU SHARE: {cpu_problem}; instances run at full CPU")
    busy_at_start = wait_for_quiet(args)
    work = args.work or Path(tempfile.mkdtemp(prefix="efs-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    config = {
        "command": " ".join(["bench/soak.py", *(argv if argv is not None else sys.argv[1:])]),
        "seed": args.seed, "faults": args.faults, "fault_seeds": "SEED*1000 + client index",
        "minutes": args.minutes, "recovery_minutes": args.recovery_minutes,
        "cache_options": args.cache or "default (acregmin 3, acregmax 60, acdirmin 30, "
                                       "acdirmax 60)",
        "cpu_share": "none (full CPU)" if (args.no_cpu_share or cpu_problem) else
                     "Lambda's share of the deployed memory size (cgroup v1 cpu quota)",
        "post_gap_s": args.post_gap, "delete_gap_s": args.delete_gap,
        "delete_all_every_s": args.delete_all_every, "reclaim_every_s": args.reclaim_every,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "code": code_version(args.bin_dir), "other_benchmarks_at_start": busy_at_start,
        "load_before": machine_load(),
    }
    log(f"soak: seed {args.seed}, faults {args.faults}, {args.minutes} min + "
        f"{args.recovery_minutes} min recovery, scratch {work}; load {config['load_before']}")
    ledger = ledger_mod.Ledger()
    cluster = Cluster(work, client_options=args.cache.split(),
                      cgroups=not (args.no_cpu_share or cpu_problem), bin_dir=args.bin_dir)
    load_samples = []
    try:
        def client_options(i):
            return ["--faults", args.faults, "--seed", str(args.seed * 1000 + i)]

        def add(function, n):
            return [cluster.add(function, extra_client_options=client_options(
                len(cluster.nodes) + 1)) for _ in range(n)]

        posters = add("post-message", args.posters)
        readers = add("get-messages", args.readers)
        followers = add("get-messages", args.followers)
        deleters = add("delete-messages", args.deleters)
        config["binaries"] = cluster.binaries
        config["nodes"] = [{"name": n.name, "function": n.function, "memory_mb": n.memory_mb,
                            "role": role, "client": str(n.client.mountpoint),
                            "fault_seed": args.seed * 1000 + i + 1}
                           for i, (n, role) in enumerate(
                               [(n, "poster") for n in posters] + [(n, "reader") for n in readers]
                               + [(n, "follower") for n in followers]
                               + [(n, "deleter") for n in deleters])]
        workload = Workload(cluster, ledger, args.seed, f"s{args.seed}", args.post_gap,
                            args.delete_gap, args.delete_all_every, args.reclaim_every)
        started = now_ns()
        ledger.phases = [(0, "faults")]
        workload.start(posters, readers, followers, deleters)
        sampler_stop = threading.Event()
        sampler = threading.Thread(target=sample_load, args=(load_samples, sampler_stop, ledger,
                                                            workload), daemon=True)
        sampler.start()
        wait(workload, args.minutes * 60)
        stats_at_faults_off = {n.name: n.client.stats() for n in cluster.nodes}
        cluster.faults(False)
        time.sleep(0.1)
        faults_off = now_ns()
        ledger.begin_phase("recovery", faults_off)
        log("faults off: recovery")
        wait(workload, args.recovery_minutes * 60)
        workload.finish()
        sampler_stop.set()
        ended = now_ns()
        ledger.begin_phase("audit", now_ns())
        log("audit: every reader lists both orders to the end and reads by id")
        audit = run_audit(cluster, ledger, workload, readers + followers, deleters)
        stats_at_end = {n.name: n.client.stats() for n in cluster.nodes}
        config["load_after"] = machine_load()
        config["other_benchmarks_at_end"] = other_benchmarks()
        log("checking")
        findings, acked, must_gone, maybe_gone = ledger_mod.evaluate(ledger)
        audit.update(audit_consistency(ledger, acked, must_gone, maybe_gone))
        audit["backing"] = inspect_backing(cluster.backing, audit.get("final_listed", set()))
        evidence = gather_evidence(findings, ledger, cluster, stats_at_end)
        summary = report.summarize(
            config=config, ledger=ledger, findings=findings, acked=acked, nodes=cluster.nodes,
            started=started, faults_off=faults_off, ended=ended, audit=audit,
            stats_at_faults_off=stats_at_faults_off, stats_at_end=stats_at_end,
            load_samples=load_samples, workload_errors=workload.errors,
            function_logs=function_log_summary(cluster.nodes))
        summary["evidence"] = evidence
        if not summary["all_green"] and args.work is None:
            args.keep = True
            log(f"a check failed: the scratch directory stays for the evidence: {work}")
        summary["scratch"] = str(work) if args.keep else None
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{args.name}.json").write_text(json.dumps(summary, indent=1, default=str))
        (args.out / f"{args.name}.md").write_text(report.soak_markdown(summary))
        log(f"wrote {args.out / (args.name + '.md')} and .json")
        print(report.verdict_lines(summary))
        return 0 if summary["all_green"] else 1
    finally:
        cluster.close()
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def wait(workload, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not workload.stop.is_set():
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    if workload.errors:
        raise RuntimeError("the soak's own code failed:\n" + "\n".join(workload.errors))


def sample_load(samples, stop, ledger, workload):
    """Every 30 s: the machine's load, and a progress line."""
    while not stop.wait(30):
        load = machine_load()
        samples.append({"at": time.time(), **load})
        with ledger.lock:
            posts = len(ledger.posts)
            acked = sum(1 for p in ledger.posts if p.status == 201)
            fivexx = sum(n for (ph, fn, rq, st, code), n in ledger.statuses.items()
                         if isinstance(st, int) and st >= 500)
            others = len(ledger.failures)
            pages = len(ledger.pages)
            dall = len(ledger.delete_alls)
            recl = len(ledger.reclaims)
        log(f"progress: {posts} POSTs ({acked} acked), {pages} pages, {dall} DELETE all, "
            f"{recl} reclaim runs, {fivexx} 5xx (503/507 allowed), {others} failures so far; "
            f"load {load['loadavg']} busy {load['cpu_busy_1s']}")


# ------------------------------------------------------------------------------------------
# the audit


def run_audit(cluster, ledger, workload, get_nodes, deleters):
    """With faults off and nothing else running: every get node follows both orders to the end
    and reads by id every message that may be live (and a sample of the rest); then reclaiming
    runs until it says finished; then one node lists and reads again."""
    audit = {"streams": {}}
    time.sleep(ledger_mod.SETTLE_MS / 1000 + 0.5)
    state = workload.state
    with state.lock:
        acked = list(state.acked)
        acked_at = dict(state.acked_at)
    last_delete_all = max((a.t0 for a in ledger.delete_alls), default=0)
    candidates = [m for m in acked if acked_at[m] >= last_delete_all - 5 * 10**9]
    rng = random.Random(7)
    older = [m for m in acked if acked_at[m] < last_delete_all - 5 * 10**9]
    sample = rng.sample(older, min(300, len(older)))
    audit["read_candidates"] = len(candidates)
    audit["read_sample_older"] = len(sample)

    def lists_and_reads(node, tag):
        listed = {}
        for order in ("asc", "desc"):
            stream = f"audit-{tag}-{node.name}-{order}"
            ids = []
            after, seq = None, 0
            for _ in range(10_000):
                got = ledger.page_done(stream, seq, order, after, 100,
                                       node.invoke(list_event(order, 100, after)))
                if got is None:
                    continue
                seq += 1
                page_ids, after = got
                ids.extend(page_ids)
                if after is None:
                    break
            listed[order] = ids
        for mid in candidates + sample:
            ledger.read_done(mid, node.invoke(get_event(mid)), "acked")
        audit["streams"][f"{tag}-{node.name}"] = {o: len(v) for o, v in listed.items()}
        return listed

    results = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n.name, lists_and_reads(
        n, "before-reclaim"))) for n in get_nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    audit["listed_before_reclaim"] = results
    runs = []
    for _ in range(60):
        result, error = ledger.reclaim_done(deleters[0].invoke(scheduled_event()))
        runs.append(result or {"error": error})
        if result and result.get("finished"):
            break
    audit["reclaim_runs"] = runs
    after = lists_and_reads(get_nodes[0], "after-reclaim")
    audit["listed_after_reclaim"] = after
    audit["final_listed"] = set(after["asc"])
    return audit


def audit_consistency(ledger, acked, must_gone, maybe_gone):
    """At rest every reader must list the same messages in both orders, and exactly the
    acknowledged messages that were not deleted (those a delete may or may not have taken are
    reported, and must be listed by all or by none)."""
    out = {}
    listings = {}
    for name, listed in ledger_audit_listings(ledger).items():
        listings[name] = listed
    sets = {name: set(ids) for name, ids in listings.items()}
    union = set().union(*sets.values()) if sets else set()
    disagree = sorted(m for m in union if not all(m in s for s in sets.values()))
    out["disagreements"] = disagree[:50]
    out["disagreement_count"] = len(disagree)
    audit_t0 = min((pg.t0 for pg in ledger.pages if pg.stream.startswith("audit-")),
                   default=now_ns())
    expected = {m for m, p in acked.items() if maybe_gone[m] > audit_t0}
    undecided = {m for m in acked if maybe_gone[m] <= audit_t0 < must_gone[m]}
    out["expected_live"] = len(expected)
    out["undecided"] = len(undecided)
    out["undecided_listed"] = len(undecided & union)
    out["expected_missing"] = sorted(expected - union)[:50]
    out["unexpected_listed"] = sorted(union - expected - undecided)[:50]
    return out


def ledger_audit_listings(ledger):
    listings = collections.defaultdict(list)
    for pg in ledger.pages:
        if pg.stream.startswith("audit-") and pg.status == 200:
            listings[pg.stream].extend(pg.ids)
    return listings


_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def inspect_backing(backing, final_listed):
    """What is left on the server's side: message files, temporaries, directories."""
    messages, temporaries, directories, other = [], [], 0, []
    for root, dirs, files in os.walk(backing):
        directories += len(dirs)
        for name in files:
            if _ID.match(name):
                messages.append(name)
            elif name.startswith(".tmp-"):
                temporaries.append(name)
            elif root != str(backing):
                other.append(os.path.join(root, name))
    not_listed = sorted(set(messages) - final_listed)
    return {"message_files": len(messages), "listed": len(final_listed),
            "message_files_not_listed": len(not_listed), "not_listed_sample": not_listed[:20],
            "temporaries": len(temporaries), "directories": directories,
            "other_files": other[:20]}


def function_log_summary(nodes):
    """Warnings and errors the functions logged, by message and cause (ids and numbers
    blanked), per function."""
    counts = collections.Counter()
    for node in nodes:
        for path in node.logs():
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                if '"level"' not in line:
                    continue
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if doc.get("level") not in ("WARN", "ERROR"):
                    continue
                fields = doc.get("fields", {})
                text = f"{fields.get('message')}: {fields.get('error', '')}".strip(": ")
                text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                              "<id>", text)
                text = re.sub(r"\d+(\.\d+)?", "N", text)
                counts[(node.function, doc["level"], text)] += 1
    return [{"function": f, "level": lv, "message": t, "count": n}
            for (f, lv, t), n in counts.most_common()]


def gather_evidence(findings, ledger, cluster, stats_at_end, per_check=3):
    """For the first few messages of each failing check: the sequence of answers about it, the
    log lines of the requests involved, the clients' fault counters, whether its file is still on
    the server's side."""
    nodes = {n.name: n for n in cluster.nodes}
    out = {}
    for check, items in findings.items.items():
        seen = []
        for _, detail in items:
            key = detail.get("token") or detail.get("id")
            if not key or key in [k for k, _ in seen]:
                continue
            seen.append((key, detail))
            if len(seen) >= per_check:
                break
        entries = []
        for key, detail in seen:
            mid, token = detail.get("id"), detail.get("token")
            entry = {"id": mid, "token": token,
                     "history": ledger_mod.history(ledger, mid=None if token else mid,
                                                   token=token)}
            logs = {}
            for node_key, rid_key in (("node", "request_id"), ("post_node", "post_request_id")):
                node, rid = nodes.get(detail.get(node_key)), detail.get(rid_key)
                if node and rid:
                    logs[f"{node.name} {rid}"] = [line for line in node.log_lines(rid)
                                                  if not (isinstance(line, dict)
                                                          and "_aws" in line)]
            entry["function_logs"] = logs
            involved = {detail.get("node"), detail.get("post_node")} - {None}
            entry["client_faults"] = {n: stats_at_end.get(n, {}).get("faults") for n in involved}
            if mid:
                entry["file_on_server_now"] = any(cluster.backing.rglob(mid))
            entries.append(entry)
        out[check] = entries
    return out
