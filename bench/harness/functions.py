"""Per function: the ``bootstrap.zip`` size, start to ready and peak RSS with 256 KiB messages.

At full CPU (no cgroup), on local disk and on latfs: each release binary runs against a Runtime
API of ``lambdasim`` (``measure_function``); ``measure_all`` is this whole part of the run.
"""

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import lambdasim as L  # bench/lambdasim.py: bench/ is on sys.path (see __init__)

from .common import EFS_BENCH, FUNCTION_BIN, FUNCTIONS, MESSAGE_SIZE, ROOT, log
from .latfs import LatFs
from .stores import body, clear


def function_env(runtime, messages_dir, name):
    """The environment Lambda sets (at 128 MB, logging errors only)."""
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
    """VmHWM, VmRSS and Threads of /proc/<pid>/status, as text."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "Threads"):
            fields[key] = value.strip()
    return fields


def kb(text):
    """The number of "1234 kB" (None for no text)."""
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
    """Each function's target/lambda/<function>/bootstrap.zip: size, unpacked size, when built."""
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


def measure_all(work, why_not_latfs, quick):
    """Every function: zip size, and start to ready and peak RSS on local disk and (unless
    `why_not_latfs` says why not) on a latfs of its own. Returns results.json's ``functions``."""
    log("functions: zip sizes, start to ready and peak RSS with 256 KiB messages:")
    latfs = None
    if why_not_latfs is None:
        try:
            latfs = LatFs(work / "fn-latfs")
            latfs.start()
        except Exception as e:  # noqa: BLE001
            log(f"latfs for the functions did not mount ({e}): local disk only")
            latfs = None
    try:
        zips = zip_sizes()
        functions = {}
        for name in FUNCTIONS:
            binary = FUNCTION_BIN / name
            f = {"zip": zips.get(name)}
            if binary.exists():
                fl = work / "fn-local"
                fl.mkdir(exist_ok=True)
                f["local"] = measure_function(binary, name, fl, fl, 3 if quick else 7)
                if latfs:
                    f["latfs"] = measure_function(binary, name, latfs.mountpoint,
                                                  latfs.backing, 1)
            else:
                f["missing_binary"] = str(binary)
            functions[name] = f
            log(f"  {name}: {json.dumps({k: v for k, v in f.items()})}")
        return functions
    finally:
        if latfs:
            latfs.stop()
