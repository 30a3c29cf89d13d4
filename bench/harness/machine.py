"""The machine the run is on: its facts, the code measured, and how busy its CPUs are.

``machine()``, ``fs_type()`` and ``git_describe()`` go into the report's first paragraph;
``cpu_busy()`` samples the 2 s before the run and ``BusySampler`` every second during it.
"""

import os
import platform
import statistics
import subprocess
import threading
import time
from pathlib import Path

from .common import ROOT


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
