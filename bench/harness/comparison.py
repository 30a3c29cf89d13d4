"""Build against build on the NFS client model: what abpages.py, bigpage.py and history.py share.

Each set of binaries (``--binaries``/``--label``, then each ``--compare-binaries``) gets its own
latfs mount over one backing directory, so the builds are separate NFS clients of one server and
see the same host at the same moment. ``compared_builds`` checks the machine can do it, mounts,
records how busy the CPU was before and during the run, and always tears down and writes the
results file, also when the run fails half-way (a partial result says how far it got).
"""

import json
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lambdasim as L  # bench/lambdasim.py: bench/ is on sys.path (see __init__)

from .common import log
from .lambda_model import builds_of
from .latfs import MODEL_TEXT, LatFs
from .machine import BusySampler, cpu_busy


def add_arguments(parser, json_name):
    """The options every comparison takes: which binaries, which model, where the results go."""
    parser.add_argument("--binaries", default=None, help="the main build's target/release")
    parser.add_argument("--label", default="v3", help="the main build's label")
    parser.add_argument("--compare-binaries", action="append", metavar="LABEL=DIR",
                        help="another build to measure beside it (repeatable)")
    parser.add_argument("--latfs-model", choices=["nfs", "plain"], default="nfs")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent.parent / "results" / json_name)


@dataclass
class Comparison:
    """The builds of a run and their mounts: `mounts[label]`, all over `backing`."""
    builds: list
    mounts: dict
    backing: Path
    work: Path

    @property
    def labels(self):
        return [label for label, _ in self.builds]


@contextmanager
def compared_builds(args, prefix, result):
    """Mounts one latfs per build (exits with the reason when the machine cannot), adds the
    model, the builds and the CPU load before the run to `result`, and on the way out unmounts,
    removes the work directory and the instances' cgroups, and writes `result` to ``args.json``."""
    try:
        builds = builds_of(args)
    except ValueError as e:
        sys.exit(str(e))
    for why in (L.cgroups_unavailable(), LatFs.unavailable()):
        if why:
            sys.exit(why)
    L.remove_stale_groups()
    work = Path(tempfile.mkdtemp(prefix=prefix))
    mounts = {}
    busy = BusySampler()
    result.update(model=MODEL_TEXT[args.latfs_model],
                  builds={label: str(next(iter(b.values())).parent) for label, b in builds},
                  cpu_busy_before_pct=cpu_busy())
    busy.start()
    try:
        first = None
        for label, _ in builds:
            mount = LatFs(work, model=args.latfs_model, backing=first.backing if first else None,
                          name=f"latfs-{label}")
            mounts[label] = mount
            mount.start()
            first = first or mount
        yield Comparison(builds, mounts, first.backing, work)
    finally:
        busy.stop()
        for mount in mounts.values():
            mount.stop()
        L.remove_all_groups()
        shutil.rmtree(work, ignore_errors=True)
        result["cpu_busy_during"] = busy.summary()
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    log(f"written {args.json}")
