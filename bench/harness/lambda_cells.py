"""One cell of the Lambda model: a memory size's function instances, and what they measured.

A ``Cell`` starts instances (``lambdasim.Instance``: a release binary in a cgroup with the CPU
share of its memory size), warms them, invokes events one after another and keeps the figures
(latency percentiles, CPU per request, throttled periods, init, peak RSS, threads). The
``LambdaContext`` is shared by every cell of a run: the binaries, the timeout, and which
operations timed out at which stored count, so that larger counts skip them.
"""

import json
import time

import lambdasim as L  # bench/lambdasim.py: bench/ is on sys.path (see __init__)

from .common import pct


def status_of(resp):
    """An API Gateway response's status code."""
    return resp.get("statusCode")


def json_body(resp):
    """An API Gateway response's body as JSON, or None."""
    body = resp.get("body") or ""
    if resp.get("isBase64Encoded"):
        import base64
        body = base64.b64decode(body).decode(errors="replace")
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def per_call(before, after, calls):
    """latfs's counters between two snapshots, per call: ({kernel request: n}, {round trip: n})
    (only the non-zero ones; flush and release included)."""
    requests = {name: (v[0] - before[name][0]) / calls for name, v in after.items()
                if isinstance(v, list) and v[0] != before.get(name, [0])[0]}
    rpc0 = before.get("rpc") or {}
    trips = {name: (n - rpc0.get(name, 0)) / calls for name, n in (after.get("rpc") or {}).items()
             if n != rpc0.get(name, 0)}
    return requests, trips


class LambdaContext:
    """What every cell of one set of binaries shares (`label` names the set: ``main``, or a
    build compared with it), and the operations that timed out (skipped at larger counts)."""

    def __init__(self, work, binaries, cgroups, memory_limit, timeout, label="main"):
        self.label = label
        self.work, self.binaries, self.cgroups = work, binaries, cgroups
        self.memory_limit, self.timeout = memory_limit, timeout
        self.n_instances = 0
        self.timed_out = {}  # (where, mb, op) -> smallest count that timed out

    def note_timeout(self, where, mb, op, count):
        key = (where, mb, op)
        self.timed_out[key] = min(self.timed_out.get(key, count), count)

    def skip(self, where, mb, op, count):
        first = self.timed_out.get((where, mb, op))
        return first is not None and count > first

    def skip_reason(self, where, mb, op):
        first = self.timed_out.get((where, mb, op))
        return f"not run: timed out (> {self.timeout:g} s) at {first:,} stored"


class Cell:
    """One function configuration at one memory size: starts instances, runs operations, keeps
    figures. An instance that times out is killed and replaced, as Lambda does."""

    def __init__(self, ctx, where, messages_dir, mb, stats=None):
        self.ctx, self.where, self.messages_dir, self.mb = ctx, where, messages_dir, mb
        # latfs's counters (a callable), read before and after each operation's invocations: the
        # kernel's requests and the model's round trips to the server per invocation.
        self.stats = stats
        self.instances = {}
        self.functions = {}

    def instance(self, name):
        inst = self.instances.get(name)
        if inst is None or inst.proc.poll() is not None:
            ctx = self.ctx
            ctx.n_instances += 1
            inst = L.Instance(ctx.binaries[name], name, self.mb, self.messages_dir,
                              ctx.work / f"fn-{ctx.label}-{ctx.n_instances}.log", cgroups=ctx.cgroups,
                              memory_limit=ctx.memory_limit)
            self.instances[name] = inst
            f = self.functions.setdefault(name, {"init_ms": [], "first_invocation_ms": []})
            f["init_ms"].append(inst.init_ms)
            inst.fresh = True
        return inst

    def kill(self, name):
        inst = self.instances.pop(name, None)
        if inst:
            self.record_instance(name, inst)
            inst.close()

    def record_instance(self, name, inst):
        try:
            st = inst.status()
        except OSError:
            return
        f = self.functions[name]
        f["peak_rss_kb"] = max(f.get("peak_rss_kb") or 0, st.get("VmHWM") or 0)
        f["threads"] = max(f.get("threads") or 0, st["threads"])
        f["log_lines"] = (f.get("log_lines") or 0) + (inst.log_lines() or 0)
        if inst.group:
            f["throttled_periods"] = (f.get("throttled_periods") or 0) + inst.group.throttling()[0]

    def cold_starts(self, name, n):
        """`n` more fresh instances, each only started (process start to first /next)."""
        for _ in range(n):
            self.ctx.n_instances += 1
            inst = L.Instance(self.ctx.binaries[name], name, self.mb, self.messages_dir,
                              self.ctx.work / f"fn-{self.ctx.label}-{self.ctx.n_instances}.log",
                              cgroups=self.ctx.cgroups, memory_limit=self.ctx.memory_limit)
            self.functions.setdefault(name, {"init_ms": [], "first_invocation_ms": []})["init_ms"].append(inst.init_ms)
            inst.close()

    def warm(self, name, event, ok=(200, 201, 204, 404)):
        """The instance's first invocation, outside the figures (recorded on its own)."""
        inst = self.instance(name)
        if getattr(inst, "fresh", False):
            inst.fresh = False
            ns, resp = inst.invoke(event, self.ctx.timeout)
            self.functions[name]["first_invocation_ms"].append(ns / 1e6)
            if status_of(resp) not in ok:
                raise RuntimeError(f"{name} warm-up answered {status_of(resp)}: {resp.get('body', '')[:300]}")
            return resp
        return None

    def run(self, name, events, check, budget_s):
        """Invokes `events` (an iterable) one after another on a warm instance; stops early
        when `budget_s` is spent (at least one invocation runs). Returns the figures."""
        inst = self.instance(name)
        lat, statuses, notes = [], {}, set()
        timeouts = 0
        c0, p0 = inst.cpu_ns(), inst.proc_cpu_ns()
        th0 = inst.group.throttling()[0] if inst.group else 0
        stats0 = self.read_stats()
        started = time.monotonic()
        for event in events:
            try:
                ns, resp = inst.invoke(event, self.ctx.timeout)
            except L.InvocationTimeout:
                timeouts += 1
                break
            lat.append(ns / 1e6)
            st = status_of(resp)
            statuses[st] = statuses.get(st, 0) + 1
            note = check(resp)
            if note:
                notes.add(note)
            if time.monotonic() - started > budget_s:
                break
        out = {"n": len(lat), "p50": pct(lat, 50), "p99": pct(lat, 99),
               "min": min(lat) if lat else None, "max": max(lat) if lat else None,
               "statuses": {str(k): v for k, v in statuses.items()}, "notes": sorted(notes),
               "timeouts": timeouts, "timeout_s": self.ctx.timeout if timeouts else None}
        if timeouts:
            self.kill(name)  # still busy with the request: Lambda ends such an instance
        elif lat:
            out["cpu_ms_per_request"] = (inst.cpu_ns() - c0) / 1e6 / len(lat)
            out["proc_stat_cpu_ms_per_request"] = (inst.proc_cpu_ns() - p0) / 1e6 / len(lat)
            if inst.group:
                out["throttled_periods"] = inst.group.throttling()[0] - th0
            stats1 = self.read_stats()
            if stats0 and stats1:
                out["fs_requests_per_request"], out["round_trips_per_request"] = \
                    per_call(stats0, stats1, len(lat))
        return out

    def read_stats(self):
        if self.stats is None:
            return None
        try:
            return self.stats()
        except (OSError, ValueError):
            return None

    def close(self):
        for name in list(self.instances):
            self.kill(name)
