"""The plots, with matplotlib (optional: without it the run writes no plot and says so).

``designs_plot`` draws ``latency-designs.png`` (the in-process comparison: a line per design and
file system); ``lambda_plot`` draws ``latency.png`` (the Lambda model: page latency, DELETE all
and CPU per page against stored messages, a line per memory size, and the power-tuning curve).
"""

import lambdasim as L  # bench/lambdasim.py: bench/ is on sys.path (see __init__)

from .common import log
from .designs import DESIGN_LABELS, DESIGNS
from .lambda_report import OP_LABELS, datasets_of, lam_op, page_range
from .latfs import LAT_META_US, LAT_READ_US, LAT_WRITE_US


def pyplot():
    """matplotlib's pyplot without a display, or None (with a word why) when it is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plot (bench/run.sh installs it into bench/.venv)")
        return None
    return plt


def designs_plot(results, path):
    """latency-designs.png: POST, a page, GET by id and DELETE all against stored messages."""
    plt = pyplot()
    if plt is None:
        return False
    figures = [
        ("POST p50", lambda r: r.get("post", {}).get("p50")),
        ("GET one page of 100 (middle), p50", lambda r: r.get("page", {}).get("middle", {}).get("p50")),
        ("GET by id, p50", lambda r: r.get("get", {}).get("p50")),
        ("DELETE all", lambda r: r["delete_all"]["ms"]),
    ]
    colours = {"original": "tab:red", "naive": "tab:orange", "ours": "tab:blue"}
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    for ax, (title, get) in zip(axes.flat, figures):
        for fs_name, style in (("latfs", "-"), ("local", "--")):
            for design in DESIGNS:
                points = sorted((r["count"], get(r)) for r in results
                                if r["fs"] == fs_name and r["design"] == design and get(r) is not None)
                if points:
                    ax.plot([p[0] for p in points], [p[1] for p in points], style, marker="o",
                            color=colours[design],
                            label=f"{DESIGN_LABELS[design]}, {'latency FS' if fs_name == 'latfs' else 'local disk'}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("stored messages")
        ax.set_ylabel("ms")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=9)
    fig.suptitle("Message store latency against stored messages "
                 f"(latency FS: {LAT_META_US / 1000:g} ms metadata, {LAT_READ_US / 1000:g} ms read, "
                 f"{LAT_WRITE_US / 1000:g} ms write/fsync)")
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    fig.savefig(path, dpi=110)
    return True


def lambda_plot(lam, path):
    """latency.png: the Lambda model against stored messages, and power tuning."""
    plt = pyplot()
    if plt is None:
        return False
    where = "latfs" if "latfs_skipped" not in lam else "local"
    fig, axes = plt.subplots(2, 2, figsize=(13, 10))
    mems = lam["memory_main"]

    def series(mb, get, w=where):
        pts = []
        for count, dataset in datasets_of(lam):
            if dataset.startswith("burst"):
                continue
            v = get(w, mb, count, dataset)
            if v is not None:
                pts.append((count, v))
        return pts

    def worst_page(w, mb, count, dataset, field="p50"):
        vals, to, _ = page_range(lam, w, mb, count, dataset, field)
        if to:
            return lam["timeout_s"] * 1000 if field == "p50" else None
        return max(vals) if vals else None

    def delete_all(w, mb, count, dataset):
        r = lam_op(lam, w, mb, count, "delete_all", dataset)
        if not r or "skipped" in r:
            return None
        return lam["timeout_s"] * 1000 if r.get("timeouts") else r.get("p50")

    panels = [
        (axes[0][0], "page of 100, p50 (worst of first/middle/last × asc/desc)", worst_page, "ms"),
        (axes[0][1], "DELETE all (a timeout is drawn at the timeout)", delete_all, "ms"),
        (axes[1][0], "CPU per page of 100 (worst variant)",
         lambda w, mb, c, d: worst_page(w, mb, c, d, "cpu_ms_per_request"), "ms of CPU"),
    ]
    bursts = [(c, d) for c, d in datasets_of(lam) if d.startswith("burst")]
    for ax, title, get, unit in panels:
        for mb in mems:
            pts = series(mb, get)
            if pts:
                line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                                label=f"{mb} MB" + (" (full CPU)" if mb >= L.FULL_CPU_MB else
                                                    f" ({100 * mb / L.FULL_CPU_MB:.1f} % of a CPU)"))
                timed_out = [p for p in pts if unit == "ms" and p[1] >= lam["timeout_s"] * 1000]
                if timed_out:
                    ax.plot([p[0] for p in timed_out], [p[1] for p in timed_out], marker="^",
                            markersize=12, ls="none", color=line.get_color(),
                            label=f"{mb} MB: timed out (drawn at {lam['timeout_s']:g} s)")
                for count, dataset in bursts:
                    v = get(where, mb, count, dataset)
                    if v is not None:
                        ax.plot([count], [v], marker="x", markersize=10, ls="none",
                                color=line.get_color(), label=f"{mb} MB, {dataset}")
        if unit == "ms of CPU" and where == "latfs":
            pts = series(L.FULL_CPU_MB, get, "local")
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "--", marker="s", label="local disk, full CPU")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("stored messages")
        ax.set_ylabel(unit)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    for y, text in ((60, "target at 128 MB: 60 ms"), (20, "target at full CPU: 20 ms")):
        axes[0][0].axhline(y, color="grey", ls=":", lw=1)
        axes[0][0].annotate(text, (0.01, y), xycoords=("axes fraction", "data"), fontsize=7,
                            color="grey", va="bottom")
    axes[0][1].axhline(1000, color="grey", ls=":", lw=1)
    axes[0][1].annotate("target at 128 MB: 1 s", (0.01, 1000), xycoords=("axes fraction", "data"),
                        fontsize=7, color="grey", va="bottom")
    axes[1][0].axhline(2, color="grey", ls=":", lw=1)
    axes[1][0].annotate("target on local disk: 2 ms", (0.01, 2), xycoords=("axes fraction", "data"),
                        fontsize=7, color="grey", va="bottom")
    # Power tuning: p50 against memory.
    ax = axes[1][1]
    count = lam["tuning_count"]
    dataset = next((d for c, d in datasets_of(lam) if c == count and not d.startswith("burst")), None)
    for op in ("page_first_asc", "page_first_desc", "get", "post", "delete", "delete_all"):
        pts = []
        for mb in lam["memory_tuning"]:
            r = lam_op(lam, where, mb, count, op, dataset)
            if r and r.get("p50") is not None:
                pts.append((mb, r["p50"]))
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=OP_LABELS[op])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.minorticks_off()
    ax.set_xticks(lam["memory_tuning"])
    ax.set_xticklabels([str(m) for m in lam["memory_tuning"]])
    ax.set_title(f"power tuning at {count:,} stored: p50 against memory")
    ax.set_xlabel("memory (MB)")
    ax.set_ylabel("ms")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f"{count:,} stored not measured", transform=ax.transAxes, ha="center")
    fig.suptitle("Release functions through the Runtime API at Lambda's CPU share"
                 + (f", latency FS ({LAT_META_US / 1000:g} ms metadata, {LAT_READ_US / 1000:g} ms read, "
                    f"{LAT_WRITE_US / 1000:g} ms write)" if where == "latfs" else ", local disk"))
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
