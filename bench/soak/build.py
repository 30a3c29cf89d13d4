"""Builds the release binaries the soak and the visibility measurement run (the three functions
and latfs) from one commit exactly, away from the working tree, where other builds may leave
target/release at any state:

    python3 -m soak.build [COMMIT]      (from bench/; COMMIT defaults to HEAD)

exports the commit (`git archive`) to /tmp/efs-soak-build/<sha>/src, builds it with a target
directory of its own (/tmp/efs-soak-build/target, seeded once from the working tree's
target/release so that the dependencies are not compiled again), and puts the binaries and a
COMMIT file in /tmp/efs-soak-build/<sha>/bin, which it prints: pass it as --bin-dir.
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import BENCH

ROOT = BENCH.parent
BUILD = Path(os.environ.get("EFS_SOAK_BUILD", "/tmp/efs-soak-build"))
BINARIES = ["get-messages", "post-message", "delete-messages", "latfs"]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 -m soak.build",
        description="Builds the release binaries of one commit (get-messages, post-message, "
                    "delete-messages, latfs) away from the working tree and prints the "
                    "directory that holds them: pass it as --bin-dir to soak.py, visibility.py "
                    f"(and --binaries to the other benchmarks). Builds go to {BUILD}/<sha> "
                    "(EFS_SOAK_BUILD overrides the place); a commit already built is not "
                    "built again.")
    parser.add_argument("commit", nargs="?", default="HEAD",
                        help="the commit to build (any git revision; default: HEAD)")
    commit = parser.parse_args(argv).commit
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet",
                          f"{commit}^{{commit}}"], capture_output=True, text=True)
    if rev.returncode != 0:
        parser.error(f"not a commit: {commit}")
    sha = rev.stdout.strip()
    home = BUILD / sha
    src, bin_dir = home / "src", home / "bin"
    if all((bin_dir / b).exists() for b in BINARIES):
        print(bin_dir)
        return 0
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", sha], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(src)], stdin=archive.stdout, check=True)
    archive.wait()
    target = BUILD / "target"
    if not (target / "release").exists() and (ROOT / "target" / "release").exists():
        print(f"seeding {target} from the working tree's target/release", file=sys.stderr)
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", str(ROOT / "target" / "release"), str(target)], check=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "efs-model", "-p",
                    "get-messages", "-p", "post-message", "-p", "delete-messages"],
                   cwd=src, env={**os.environ, "CARGO_TARGET_DIR": str(target)}, check=True)
    bin_dir.mkdir(parents=True, exist_ok=True)
    for b in BINARIES:
        shutil.copy2(target / "release" / b, bin_dir / b)
    subject = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%s", sha],
                             capture_output=True, text=True).stdout.strip()
    (bin_dir / "COMMIT").write_text(f"{sha}\n{subject}\n")
    print(bin_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
