"""Clients and nodes: one backing directory (the EFS server), a client per instance (a mount of
the EFS client model, ``latfs --nfs-cache``), and function instances on them (``lambdasim``).

A ``Node`` is one Lambda execution environment: one process of a release function binary, with
the CPU share of its memory size (cgroup v1, when available), on a mount of its own. A node
serves one invocation at a time (its ``lock``), as a Lambda instance does. An invocation that
takes longer than the timeout (10 s, the deployed function timeout) ends the process, as Lambda
does, and the node starts a new one on the same client (a real new environment would also be a
new client; the soak counts these restarts).
"""

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import lambdasim as L
from harness.common import FUNCTION_BIN, LATFS, ROOT
from harness.latfs import start_mount, stop_mount

# The functions' deployed memory sizes (infra/lib/function.ts), which set their CPU share.
DEPLOYED_MB = {"get-messages": 256, "post-message": 128, "delete-messages": 128}
FUNCTION_TIMEOUT_S = 10.0
SCHEDULED_EVENT = L.FIXTURES / "scheduled.json"


# --------------------------------------------------------------------------------------------
# ids and time


def now_ns():
    """The wall clock (the server's clock too: every process and the backing file system share
    it), in nanoseconds since the epoch."""
    return time.time_ns()


def id_ms(message_id):
    """The Unix millisecond a UUID v7 names (its first 48 bits)."""
    return int(message_id[:8] + message_id[9:13], 16)


def uuid7_at(ms):
    """A random UUID v7 of millisecond `ms` (for ids nobody posted: look-ups of the past or the
    future)."""
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    rand_a = rand & 0xFFF
    rand_b = (rand >> 12) & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --------------------------------------------------------------------------------------------
# events


def post_event(body, content_type):
    """POST /messages with `body` (bytes) and `content_type` (None: no Content-Type header), as
    API Gateway delivers it: text as is, anything else base64-encoded."""
    event = L.fixture("post-message-text")
    try:
        event["body"] = body.decode("utf-8")
        event["isBase64Encoded"] = False
    except UnicodeDecodeError:
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    event["headers"]["content-length"] = str(len(body))
    if content_type is None:
        event["headers"].pop("content-type", None)
    else:
        event["headers"]["content-type"] = content_type
    return event


def get_event(message_id):
    return L.get_event(message_id)


def list_event(order, limit, after=None):
    return L.list_event(limit=limit, order=order, after=after)


def raw_list_event(raw_query):
    """GET /messages with a query string as given (for invalid queries)."""
    event = L.fixture("get-messages")
    event["rawQueryString"] = raw_query
    params = dict(p.split("=", 1) if "=" in p else (p, "") for p in raw_query.split("&") if p)
    event["queryStringParameters"] = params
    return event


def delete_event(message_id):
    return L.delete_event(message_id)


def delete_all_event():
    return L.delete_all_event()


def scheduled_event():
    return json.loads(SCHEDULED_EVENT.read_text())


# --------------------------------------------------------------------------------------------
# answers


class Answer:
    """What one invocation gave: the HTTP status (None when the function gave no answer: a
    timeout or an invocation error), headers, the body's bytes, and when it was asked and
    answered (wall clock, ns: `t0` just before the event was handed to the Runtime API, `t1` just
    after the response arrived, so [t0, t1] contains the function's work)."""

    __slots__ = ("status", "headers", "body", "raw", "t0", "t1", "ms", "error", "node",
                 "request_id")

    def __init__(self, node, t0, t1, raw=None, ms=None, error=None, request_id=None):
        self.node, self.t0, self.t1, self.raw, self.ms, self.error = node, t0, t1, raw, ms, error
        # "<generation>/bench-NNNNNN": the instance's log file (<node>-<generation>.log) and the
        # Runtime API's request id, which the function's log lines carry as span.requestId.
        self.request_id = request_id
        self.status = raw.get("statusCode") if isinstance(raw, dict) else None
        self.headers = (raw or {}).get("headers") or {}
        body = (raw or {}).get("body") or ""
        if (raw or {}).get("isBase64Encoded"):
            self.body = base64.b64decode(body)
        else:
            self.body = body.encode()

    def json(self):
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def error_code(self):
        doc = self.json()
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            return doc["error"].get("code")
        return None


# --------------------------------------------------------------------------------------------
# clients


class Client:
    """One NFS client of the store: a mount of latfs over the backing directory."""

    def __init__(self, home, backing, options, latfs=LATFS):
        self.latfs = latfs
        self.home = Path(home)
        self.backing = Path(backing)
        self.mountpoint = self.home / "mnt"
        self.socket = self.home / "stats.sock"
        self.log = self.home / "latfs.log"
        self.options = list(options)
        self.proc = None

    def start(self):
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.proc = start_mount(
            [str(self.latfs), str(self.backing), str(self.mountpoint), "--nfs-cache",
             "--stats-socket", str(self.socket), *self.options],
            self.mountpoint, self.socket, self.log)

    def faults(self, on):
        """Starts (SIGUSR2) or stops (SIGUSR1) injecting faults."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR2 if on else signal.SIGUSR1)

    def stats(self):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(str(self.socket))
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            return json.loads(data)
        except (OSError, ValueError) as e:
            return {"error": str(e)}

    def stop(self):
        stop_mount(self.proc, self.mountpoint)
        self.proc = None


# --------------------------------------------------------------------------------------------
# nodes


class Node:
    """One function instance on a client of its own."""

    def __init__(self, function, name, client, memory_mb, cgroups, timeout, binary):
        self.function, self.name, self.client, self.binary = function, name, client, binary
        self.memory_mb, self.cgroups, self.timeout = memory_mb, cgroups, timeout
        self.lock = threading.Lock()
        self.instance = None
        self.generation = 0
        self.restarts = []  # (wall ns, why)
        self.cpu_ns_done = 0  # CPU time of the processes that ended

    def start(self):
        self.generation += 1
        log = self.client.home / f"{self.name}-{self.generation}.log"
        self.instance = L.Instance(self.binary, self.function, self.memory_mb,
                                   self.client.mountpoint, log, cgroups=self.cgroups)

    def logs(self):
        return sorted(self.client.home.glob(f"{self.name}-*.log"))

    def log_lines(self, request_id):
        """The function's log lines (JSON, parsed) of one invocation (Answer.request_id)."""
        generation, _, rid = (request_id or "").partition("/")
        path = self.client.home / f"{self.name}-{generation}.log"
        out = []
        try:
            for line in path.read_text(errors="replace").splitlines():
                if rid in line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        out.append(line)
        except OSError:
            pass
        return out

    def restart(self, why):
        self.restarts.append((now_ns(), why))
        self._close_instance()
        self.start()

    def _close_instance(self):
        if self.instance is not None:
            try:
                self.cpu_ns_done += self.instance.cpu_ns() or 0
            except OSError:
                pass
            self.instance.close()
            self.instance = None

    def cpu_ns(self):
        now = 0
        if self.instance is not None:
            try:
                now = self.instance.cpu_ns() or 0
            except OSError:
                pass
        return self.cpu_ns_done + now

    def invoke(self, event):
        """Invokes the function with `event`; never raises for the function's failures (they are
        an Answer with no status and an error)."""
        with self.lock:
            t0 = now_ns()
            request_id = f"{self.generation}/bench-{self.instance.runtime.n + 1:06d}"
            try:
                latency, raw = self.instance.invoke(event, self.timeout)
                return Answer(self.name, t0, now_ns(), raw=raw, ms=latency / 1e6,
                              request_id=request_id)
            except L.InvocationTimeout as e:
                t1 = now_ns()
                self.restart(f"timeout: {e}")
                return Answer(self.name, t0, t1, error=f"timeout ({e})")
            except RuntimeError as e:
                t1 = now_ns()
                self.restart(f"invocation error: {e}")
                return Answer(self.name, t0, t1, error=f"invocation error ({e})")

    def close(self):
        with self.lock:
            self._close_instance()


FUNCTIONS = tuple(DEPLOYED_MB)


def binaries_in(bin_dir=None):
    """The four binaries: from `bin_dir` (soak/build.py's output) or the working tree's
    target/release."""
    if bin_dir:
        return [Path(bin_dir) / f for f in (*FUNCTIONS, "latfs")]
    return [*(FUNCTION_BIN / f for f in FUNCTIONS), LATFS]


def pin_binaries(into, bin_dir=None):
    """Copies the release binaries (the three functions and latfs) into `into`, so that a build
    by someone else during a run cannot change what runs; returns {name: {path, sha256, built}}."""
    import hashlib
    import shutil
    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    pinned = {}
    for source in binaries_in(bin_dir):
        target = into / source.name
        shutil.copy2(source, target)
        pinned[source.name] = {
            "path": str(target),
            "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(source.stat().st_mtime)),
        }
    return pinned


def code_version(bin_dir=None):
    """The commit the binaries were built from: soak/build.py's COMMIT file for `bin_dir`, else
    the working tree's HEAD and its uncommitted changes to the code (which a build of
    target/release may or may not have included)."""
    if bin_dir and (Path(bin_dir) / "COMMIT").exists():
        sha, subject = ((Path(bin_dir) / "COMMIT").read_text().splitlines() + [""])[:2]
        return {"commit": sha, "subject": subject, "uncommitted_code_changes": [],
                "built_from": f"a clean export of the commit ({bin_dir})"}

    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True,
                              text=True).stdout.strip()
    dirty = git("status", "--porcelain", "--", "shared", "functions", "efs-model", "Cargo.lock")
    return {"commit": git("rev-parse", "HEAD"), "subject": git("log", "-1", "--format=%s"),
            "uncommitted_code_changes": dirty.splitlines(),
            "built_from": "the working tree's target/release"}


class Cluster:
    """The backing directory, and nodes each on a client of their own."""

    def __init__(self, work, client_options=(), cgroups=True, timeout=FUNCTION_TIMEOUT_S,
                 bin_dir=None):
        self.work = Path(work)
        self.binaries = pin_binaries(self.work / "bin", bin_dir)
        self.bin = self.work / "bin"
        self.backing = self.work / "backing"
        self.backing.mkdir(parents=True, exist_ok=True)
        self.client_options = list(client_options)
        self.cgroups = cgroups
        self.timeout = timeout
        self.clients = []
        self.nodes = []
        L.remove_stale_groups()

    def add(self, function, memory_mb=None, extra_client_options=()):
        """A new node of `function` on a new client."""
        n = sum(1 for node in self.nodes if node.function == function) + 1
        name = f"{function.split('-')[0]}-{n}"
        client = Client(self.work / "clients" / name, self.backing,
                        [*self.client_options, *extra_client_options], self.bin / "latfs")
        client.start()
        self.clients.append(client)
        node = Node(function, name, client, memory_mb or DEPLOYED_MB[function], self.cgroups,
                    self.timeout, self.bin / function)
        node.start()
        self.nodes.append(node)
        return node

    def faults(self, on):
        for client in self.clients:
            client.faults(on)

    def close(self):
        for node in self.nodes:
            try:
                node.close()
            except Exception:  # noqa: BLE001 - cleaning up whatever is left
                pass
        for client in self.clients:
            client.stop()
        L.remove_all_groups()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def cpu_share_problem():
    """Why instances cannot get Lambda's CPU share here, or None."""
    return L.cgroups_unavailable()


def latfs_problem(bin_dir=None):
    if not Path("/dev/fuse").exists():
        return "/dev/fuse does not exist"
    if os.geteuid() != 0:
        return "not root (latfs needs root for open_by_handle_at)"
    for path in binaries_in(bin_dir):
        if not path.exists():
            return (f"{path} is not built (cargo build --release -p efs-model -p get-messages "
                    "-p post-message -p delete-messages, or python3 -m soak.build)")
    return None


def machine_load():
    """The load averages and how busy the CPUs were over the last second (for the record)."""
    def cpu_times():
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        values = [int(v) for v in fields]
        return sum(values), values[3] + values[4]
    total0, idle0 = cpu_times()
    time.sleep(1)
    total1, idle1 = cpu_times()
    busy = 1 - (idle1 - idle0) / max(1, total1 - total0)
    return {"loadavg": Path("/proc/loadavg").read_text().split()[:3],
            "cpu_busy_1s": round(busy, 3), "cpus": os.cpu_count()}


OTHER_BENCHMARKS = {"run.sh", "quiet-run.sh", "harness.py", "history.py", "bigpage.py",
                    "reclaim.py", "soak.py", "visibility.py"}


def other_benchmarks():
    """Processes of other benchmarks (bench/run.sh, harness.py, history.py, bigpage.py,
    reclaim.py, another soak or visibility run, a *run.sh wrapper) or of cargo builds running now,
    as `pgrep -fa` lists them (pid and command line); this process is left out."""
    out = subprocess.run(["pgrep", "-fa", "run.sh|harness|history|bigpage|reclaim|soak|"
                          "visibility|cargo|rustc"], capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        pid, _, command = line.partition(" ")
        words = command.split()
        if not words or pid in (str(os.getpid()), str(os.getppid())):
            continue
        names = [Path(w).name for w in words[:3]]
        if names[0] in ("cargo", "rustc") or names[0].endswith("run.sh") \
                or any(n in OTHER_BENCHMARKS or n.endswith("run.sh") for n in names[1:]) \
                and (names[0].startswith("python") or names[0] in ("bash", "sh")):
            found.append(line[:200])
    return found
