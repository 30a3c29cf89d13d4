"""The Lambda model: the release functions through the Runtime API, at Lambda's CPU share.

For each dataset (a stored count on a 100/s timeline, ``--sizes``, plus the burst) it seeds the
store into latfs's backing directory, measures every operation at each memory size
(``measure_cell``: pages, GET by id, POST, DELETE by id, init), the file system's floor for a
page at that CPU share (``measure_floor``), the same pages on local disk for their CPU cost, and
DELETE all once per memory size (``measure_delete_all``). ``run`` mounts latfs for it (the NFS
client model by default, ``--latfs-model``) and returns the ``lambda`` part of results.json.

More than one set of binaries can be measured in one run (``--compare-binaries``): each set gets
its own latfs mount over the one backing directory (its own NFS client of the same server), and
at each dataset and memory size of the main table (not the power-tuning sizes) the sets take
turns, in an order that alternates from dataset to dataset.
"""

import json
import random
import statistics
import subprocess
import time

import lambdasim as L  # bench/lambdasim.py: bench/ is on sys.path (see __init__)

from .common import EFS_BENCH, FUNCTION_BIN, FUNCTIONS, MESSAGE_SIZE, PAGE, log
from .lambda_cells import Cell, LambdaContext, json_body, status_of
from .latfs import MODEL_TEXT, LatFs
from .stores import Dataset, body, seed_dataset, wipe

MEMORY_MAIN = [1769, 128]                 # full vCPU, and the deployed size
MEMORY_TUNING = [128, 256, 512, 1024, 1769]
SIZES = [10, 1_000, 10_000, 100_000, 1_000_000]
TUNING_COUNT = 10_000
SEED_RATE = 100.0                         # messages per second, on a timeline ending now
BURST = {"count": 10_000, "seconds": 10}  # the burst dataset: 10,000 messages in 10 s
# Lambda arm64 list price, us-east-1 (as given to this benchmark and used on 2026-11-28; not
# re-checked against aws.amazon.com/lambda/pricing from this machine, which has no internet).
PRICE = {"gb_second": 0.0000133334, "per_million_requests": 0.20, "arch": "arm64",
         "region": "us-east-1", "as_of": "2026-11-28"}


# Store v3's settle horizon (shared/src/store/clock.rs, SETTLE): an oldest-first page returns only
# messages older than this before the reader's clock. Pages are measured once the newest seeded id
# is older than SETTLED_AGE_S, so that every page finds the messages it is checked against.
SETTLE_S = 1.25
SETTLED_AGE_S = 1.5


def id_millis(message_id):
    """The Unix millisecond of a UUID v7 id (its first 48 bits)."""
    return int(message_id.replace("-", "")[:12], 16)


def newest_age_s(ds):
    """How old the newest seeded id is, by this machine's clock (s)."""
    return time.time() - id_millis(ds.ids[-1]) / 1000 if ds.ids else None


def wait_settled(ds):
    """Sleeps until the newest seeded id is SETTLED_AGE_S old; returns how long it slept."""
    age = newest_age_s(ds)
    if age is None or age >= SETTLED_AGE_S:
        return 0.0
    time.sleep(SETTLED_AGE_S - age)
    return SETTLED_AGE_S - age


def binaries_in(directory):
    """The function binaries in `directory` (a target/release), or None for each one missing."""
    return {name: (directory / name if (directory / name).exists() else None) for name in FUNCTIONS}


def page_positions(count):
    """Where the first, middle and last page of `count` messages start."""
    last = ((count - 1) // PAGE) * PAGE if count else 0
    return {"first": 0, "middle": (count // 2 // PAGE) * PAGE, "last": last}


def measure_cell(ctx, where, messages_dir, ds, mb, samples, functions=("get", "post", "delete"),
                 cold=0, stats=None):
    """The non-destructive operations of one dataset at one memory size (and one place): pages
    of 100 (first/middle/last, asc/desc), GET by id, POST, DELETE by id of the messages this
    POSTed (so the store is as seeded afterwards), init times; with `stats` (latfs's counters),
    the file system requests and round trips per request."""
    cell = Cell(ctx, where, messages_dir, mb, stats)
    out = {"where": where, "build": ctx.label, "count": ds.count, "dataset": ds.label,
           "memory_mb": mb, "quota_us": L.quota_us(mb) if ctx.cgroups else None, "ops": {}}
    rng = random.Random(ds.count * 7 + mb)
    budget = samples["budget_s"]
    try:
        if "get" in functions:
            cell.warm("get-messages", L.get_event(ds.ids[len(ds.ids) // 3]))
            # Oldest-first pages see only what is older than the settle horizon: say how old the
            # newest id was when the pages began (wait_settled made it at least SETTLED_AGE_S).
            out["newest_id_age_s"] = newest_age_s(ds)
            timeouts = 0
            for order in ("asc", "desc"):
                ordered = ds.ids if order == "asc" else ds.ids[::-1]
                for pos, start in page_positions(ds.count).items():
                    key = f"page_{pos}_{order}"
                    if timeouts >= 2 or ctx.skip(where, mb, "page", ds.count):
                        out["ops"][key] = {"skipped": ctx.skip_reason(where, mb, "page")}
                        continue
                    after = ordered[start - 1] if start > 0 else None
                    want_first = ordered[start] if start < len(ordered) else None
                    want_n = min(PAGE, ds.count - start)

                    def check(resp, want_first=want_first, want_n=want_n, order=order):
                        if status_of(resp) != 200:
                            return f"status {status_of(resp)}"
                        body = json_body(resp) or {}
                        msgs = body.get("messages") or []
                        if len(msgs) != want_n:
                            return f"{len(msgs)} messages, expected {want_n}"
                        if msgs and msgs[0].get("id") != want_first:
                            return f"not in {order} order from the cursor (order={order} not honoured?)"
                        return None

                    event = L.list_event(PAGE, order, after)
                    r = cell.run("get-messages", (event for _ in range(samples["page"])), check, budget)
                    out["ops"][key] = r
                    if r["timeouts"]:
                        timeouts += 1
                        ctx.note_timeout(where, mb, "page", ds.count)
            if not ctx.skip(where, mb, "get", ds.count):
                picks = [ds.ids[rng.randrange(ds.count)] for _ in range(samples["get"])]
                r = cell.run("get-messages", (L.get_event(i) for i in picks),
                             lambda resp: None if status_of(resp) == 200 else f"status {status_of(resp)}",
                             budget)
                out["ops"]["get"] = r
                if r["timeouts"]:
                    ctx.note_timeout(where, mb, "get", ds.count)
        posted = []
        if "post" in functions:
            def post_check(resp):
                if status_of(resp) != 201:
                    return f"status {status_of(resp)}"
                body = json_body(resp) or {}
                if body.get("id"):
                    posted.append(body["id"])
                return None
            warm = cell.warm("post-message", L.post_event(body(MESSAGE_SIZE, 0)), ok=(201,))
            if warm:
                post_check(warm)
            texts = (L.post_event(body(MESSAGE_SIZE, n + 1)) for n in range(samples["post"]))
            r = cell.run("post-message", texts, post_check, budget)
            out["ops"]["post"] = r
        if "delete" in functions and posted:
            # DELETE by id: the messages just posted, so the store is as seeded again.
            cell.warm("delete-messages", L.delete_event(posted.pop()))
            r = cell.run("delete-messages", (L.delete_event(i) for i in list(posted)),
                         lambda resp: None if status_of(resp) in (200, 204) else f"status {status_of(resp)}",
                         budget)
            out["ops"]["delete"] = r
        cell.close()
        for name in (["get-messages"] if "get" in functions else []) + \
                    (["post-message"] if "post" in functions else []) + \
                    (["delete-messages"] if "delete" in functions else []):
            if cold:
                cell.cold_starts(name, cold)
    finally:
        cell.close()
    out["functions"] = cell.functions
    return out


def measure_delete_all(ctx, where, messages_dir, ds, mb):
    """DELETE all of exactly `ds`: once, on a warm delete-messages instance, then a check that a
    listing (at full CPU) shows nothing. 200 with a count (old contract) or 204 (new) both pass."""
    cell = Cell(ctx, where, messages_dir, mb)
    out = {"where": where, "build": ctx.label, "count": ds.count, "dataset": ds.label,
           "memory_mb": mb, "ops": {}}
    try:
        if ctx.skip(where, mb, "delete_all", ds.count):
            out["ops"]["delete_all"] = {"skipped": ctx.skip_reason(where, mb, "delete_all")}
            return out
        # Warm the instance with a DELETE of an id that is not stored (404 either way).
        cell.warm("delete-messages", L.delete_event("01936b2e-1e2d-7c3a-8b4c-5d6e7f8a9b0c"))

        def check(resp):
            st = status_of(resp)
            if st not in (200, 204):
                return f"status {st}"
            b = json_body(resp)
            if isinstance(b, dict) and "deleted" in b:
                out["ops"]["deleted"] = b["deleted"]
            return None
        r = cell.run("delete-messages", [L.delete_all_event()], check, 0)
        out["ops"]["delete_all"] = r
        if r["timeouts"]:
            ctx.note_timeout(where, mb, "delete_all", ds.count)
        cell.close()
        if not r["timeouts"]:
            # What a client sees right after: nothing listed.
            check_cell = Cell(ctx, where, messages_dir, L.FULL_CPU_MB)
            try:
                _, resp = check_cell.instance("get-messages").invoke(L.list_event(1), ctx.timeout)
                listed = len((json_body(resp) or {}).get("messages") or [])
                out["ops"]["listed_after"] = listed
            except L.InvocationTimeout:
                out["ops"]["listed_after"] = None
            finally:
                check_cell.close()
    finally:
        cell.close()
    out["functions"] = cell.functions
    return out


def measure_floor(ctx, messages_dir, ds, mb, repeat=7):
    """The file system's floor for a page at `mb`'s CPU share: ``efs-bench floor`` in a cgroup
    of that share opens, reads and closes the middle page's 100 messages in turn, one thread,
    through `messages_dir` (one pass to warm, then `repeat`). What a page costs beyond this is the
    store's; what the floor costs is the file system's and the host's (shared/MACHINE-NOTES.md:
    FUSE's CPU cost per file differs about fourfold between hosts of one kind)."""
    start = page_positions(ds.count)["middle"]
    ids = ds.ids[start:start + PAGE]
    ids_file = ctx.work / "floor-ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    group = L.CpuGroup(mb) if ctx.cgroups else None
    try:
        done = subprocess.run([str(EFS_BENCH), "floor", "--dir", str(messages_dir), "--ids-file",
                               str(ids_file), "--repeat", str(repeat)], capture_output=True,
                              text=True, timeout=300, preexec_fn=group.join if group else None)
    finally:
        if group:
            group.remove()
    if done.returncode != 0:
        return {"build": ctx.label, "count": ds.count, "dataset": ds.label, "memory_mb": mb,
                "error": done.stderr.strip()[-300:]}
    r = json.loads(done.stdout)
    return {"build": ctx.label, "count": ds.count, "dataset": ds.label, "memory_mb": mb,
            "files": r["files"], "wall_ms": r["wall_ms"], "cpu_ms": r["cpu_ms"],
            "p50": statistics.median(r["wall_ms"]), "cpu_ms_p50": statistics.median(r["cpu_ms"])}


def fmt_cell_log(c):
    """One progress line for a cell."""
    parts = []
    ops = c["ops"]
    pages = [v["p50"] for k, v in ops.items() if k.startswith("page_") and v.get("p50") is not None]
    if pages:
        parts.append(f"page p50 {min(pages):.1f}–{max(pages):.1f} ms")
    for k in ("get", "post", "delete"):
        if ops.get(k, {}).get("p50") is not None:
            parts.append(f"{k} {ops[k]['p50']:.1f} ms")
    if "delete_all" in ops:
        d = ops["delete_all"]
        parts.append("DELETE all " + ("TIMEOUT" if d.get("timeouts") else
                                      "skipped" if "skipped" in d else f"{d['p50']:.0f} ms"))
    inits = [f"{n.split('-')[0]} {statistics.median(f['init_ms']):.0f}" for n, f in c.get("functions", {}).items()
             if f.get("init_ms")]
    if inits:
        parts.append("init " + "/".join(inits) + " ms")
    notes = sorted({n for v in ops.values() if isinstance(v, dict) for n in v.get("notes", [])})
    if notes:
        parts.append("NOTES: " + "; ".join(notes))
    return ", ".join(parts)


def run_lambda(args, work, builds, mounts, why_not_latfs):
    """The whole Lambda model for `builds` (``[(label, binaries)]``, the main set first), each on
    its mount in `mounts` (label -> LatFs, or None on local disk); returns its part of
    results.json."""
    why_not_cg = L.cgroups_unavailable() if not args.no_cgroups else "--no-cgroups given"
    if why_not_cg:
        log(f"NO CPU SHARE: {why_not_cg}; measuring at full CPU only")
    L.remove_stale_groups()
    cgroups = why_not_cg is None
    main_mb = MEMORY_MAIN if cgroups else [L.FULL_CPU_MB]
    tuning_mb = [m for m in args.tuning_memory if m not in main_mb] if cgroups else []
    quick = args.quick
    samples = ({"page": 2, "get": 5, "post": 5, "delete": 5, "budget_s": 3, "cold": 1} if quick else
               {"page": 9, "get": 20, "post": 20, "delete": 20, "budget_s": 8, "cold": 2})
    if args.page_samples:
        samples["page"] = args.page_samples
    if args.op_samples:
        samples.update(get=args.op_samples, post=args.op_samples, delete=args.op_samples)
    if args.page_samples or args.op_samples:
        samples["budget_s"] = max(samples["budget_s"], 30)
    sizes = args.sizes or ([10, 1_000] if quick else SIZES)
    tuning_count = args.tuning_count or (1_000 if quick else TUNING_COUNT)
    datasets = [Dataset(n, args.rate, f"{args.rate:g}/s") for n in sizes]
    if not args.no_burst:
        b = Dataset(BURST["count"] // (10 if quick else 1), 0, "burst")
        b.rate = b.count / BURST["seconds"]
        b.label = f"burst: {b.count:,} in {BURST['seconds']} s"
        datasets.append(b)
    ctxs = {label: LambdaContext(work, binaries, cgroups, args.memory_limit, args.timeout, label)
            for label, binaries in builds}
    labels = [label for label, _ in builds]
    main = labels[0]
    latfs = mounts.get(main)
    out = {"cgroups": cgroups, "cgroups_skipped": why_not_cg, "memory_main": main_mb,
           "memory_tuning": sorted(set(main_mb + tuning_mb)) if cgroups else main_mb,
           "tuning_count": tuning_count, "samples": samples, "timeout_s": args.timeout,
           "seed_rate": args.rate, "burst": BURST, "price": PRICE, "cells": [], "seeding": [],
           "memory_limit": args.memory_limit, "label": main,
           "builds": {label: str(next(iter(b.values())).parent) for label, b in builds},
           "builds_git": {label: git_of(next(iter(b.values())).parent) for label, b in builds},
           "floors": [], "settle_s": SETTLE_S}
    if latfs is None:
        out["latfs_skipped"] = why_not_latfs
        log(f"Lambda model on local disk only (no latfs: {why_not_latfs})")
        backing = work / "lambda-local"
        backing.mkdir(exist_ok=True)
        views = {label: backing for label in labels}
    else:
        out["latfs_model"] = latfs.model
        out["latfs_model_text"] = MODEL_TEXT[latfs.model]
        backing = latfs.backing
        views = {label: mounts[label].mountpoint for label in labels}
    where = "latfs" if latfs else "local"
    try:
        for n_ds, ds in enumerate(datasets):
            t_ds = time.monotonic()
            secs = seed_dataset(backing, ds, work)
            out["seeding"].append({"count": ds.count, "dataset": ds.label, "s": secs})
            log(f"  {ds.label:>22} {ds.count:>9,}: seeded in {secs:.1f} s"
                + (f" (waited {w:.2f} s for the settle horizon)" if (w := wait_settled(ds)) else ""))
            # The builds take turns, first one then the other, alternating from dataset to dataset.
            order = labels[n_ds % len(labels):] + labels[:n_ds % len(labels)]
            mems = list(main_mb)
            if ds.count == tuning_count and ds.label != "burst" and not ds.label.startswith("burst"):
                mems += tuning_mb
            for mb in mems:
                for label in (order if mb in main_mb else [main]):
                    t = time.monotonic()
                    c = measure_cell(ctxs[label], where, views[label], ds, mb, samples,
                                     cold=samples["cold"],
                                     stats=mounts[label].stats if latfs is not None else None)
                    out["cells"].append(c)
                    log(f"    {label} {where} {mb:>4} MB: {fmt_cell_log(c)}  ({time.monotonic() - t:.0f} s)")
                if latfs is not None and mb in main_mb:
                    for label in order:
                        f = measure_floor(ctxs[label], views[label], ds, mb)
                        out["floors"].append(f)
                        log(f"    {label} {where} {mb:>4} MB: floor (100 files opened, read, closed "
                            f"in turn): " + (f"{f['p50']:.1f} ms, CPU {f['cpu_ms_p50']:.1f} ms"
                                             if "p50" in f else f"FAILED {f['error']}"))
            if latfs is not None:
                # CPU per request with no injected latency: the same data read on local disk.
                t = time.monotonic()
                c = measure_cell(ctxs[main], "local", backing, ds, L.FULL_CPU_MB, samples,
                                 functions=("get",))
                out["cells"].append(c)
                log(f"    {main} local {L.FULL_CPU_MB} MB: {fmt_cell_log(c)}  ({time.monotonic() - t:.0f} s)")
            # DELETE all, once per memory size (and build), each on exactly the dataset.
            fresh = True
            for mb in mems:
                for label in (order if mb in main_mb else [main]):
                    t = time.monotonic()
                    if not fresh and not ctxs[label].skip(where, mb, "delete_all", ds.count):
                        seed_dataset(backing, ds, work)
                        fresh = True
                    c = measure_delete_all(ctxs[label], where, views[label], ds, mb)
                    if "skipped" not in c["ops"]["delete_all"]:
                        fresh = False
                    out["cells"].append(c)
                    log(f"    {label} {where} {mb:>4} MB: {fmt_cell_log(c)}  ({time.monotonic() - t:.0f} s)")
            log(f"  {ds.label} {ds.count:,} done in {time.monotonic() - t_ds:.0f} s")
        wipe(backing)
    finally:
        L.remove_all_groups()
    return out


def git_of(directory):
    """The commit a target/release directory was built from (its checkout's HEAD, and whether
    shared/ or functions/ differ from it), or None outside a git checkout."""
    checkout = directory.resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(checkout), "log", "-1", "--format=%h %s"],
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--",
                                "shared", "functions"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + (" (shared/ or functions/ modified)" if dirty.stdout.strip() else "")


def builds_of(args):
    """The sets of binaries to measure: ``[(label, {function: path})]``, the main set first
    (``--binaries``, default the root workspace's target/release, labelled ``--label``), then
    each of ``--compare-binaries``. Raises ValueError naming what is missing."""
    from pathlib import Path
    builds = [(args.label, Path(args.binaries) if args.binaries else FUNCTION_BIN)]
    for item in args.compare_binaries or []:
        label, sep, directory = item.partition("=")
        if not sep or not label or not directory:
            raise ValueError(f"--compare-binaries wants LABEL=DIR, not {item!r}")
        builds.append((label, Path(directory)))
    if len({label for label, _ in builds}) != len(builds):
        raise ValueError("every set of binaries needs a label of its own")
    out = []
    for label, directory in builds:
        binaries = binaries_in(directory)
        missing = [n for n, b in binaries.items() if b is None]
        if missing:
            raise ValueError(f"{label}: release binaries missing in {directory}: {', '.join(missing)} "
                             "(cargo build --release -p ...)")
        out.append((label, binaries))
    return out


def run(args, work, why_not_latfs):
    """Mounts latfs (unless `why_not_latfs` already says why it cannot be used; one mount per
    set of binaries, over one backing directory), runs the whole model and unmounts. Returns the
    model's part of results.json, and why latfs cannot be used (None, or `why_not_latfs`, or why
    mounting it failed: the later parts skip it too)."""
    log("Lambda model: release binaries through the Runtime API at Lambda's CPU share")
    try:
        builds = builds_of(args)
    except ValueError as e:
        return {"skipped": str(e)}, why_not_latfs
    mounts = {}
    if why_not_latfs is None:
        try:
            first = None
            for label, _ in builds:
                m = LatFs(work / "lambda", model=args.latfs_model,
                          backing=first.backing if first else None,
                          name="latfs" if first is None else f"latfs-{label}")
                mounts[label] = m
                m.start()
                first = first or m
            log(f"  on {MODEL_TEXT[args.latfs_model]}"
                + (f"; {len(builds)} mounts (one client per set of binaries: "
                   f"{', '.join(label for label, _ in builds)})" if len(builds) > 1 else ""))
        except Exception as e:  # noqa: BLE001
            why_not_latfs = f"mounting latfs failed: {e}"
            for m in mounts.values():
                m.stop()
            mounts = {}
    try:
        return run_lambda(args, work, builds, mounts, why_not_latfs), why_not_latfs
    finally:
        for m in mounts.values():
            m.stop()
