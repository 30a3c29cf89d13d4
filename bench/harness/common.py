"""Where things are, the constants every part of the harness shares, and small helpers.

The one place that says where the bench's binaries (``efs-bench``, and ``latfs`` of the
``efs-model`` crate) and the release function binaries are: every other module takes them from
here.
"""

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent   # bench/
ROOT = BENCH.parent                               # the repository
# efs-bench, built by `cargo build --release` in bench/ (its own workspace; bench/run.sh does it).
BENCH_BIN = BENCH / "target" / "release"
EFS_BENCH = BENCH_BIN / "efs-bench"
# latfs, the EFS client model (efs-model/, a crate of the root workspace): built by
# `cargo build --release -p efs-model` with the function binaries (bench/run.sh does it).
LATFS = ROOT / "target" / "release" / "latfs"
# The functions' release binaries (the root workspace's target/release/<function>; the Lambda
# model finds them through lambdasim.available_binaries(ROOT, ...), which looks in the same place).
FUNCTION_BIN = ROOT / "target" / "release"
FUNCTIONS = ["get-messages", "post-message", "delete-messages"]
PAGE = 100
MESSAGE_SIZE = 256


def log(*args):
    """Progress, on stderr."""
    print(*args, file=sys.stderr, flush=True)


def pct(values, p):
    """The p-th percentile (nearest rank), or None for no values."""
    values = sorted(values)
    if not values:
        return None
    rank = max(0, min(len(values) - 1, int(round(p / 100 * len(values) + 0.5)) - 1))
    return values[rank]


def ms(ns_values):
    """Nanoseconds to milliseconds."""
    return [v / 1e6 for v in ns_values]


def fmt(value, digits=None):
    """A figure for the report, with fewer decimals the larger it is; "–" for None."""
    if value is None:
        return "–"
    if digits is None:
        digits = 3 if value < 1 else 2 if value < 10 else 1 if value < 1000 else 0
    return f"{value:,.{digits}f}"
