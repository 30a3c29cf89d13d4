"""A short run of scripts/load-test in the suite (the 60 s run is the documented command)."""

import os
import re
import subprocess

from conftest import REPO


def test_mixed_load_has_no_errors():
    duration = os.environ.get("LOAD_TEST_DURATION", "10")
    out = subprocess.run([str(REPO / "scripts/load-test")], cwd=REPO, capture_output=True,
                         text=True, timeout=900, env=dict(os.environ, DURATION=duration))
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    statuses = dict(re.findall(r"(\d{3})=(\d+)", out.stdout.split("statuses:")[1]))
    assert set(statuses) <= {"200", "201", "204"}, statuses
    assert int(statuses["201"]) > 0 and int(statuses["200"]) > 0 and int(statuses["204"]) > 0
