#!/usr/bin/env python3
"""The benchmark harness's entry point: ``bench/run.sh`` runs this (``--help`` for the options).

The harness itself is the package ``bench/harness/`` (its ``__init__`` says what each module
does). Python finds that package, not this file, for ``import harness``: this file is only ever
run as a script.
"""

from harness.cli import main

if __name__ == "__main__":
    main()
