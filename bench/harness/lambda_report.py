"""The Lambda model's part of the report: its tables, and the look-ups the plot shares.

``lambda_report`` gives the section's lines: the summary (page of 100 and DELETE all per stored
count and memory size), power tuning with cost, every operation (latfs, then local disk for the
CPU per page), the function instances and the targets. ``lam_op``, ``page_range`` and
``datasets_of`` find figures in results.json's ``lambda`` part.
"""

import math
import statistics

import lambdasim as L  # bench/lambdasim.py: bench/ is on sys.path (see __init__)

from .common import MESSAGE_SIZE, fmt
from .lambda_model import BURST


PAGE_KEYS = [f"page_{pos}_{order}" for order in ("asc", "desc") for pos in ("first", "middle", "last")]
OP_LABELS = {**{f"page_{pos}_{order}": f"page of 100, {pos}, {order}" for pos in ("first", "middle", "last")
                for order in ("asc", "desc")},
             "get": "GET by id", "post": "POST (256 B)", "delete": "DELETE by id",
             "delete_all": "DELETE all"}
OP_FUNCTION = {**{k: "get-messages" for k in PAGE_KEYS}, "get": "get-messages",
               "post": "post-message", "delete": "delete-messages", "delete_all": "delete-messages"}


def lam_cells(lam, where=None, mb=None, dataset=None, build=None):
    """The cells of one set of binaries (`build`, default the main one: every table but the
    comparison is of the main binaries)."""
    main = lam.get("label", "main")
    build = build or main
    for c in lam.get("cells", []):
        if (where is None or c["where"] == where) and (mb is None or c["memory_mb"] == mb) \
                and (dataset is None or c["dataset"] == dataset) and c.get("build", main) == build:
            yield c


def lam_op(lam, where, mb, count, op, dataset=None, build=None):
    for c in lam_cells(lam, where, mb, build=build):
        if c["count"] == count and (dataset is None or c["dataset"] == dataset) and op in c["ops"]:
            return c["ops"][op]
    return None


def op_text(r, field="p50", unit_s=False):
    if r is None:
        return "–"
    if "skipped" in r:
        return r["skipped"]
    if r.get("timeouts"):
        return f"**> {r['timeout_s']:g} s (timed out)**"
    v = r.get(field)
    if v is None:
        return "–"
    if unit_s and v >= 1000:
        return f"{v / 1000:,.2f} s"
    return f"{fmt(v)} ms"


def page_range(lam, where, mb, count, dataset, field="p50"):
    vals, timeouts, skipped = [], 0, 0
    for k in PAGE_KEYS:
        r = lam_op(lam, where, mb, count, k, dataset)
        if r is None:
            continue
        if "skipped" in r:
            skipped += 1
        elif r.get("timeouts"):
            timeouts += 1
        elif r.get(field) is not None:
            vals.append(r[field])
    return vals, timeouts, skipped


def range_text(vals, timeouts=0, skipped=0, timeout_s=None):
    if timeouts:
        return f"**> {timeout_s:g} s (timed out)**" if not vals else \
            f"{fmt(min(vals))}–**> {timeout_s:g} s**"
    if not vals:
        return "not run" if skipped else "–"
    lo, hi = min(vals), max(vals)
    return f"{fmt(lo)} ms" if fmt(lo) == fmt(hi) else f"{fmt(lo)}–{fmt(hi)} ms"


def datasets_of(lam):
    seen = []
    for c in lam.get("cells", []):
        key = (c["count"], c["dataset"])
        if key not in seen:
            seen.append(key)
    return seen


def count_label(count, dataset):
    return f"{count:,}" + (f" ({dataset})" if dataset.startswith("burst") else "")


def lambda_summary_table(lam):
    mems = lam["memory_main"]
    where = "latfs" if "latfs_skipped" not in lam else "local"
    head = ["stored"] + [f"page of 100, {mb} MB" + (" (full CPU)" if mb >= L.FULL_CPU_MB else " share")
                         for mb in mems] + \
           [f"DELETE all, {mb} MB" + (" (full CPU)" if mb >= L.FULL_CPU_MB else " share") for mb in mems]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for count, dataset in datasets_of(lam):
        cells = [count_label(count, dataset)]
        for mb in mems:
            vals, to, sk = page_range(lam, where, mb, count, dataset)
            cells.append(range_text(vals, to, sk, lam["timeout_s"]))
        for mb in mems:
            cells.append(op_text(lam_op(lam, where, mb, count, "delete_all", dataset), unit_s=True))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def lambda_ops_table(lam, where, mems, ops):
    lines = ["| stored | memory | operation | p50 | p99 | n | CPU per request | CPU per request (/proc, 10 ms ticks) | throttled periods | notes |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for count, dataset in datasets_of(lam):
        for mb in mems:
            for op in ops:
                r = lam_op(lam, where, mb, count, op, dataset)
                if r is None:
                    continue
                cpu = r.get("cpu_ms_per_request")
                pcpu = r.get("proc_stat_cpu_ms_per_request")
                notes = "; ".join(r.get("notes", []))
                if op == "delete_all":
                    c = next(c for c in lam_cells(lam, where, mb) if c["count"] == count
                             and c["dataset"] == dataset and "delete_all" in c["ops"])
                    extra = []
                    if "deleted" in c["ops"]:
                        extra.append(f"answered 200, deleted {c['ops']['deleted']:,}")
                    elif r.get("statuses"):
                        extra.append("answered " + ", ".join(r["statuses"]))
                    if c["ops"].get("listed_after") is not None:
                        extra.append(f"listed after: {c['ops']['listed_after']}")
                    notes = "; ".join(filter(None, [notes] + extra))
                lines.append(f"| {count_label(count, dataset)} | {mb} MB | {OP_LABELS[op]} | {op_text(r)} | "
                             f"{op_text(r, 'p99')} | {r.get('n', '–')} | "
                             f"{fmt(cpu) + ' ms' if cpu is not None else '–'} | "
                             f"{fmt(pcpu) + ' ms' if pcpu is not None else '–'} | "
                             f"{r.get('throttled_periods', '–')} | {notes or ''} |")
    return "\n".join(lines)


def lambda_functions_table(lam, where, mems):
    lines = ["| stored | memory | function | init: process start to first /next, median (min–max, n) | first invocation | peak RSS | threads | log lines |",
             "|---|---|---|---|---|---|---|---|"]
    for count, dataset in datasets_of(lam):
        for mb in mems:
            for c in lam_cells(lam, where, mb):
                if c["count"] != count or c["dataset"] != dataset or "delete_all" in c["ops"]:
                    continue
                for name, f in c.get("functions", {}).items():
                    init = f.get("init_ms") or []
                    it = (f"{statistics.median(init):.1f} ms ({min(init):.1f}–{max(init):.1f}, n={len(init)})"
                          if init else "–")
                    first = f.get("first_invocation_ms") or []
                    ft = ", ".join(f"{v:.1f}" for v in first) + " ms" if first else "–"
                    rss = f"{f['peak_rss_kb'] / 1024:.1f} MiB" if f.get("peak_rss_kb") else "–"
                    lines.append(f"| {count_label(count, dataset)} | {mb} MB | {name} | {it} | {ft} | {rss} | "
                                 f"{f.get('threads', '–')} | {f.get('log_lines', '–')} |")
    return "\n".join(lines)


def cost_per_million(p50_ms, mb, price):
    billed_ms = math.ceil(p50_ms)  # Lambda bills duration rounded up to 1 ms
    return price["per_million_requests"] + 1e6 * billed_ms / 1000 * mb / 1024 * price["gb_second"]


TUNING_OPS = ["page_first_asc", "page_middle_asc", "page_last_asc", "page_first_desc", "get",
              "post", "delete", "delete_all"]


def power_tuning_table(lam):
    mems = lam["memory_tuning"]
    where = "latfs" if "latfs_skipped" not in lam else "local"
    count = lam["tuning_count"]
    dataset = next((d for c, d in datasets_of(lam) if c == count and not d.startswith("burst")), None)
    head = ["function", "operation"] + [f"{mb} MB" for mb in mems]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for op in TUNING_OPS:
        cells = [OP_FUNCTION[op], OP_LABELS[op]]
        for mb in mems:
            r = lam_op(lam, where, mb, count, op, dataset)
            if r is None or r.get("p50") is None:
                cells.append(op_text(r))
            else:
                cells.append(f"{fmt(r['p50'])} ms, ${cost_per_million(r['p50'], mb, lam['price']):.2f}")
            # (timed-out ones say so; a timed-out invocation is billed the whole timeout)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def lambda_targets(lam):
    rows = []
    where = "latfs" if "latfs_skipped" not in lam else "local"
    share = [m for m in lam["memory_main"] if m < L.FULL_CPU_MB]
    full = L.FULL_CPU_MB

    def row(name, value, limit, ok):
        rows.append((name, value, limit, "met" if ok else "**missed**"))

    for count, dataset in datasets_of(lam):
        label = count_label(count, dataset)
        for mb, limit in ([(m, 60) for m in share] + [(full, 20)]):
            vals, to, sk = page_range(lam, where, mb, count, dataset)
            if vals or to:
                worst = max(vals) if vals else None
                row(f"page of 100 p50 (worst of first/middle/last × asc/desc), {label}, {mb} MB",
                    range_text(vals, to, sk, lam["timeout_s"]), f"≤ {limit} ms",
                    not to and worst is not None and worst <= limit)
        vals, to, sk = page_range(lam, "local", full, count, dataset, "cpu_ms_per_request")
        if vals:
            row(f"CPU per page of 100, local disk, {label}", range_text(vals), "≤ 2 ms", max(vals) <= 2)
        for mb in share:
            for op, limit in (("post", 16), ("get", 5)):
                r = lam_op(lam, where, mb, count, op, dataset)
                if r and r.get("p50") is not None:
                    row(f"{OP_LABELS[op]} p50, {label}, {mb} MB", f"{fmt(r['p50'])} ms", f"≤ {limit} ms",
                        r["p50"] <= limit)
            r = lam_op(lam, where, mb, count, "delete_all", dataset)
            if r and "skipped" not in r:
                ok = not r.get("timeouts") and r.get("p50") is not None and r["p50"] <= 1000
                row(f"DELETE all, {label}, {mb} MB", op_text(r, unit_s=True), "≤ 1 s", ok)
            for c in lam_cells(lam, where, mb):
                if c["count"] == count and c["dataset"] == dataset and "delete_all" not in c["ops"]:
                    for name, f in c.get("functions", {}).items():
                        if f.get("init_ms"):
                            worst = max(f["init_ms"])
                            row(f"{name} init (worst of {len(f['init_ms'])}), {label}, {mb} MB",
                                f"{worst:.1f} ms", "≤ 20 ms", worst <= 20)
    lines = ["| target | measured | limit | verdict |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


COMPARE_OPS = PAGE_KEYS + ["post", "get", "delete", "delete_all"]


def change_text(old, new):
    """The change from `old` to `new` in %, bold when worse by more than 10 %."""
    if old is None or new is None or old <= 0:
        return "–"
    change = 100 * (new - old) / old
    text = f"{change:+.0f} %"
    return f"**{text}**" if change > 10 else text


def floor_of(lam, count, dataset, mb, build):
    for f in lam.get("floors", []):
        if f["count"] == count and f["dataset"] == dataset and f["memory_mb"] == mb \
                and f["build"] == build and "p50" in f:
            return f
    return None


def compare_table(lam, other):
    """The main binaries against `other`, operation by operation, at the main memory sizes: p50
    and p99 of each and the change; the file system's floor for a page (measured on each build's
    own mount, at the same share, in the same run) beside the pages."""
    main = lam.get("label", "main")
    where = "latfs" if "latfs_skipped" not in lam else "local"
    lines = [f"| stored | memory | operation | p50 {other} | p50 {main} | change | p99 {other} | "
             f"p99 {main} | change | CPU per request {other} → {main} | FUSE requests (round trips) "
             f"per request {other} → {main} | n |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for count, dataset in datasets_of(lam):
        for mb in lam["memory_main"]:
            for op in COMPARE_OPS:
                a = lam_op(lam, where, mb, count, op, dataset, build=other)
                b = lam_op(lam, where, mb, count, op, dataset, build=main)
                if a is None and b is None:
                    continue

                def val(r, field):
                    return None if r is None or "skipped" in r or r.get("timeouts") else r.get(field)

                def cpu(r):
                    v = val(r, "cpu_ms_per_request")
                    return "–" if v is None else f"{fmt(v)}"

                def reqs(r):
                    if not r or "fs_requests_per_request" not in r:
                        return "–"
                    return (f"{sum(r['fs_requests_per_request'].values()):.0f} "
                            f"({sum(r['round_trips_per_request'].values()):.0f})")
                lines.append(
                    f"| {count_label(count, dataset)} | {mb} MB | {OP_LABELS[op]} | {op_text(a)} | "
                    f"{op_text(b)} | {change_text(val(a, 'p50'), val(b, 'p50'))} | "
                    f"{op_text(a, 'p99')} | {op_text(b, 'p99')} | "
                    f"{change_text(val(a, 'p99'), val(b, 'p99'))} | {cpu(a)} → {cpu(b)} ms | "
                    f"{reqs(a)} → {reqs(b)} | {(a or {}).get('n', '–')}, {(b or {}).get('n', '–')} |")
            fa, fb = floor_of(lam, count, dataset, mb, other), floor_of(lam, count, dataset, mb, main)
            if fa or fb:
                def ft(f):
                    return f"{fmt(f['p50'])} ms (CPU {fmt(f['cpu_ms_p50'])} ms)" if f else "–"
                lines.append(f"| {count_label(count, dataset)} | {mb} MB | floor: 100 files opened, "
                             f"read, closed in turn | {ft(fa)} | {ft(fb)} | "
                             f"{change_text(fa and fa['p50'], fb and fb['p50'])} | | | | | | |")
    return "\n".join(lines)


def lambda_report(lam):
    if "skipped" in lam:
        return ["## Lambda model", "", f"SKIPPED: {lam['skipped']}", ""]
    where = "latfs" if "latfs_skipped" not in lam else "local"
    p = lam["price"]
    s = lam["samples"]
    parts = ["## Lambda model: the release binaries through the Runtime API, at Lambda's CPU share", ""]
    if lam.get("cgroups_skipped"):
        parts += [f"**No CPU share**: {lam['cgroups_skipped']}. Every figure is at full CPU.", ""]
    else:
        parts += [
            "Each instance is a process of `target/release/<function>` in a cgroup of its own, with "
            "a CPU quota of memory / 1,769 MB of one CPU per 100 ms period (" +
            ", ".join(f"{mb} MB: {L.quota_us(mb) if L.quota_us(mb) > 0 else 'no quota'}"
                      + (" µs" if L.quota_us(mb) > 0 else "") for mb in lam["memory_tuning"]) +
            "). Latency is measured in the Runtime API server, from handing the event out on /next "
            "to receiving /response.", ""]
    if lam.get("latfs_skipped"):
        parts += [f"**No latency file system** ({lam['latfs_skipped']}): on local disk.", ""]
    elif lam.get("latfs_model_text"):
        parts += [f"File system: {lam['latfs_model_text']}"
                  + (", one mount (one client of the same backing directory) per set of binaries"
                     if len(lam.get("builds", {})) > 1 else "") + ".", ""]
    ages = [c["newest_id_age_s"] for c in lam.get("cells", []) if c.get("newest_id_age_s") is not None]
    if ages:
        parts += [f"Settle horizon: oldest-first pages return only messages older than "
                  f"{lam.get('settle_s', 1.25):g} s (store v3); when a cell's pages began, the newest "
                  f"seeded id was {min(ages):.1f}–{max(ages):.0f} s old.", ""]
    seeding = ", ".join(f"{s_['count']:,} ({s_['dataset']}) in {s_['s']:.1f} s" for s_ in lam["seeding"])
    bursts = [(c, d) for c, d in datasets_of(lam) if d.startswith("burst")]
    tuning_done = any(c == lam["tuning_count"] and not d.startswith("burst") for c, d in datasets_of(lam))
    parts += [
        f"Stored messages of {MESSAGE_SIZE} bytes seeded straight into the backing directory, ids "
        f"spread at {lam['seed_rate']:g} messages/s on a timeline ending at the seeding"
        + (f", plus a burst dataset ({bursts[0][0]:,} in {BURST['seconds']} s)" if bursts else "")
        + f". Seeding: {seeding}. "
        f"Samples per figure: {s['page']} per page variant, {s['get']} GET by id, {s['post']} POST, "
        f"{s['delete']} DELETE by id (of the messages just posted), DELETE all once, each "
        f"cut short after {s['budget_s']} s; invocation timeout {lam['timeout_s']:g} s "
        "(the deployed function timeout); each function's first invocation is not in the figures.",
        "",
        "### Summary (p50; a range is the spread over first/middle/last page in both orders)",
        "",
        lambda_summary_table(lam),
        "",
        "At a CPU share, a request that needs more CPU than is left of its 100 ms period's quota "
        "waits for the next period, so latencies there are bimodal (the same page takes a few ms "
        "or about 100 ms more) and a p50 of a few samples can land on either side; the CPU per "
        "request in the tables below is the steadier figure.",
        "",
    ]
    if tuning_done:
        parts += [
            f"### Power tuning at {lam['tuning_count']:,} stored (p50, cost per million requests)",
            "",
            f"Price: AWS Lambda {p['arch']}, {p['region']}, ${p['gb_second']:.10f} per GB-second and "
            f"${p['per_million_requests']:.2f} per million requests (list price as of {p['as_of']}); "
            "duration billed rounded up to 1 ms, at the p50. A timed-out invocation would be billed "
            "the whole timeout.",
            "",
            power_tuning_table(lam),
            "",
        ]
    else:
        parts += [f"(No power-tuning table: {lam['tuning_count']:,} stored was not among the sizes run.)", ""]
    parts += [
        "### Every operation, latency file system" if where == "latfs" else "### Every operation",
        "",
        lambda_ops_table(lam, where, lam["memory_tuning"], PAGE_KEYS + ["get", "post", "delete", "delete_all"]),
        "",
    ]
    if where == "latfs":
        parts += ["### CPU per page on local disk (full CPU; the same stores, no FUSE)", "",
                  lambda_ops_table(lam, "local", [L.FULL_CPU_MB], PAGE_KEYS + ["get"]), ""]
    main = lam.get("label", "main")
    for other, directory in lam.get("builds", {}).items():
        if other == main:
            continue
        parts += [f"### {main} against {other}, same run, same model", "",
                  f"`{main}`: {lam['builds'][main]} (built from {lam.get('builds_git', {}).get(main)}); "
                  f"`{other}`: {directory} (built from {lam.get('builds_git', {}).get(other)}). Each on its own latfs "
                  "mount over the one backing directory; the two take turns at each dataset and "
                  "memory size (alternating which goes first). A change worse than +10 % is in bold. "
                  "The floor is one thread opening, reading and closing the middle page's 100 files "
                  "in turn at the same CPU share, on the same mount (p50 of 7 passes after one that "
                  "warms the caches).", "", compare_table(lam, other), ""]
    parts += ["### Function instances", "", lambda_functions_table(lam, where, lam["memory_tuning"]), "",
              "### Targets (issue 9)", "", lambda_targets(lam), ""]
    return parts
