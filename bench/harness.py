#!/usr/bin/env python3
"""The benchmark harness: the Lambda model, the in-process design comparison, the functions.

Run through ``bench/run.sh`` (which builds what this needs); see ``bench/README.md`` and the
Method section of ``BENCHMARKS.md``.

What it does, in order:

1. Machine facts (nproc, CPU model, kernel, memory, file system of the work directory) and how
   busy the CPUs are (before the run, and every second during it).
2. The Lambda model (``bench/lambdasim.py`` for the parts): mounts the latency file system
   (``latfs``, FUSE); for each stored count (10 to 1,000,000, ``--sizes``) seeds the store
   straight into latfs's backing directory, ids on a timeline (and a burst dataset); runs the
   release binaries (``target/release/<function>``) one process per instance through a Runtime
   API server of its own, each in a cgroup with Lambda's CPU share for its memory size (128 and
   1,769 MB; 256, 512 and 1,024 too at the power-tuning count); times pages of 100 (first,
   middle, last, asc and desc), GET by id, POST, DELETE by id, DELETE all and init; CPU time per
   request, peak RSS, threads. The same pages again on local disk, for their CPU cost.
3. The in-process comparison (``--skip-designs`` to leave out): the original pattern in Python,
   the naive per-file design and ours, through one line protocol, on local disk and on latfs,
   with latfs's request counts; probes of how the kernel overlaps requests on latfs.
4. Per function (``--skip-functions``): ``bootstrap.zip`` size, start to ready and peak RSS with
   256 KiB messages (full CPU).
5. Writes ``results/results.json``, ``results/report.md``, ``results/latency.png`` (the Lambda
   model) and ``results/latency-designs.png`` (the comparison).
"""

import argparse
import json
import math
import os
import platform
import queue
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
EFS_BENCH = BENCH / "target" / "release" / "efs-bench"
LATFS = BENCH / "target" / "release" / "latfs"
FUNCTIONS = ["get-messages", "post-message", "delete-messages"]
DESIGNS = ["original", "naive", "ours"]
DESIGN_LABELS = {
    "original": "original (Python, one file + flock)",
    "naive": "naive per-file (one after another)",
    "ours": "ours (per-file, 64 in flight)",
}
PAGE = 100
MESSAGE_SIZE = 256
# Injected latencies (microseconds), modelled on EFS.
LAT_META_US, LAT_READ_US, LAT_WRITE_US = 1000, 250, 2700


#: Requests of the design comparison that failed (the report lists them).
FAILURES = []


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# machine


def machine():
    def read(path):
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    cpu = next((l.split(":", 1)[1].strip() for l in read("/proc/cpuinfo").splitlines()
                if l.startswith("model name")), platform.processor())
    mem = next((l.split(":", 1)[1].strip() for l in read("/proc/meminfo").splitlines()
                if l.startswith("MemTotal")), "?")

    def cmd(*argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "memory": mem,
        "rustc": cmd("rustc", "--version"),
        "loadavg": read("/proc/loadavg").split()[:3],
        "python": platform.python_version(),
    }


def cpu_busy(seconds=2.0):
    """How busy the CPUs were over `seconds` (all processes): other work on a shared machine."""
    def sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle
    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return round(100 * (1 - (idle1 - idle0) / max(total1 - total0, 1)), 1)


def fs_type(path):
    out = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True)
    return out.stdout.strip() or "?"


# --------------------------------------------------------------------------------------------
# the latency file system


class LatFs:
    """latfs over `backing`, mounted on `mountpoint`; started and stopped by the harness."""

    def __init__(self, work, extra=()):
        self.backing = work / "latfs-backing"
        self.mountpoint = work / "latfs-mount"
        self.socket = work / "latfs.sock"
        self.log = work / "latfs.log"
        self.extra = list(extra)
        self.proc = None

    @staticmethod
    def unavailable():
        """Why FUSE cannot be used here, or None."""
        if not Path("/dev/fuse").exists():
            return "/dev/fuse does not exist (no FUSE in this kernel or container)"
        if not os.access("/dev/fuse", os.R_OK | os.W_OK):
            return "/dev/fuse is not readable and writable by this user"
        if os.geteuid() != 0 and not shutil.which("fusermount3") and not shutil.which("fusermount"):
            return "not root and no fusermount3 (Debian package fuse3) to mount as a user"
        if not LATFS.exists():
            return f"{LATFS} is not built"
        return None

    def start(self):
        for d in (self.backing, self.mountpoint):
            d.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [str(LATFS), str(self.backing), str(self.mountpoint),
             "--meta-us", str(LAT_META_US), "--read-us", str(LAT_READ_US),
             "--write-us", str(LAT_WRITE_US), "--stats-socket", str(self.socket), *self.extra],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"latfs exited: {self.log.read_text().strip()}")
            if os.path.ismount(self.mountpoint) and self.socket.exists():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("latfs did not mount within 10 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if os.path.ismount(self.mountpoint):
            for tool in (["fusermount3", "-u", "-z"], ["umount", "-l"]):
                if subprocess.run([*tool, str(self.mountpoint)], capture_output=True).returncode == 0:
                    break
        self.proc = None

    def stats(self):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.socket))
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return json.loads(data)


def ops_between(before, after, calls=1):
    """Requests per call, per operation, and the injected latency they add up to (ms)."""
    ops, injected = {}, 0.0
    for name, value in after.items():
        if not isinstance(value, list):
            continue
        n = value[0] - before[name][0]
        if n:
            ops[name] = n / calls
            injected += (value[1] - before[name][1]) / 1e6 / calls
    return ops, injected


# --------------------------------------------------------------------------------------------
# designs


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
            # failed requests (FAILURES below), with the first failure's answer.
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


def body(size, n):
    text = f"message {n:08d} "
    return (text + "x" * max(size - len(text), 0))[: max(size, 1)]


def clear(directory):
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def seed(design, backing, count):
    """Fills the store straight on the backing directory (no latency): set-up, not measured."""
    clear(backing)
    if count == 0:
        return []
    if design == "original":
        with open(backing / "content", "w") as f:
            for n in range(count):
                f.write(body(MESSAGE_SIZE, n) + "\n")
        return list(range(count))
    subprocess.run([str(EFS_BENCH), "seed", "--dir", str(backing), "--count", str(count),
                    "--size", str(MESSAGE_SIZE)], check=True, stdout=subprocess.DEVNULL)
    # Messages live in the store's time directories (shared/src/store/layout.rs).
    return sorted(name for _, _, files in os.walk(backing) for name in files if len(name) == 36)


def pct(values, p):
    values = sorted(values)
    if not values:
        return None
    rank = max(0, min(len(values) - 1, int(round(p / 100 * len(values) + 0.5)) - 1))
    return values[rank]


def ms(ns_values):
    return [v / 1e6 for v in ns_values]


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


# --------------------------------------------------------------------------------------------
# functions: zip size, start to ready, peak RSS


def function_env(runtime, messages_dir, name):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_LAMBDA_RUNTIME_API": runtime.address,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_REGION": "us-east-1",
        "MESSAGES_DIR": str(messages_dir),
        "AWS_LAMBDA_LOG_LEVEL": "ERROR",
    })
    return env


def vm_status(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "Threads"):
            fields[key] = value.strip()
    return fields


def kb(text):
    return int(text.split()[0]) if text else None


def workload(name, ids):
    """The invocations one instance serves before its peak RSS is read."""
    small, big = ids[:-3], ids[-3:]
    events = []
    if name == "get-messages":
        for _ in range(3):
            events.append(L.list_event(limit=100))
            events.append(L.list_event(limit=100, after=ids[len(ids) // 2]))
            # The last page holds the three 256 KiB messages.
            events.append(L.list_event(limit=100, after=ids[-101]))
            events.append(L.get_event(small[7]))
            events.append(L.get_event(big[0]))
    elif name == "post-message":
        for n in range(20):
            events.append(L.post_event(body(MESSAGE_SIZE, n)))
        for n in range(3):
            events.append(L.post_event(body(262_144, n)))
    else:
        for i in range(5):
            events.append(L.delete_event(small[i]))
        events.append(L.delete_all_event())
    return events


def measure_function(binary, name, messages_dir, backing, cold_starts):
    """Start-to-ready over `cold_starts` fresh processes, then the peak RSS over a workload."""
    starts = []
    for _ in range(cold_starts):
        runtime = L.RuntimeApi()
        t0 = time.perf_counter_ns()
        proc = subprocess.Popen([str(binary)], env=function_env(runtime, messages_dir, name),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while runtime.first_next is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.0002)
        if runtime.first_next is None:
            proc.kill()
            err = proc.stderr.read().decode(errors="replace")[-500:]
            runtime.close()
            raise RuntimeError(f"{name} never polled the runtime API: {err}")
        starts.append((runtime.first_next - t0) / 1e6)
        ready_status = vm_status(proc.pid)
        proc.kill()
        proc.wait()
        runtime.close()

    # Peak RSS: 1,000 small messages and three of the largest size (256 KiB), then a workload.
    clear(backing)
    subprocess.run([str(EFS_BENCH), "seed", "--dir", str(backing), "--count", "1000",
                    "--size", str(MESSAGE_SIZE)], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([str(EFS_BENCH), "seed", "--dir", str(backing), "--count", "3",
                    "--size", "262144"], check=True, stdout=subprocess.DEVNULL)
    ids = sorted(n for _, _, files in os.walk(backing) for n in files if len(n) == 36)
    runtime = L.RuntimeApi()
    proc = subprocess.Popen([str(binary)], env=function_env(runtime, messages_dir, name),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    statuses = []
    try:
        for event in workload(name, ids):
            _, answer = runtime.invoke(event, timeout=60)
            statuses.append(answer.get("statusCode"))
        status = vm_status(proc.pid)
    finally:
        proc.kill()
        proc.wait()
        runtime.close()
    clear(backing)
    bad = [s for s in statuses if s not in (200, 201, 204)]
    if bad:
        raise RuntimeError(f"{name}: unexpected statuses {statuses}")
    return {
        "start_to_ready_ms": {"median": statistics.median(starts), "min": min(starts),
                              "max": max(starts), "n": len(starts)},
        "rss_at_ready_kb": kb(ready_status.get("VmHWM")),
        "peak_rss_kb": kb(status.get("VmHWM")),
        "threads_after_workload": int(status.get("Threads", "0")),
        "invocations": len(statuses),
    }


def zip_sizes():
    out = {}
    for name in FUNCTIONS:
        path = ROOT / "target" / "lambda" / name / "bootstrap.zip"
        if path.exists():
            import zipfile
            with zipfile.ZipFile(path) as z:
                unpacked = sum(i.file_size for i in z.infolist())
            out[name] = {"zip_bytes": path.stat().st_size, "unpacked_bytes": unpacked,
                         "path": str(path.relative_to(ROOT)),
                         "built": time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))}
        else:
            out[name] = None
    return out


# --------------------------------------------------------------------------------------------
# the Lambda model: release binaries through the Runtime API, at Lambda's CPU share

import lambdasim as L  # noqa: E402  (bench/lambdasim.py, next to this file)

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
# Bytes of disk one seeded message takes on the scratch file system (a 4 KiB block, its inode
# and directory entry): checked against the free space before seeding.
DISK_PER_MESSAGE = 4096 + 512


class Dataset:
    """Messages seeded straight into a backing directory, and their ids in order."""

    def __init__(self, count, rate, label):
        self.count, self.rate, self.label = count, rate, label
        self.ids = []

    def describe(self):
        span = self.count / self.rate
        return f"{self.count:,} stored, {self.rate:g}/s over {span:,.0f} s ending now"


def wipe(backing):
    if any(os.scandir(backing)):
        subprocess.run([str(EFS_BENCH), "wipe", "--dir", str(backing), "--threads", "4"],
                       check=True, stdout=subprocess.DEVNULL)


def seed_dataset(backing, ds, work):
    """Empties `backing` and seeds `ds` into it (parallel, no fsync, not through latfs)."""
    t = time.monotonic()
    wipe(backing)
    free = shutil.disk_usage(backing).free
    if ds.count * DISK_PER_MESSAGE * 1.2 > free:
        raise RuntimeError(f"not enough disk for {ds.count:,} messages "
                           f"({ds.count * DISK_PER_MESSAGE / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free)")
    ids_file = work / "ids.txt"
    subprocess.run([str(EFS_BENCH), "seed", "--dir", str(backing), "--count", str(ds.count),
                    "--size", str(MESSAGE_SIZE), "--rate", str(ds.rate), "--threads", "4",
                    "--ids-out", str(ids_file)], check=True, stdout=subprocess.DEVNULL)
    ds.ids = ids_file.read_text().split()
    ids_file.unlink()
    if len(ds.ids) != ds.count:
        raise RuntimeError(f"seeded {len(ds.ids)} messages, not {ds.count}")
    return time.monotonic() - t


def page_positions(count):
    last = ((count - 1) // PAGE) * PAGE if count else 0
    return {"first": 0, "middle": (count // 2 // PAGE) * PAGE, "last": last}


def status_of(resp):
    return resp.get("statusCode")


def json_body(resp):
    body = resp.get("body") or ""
    if resp.get("isBase64Encoded"):
        import base64
        body = base64.b64decode(body).decode(errors="replace")
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


class Cell:
    """One function configuration at one memory size: starts instances, runs operations, keeps
    figures. An instance that times out is killed and replaced, as Lambda does."""

    def __init__(self, ctx, where, messages_dir, mb):
        self.ctx, self.where, self.messages_dir, self.mb = ctx, where, messages_dir, mb
        self.instances = {}
        self.functions = {}

    def instance(self, name):
        inst = self.instances.get(name)
        if inst is None or inst.proc.poll() is not None:
            ctx = self.ctx
            ctx.n_instances += 1
            inst = L.Instance(ctx.binaries[name], name, self.mb, self.messages_dir,
                              ctx.work / f"fn-{ctx.n_instances}.log", cgroups=ctx.cgroups,
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
                              self.ctx.work / f"fn-{self.ctx.n_instances}.log",
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
        return out

    def close(self):
        for name in list(self.instances):
            self.kill(name)


def measure_cell(ctx, where, messages_dir, ds, mb, samples, functions=("get", "post", "delete"),
                 cold=0):
    """The non-destructive operations of one dataset at one memory size (and one place): pages
    of 100 (first/middle/last, asc/desc), GET by id, POST, DELETE by id of the messages this
    POSTed (so the store is as seeded afterwards), init times."""
    cell = Cell(ctx, where, messages_dir, mb)
    out = {"where": where, "count": ds.count, "dataset": ds.label, "memory_mb": mb,
           "quota_us": L.quota_us(mb) if ctx.cgroups else None, "ops": {}}
    rng = random.Random(ds.count * 7 + mb)
    budget = samples["budget_s"]
    try:
        if "get" in functions:
            cell.warm("get-messages", L.get_event(ds.ids[len(ds.ids) // 3]))
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
    out = {"where": where, "count": ds.count, "dataset": ds.label, "memory_mb": mb, "ops": {}}
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


class LambdaContext:
    def __init__(self, work, binaries, cgroups, memory_limit, timeout):
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


def fmt_cell_log(c):
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


def run_lambda(args, work, latfs, why_not_latfs):
    """The whole Lambda model; returns its part of results.json."""
    binaries = L.available_binaries(ROOT, FUNCTIONS)
    missing = [n for n, b in binaries.items() if b is None]
    if missing:
        return {"skipped": f"release binaries missing: {', '.join(missing)} (cargo build --release -p ...)"}
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
    sizes = args.sizes or ([10, 1_000] if quick else SIZES)
    tuning_count = args.tuning_count or (1_000 if quick else TUNING_COUNT)
    datasets = [Dataset(n, args.rate, f"{args.rate:g}/s") for n in sizes]
    if not args.no_burst:
        b = Dataset(BURST["count"] // (10 if quick else 1), 0, "burst")
        b.rate = b.count / BURST["seconds"]
        b.label = f"burst: {b.count:,} in {BURST['seconds']} s"
        datasets.append(b)
    ctx = LambdaContext(work, binaries, cgroups, args.memory_limit, args.timeout)
    out = {"cgroups": cgroups, "cgroups_skipped": why_not_cg, "memory_main": main_mb,
           "memory_tuning": sorted(set(main_mb + tuning_mb)) if cgroups else main_mb,
           "tuning_count": tuning_count, "samples": samples, "timeout_s": args.timeout,
           "seed_rate": args.rate, "burst": BURST, "price": PRICE, "cells": [], "seeding": [],
           "memory_limit": args.memory_limit}
    if latfs is None:
        out["latfs_skipped"] = why_not_latfs
        log(f"Lambda model on local disk only (no latfs: {why_not_latfs})")
        backing = work / "lambda-local"
        backing.mkdir(exist_ok=True)
        view = backing
    else:
        backing, view = latfs.backing, latfs.mountpoint
    where = "latfs" if latfs else "local"
    try:
        for ds in datasets:
            t_ds = time.monotonic()
            secs = seed_dataset(backing, ds, work)
            out["seeding"].append({"count": ds.count, "dataset": ds.label, "s": secs})
            log(f"  {ds.label:>22} {ds.count:>9,}: seeded in {secs:.1f} s")
            mems = list(main_mb)
            if ds.count == tuning_count and ds.label != "burst" and not ds.label.startswith("burst"):
                mems += tuning_mb
            for mb in mems:
                t = time.monotonic()
                c = measure_cell(ctx, where, view, ds, mb, samples, cold=samples["cold"])
                out["cells"].append(c)
                log(f"    {where} {mb:>4} MB: {fmt_cell_log(c)}  ({time.monotonic() - t:.0f} s)")
            if latfs is not None:
                # CPU per request with no injected latency: the same data read on local disk.
                t = time.monotonic()
                c = measure_cell(ctx, "local", backing, ds, L.FULL_CPU_MB, samples,
                                 functions=("get",))
                out["cells"].append(c)
                log(f"    local {L.FULL_CPU_MB} MB: {fmt_cell_log(c)}  ({time.monotonic() - t:.0f} s)")
            # DELETE all, once per memory size, each on exactly the dataset.
            fresh = True
            for mb in mems:
                t = time.monotonic()
                if not fresh and not ctx.skip(where, mb, "delete_all", ds.count):
                    seed_dataset(backing, ds, work)
                    fresh = True
                c = measure_delete_all(ctx, where, view, ds, mb)
                if "skipped" not in c["ops"]["delete_all"]:
                    fresh = False
                out["cells"].append(c)
                log(f"    {where} {mb:>4} MB: {fmt_cell_log(c)}  ({time.monotonic() - t:.0f} s)")
            log(f"  {ds.label} {ds.count:,} done in {time.monotonic() - t_ds:.0f} s")
        wipe(backing)
    finally:
        L.remove_all_groups()
    return out


# --------------------------------------------------------------------------------------------
# report


def fmt(value, digits=None):
    if value is None:
        return "–"
    if digits is None:
        digits = 3 if value < 1 else 2 if value < 10 else 1 if value < 1000 else 0
    return f"{value:,.{digits}f}"


def table_for(results, fs_name, counts, delete_counts, designs=DESIGNS):
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
    lines = [f"**{title}**", "", "| probe | wall time (ms) | injected, one after another (ms) | requests |",
             "|---|---|---|---|"]
    for p in probes:
        ops = ", ".join(f"{k} {v['count']}" for k, v in p["ops"].items()
                        if k not in ("flush", "release", "releasedir"))
        lines.append(f"| {p['probe']} | {p['ms']:.1f} | {p['serial_injected_ms']:.1f} | {ops} |")
    return "\n".join(lines)


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


def plot(results, path):
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


# --------------------------------------------------------------------------------------------
# the Lambda model's report and plot


PAGE_KEYS = [f"page_{pos}_{order}" for order in ("asc", "desc") for pos in ("first", "middle", "last")]
OP_LABELS = {**{f"page_{pos}_{order}": f"page of 100, {pos}, {order}" for pos in ("first", "middle", "last")
                for order in ("asc", "desc")},
             "get": "GET by id", "post": "POST (256 B)", "delete": "DELETE by id",
             "delete_all": "DELETE all"}
OP_FUNCTION = {**{k: "get-messages" for k in PAGE_KEYS}, "get": "get-messages",
               "post": "post-message", "delete": "delete-messages", "delete_all": "delete-messages"}


def lam_cells(lam, where=None, mb=None, dataset=None):
    for c in lam.get("cells", []):
        if (where is None or c["where"] == where) and (mb is None or c["memory_mb"] == mb) \
                and (dataset is None or c["dataset"] == dataset):
            yield c


def lam_op(lam, where, mb, count, op, dataset=None):
    for c in lam_cells(lam, where, mb):
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
    parts += ["### Function instances", "", lambda_functions_table(lam, where, lam["memory_tuning"]), "",
              "### Targets (issue 9)", "", lambda_targets(lam), ""]
    return parts


def lambda_plot(lam, path):
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


# --------------------------------------------------------------------------------------------
# main


def parse_sizes(text):
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
    parser.add_argument("--skip-lambda", action="store_true", help="skip the Lambda model")
    parser.add_argument("--skip-designs", action="store_true",
                        help="skip the in-process comparison of the original, naive and our design")
    parser.add_argument("--skip-functions", action="store_true",
                        help="skip zip sizes and the large-message RSS workload")
    args = parser.parse_args()
    if args.tuning_count:
        args.tuning_count = args.tuning_count[0]

    # Ctrl-C and SIGTERM unwind through the finally blocks: latfs unmounted, cgroups removed.
    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # also when started in the background (SIGINT ignored)
    import atexit
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

    latfs = None
    why_not = LatFs.unavailable()
    busy = BusySampler()
    busy.start()
    try:
        # ---- the Lambda model (first: it is what the store is judged by)
        if not args.skip_lambda:
            log("Lambda model: release binaries through the Runtime API at Lambda's CPU share")
            lat = None
            if why_not is None:
                try:
                    lat = LatFs(work / "lambda")
                    lat.start()
                except Exception as e:  # noqa: BLE001
                    why_not = f"mounting latfs failed: {e}"
                    lat = None
            latfs = lat
            try:
                report["lambda"] = run_lambda(args, work, lat, why_not)
            finally:
                if lat:
                    lat.stop()
                latfs = None
            report["lambda"]["cpu_busy_during_pct"] = busy.mark()
            # Written at once, so a later failure does not lose it.
            (out / "results.json").write_text(json.dumps(report, indent=1))

        if not args.skip_designs:
            # ---- local disk
            local = work / "local"
            local.mkdir()
            log("designs, local disk:")
            report["results"] += run_designs("local", local, local, counts, local_delete_counts,
                                             local_samples, None)

            # ---- latency file system
            if why_not is None:
                try:
                    serial = LatFs(work / "serial", ["--serial-dirops"])
                    serial.start()
                    try:
                        probe = subprocess.run(
                            [str(EFS_BENCH), "probe", "--mount", str(serial.mountpoint), "--backing",
                             str(serial.backing), "--stats", str(serial.socket), "--quick"],
                            check=True, capture_output=True, text=True)
                        report["probes_serial_dirops"] = json.loads(probe.stdout)
                    finally:
                        serial.stop()
                    latfs = LatFs(work)
                    latfs.start()
                except Exception as e:  # noqa: BLE001 - any failure to mount means: skip, say why
                    why_not = f"mounting latfs failed: {e}"
                    latfs = None
            if latfs:
                log("latency file system: probes")
                probe = subprocess.run(
                    [str(EFS_BENCH), "probe", "--mount", str(latfs.mountpoint), "--backing",
                     str(latfs.backing), "--stats", str(latfs.socket)] + (["--quick"] if args.quick else []),
                    check=True, capture_output=True, text=True)
                report["probes"] = json.loads(probe.stdout)
                log("designs, latency file system:")
                report["results"] += run_designs("latfs", latfs.backing, latfs.mountpoint, counts, [],
                                                 latfs_samples, latfs)
                latfs.stop()
                latfs = None
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
            else:
                report["latfs_skipped"] = why_not
                log(f"SKIPPED the latency file system: {why_not}")
            report["designs_cpu_busy_during_pct"] = busy.mark()

        # ---- functions
        if not args.skip_functions:
            log("functions: zip sizes, start to ready and peak RSS with 256 KiB messages:")
            if why_not is None:
                try:
                    latfs = LatFs(work / "fn-latfs")
                    latfs.start()
                except Exception as e:  # noqa: BLE001
                    log(f"latfs for the functions did not mount ({e}): local disk only")
                    latfs = None
            zips = zip_sizes()
            functions = {}
            for name in FUNCTIONS:
                binary = ROOT / "target" / "release" / name
                f = {"zip": zips.get(name)}
                if binary.exists():
                    fl = work / "fn-local"
                    fl.mkdir(exist_ok=True)
                    f["local"] = measure_function(binary, name, fl, fl, 3 if args.quick else 7)
                    if latfs:
                        f["latfs"] = measure_function(binary, name, latfs.mountpoint,
                                                      latfs.backing, 1)
                else:
                    f["missing_binary"] = str(binary)
                functions[name] = f
                log(f"  {name}: {json.dumps({k: v for k, v in f.items()})}")
            report["functions"] = functions
    finally:
        busy.stop()
        if latfs:
            latfs.stop()
        L.remove_all_groups()
        shutil.rmtree(work, ignore_errors=True)

    report["elapsed_s"] = time.monotonic() - started
    report["design_failures"] = FAILURES
    report["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    report["cpu_busy_other_pct"] = busy.summary()
    (out / "results.json").write_text(json.dumps(report, indent=1))
    has_plot = bool(report["results"]) and plot(report["results"], out / "latency-designs.png")
    has_lplot = "lambda" in report and "skipped" not in report["lambda"] and \
        lambda_plot(report["lambda"], out / "latency.png")
    write_report(report, out / "report.md", has_plot, has_lplot, counts, local_delete_counts)
    log(f"done in {report['elapsed_s']:.0f} s: {out / 'report.md'}, {out / 'results.json'}"
        + (f", {out / 'latency.png'}" if has_lplot else "")
        + (f", {out / 'latency-designs.png'}" if has_plot else ""))


def git_describe():
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "shared",
                                "functions"], capture_output=True, text=True, timeout=10).stdout.strip()
        return head + (" (shared/ or functions/ modified)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


class BusySampler:
    """How busy the CPUs were with work other than this run's, sampled every second: total busy
    minus this harness's own process tree is not separable cheaply, so it records total CPU busy
    (%) and the runnable-task count, and the report says so."""

    def __init__(self):
        self.samples = []
        self.marks = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _read(self):
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    def _run(self):
        total0, idle0 = self._read()
        while not self._stop.wait(1.0):
            total1, idle1 = self._read()
            self.samples.append(100 * (1 - (idle1 - idle0) / max(total1 - total0, 1)))
            total0, idle0 = total1, idle1

    def start(self):
        self.thread.start()

    def stop(self):
        self._stop.set()

    def mark(self):
        """Mean CPU busy (%) since the previous mark."""
        start = self.marks[-1] if self.marks else 0
        self.marks.append(len(self.samples))
        chunk = self.samples[start:]
        return round(statistics.mean(chunk), 1) if chunk else None

    def summary(self):
        if not self.samples:
            return None
        return {"mean": round(statistics.mean(self.samples), 1),
                "median": round(statistics.median(self.samples), 1),
                "max": round(max(self.samples), 1), "seconds": len(self.samples)}


def write_report(report, path, has_plot, has_lplot, counts, local_delete_counts):
    m = report["machine"]
    s = report["samples"]
    busy = report.get("cpu_busy_other_pct") or {}
    lam = report.get("lambda")
    parts = [
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), kernel {m['kernel']}, {m['memory']} memory, "
        f"{m['rustc']}, Python {m['python']}; scratch directory on {report['work_fs']}. "
        f"Code measured: {report.get('git', '?')}. "
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


if __name__ == "__main__":
    main()
