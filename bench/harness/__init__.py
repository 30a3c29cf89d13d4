"""The benchmark harness: the Lambda model, the in-process design comparison, the functions.

Run through ``bench/run.sh`` (which builds what this needs, then runs ``bench/harness.py``, a
thin entry point into ``cli.main``); see ``bench/README.md`` and the Method section of
``BENCHMARKS.md``.

What it does, in order:

1. Machine facts (nproc, CPU model, kernel, memory, file system of the work directory) and how
   busy the CPUs are (before the run, and every second during it).
2. The Lambda model (``bench/lambdasim.py`` for the parts): mounts the latency file system
   (``latfs`` of ``efs-model``, FUSE; by default its NFS client model with the default cache
   times, ``--latfs-model``; one mount per set of binaries, ``--compare-binaries``, each a
   client of the same backing directory); for each stored count (10 to 1,000,000, ``--sizes``) seeds the store
   straight into latfs's backing directory, ids on a timeline (and a burst dataset); runs the
   release binaries (``target/release/<function>``) one process per instance through a Runtime
   API server of its own, each in a cgroup with Lambda's CPU share for its memory size (128 and
   1,769 MB; 256, 512 and 1,024 too at the power-tuning count); times pages of 100 (first,
   middle, last, asc and desc), GET by id, POST, DELETE by id, DELETE all and init; CPU time per
   request, peak RSS, threads; the file system's floor for a page at each share (one thread
   reading the page's files in turn). The same pages again on local disk, for their CPU cost.
3. The in-process comparison (``--skip-designs`` to leave out): the original pattern in Python,
   the naive per-file design and ours, through one line protocol, on local disk and on latfs,
   with latfs's request counts; probes of how the kernel overlaps requests on latfs.
4. Per function (``--skip-functions``): ``bootstrap.zip`` size, start to ready and peak RSS with
   256 KiB messages (full CPU).
5. Writes ``results/results.json``, ``results/report.md``, ``results/latency.png`` (the Lambda
   model) and ``results/latency-designs.png`` (the comparison).

The modules, in the order a run uses them:

* ``cli``: the options and ``main`` (the parts above, in order; clean-up on errors and signals).
* ``common``: where the binaries are (``EFS_BENCH``, ``LATFS``, ``FUNCTION_BIN``), shared
  constants, ``log``, ``pct``, ``fmt``.
* ``machine``: machine facts, the code measured, the CPU busy sampler.
* ``latfs``: mounting, unmounting and reading the request counts of the latency file system.
* ``stores``: seeding and emptying stores (the comparison's, and the Lambda model's datasets).
* ``lambda_cells``: a memory size's function instances and their figures (``Cell``).
* ``lambda_model``: the Lambda model, dataset by dataset and memory size by memory size.
* ``designs``: the in-process design comparison and its line protocol.
* ``functions``: zip sizes, start to ready and peak RSS per function.
* ``lambda_report``, ``report``: the tables of report.md.
* ``plots``: latency.png and latency-designs.png.

The modules import ``lambdasim`` as a top-level module: ``bench/`` must be on ``sys.path``, as it
is for ``bench/harness.py`` and ``bench/reclaim.py``.
"""
