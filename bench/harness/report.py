"""The report: ``report.md`` from the figures of ``results.json``.

``write_report`` writes the whole file: the machine paragraph, the Lambda model's part (its
tables are in ``lambda_report``), the design comparison's tables (local disk, latfs, latfs's
request counts per call, latfs with no injected latency, the kernel probes), the functions table
and the targets of the earlier reports, and the links to the plots.
"""

from .common import FUNCTION_BIN, MESSAGE_SIZE, PAGE, fmt
from .designs import DESIGN_LABELS, DESIGNS
from .lambda_report import lambda_report
from .latfs import LAT_META_US, LAT_WRITE_US


def table_for(results, fs_name, counts, delete_counts, designs=DESIGNS):
    """The designs side by side on one file system: a row per figure and stored count."""
    by = {(r["design"], r["count"]): r for r in results if r["fs"] == fs_name}
    head = "| stored | figure (ms) | " + " | ".join(DESIGN_LABELS[d] for d in designs) + " |"
    lines = [head, "|" + "---|" * (2 + len(designs))]
    for count in counts:
        rows = [
            ("POST p50", lambda r: r["post"]["p50"]),
            ("POST p99", lambda r: r["post"]["p99"]),
            ("GET page, first", lambda r: r["page"]["first"]["p50"]),
            ("GET page, middle", lambda r: r["page"]["middle"]["p50"]),
            ("GET page, last", lambda r: r["page"]["last"]["p50"]),
            ("GET by id p50", lambda r: r["get"]["p50"]),
            ("GET by id p99", lambda r: r["get"]["p99"]),
            ("DELETE all", lambda r: r["delete_all"]["ms"]),
        ]
        for label, get in rows:
            cells = []
            for d in designs:
                r = by.get((d, count))
                cells.append(fmt(get(r)) if r else "–")
            lines.append(f"| {count:,} | {label} | " + " | ".join(cells) + " |")
    for count in delete_counts:
        cells = [fmt(by[(d, count)]["delete_all"]["ms"]) if (d, count) in by else "–"
                 for d in designs]
        lines.append(f"| {count:,} | DELETE all | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ops_text(ops):
    """Requests per call, most first (flush and release left out: they cost nothing)."""
    if not ops:
        return "–"
    return ", ".join(f"{k} {v:g}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1])
                     if k not in ("flush", "release", "releasedir"))


def floor_ms(item, files):
    """The least time the injected latency allows when per-file requests overlap 64 at a time
    and the directory listing is one request after another (None without request counts)."""
    ops, injected = item.get("ops"), item.get("injected_ms")
    if not ops or injected is None:
        return None
    if not files:
        return injected
    dir_phase = sum(ops.get(k, 0) for k in ("opendir", "readdir", "getattr")) * LAT_META_US / 1000
    chain = (injected - dir_phase) / files
    return dir_phase + -(-files // 64) * chain


def ops_table(results, counts):
    """Requests per call on latfs, their injected latency, the least possible and the measured."""
    lines = ["| design | stored | request | requests to the file system per call (flush and release cost nothing and are not shown) "
             "| injected latency, one after another (ms) | least possible if per-file requests overlap 64 at a time (ms) | measured p50 (ms) |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        if r["fs"] != "latfs" or r["count"] not in counts or "post" not in r:
            continue
        parallel = r["design"] == "ours"
        page = r["page"]["middle"]
        items = [("POST", r["post"], r["post"]["p50"], None),
                 ("GET page, middle", page, page["p50"],
                  floor_ms(page, page["messages"]) if parallel else page.get("injected_ms")),
                 ("GET by id", r["get"], r["get"]["p50"], None),
                 ("DELETE all", r["delete_all"], r["delete_all"]["ms"],
                  floor_ms(r["delete_all"], r["count"]) if parallel and r["design"] != "original"
                  else r["delete_all"].get("injected_ms"))]
        for label, item, measured, floor in items:
            if floor is None:
                floor = item.get("injected_ms")
            lines.append(f"| {r['design']} | {r['count']:,} | {label} | {ops_text(item.get('ops'))} | "
                         f"{fmt(item.get('injected_ms'))} | {fmt(floor)} | {fmt(measured)} |")
    return "\n".join(lines)


def targets(results, functions, counts):
    """The targets of the earlier reports (designs on latfs, zip sizes, peak RSS), met or not."""
    lat = {(r["design"], r["count"]): r for r in results if r["fs"] == "latfs"}
    rows = []

    def row(name, value, limit, ok):
        rows.append((name, value, limit, "met" if ok else "**missed**"))

    if lat:
        for count in counts:
            ours, naive = lat.get(("ours", count)), lat.get(("naive", count))
            if not ours or "page" not in ours:
                continue
            for page in ("first", "middle", "last"):
                o = ours["page"][page]["p50"]
                n = naive["page"][page]["p50"] if naive else None
                row(f"GET page ({page}) at {count:,}, latfs", f"{o:.1f} ms", "< 40 ms", o < 40)
                if n and ours["page"][page]["messages"] < PAGE:
                    best = (naive["page"][page].get("injected_ms") or 0) / (
                        floor_ms(ours["page"][page], ours["page"][page]["messages"]) or 1)
                    rows.append((f"GET page ({page}) at {count:,}: naive / ours", f"{n / o:.1f}x",
                                 ">= 10x for a 100-message page",
                                 f"n/a: the page holds {ours['page'][page]['messages']} messages; "
                                 f"by injected latency alone the ratio would be {best:.1f}x"))
                elif n:
                    row(f"GET page ({page}) at {count:,}: naive / ours", f"{n / o:.1f}x", ">= 10x",
                        n / o >= 10)
            p = ours["post"]
            need = p.get("injected_ms") or 0
            row(f"POST p50 at {count:,}, latfs, vs 1.5 x the injected latency of the requests it "
                f"made ({ops_text(p.get('ops'))}: {need:.1f} ms)",
                f"{p['p50']:.1f} ms", f"<= {1.5 * need:.1f} ms", p["p50"] <= 1.5 * need)
            least = (2 * LAT_META_US + 2 * LAT_WRITE_US) / 1000
            row(f"POST p50 at {count:,}, latfs, vs 1.5 x create + write + fsync + rename "
                f"({least:.1f} ms, without the kernel's lookups)",
                f"{p['p50']:.1f} ms", f"<= {1.5 * least:.1f} ms", p["p50"] <= 1.5 * least)
        ours = lat.get(("ours", 10_000))
        if ours:
            d = ours["delete_all"]["ms"] / 1e3
            row("DELETE all of 10,000, latfs", f"{d:.2f} s", "well inside 30 s (taken as <= 15 s)", d <= 15)
            row("DELETE all of 10,000, latfs", f"{d:.2f} s", "< 3 s (target)", d < 3)
    for name, f in (functions or {}).items():
        z = f.get("zip")
        if z:
            row(f"{name} bootstrap.zip", f"{z['zip_bytes'] / 1e6:.3f} MB", "<= 1 MB",
                z["zip_bytes"] <= 1_000_000)
        else:
            rows.append((f"{name} bootstrap.zip", "not built", "<= 1 MB", "not measured"))
        for where in ("local", "latfs"):
            m = f.get(where)
            if m:
                peak = m["peak_rss_kb"] / 1024
                row(f"{name} peak RSS ({where})", f"{peak:.1f} MiB", "<= 16 MB", peak * 1.048576 <= 16)
    lines = ["| target | measured | limit | verdict |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def functions_table(functions):
    """Per function: zip size, start to ready, RSS at ready and after the workload, threads."""
    lines = ["| function | bootstrap.zip (arm64) | unpacked | start to ready, median (min–max) "
             "| RSS at ready | peak RSS after workload, local disk | peak RSS after workload, latfs "
             "| threads after workload (latfs) |",
             "|---|---|---|---|---|---|---|---|"]
    mib = lambda kb_: f"{kb_ / 1024:.1f} MiB" if kb_ else "–"
    for name, f in functions.items():
        z, loc, lat = f.get("zip"), f.get("local"), f.get("latfs")
        zs = f"{z['zip_bytes']:,} B ({z['zip_bytes'] / 1e6:.3f} MB)" if z else "not built"
        un = f"{z['unpacked_bytes']:,} B" if z else "–"
        st = "–"
        if loc:
            t = loc["start_to_ready_ms"]
            st = f"{t['median']:.1f} ms ({t['min']:.1f}–{t['max']:.1f}, n={t['n']})"
        cells = [name, zs, un, st,
                 mib(loc["rss_at_ready_kb"]) if loc else "–",
                 mib(loc["peak_rss_kb"]) if loc else "–",
                 mib(lat["peak_rss_kb"]) if lat else "–",
                 str(lat["threads_after_workload"]) if lat else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def probes_table(probes, title):
    """The kernel probes on latfs: wall time against the injected latency one after another."""
    lines = [f"**{title}**", "", "| probe | wall time (ms) | injected, one after another (ms) | requests |",
             "|---|---|---|---|"]
    for p in probes:
        ops = ", ".join(f"{k} {v['count']}" for k, v in p["ops"].items()
                        if k not in ("flush", "release", "releasedir"))
        lines.append(f"| {p['probe']} | {p['ms']:.1f} | {p['serial_injected_ms']:.1f} | {ops} |")
    return "\n".join(lines)


def write_report(report, path, has_plot, has_lplot, counts, local_delete_counts):
    """Writes report.md at `path` from `report` (what results.json holds)."""
    m = report["machine"]
    s = report["samples"]
    busy = report.get("cpu_busy_other_pct") or {}
    lam = report.get("lambda")
    parts = [
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), kernel {m['kernel']}, {m['memory']} memory, "
        f"{m['rustc']}, Python {m['python']}; scratch directory on {report['work_fs']}. "
        f"Code measured: {report.get('git', '?')}"
        + "".join(f"; Lambda model's `{label}` binaries: {d} (built from {report['lambda'].get('builds_git', {}).get(label)})"
                  for label, d in (report.get("lambda") or {}).get("builds", {}).items()
                  if d != str(FUNCTION_BIN))
        + ". "
        f"Run time {report['elapsed_s']:.0f} s. Other work on the machine: the CPUs were "
        f"{report['cpu_busy_before_pct']}% busy in the 2 s before the run (load average "
        f"{' '.join(m['loadavg'])}); during the run they were {busy.get('mean', '?')} % busy on "
        f"average (median {busy.get('median', '?')} %, max {busy.get('max', '?')} %), this run's own "
        "work included" + (f"; {lam['cpu_busy_during_pct']} % during the Lambda model" if lam and
                           lam.get('cpu_busy_during_pct') is not None else "") +
        ". The load average counts the threads waiting on latfs, so it says nothing about CPU "
        "contention.",
        *(["", "**Failed requests in the design comparison** (their timings are in the figures):",
           *[f"- {f}" for f in report.get("design_failures", [])]]
          if report.get("design_failures") else []),
        "",
    ]
    if lam:
        parts += lambda_report(lam)
        if has_lplot:
            parts += ["![page latency, DELETE all, CPU per page and power tuning against stored "
                      "messages, a line per memory size](bench/results/latency.png)", ""]
    if report["results"]:
        parts += [
            "## Designs compared in process (handlers called directly, full CPU)",
            "",
            f"Messages of {report['message_size']} bytes (text/plain), pages of {report['page']}. "
            f"Samples per figure: local disk {s['local']}, latency FS {s['latfs']} "
            "(p99 of few samples is close to the maximum).",
            "",
            "### Local disk",
            "",
            table_for(report["results"], "local", counts, local_delete_counts),
            "",
        ]
        orig = sorted((r["count"], r["page"]["first"]["bytes"]) for r in report["results"]
                      if r["design"] == "original" and r["fs"] == "local" and "page" in r)
        if orig:
            count, size = orig[-1]
            per = size / count if count else MESSAGE_SIZE + 1
            limit = 6 * 1024 * 1024
            parts += [f"Where the original breaks: its GET returns the whole file ({size:,} bytes at "
                      f"{count:,} messages, {per:.0f} bytes each), so past about {limit / per:,.0f} "
                      f"messages of {MESSAGE_SIZE} bytes it exceeds Lambda's 6 MB response limit "
                      "(before any JSON or base64 encoding) and every GET fails.", ""]
        if "latfs_skipped" in report:
            parts += ["### Latency file system", "", f"SKIPPED: {report['latfs_skipped']}", ""]
        else:
            lat = report["latency_us"]
            parts += [
                f"### Latency file system (latfs: {lat['meta'] / 1000:g} ms per metadata request, "
                f"{lat['read'] / 1000:g} ms per read, {lat['write'] / 1000:g} ms per write or fsync)",
                "",
                table_for(report["results"], "latfs", counts, []),
                "",
                "#### Requests per call on the latency file system",
                "",
                ops_table(report["results"], counts),
                "",
                "#### The same file system with no injected latency (ours only: FUSE and CPU overhead)",
                "",
                table_for(report["results"], "latfs0", counts[-1:], [], designs=["ours"]),
                "",
                "#### How the kernel overlaps requests on latfs",
                "",
                probes_table(report.get("probes", []), "latfs as benchmarked (FUSE_PARALLEL_DIROPS requested)"),
                "",
                probes_table(report.get("probes_serial_dirops", []), "latfs --serial-dirops (capability not requested)"),
                "",
            ]
    if "functions" in report:
        parts += ["## Functions (package size; start and peak RSS at full CPU, with 256 KiB messages)",
                  "", functions_table(report["functions"]), ""]
    if report["results"] or "functions" in report:
        parts += ["### Targets of the earlier reports (designs and functions)", "",
                  targets(report["results"], report.get("functions"), counts), ""]
    if has_plot:
        parts += ["![latency against stored messages, per design](bench/results/latency-designs.png)", ""]
    path.write_text("\n".join(parts))
