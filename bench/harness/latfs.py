"""The latency file system (``latfs``, FUSE): mounting and unmounting it, and its request counts.

The binary's location is ``common.LATFS``; its source is ``bench/src/bin/latfs.rs`` and its
options are in ``bench/README.md``. The harness mounts one for the Lambda model, one for the
design comparison (with two more there: ``--serial-dirops`` for a probe, and one with no injected
latency) and one for the functions' workload, each in a directory of its own under the scratch
directory; ``stop`` unmounts, also after a crash of latfs.
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
