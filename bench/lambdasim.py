"""Function instances as Lambda runs them, for the benchmark harness (``bench/harness/``).

* :class:`RuntimeApi`: the part of the Lambda Runtime API a function uses (``/next``,
  ``/response``, ``/error``, ``/init/error``), one server per instance. It times each invocation
  itself: from handing the event out on ``/next`` to receiving ``/response``, so the figure is
  what Lambda bills (the function's own work), with no client or API Gateway in it. Nagle's
  algorithm is off on its sockets, or delayed ACKs add 40 ms to every invocation.
* :class:`CpuGroup`: Lambda's CPU share for a memory size, as a cgroup v1 cpu group of the
  instance's own (``cpu.cfs_quota_us = 100000 * memory_mb / 1769`` per 100 ms period, capped at
  one CPU from 1,769 MB), plus a cpuacct group for its CPU time in nanoseconds and, optionally, a
  memory limit.
* :class:`Instance`: one process of a real release function binary, with the environment Lambda
  sets, in its CPU group from before ``exec``; init time, CPU time, peak RSS, threads.
* Events: API Gateway HTTP API (payload 2.0) events built from the project's fixtures
  (``test-support/fixtures/events``).
"""

import copy
import json
import os
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "test-support" / "fixtures" / "events"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Lambda gives a function CPU in proportion to its memory: 1,769 MB is one full vCPU.
FULL_CPU_MB = 1769
CFS_PERIOD_US = 100_000


class InvocationTimeout(Exception):
    """The function did not answer within the timeout (Lambda would end the instance)."""


# --------------------------------------------------------------------------------------------
# events


_fixture_cache = {}


def fixture(name):
    if name not in _fixture_cache:
        _fixture_cache[name] = json.loads((FIXTURES / f"{name}.json").read_text())
    return copy.deepcopy(_fixture_cache[name])


def _set_query(event, params):
    raw = "&".join(f"{k}={v}" for k, v in params.items())
    event["rawQueryString"] = raw
    if params:
        event["queryStringParameters"] = dict(params)
    else:
        event.pop("queryStringParameters", None)
    return event


def _set_id(event, message_id):
    method = event["requestContext"]["http"]["method"]
    path = f"/messages/{message_id}"
    event["rawPath"] = path
    event["requestContext"]["http"]["path"] = path
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} /messages/{{id}}"
    event["pathParameters"] = {"id": message_id}
    return event


def list_event(limit=100, order=None, after=None):
    """GET /messages?limit=..&order=..&after=.. (from get-messages.json)."""
    params = {"limit": str(limit)}
    if order:
        params["order"] = order
    if after:
        params["after"] = after
    return _set_query(fixture("get-messages"), params)


def get_event(message_id):
    return _set_id(fixture("get-message"), message_id)


def post_event(text):
    event = fixture("post-message-text")
    event["body"] = text
    event["isBase64Encoded"] = False
    event["headers"]["content-length"] = str(len(text.encode()))
    return event


def delete_all_event():
    return fixture("delete-messages")


def delete_event(message_id):
    return _set_id(fixture("delete-message"), message_id)


# --------------------------------------------------------------------------------------------
# the Runtime API


class RuntimeApi:
    """One instance's Runtime API endpoint (``127.0.0.1:<port>/2018-06-01/runtime/...``)."""

    def __init__(self):
        self.events = queue.Queue()
        self.responses = queue.Queue()
        self.first_next = None  # time.perf_counter_ns() of the first /next
        self.handed_out = {}    # request id -> perf_counter_ns() when /next handed its event out
        self.closed = False
        self.last_response_bytes = None  # the size of the last invocation's response document
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # TCP_NODELAY on the connection: without it the response to /next sits in Nagle's
            # buffer until the client's delayed ACK (40 ms).
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    self.send_error(404)
                    return
                if runtime.first_next is None:
                    runtime.first_next = time.perf_counter_ns()
                item = runtime.events.get()
                if item is None:  # shutting down: leave the function waiting
                    runtime.events.put(None)
                    self.send_error(503)
                    return
                request_id, payload = item
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 900_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:bench")
                self.send_header("Lambda-Runtime-Trace-Id",
                                 "Root=1-00000000-000000000000000000000000")
                runtime.handed_out[request_id] = time.perf_counter_ns()
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):
                arrived = time.perf_counter_ns()
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                parts = self.path.rstrip("/").split("/")
                # .../invocation/<id>/response | .../invocation/<id>/error | .../init/error
                kind = parts[-1] if parts[-2] != "init" else "init-error"
                request_id = parts[-2] if len(parts) >= 2 else "?"
                runtime.responses.put((kind, request_id, arrived, data))

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a killed function leaves a broken connection behind: not an error here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.n = 0

    @property
    def address(self):
        return f"127.0.0.1:{self.server.server_address[1]}"

    def invoke(self, event, timeout):
        """Hands `event` to the function; returns (latency in ns, the function's response)."""
        self.n += 1
        request_id = f"bench-{self.n:06d}"
        self.events.put((request_id, json.dumps(event).encode()))
        deadline = time.monotonic() + timeout
        while True:
            try:
                kind, rid, arrived, data = self.responses.get(
                    timeout=max(0.001, deadline - time.monotonic()))
            except queue.Empty:
                raise InvocationTimeout(f"no response within {timeout:g} s") from None
            if rid == request_id or kind == "init-error":
                break
        if kind != "response":
            raise RuntimeError(f"invocation failed ({kind}): {data[:300]!r}")
        self.last_response_bytes = len(data)
        return arrived - self.handed_out.pop(request_id), json.loads(data)

    def close(self):
        if not self.closed:
            self.closed = True
            self.events.put(None)
            self.server.shutdown()
            self.server.server_close()


# --------------------------------------------------------------------------------------------
# Lambda's CPU share: cgroup v1


CGROUP_ROOT = Path("/sys/fs/cgroup")
GROUP_PREFIX = "efsbench-"
_created = set()
_created_lock = threading.Lock()


def quota_us(memory_mb):
    """CPU quota per 100 ms period for a memory size: memory_mb / 1769 of one CPU, capped at one
    full CPU (Lambda gives 1769 MB one vCPU; without the cap a multi-threaded instance could use
    both of this machine's CPUs, which Lambda never gives it at that size)."""
    return round(CFS_PERIOD_US * min(memory_mb, FULL_CPU_MB) / FULL_CPU_MB)


def cgroups_unavailable():
    """Why instances cannot get a CPU share here, or None."""
    cpu = CGROUP_ROOT / "cpu"
    if not (cpu / "cpu.cfs_quota_us").exists():
        return f"no cgroup v1 cpu controller at {cpu} (cgroup v2 only, or none)"
    probe = cpu / f"{GROUP_PREFIX}{os.getpid()}-probe"
    try:
        probe.mkdir()
        try:
            (probe / "cpu.cfs_quota_us").write_text("7236")
        finally:
            probe.rmdir()
    except OSError as e:
        return f"cannot create a cpu cgroup under {cpu} ({e.strerror}; needs root)"
    return None


def remove_stale_groups():
    """Removes groups a killed earlier run left behind (their owner pid is gone and they are
    empty). Only this harness's own groups (efsbench-<pid>-<n>) are touched."""
    for controller in ("cpu", "cpuacct", "memory"):
        root = CGROUP_ROOT / controller
        if not root.is_dir():
            continue
        for group in root.glob(f"{GROUP_PREFIX}*"):
            owner = group.name[len(GROUP_PREFIX):].split("-")[0]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                try:
                    group.rmdir()
                except OSError:
                    pass


def remove_all_groups():
    with _created_lock:
        groups = list(_created)
    for g in groups:
        g.remove()


class CpuGroup:
    """cpu (quota), cpuacct (CPU time) and optionally memory groups of one instance."""

    _n = 0

    def __init__(self, memory_mb, memory_limit=False):
        CpuGroup._n += 1
        self.name = f"{GROUP_PREFIX}{os.getpid()}-{CpuGroup._n}"
        self.memory_mb = memory_mb
        self.quota = quota_us(memory_mb)
        self.dirs = []
        with _created_lock:
            _created.add(self)
        cpu = self._make("cpu")
        (cpu / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(self.quota))
        self.cpu = cpu
        self.acct = self._make("cpuacct") if (CGROUP_ROOT / "cpuacct" / "cpuacct.usage").exists() \
            else (cpu if (cpu / "cpuacct.usage").exists() else None)
        if memory_limit and (CGROUP_ROOT / "memory").is_dir():
            mem = self._make("memory")
            (mem / "memory.limit_in_bytes").write_text(str(memory_mb * 1024 * 1024))

    def _make(self, controller):
        d = CGROUP_ROOT / controller / self.name
        d.mkdir()
        self.dirs.append(d)
        return d

    def join(self):
        """Runs in the child between fork and exec (preexec_fn): moves it into every group."""
        pid = str(os.getpid())
        for d in self.dirs:
            with open(d / "cgroup.procs", "w") as f:
                f.write(pid)

    def cpu_ns(self):
        if self.acct is None:
            return None
        return int((self.acct / "cpuacct.usage").read_text())

    def throttling(self):
        """(periods throttled, ns throttled) so far."""
        stat = dict(line.split() for line in (self.cpu / "cpu.stat").read_text().splitlines()
                    if line.strip())
        return int(stat.get("nr_throttled", 0)), int(stat.get("throttled_time", 0))

    def remove(self):
        for d in reversed(self.dirs):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)  # the killed process is not reaped from the group yet
        with _created_lock:
            _created.discard(self)


# --------------------------------------------------------------------------------------------
# instances


def proc_cpu_ticks(pid):
    """utime + stime of a process (fields 14 and 15 of /proc/PID/stat), in clock ticks."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15, counted from 1 with pid, comm


def proc_status(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0])
    out["threads"] = len(os.listdir(f"/proc/{pid}/task"))
    return out


class Instance:
    """One function instance: a process of the release binary speaking the Runtime API."""

    def __init__(self, binary, name, memory_mb, messages_dir, log_path, cgroups=True,
                 memory_limit=False, init_timeout=30):
        import subprocess
        self.name = name
        self.memory_mb = memory_mb
        self.runtime = RuntimeApi()
        self.group = CpuGroup(memory_mb, memory_limit) if cgroups else None
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "AWS_LAMBDA_RUNTIME_API": self.runtime.address,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/28/[$LATEST]0123456789abcdef",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            # As deployed (infra/lib/function.ts): JSON logs at INFO.
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "AWS_LAMBDA_LOG_LEVEL": "INFO",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "MESSAGES_DIR": str(messages_dir),
        })
        self.log_path = Path(log_path)
        self.log = open(self.log_path, "wb")
        # "Process start" is the moment of exec: the child writes its clock (CLOCK_MONOTONIC,
        # shared by every process) to a pipe just before exec, after joining its groups, so the
        # harness's own fork is not counted as the function's init.
        read_fd, write_fd = os.pipe()
        group = self.group

        def before_exec():
            if group:
                group.join()
            os.write(write_fd, str(time.perf_counter_ns()).encode())

        self.started = time.perf_counter_ns()
        try:
            self.proc = subprocess.Popen(
                [str(binary)], env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                stderr=subprocess.STDOUT, close_fds=True, preexec_fn=before_exec)
        except BaseException:
            os.close(read_fd)
            os.close(write_fd)
            self._cleanup()
            raise
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as f:
            stamp = f.read()
        if stamp.isdigit():
            self.started = int(stamp)
        deadline = time.monotonic() + init_timeout
        while self.runtime.first_next is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self.close()
                raise RuntimeError(f"{name} never polled /next (exit {self.proc.returncode}): {tail}")
            time.sleep(0.0002)
        self.init_ms = (self.runtime.first_next - self.started) / 1e6

    def log_tail(self, n=600):
        try:
            self.log.flush()
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def log_lines(self):
        try:
            with open(self.log_path, "rb") as f:
                return sum(1 for _ in f)
        except OSError:
            return None

    def invoke(self, event, timeout):
        return self.runtime.invoke(event, timeout)

    def cpu_ns(self):
        """CPU time so far (every thread, exited ones too): cpuacct.usage where there is a group
        (nanoseconds), else utime + stime from /proc/PID/stat (10 ms ticks)."""
        if self.group and self.group.acct is not None:
            return self.group.cpu_ns()
        return proc_cpu_ticks(self.proc.pid) * 1_000_000_000 // CLK_TCK

    def proc_cpu_ns(self):
        return proc_cpu_ticks(self.proc.pid) * 1_000_000_000 // CLK_TCK

    def status(self):
        return proc_status(self.proc.pid)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._cleanup()

    def _cleanup(self):
        self.runtime.close()
        if self.group:
            self.group.remove()
        try:
            self.log.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def available_binaries(root, names):
    out = {}
    for name in names:
        path = Path(root) / "target" / "release" / name
        out[name] = path if path.exists() else None
    return out


__all__ = ["RuntimeApi", "CpuGroup", "Instance", "InvocationTimeout", "cgroups_unavailable",
           "remove_stale_groups", "remove_all_groups", "quota_us", "list_event", "get_event",
           "post_event", "delete_event", "delete_all_event", "FULL_CPU_MB"]
