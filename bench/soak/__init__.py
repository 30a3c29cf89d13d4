"""The multi-client soak and the visibility measurement (``bench/soak.py``, ``bench/visibility.py``).

Both run the real release function binaries as Lambda instances (``bench/lambdasim.py``: a
Runtime API server per instance, cgroup CPU shares), every instance on its own client of one
store: its own mount of the EFS client model (``latfs --nfs-cache``, the default cache times of
nfs(5)) over one backing directory.

* ``cluster.py``: clients (latfs mounts) and nodes (function instances on them), the events, ids;
* ``bodies.py``: self-checking message bodies of varied sizes and content types;
* ``ledger.py``: everything the soak asked and was answered, and the checks, run over it;
* ``workload.py``: the soak's actors (posters, readers, followers, deleters, the schedule);
* ``report.py``: ``soak.md`` and ``soak.json``;
* ``cli.py``: the soak's options and ``main``.
"""

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))  # for lambdasim and harness
