"""docs/openapi.yaml is the contract: its routes are exactly the router table, and the running API
conforms to it under schemathesis' generated (and deliberately invalid) requests."""

from __future__ import annotations

import os
import subprocess
import tomllib

import pytest
import yaml

from conftest import REPO, start_local_api, stop
from emulator_shim import EmulatorShim

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def openapi_routes() -> set[tuple[str, str]]:
    spec = yaml.safe_load((REPO / "docs/openapi.yaml").read_text())
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def router_routes() -> set[tuple[str, str]]:
    with open(REPO / "Cargo.toml", "rb") as f:
        router = tomllib.load(f)["workspace"]["metadata"]["lambda"]["watch"]["router"]
    return {(route["method"], path) for path, routes in router.items() for route in routes}


def test_openapi_routes_equal_the_router_table():
    assert openapi_routes() == router_routes()
    assert len(router_routes()) == 8


@pytest.fixture(scope="module")
def single_instance_api(tmp_path_factory):
    """The API with one instance per function: the schema is this test's subject, concurrency
    the end-to-end tests'. (cargo lambda watch's own rare 500s, see emulator_shim.py, were seen
    more often with several instances.)"""
    proc, api = start_local_api(tmp_path_factory.mktemp("contract-api"), concurrency=1)
    try:
        yield api
    finally:
        stop(proc)


def test_schemathesis_finds_no_contract_violation(single_instance_api, tmp_path):
    """Bounded for CI (CONTRACT_MAX_EXAMPLES, CONTRACT_MAX_TIME make it longer)."""
    max_examples = os.environ.get("CONTRACT_MAX_EXAMPLES", "25")
    max_time = os.environ.get("CONTRACT_MAX_TIME", "90")
    with EmulatorShim(single_instance_api.url) as shim:
        result = run_schemathesis(shim.url, max_examples, max_time, tmp_path)
    print(result.stdout[-6000:])
    print(shim.report())
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-4000:]
    # Retried once at most each, and no more often than the emulator's own rare failure explains
    # (see emulator_shim.py; tests/contract/test_emulator_shim.py shows what it does not hide).
    shim.assert_retry_rate()


def run_schemathesis(url, max_examples, max_time, cwd):
    return subprocess.run(
        [
            str(REPO / ".venv/bin/schemathesis"), "run", str(REPO / "docs/openapi.yaml"),
            "--url", url,
            "--phases", "examples,coverage,fuzzing,stateful",
            "--checks", "all",
            # Methods outside the route table are answered by the router (API Gateway's 404, or
            # cargo lambda watch's own 404), never by a function: nothing of ours to check.
            "--exclude-checks", "unsupported_method,allow_header_conformance",
            "--max-examples", max_examples,
            "--max-time", max_time,
            "--seed", "20261126",
            "--workers", "1",
            "--request-timeout", "30",
            "--no-color",
        ],
        cwd=cwd, capture_output=True, text=True,
    )
