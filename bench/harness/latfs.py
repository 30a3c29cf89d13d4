"""The latency file system (``latfs``, FUSE): mounting and unmounting it, and its request counts.

``latfs`` is the EFS client model of the ``efs-model`` crate (``efs-model/README.md``); the
binary's location is ``common.LATFS``. Two models of it are used:

* ``nfs`` (``--nfs-cache``, with the default cache times of nfs(5): attributes 3–60 s for files,
  30–60 s for directories): one mount is one NFS client, with the Linux NFS client's caches of
  attributes, names (found and not found), listings and data, and close-to-open revalidation.
  Mount the same backing directory twice and you have two clients of one server. What the Lambda
  model runs on by default (``--latfs-model``).
* ``plain``: the original latency file system (every request a round trip, the kernel's own
  attribute cache of 1 s and no name cache), which the earlier benchmarks used, and which the
  design comparison and the functions part keep, so their figures stay comparable.

The harness mounts one for the Lambda model (one per set of binaries measured, over one backing
directory), one for the design comparison (with two more there: ``--serial-dirops`` for a
probe, and one with no injected latency) and one for the functions' workload, each in a
directory of its own under the scratch directory; ``stop`` unmounts, also after a crash of latfs.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .common import LATFS

# Injected latencies (microseconds), modelled on EFS.
LAT_META_US, LAT_READ_US, LAT_WRITE_US = 1000, 250, 2700
# The models (see above): their extra options.
MODELS = {"nfs": ["--nfs-cache"], "plain": []}
MODEL_TEXT = {
    "nfs": "the NFS client model (latfs --nfs-cache, default cache times: acregmin/acregmax "
           "3/60 s, acdirmin/acdirmax 30/60 s)",
    "plain": "the plain latency file system (no client caches: every request a round trip)",
}


class LatFs:
    """latfs over `backing`, mounted on `mountpoint`; started and stopped by the harness.

    `model` is ``plain`` or ``nfs`` (MODELS). `backing` defaults to ``work/latfs-backing``; give
    another mount's backing directory to make a second client of the same server (`name` then
    keeps the mount point, socket and log apart)."""

    def __init__(self, work, extra=(), model="plain", backing=None, name="latfs"):
        self.model = model
        self.backing = backing or work / "latfs-backing"
        self.mountpoint = work / f"{name}-mount"
        self.socket = work / f"{name}.sock"
        self.log = work / f"{name}.log"
        self.extra = MODELS[model] + list(extra)
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
        self.proc = start_mount(
            [str(LATFS), str(self.backing), str(self.mountpoint),
             "--meta-us", str(LAT_META_US), "--read-us", str(LAT_READ_US),
             "--write-us", str(LAT_WRITE_US), "--stats-socket", str(self.socket), *self.extra],
            self.mountpoint, self.socket, self.log)

    def stop(self):
        stop_mount(self.proc, self.mountpoint)
        self.proc = None

    def stats(self):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.socket))
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return json.loads(data)


def start_mount(argv, mountpoint, socket, log):
    """Starts latfs (`argv`, which names `mountpoint` and `--stats-socket socket`) with its
    errors in `log`, and returns its process once the mount and the socket are there (10 s at
    most; a latfs that exits or is late is stopped and its log raised)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"latfs exited: {Path(log).read_text().strip()}")
        if os.path.ismount(mountpoint) and Path(socket).exists():
            return proc
        time.sleep(0.02)
    stop_mount(proc, mountpoint)
    raise RuntimeError(f"latfs did not mount {mountpoint} within 10 s")


def stop_mount(proc, mountpoint):
    """Stops a latfs process (SIGTERM, then SIGKILL after 10 s) and makes sure its mount is gone
    (a killed FUSE server leaves the mount point answering ENOTCONN until it is unmounted)."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if os.path.ismount(mountpoint):
        for tool in (["fusermount3", "-u", "-z"], ["umount", "-l"]):
            if subprocess.run([*tool, str(mountpoint)], capture_output=True).returncode == 0:
                break


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
