#!/usr/bin/env python3
"""The multi-client soak (bench/soak/, `--help`): every function instance on its own NFS client
of one store, faults injected, a mixed workload, then recovery, then an audit. See
bench/README.md, "The soak and visibility lag"."""

import sys

from soak.cli import main

if __name__ == "__main__":
    sys.exit(main())
