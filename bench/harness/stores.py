"""Stored messages: the design comparison's stores, the Lambda model's datasets, emptying them.

Everything here writes straight into a backing directory (not through latfs): set-up, not
measured. ``efs-bench seed`` writes messages in the store's own format at their
``MessageStore::message_path``; ``efs-bench wipe`` empties a large store in parallel.
"""

import os
import shutil
import subprocess
import time

from .common import EFS_BENCH, MESSAGE_SIZE


def body(size, n):
    """The text of message `n`, `size` bytes long."""
    text = f"message {n:08d} "
    return (text + "x" * max(size - len(text), 0))[: max(size, 1)]


def clear(directory):
    """Empties `directory` (file by file: fine for the comparison's small stores)."""
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
    """Empties `backing` with `efs-bench wipe` (parallel: for the Lambda model's large stores)."""
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
