"""The soak's figures (``summarize``: everything in soak.json) and its report (soak.md)."""

import collections
import statistics

from harness.common import pct

from .ledger import NS, Findings

PHASES = ["faults", "recovery", "audit"]


def _fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def _latency(records):
    ms = [r.ms for r in records if r.ms is not None]
    return {"n": len(ms), "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "max_ms": max(ms,
                                                                                      default=None)}


def _fault_delta(before, after):
    out = {}
    for name, end in after.items():
        start = before.get(name, {})
        out[name] = {k: end.get("faults", {}).get(k, 0) - start.get("faults", {}).get(k, 0)
                     for k in end.get("faults", {})}
    return out


def summarize(config, ledger, findings, acked, nodes, started, faults_off, ended, audit,
              stats_at_faults_off, stats_at_end, load_samples, workload_errors, function_logs):
    phase = ledger.phase
    checks = {}
    for check in Findings.CHECKS:
        items = findings.items.get(check, [])
        by_phase = collections.Counter(p for p, _ in items)
        checks[check] = {"total": len(items), **{p: by_phase.get(p, 0) for p in PHASES},
                         "examples": [dict(d, phase=p) for p, d in items[:15]]}
        if check == "lost":
            checks[check]["messages"] = len({d.get("id") for _, d in items})
    # Any 5xx at all, or an answer that never came, once faults were off; but a POST that
    # answered 503 while a DELETE all ran may have raced it (refused by design: it is then not
    # stored), which is counted apart.
    after_faults = collections.Counter()
    raced = 0
    last_5xx_after_off = None
    groups = [("post-message", "post", ledger.posts), ("get-messages", "get", ledger.reads),
              ("get-messages", "list", ledger.pages), ("delete-messages", "delete", ledger.deletes),
              ("delete-messages", "delete-all", ledger.delete_alls)]
    for function, request, records in groups:
        for rec in records:
            if rec.t0 < faults_off or not (rec.status is None or rec.status >= 500):
                continue
            if request == "post" and rec.status == 503 and any(
                    a.t0 < rec.t1 and rec.t0 < a.t1 for a in ledger.delete_alls):
                raced += 1
                continue
            status = rec.status if rec.status is not None else "no answer"
            after_faults[(phase(rec.t0), function, request, status, getattr(rec, "code", "")
                          or "")] += 1
            t = (rec.t0 - faults_off) / NS
            last_5xx_after_off = max(last_5xx_after_off or t, t)
    for (ph, function, request, status, code), n in ledger.statuses.items():
        if ph != "faults" and request.split("-")[0] in ("post", "get", "list", "delete") \
                and request not in ("post", "get", "get-unknown", "list", "delete",
                                    "delete-unknown", "delete-all") \
                and (status == "no answer" or (isinstance(status, int) and status >= 500)):
            after_faults[(ph, function, request, status, code)] += n
    reclaim_errors = collections.Counter(r.phase for r in ledger.reclaims if r.error)
    reclaim_runs = collections.Counter(r.phase for r in ledger.reclaims)
    removed = collections.Counter()
    for r in ledger.reclaims:
        for k in ("messages", "temporaries", "directories", "skipped"):
            removed[k] += (r.result or {}).get(k, 0) or 0

    posts_by_status = collections.Counter()
    for p in ledger.posts:
        posts_by_status[(phase(p.t0), p.status if p.status is not None else "no answer")] += 1
    acked_posts = [p for p in ledger.posts if p.status == 201]
    kinds = collections.Counter(p.kind for p in acked_posts)
    sizes = [p.size for p in acked_posts]

    statuses = [{"phase": ph, "function": fn, "request": rq, "status": st, "code": code,
                 "count": n}
                for (ph, fn, rq, st, code), n in sorted(ledger.statuses.items(),
                                                        key=lambda kv: tuple(map(str, kv[0])))]
    latency = {}
    groups = {"POST": ledger.posts, "GET by id": ledger.reads,
              "page asc": [p for p in ledger.pages if p.order == "asc"],
              "page desc": [p for p in ledger.pages if p.order == "desc"],
              "DELETE by id": ledger.deletes, "DELETE all": ledger.delete_alls,
              "reclaim run": ledger.reclaims}
    for name, records in groups.items():
        for ph in PHASES:
            ok = [r for r in records if phase(r.t0) == ph and getattr(r, "status", 0) != "x"]
            if ok:
                latency[f"{name} / {ph}"] = _latency(ok)
    busy = [s["cpu_busy_1s"] for s in load_samples]
    load1 = [float(s["loadavg"][0]) for s in load_samples]
    summary = {
        "config": config,
        "durations_s": {"faults": (faults_off - started) / NS, "recovery": (ended - faults_off) / NS,
                        "total_with_audit": None},
        "posts": {
            "acknowledged": len(acked),
            "by_phase_and_status": {f"{ph} {st}": n for (ph, st), n in sorted(
                posts_by_status.items(), key=lambda kv: tuple(map(str, kv[0])))},
            "acknowledged_by_kind": dict(kinds),
            "acknowledged_bytes": sum(sizes),
            "acknowledged_256KiB": sum(1 for s in sizes if s == 262_144),
            "size_p50": pct(sizes, 50), "size_max": max(sizes, default=None),
        },
        "requests": {
            "reads_by_id": len(ledger.reads), "pages": len(ledger.pages),
            "page_streams": findings.counted.get("streams"),
            "deletes_by_id": len(ledger.deletes), "delete_alls": len(ledger.delete_alls),
            "delete_all_statuses": dict(collections.Counter(
                str(a.status) for a in ledger.delete_alls)),
            "reclaim_runs": dict(reclaim_runs), "reclaim_errors": dict(reclaim_errors),
            "reclaimed": dict(removed),
        },
        "checks": checks,
        "counted": dict(findings.counted),
        "recovery": {
            "5xx_or_no_answer_after_faults_off": sum(after_faults.values()),
            "detail": [{"phase": k[0], "function": k[1], "request": k[2], "status": k[3],
                        "code": k[4], "count": n} for k, n in after_faults.items()],
            "last_failure_s_after_faults_off": last_5xx_after_off,
            "post_503_racing_a_delete_all_after_faults_off": raced,
            "reclaim_errors_after_faults_off": reclaim_errors.get("recovery", 0)
            + reclaim_errors.get("audit", 0),
            "violations_after_faults_off": sum(c["recovery"] + c["audit"]
                                               for c in checks.values()),
        },
        "audit": {k: (sorted(v) if isinstance(v, set) else v) for k, v in audit.items()
                  if k not in ("listed_before_reclaim", "listed_after_reclaim", "final_listed")},
        "statuses": statuses,
        "latency": latency,
        "faults_injected": {"faults phase": _fault_delta({}, stats_at_faults_off),
                            "after faults off": _fault_delta(stats_at_faults_off, stats_at_end)},
        "round_trips": {name: sum(s.get("rpc", {}).values()) for name, s in stats_at_end.items()},
        "nodes": [{"name": n.name, "function": n.function, "memory_mb": n.memory_mb,
                   "restarts": len(n.restarts), "restart_reasons": [w for _, w in n.restarts][:5],
                   "cpu_s": round(n.cpu_ns() / 1e9, 2)} for n in nodes],
        "function_logs": function_logs,
        "load_during": {"samples": len(load_samples),
                        "cpu_busy_mean": statistics.mean(busy) if busy else None,
                        "cpu_busy_max": max(busy, default=None),
                        "load1_mean": statistics.mean(load1) if load1 else None,
                        "load1_max": max(load1, default=None)},
        "soak_errors": workload_errors,
    }
    violations = sum(c["total"] for c in checks.values())
    summary["all_green"] = (violations == 0
                            and summary["recovery"]["5xx_or_no_answer_after_faults_off"] == 0
                            and summary["recovery"]["reclaim_errors_after_faults_off"] == 0
                            and audit.get("disagreement_count", 0) == 0
                            and not audit.get("expected_missing")
                            and not audit.get("unexpected_listed")
                            and not workload_errors)
    return summary


def verdict_lines(s):
    lines = [f"acknowledged POSTs: {s['posts']['acknowledged']:,}"]
    for check, c in s["checks"].items():
        lines.append(f"{check}: {c['total']} (faults {c['faults']}, recovery {c['recovery']}, "
                     f"audit {c['audit']})")
    r = s["recovery"]
    lines.append(f"after faults off: {r['5xx_or_no_answer_after_faults_off']} 5xx/no answer, "
                 f"{r['reclaim_errors_after_faults_off']} reclaim errors, "
                 f"{r['violations_after_faults_off']} violations")
    lines.append("ALL GREEN" if s["all_green"] else "NOT GREEN")
    return "\n".join(lines)


def soak_markdown(s):
    c = s["config"]
    out = []
    w = out.append
    w("# Multi-client soak\n")
    w(f"`{c['command']}`, started {c['started']} (UTC), code `{c['code']['commit'][:10]}` "
      f"({c['code']['subject']})"
      + (f", with uncommitted changes to the code: {', '.join(c['code']['uncommitted_code_changes'])}"
         if c['code']['uncommitted_code_changes'] else "")
      + f"; binaries built from {c['code'].get('built_from', '?')}.\n")
    w(f"Verdict: **{'all green' if s['all_green'] else 'NOT GREEN'}**.\n")
    w("## Setup\n")
    w("| what | value |\n|---|---|")
    w(f"| phases | {s['durations_s']['faults'] / 60:.1f} min with faults, then "
      f"{s['durations_s']['recovery'] / 60:.1f} min with faults off (recovery), then the audit |")
    w(f"| faults (every client) | `{c['faults']}`, client i's seed = {c['seed']}×1000 + i |")
    w(f"| workload seed | {c['seed']} |")
    w(f"| client model | `latfs --nfs-cache`, cache times {c['cache_options']}; latencies 1 ms "
      "per metadata round trip, 0.25 ms per READ, 2.7 ms per WRITE/COMMIT |")
    w(f"| CPU | {c['cpu_share']} |")
    nodes = ", ".join(f"{n['name']} ({n['function']}, {n['memory_mb']} MB, {n['role']})"
                      for n in c["nodes"])
    w(f"| instances, each on its own client | {nodes} |")
    w(f"| schedule | a POST every {c['post_gap_s']} s per poster (mean), a delete request every "
      f"{c['delete_gap_s']} s per deleter, DELETE all every {c['delete_all_every_s'][0]:.0f}–"
      f"{c['delete_all_every_s'][1]:.0f} s, the scheduled reclaiming event every "
      f"{c['reclaim_every_s'][0]:.0f}–{c['reclaim_every_s'][1]:.0f} s |")
    lb, la, ld = c["load_before"], c.get("load_after", {}), s["load_during"]
    w(f"| machine | {lb['cpus']} CPUs; before: load {' '.join(lb['loadavg'])}, "
      f"{lb['cpu_busy_1s'] * 100:.0f} % busy; during (every 30 s, this run included): "
      f"{_pct(ld['cpu_busy_mean'])} busy on average, {_pct(ld['cpu_busy_max'])} at most, load1 "
      f"{_fmt(ld['load1_mean'], 2)} mean / {_fmt(ld['load1_max'], 2)} max; after: load "
      f"{' '.join(la.get('loadavg', []))} |")
    w(f"| other benchmarks or builds | at start: {len(c['other_benchmarks_at_start'])}, at end: "
      f"{len(c.get('other_benchmarks_at_end', []))} |")
    w("")
    w("## Checks\n")
    w("| check | with faults | recovery | audit | total | target |\n|---|---|---|---|---|---|")
    for check, v in s["checks"].items():
        extra = f" ({v['messages']} messages)" if check == "lost" and v["total"] else ""
        w(f"| {check} | {v['faults']} | {v['recovery']} | {v['audit']} | **{v['total']}**{extra} "
          f"| 0 |")
    r = s["recovery"]
    w(f"| 5xx (503/507 included) or no answer after faults off | – | "
      f"{sum(d['count'] for d in r['detail'] if d['phase'] == 'recovery')} | "
      f"{sum(d['count'] for d in r['detail'] if d['phase'] == 'audit')} | "
      f"**{r['5xx_or_no_answer_after_faults_off']}** | 0 |")
    w(f"| POSTs answered 503 while a DELETE all ran, after faults off (refused by design, "
      f"not stored; not failures) | – | – | – | {r['post_503_racing_a_delete_all_after_faults_off']}"
      f" | – |")
    w(f"| reclaiming runs that failed after faults off | – | – | – | "
      f"**{r['reclaim_errors_after_faults_off']}** | 0 |")
    a = s["audit"]
    w(f"| audit: readers that disagree about a message | – | – | "
      f"{a.get('disagreement_count')} | **{a.get('disagreement_count')}** | 0 |")
    w("")
    w("Counted, not failures: "
      + "; ".join(f"{k}: {v:,}" for k, v in s["counted"].items()) + ".\n")
    for check, v in s["checks"].items():
        if v["examples"]:
            w(f"### {check}: first examples\n")
            for e in v["examples"]:
                w(f"- {e}")
            w("")
    p = s["posts"]
    w("## POSTs\n")
    w(f"{p['acknowledged']:,} acknowledged ({p['acknowledged_bytes'] / 2**20:,.1f} MiB; median "
      f"{_fmt(p['size_p50'])} B; {p['acknowledged_256KiB']} of exactly 256 KiB), by kind: "
      + ", ".join(f"{k} {n:,}" for k, n in sorted(p["acknowledged_by_kind"].items())) + ".\n")
    w("| phase and status | POSTs |\n|---|---|")
    for k, n in p["by_phase_and_status"].items():
        w(f"| {k} | {n:,} |")
    w("")
    q = s["requests"]
    w("## Other requests\n")
    w(f"{q['reads_by_id']:,} GETs by id, {q['pages']:,} pages in {q['page_streams']:,} streams "
      f"followed by `next`, {q['deletes_by_id']:,} DELETEs by id, {q['delete_alls']} DELETE alls "
      f"({', '.join(f'{k}: {n}' for k, n in q['delete_all_statuses'].items())}), reclaiming runs "
      f"{q['reclaim_runs']} (failed: {q['reclaim_errors'] or 'none'}; removed "
      f"{q['reclaimed'].get('messages', 0):,} messages, {q['reclaimed'].get('temporaries', 0)} "
      f"temporaries, {q['reclaimed'].get('directories', 0):,} directories).\n")
    w("## Every answer\n")
    w("| phase | function | request | status | code | count |\n|---|---|---|---|---|---|")
    for row in s["statuses"]:
        w(f"| {row['phase']} | {row['function']} | {row['request']} | {row['status']} | "
          f"{row['code']} | {row['count']:,} |")
    w("")
    if r["detail"]:
        w("After faults off, these failed: " + "; ".join(
            f"{d['phase']} {d['function']} {d['request']} {d['status']} {d['code']} ×{d['count']}"
            for d in r["detail"]) + f" (the last {_fmt(r['last_failure_s_after_faults_off'])} s "
            "after faults off).\n")
    w("## Latency (ms, from the Runtime API: the function's own time)\n")
    w("| request / phase | n | p50 | p99 | max |\n|---|---|---|---|---|")
    for k, v in s["latency"].items():
        w(f"| {k} | {v['n']:,} | {_fmt(v['p50_ms'])} | {_fmt(v['p99_ms'])} | "
          f"{_fmt(v['max_ms'])} |")
    w("")
    w("## Faults injected (per client)\n")
    names = sorted(s["faults_injected"]["faults phase"])
    kinds = sorted({k for v in s["faults_injected"]["faults phase"].values() for k in v})
    w("| client | " + " | ".join(kinds) + " | after faults off | round trips |")
    w("|---|" + "---|" * (len(kinds) + 2))
    for name in names:
        v = s["faults_injected"]["faults phase"][name]
        after = sum(s["faults_injected"]["after faults off"].get(name, {}).values())
        w(f"| {name} | " + " | ".join(f"{v.get(k, 0):,}" for k in kinds)
          + f" | {after} | {s['round_trips'].get(name, 0):,} |")
    w("")
    w("## Instances\n")
    w("| instance | function | MB | restarts (timeouts, invocation errors) | CPU s |")
    w("|---|---|---|---|---|")
    for n in s["nodes"]:
        w(f"| {n['name']} | {n['function']} | {n['memory_mb']} | {n['restarts']} | {n['cpu_s']} |")
    w("")
    if s["function_logs"]:
        w("## What the functions logged (warnings and errors; ids and numbers blanked)\n")
        w("| function | level | message | count |\n|---|---|---|---|")
        for row in s["function_logs"][:25]:
            w(f"| {row['function']} | {row['level']} | {row['message'][:160]} | "
              f"{row['count']:,} |")
        w("")
    w("## Audit (faults off, nothing else running)\n")
    w(f"Every reader followed `next` to the end in both orders and read by id the "
      f"{a.get('read_candidates')} messages acknowledged since shortly before the last DELETE "
      f"all and {a.get('read_sample_older')} older ones; reclaiming ran until it said finished "
      f"({len(a.get('reclaim_runs', []))} runs); one reader listed and read again.\n")
    w("| what | value |\n|---|---|")
    for k in ("expected_live", "undecided", "undecided_listed", "disagreement_count"):
        w(f"| {k.replace('_', ' ')} | {a.get(k)} |")
    w(f"| expected but not listed | {len(a.get('expected_missing', []))} |")
    w(f"| listed but not expected | {len(a.get('unexpected_listed', []))} |")
    for stream, counts in a.get("streams", {}).items():
        w(f"| listed by {stream} | asc {counts.get('asc')}, desc {counts.get('desc')} |")
    b = a.get("backing", {})
    w(f"| server side after reclaiming | {b.get('message_files')} message files "
      f"({b.get('message_files_not_listed')} not listed), {b.get('temporaries')} temporaries, "
      f"{b.get('directories')} directories |")
    w("")
    if s.get("evidence"):
        w("## Evidence for the failed checks\n")
        for check, entries in s["evidence"].items():
            for e in entries:
                w(f"### {check}: {e.get('id')} (token {e.get('token')})\n")
                w(f"File on the server's side at the end: {e.get('file_on_server_now')}; the "
                  f"clients' injected faults (whole run): {e.get('client_faults')}.\n")
                w("The sequence of answers (times from the POST's answer):\n")
                w("```\n" + "\n".join(e["history"]) + "\n```\n")
                for who, lines in e.get("function_logs", {}).items():
                    w(f"Log lines of {who}:\n")
                    w("```\n" + "\n".join(str(line)[:400] for line in lines) + "\n```\n")
    if s["soak_errors"]:
        w("## The soak's own errors\n")
        for e in s["soak_errors"]:
            w(f"```\n{e}\n```")
    return "\n".join(out) + "\n"


def _pct(v):
    return "–" if v is None else f"{v * 100:.0f} %"
