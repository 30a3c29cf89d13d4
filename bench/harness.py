#!/usr/bin/env python3
"""The benchmark harness: one driver for every design, file system and function.

Run through ``bench/run.sh`` (which builds what this needs); see ``bench/README.md``.

What it does, in order:

1. Machine facts (nproc, CPU model, kernel, memory, file system of the work directory).
2. Starts the latency file system (``latfs``, FUSE) over a backing directory, or explains why it
   cannot and goes on with local disk alone. Probes how the kernel overlaps requests on it.
3. For each file system (local disk, latfs), each stored count (10, 1,000, 10,000; 100,000 for
   DELETE all on local disk) and each design (the original pattern in Python, the naive per-file
   design, ours), times: POST (p50/p99), GET of one 100-message page (first, middle, last), GET
   by id, DELETE all. Every design gets the same requests and message bodies through the same
   line protocol; each times its own handler calls (``time.perf_counter_ns`` in Python,
   ``Instant`` in Rust), so no inter-process overhead is in the figures. On latfs the
   operations the file system saw are counted per request (from latfs's statistics socket).
4. Per function: ``bootstrap.zip`` size, process start to ready, peak RSS (each release binary
   against a small mock of the Lambda Runtime API).
5. Writes ``results/results.json``, ``results/report.md`` and ``results/latency.png``.
"""

import argparse
import json
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
EVENT_TEMPLATE = BENCH.parent / "test-support/fixtures/events/get-root.json"
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
            raise RuntimeError(f"{self.design}: {answer['errors']} requests failed: {request}")
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
    # Messages live in the store's shard directories (shared/src/store.rs).
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
                         "ops": a.get("ops"), "injected_ms": a.get("injected_ms")}
    left = [n for _, _, files in os.walk(backing) for n in files if len(n) == 36 or n == "content"]
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


def api_event(method):
    """An API Gateway HTTP API (payload 2.0) event from the project's own fixtures (the Rust
    side of the bench uses test-support's builders on the same files)."""
    event = json.loads(EVENT_TEMPLATE.read_text())
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = f"{method} /messages"
    event["requestContext"]["routeKey"] = event["routeKey"]
    return event


def with_path_id(event, message_id):
    method = event["requestContext"]["http"]["method"]
    path = f"/messages/{message_id}"
    event["rawPath"] = path
    event["requestContext"]["http"]["path"] = path
    event["routeKey"] = f"{method} /messages/{{id}}"
    event["requestContext"]["routeKey"] = event["routeKey"]
    event["pathParameters"] = {"id": message_id}
    return event


def with_query(event, raw):
    event["rawQueryString"] = raw
    event["queryStringParameters"] = dict(p.split("=", 1) for p in raw.split("&") if p)
    return event


def with_body(event, text, content_type="text/plain; charset=utf-8"):
    event["body"] = text
    event["isBase64Encoded"] = False
    event["headers"]["content-length"] = str(len(text.encode()))
    event["headers"]["content-type"] = content_type
    return event


class MockRuntime:
    """The part of the Lambda Runtime API a function uses: next invocation, response, error."""

    def __init__(self):
        self.events = queue.Queue()
        self.responses = queue.Queue()
        self.first_next = None
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    self.send_error(404)
                    return
                if runtime.first_next is None:
                    runtime.first_next = time.monotonic()
                item = runtime.events.get()
                if item is None:  # shutting down: leave the function waiting
                    self.send_error(503)
                    return
                request_id, event = item
                payload = json.dumps(event).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:bench")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                parts = self.path.split("/")
                kind = parts[-1]
                runtime.responses.put((kind, data))

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a killed function leaves a broken connection behind: not an error here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.server.server_address[1]}"

    def invoke(self, event, n):
        self.events.put((f"req-{n}", event))
        kind, data = self.responses.get(timeout=60)
        if kind != "response":
            raise RuntimeError(f"invocation failed ({kind}): {data[:300]!r}")
        return json.loads(data)

    def close(self):
        self.events.put(None)
        self.server.shutdown()
        self.server.server_close()


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
            events.append(with_query(api_event("GET"), "limit=100"))
            events.append(with_query(api_event("GET"), f"limit=100&after={ids[len(ids) // 2]}"))
            # The last page holds the three 256 KiB messages.
            events.append(with_query(api_event("GET"), f"limit=100&after={ids[-101]}"))
            events.append(with_path_id(api_event("GET"), small[7]))
            events.append(with_path_id(api_event("GET"), big[0]))
    elif name == "post-message":
        for n in range(20):
            events.append(with_body(api_event("POST"), body(MESSAGE_SIZE, n)))
        for n in range(3):
            events.append(with_body(api_event("POST"), body(262_144, n)))
    else:
        for i in range(5):
            events.append(with_path_id(api_event("DELETE"), small[i]))
        events.append(api_event("DELETE"))
    return events


def measure_function(binary, name, messages_dir, backing, cold_starts):
    """Start-to-ready over `cold_starts` fresh processes, then the peak RSS over a workload."""
    starts = []
    for _ in range(cold_starts):
        runtime = MockRuntime()
        t0 = time.monotonic()
        proc = subprocess.Popen([str(binary)], env=function_env(runtime, messages_dir, name),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = t0 + 10
        while runtime.first_next is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.0002)
        if runtime.first_next is None:
            proc.kill()
            err = proc.stderr.read().decode(errors="replace")[-500:]
            runtime.close()
            raise RuntimeError(f"{name} never polled the runtime API: {err}")
        starts.append((runtime.first_next - t0) * 1e3)
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
    runtime = MockRuntime()
    proc = subprocess.Popen([str(binary)], env=function_env(runtime, messages_dir, name),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    statuses = []
    try:
        for n, event in enumerate(workload(name, ids)):
            answer = runtime.invoke(event, n)
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


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plot (bench/run.sh installs it into bench/.venv)")
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
# main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    parser.add_argument("--work", default=os.environ.get("BENCH_WORK", "/tmp/efs-bench"),
                        help="scratch directory on local disk (default /tmp/efs-bench)")
    parser.add_argument("--out", default=None,
                        help="where the report goes (default results/, or results/tmp/quick "
                             "for --quick, so a smoke test never overwrites the recorded run)")
    parser.add_argument("--skip-functions", action="store_true")
    args = parser.parse_args()

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
              "samples": {"local": local_samples, "latfs": latfs_samples}, "results": []}
    log(f"machine: {report['machine']}; work directory {work} ({report['work_fs']})")

    latfs = None
    why_not = LatFs.unavailable()
    try:
        # ---- local disk
        local = work / "local"
        local.mkdir()
        log("local disk:")
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
                 str(latfs.backing), "--stats", str(latfs.socket)],
                check=True, capture_output=True, text=True)
            report["probes"] = json.loads(probe.stdout)
            log("latency file system:")
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

        # ---- functions
        if not args.skip_functions:
            log("functions:")
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
        if latfs:
            latfs.stop()
        shutil.rmtree(work, ignore_errors=True)

    report["elapsed_s"] = time.monotonic() - started
    report["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    (out / "results.json").write_text(json.dumps(report, indent=1))
    has_plot = plot(report["results"], out / "latency.png")
    write_report(report, out / "report.md", has_plot, counts, local_delete_counts)
    log(f"done in {report['elapsed_s']:.0f} s: {out / 'report.md'}, {out / 'results.json'}"
        + (f", {out / 'latency.png'}" if has_plot else ""))


def write_report(report, path, has_plot, counts, local_delete_counts):
    m = report["machine"]
    s = report["samples"]
    parts = [
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), kernel {m['kernel']}, {m['memory']} memory, "
        f"{m['rustc']}, Python {m['python']}; scratch directory on {report['work_fs']}. "
        f"Run time {report['elapsed_s']:.0f} s. Other work on the machine: the CPUs were "
        f"{report['cpu_busy_before_pct']}% busy in the 2 s before the run (load average "
        f"{' '.join(m['loadavg'])}; during the run the load average counts the threads waiting "
        f"on latfs, so it says nothing about CPU contention).",
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
        parts += ["### Functions", "", functions_table(report["functions"]), ""]
    parts += ["### Targets", "", targets(report["results"], report.get("functions"), counts), ""]
    if has_plot:
        parts += ["![latency against stored messages](bench/results/latency.png)", ""]
    path.write_text("\n".join(parts))


if __name__ == "__main__":
    main()
