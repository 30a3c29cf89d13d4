"""The deploy artifacts: each function's bootstrap.zip holds an aarch64 Linux executable, and the
get function's arm64 binary, run under qemu, answers a real request through the Lambda runtime
API of `cargo lambda watch --only-lambda-apis`."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, LocalApi, free_port, stop

FUNCTIONS = ["get-messages", "post-message", "delete-messages"]
EM_AARCH64 = 183
QEMU = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
ARM64_SYSROOT = Path("/usr/aarch64-linux-gnu")


@pytest.fixture(scope="module")
def zips() -> dict[str, Path]:
    """Builds (or finds up to date) every function's bootstrap.zip."""
    subprocess.run([str(REPO / "scripts/build-artifacts")], check=True, cwd=REPO)
    return {name: REPO / "target/lambda" / name / "bootstrap.zip" for name in FUNCTIONS}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_zip_holds_an_aarch64_executable_named_bootstrap(zips, function, capsys):
    path = zips[function]
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["bootstrap"]
        info = archive.getinfo("bootstrap")
        mode = info.external_attr >> 16
        assert mode & 0o111, f"bootstrap is not executable: {oct(mode)}"
        header = archive.read("bootstrap")[:64]
    assert header[:4] == b"\x7fELF", "an ELF file"
    assert header[4] == 2, "64-bit"
    assert header[5] == 1, "little-endian"
    (machine,) = struct.unpack_from("<H", header, 18)
    assert machine == EM_AARCH64, f"e_machine {machine}, not aarch64"
    with capsys.disabled():
        print(f"\n{function}/bootstrap.zip: {path.stat().st_size} bytes "
              f"(bootstrap {info.file_size} bytes uncompressed)")


def write_message(directory: Path, ident: str, content_type: str, body: bytes) -> None:
    """Writes a message file the way the store does (shared/src/format.rs), in the directory of
    its time (shared/src/store/layout.rs: the id's leading time digits, split 6/2/2)."""
    time_hex = ident[:8] + ident[9:13]
    leaf = directory / time_hex[:6] / time_hex[6:8] / time_hex[8:10]
    leaf.mkdir(parents=True, exist_ok=True)
    ct = content_type.encode()
    (leaf / ident).write_bytes(b"EFSM\x01" + struct.pack(">H", len(ct)) + ct + body)


def test_arm64_get_function_answers_under_qemu(zips, tmp_path):
    assert QEMU, "qemu-user-static is installed by scripts/setup system"
    assert (ARM64_SYSROOT / "lib/ld-linux-aarch64.so.1").exists(), \
        "the arm64 C library (libc6-arm64-cross) is installed by scripts/setup system"
    with zipfile.ZipFile(zips["get-messages"]) as archive:
        archive.extract("bootstrap", tmp_path)
    bootstrap = tmp_path / "bootstrap"
    bootstrap.chmod(0o755)
    efs = tmp_path / "efs"
    efs.mkdir()
    ident = "01936b2e-1e2d-7c3a-8b4c-5d6e7f8a9b0c"
    write_message(efs, ident, "text/plain", b"served by arm64")

    port = free_port()
    log = tmp_path / "watch.log"
    env = dict(os.environ, PATH=f"{REPO / '.venv/bin'}:{os.environ['PATH']}")
    with open(log, "wb") as out:
        watch = subprocess.Popen(
            ["cargo", "lambda", "watch", "--only-lambda-apis", "--manifest-path",
             str(REPO / "Cargo.toml"), "--invoke-address", "127.0.0.1",
             "--invoke-port", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    function = None
    try:
        api = LocalApi(f"http://127.0.0.1:{port}", efs, log)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(log.read_text())
                time.sleep(0.2)
        function_env = {
            "PATH": "/usr/bin:/bin",
            "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{port}/.rt/get-messages",
            "AWS_LAMBDA_FUNCTION_NAME": "get-messages",
            "AWS_LAMBDA_FUNCTION_VERSION": "1",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "MESSAGES_DIR": str(efs),
            # The message above is from 2024: keep everything, whatever the retention default.
            "MESSAGE_RETENTION_DAYS": "0",
        }
        function = subprocess.Popen([QEMU, "-L", str(ARM64_SYSROOT), str(bootstrap)],
                                    env=function_env, stdout=open(tmp_path / "fn.log", "wb"),
                                    stderr=subprocess.STDOUT, start_new_session=True)
        reply = api.request("GET", f"/messages/{ident}", timeout=60)
        assert reply.status == 200, (reply.body, (tmp_path / "fn.log").read_text())
        assert reply.body == b"served by arm64"
        assert reply.headers["content-type"] == "text/plain"
        listing = api.request("GET", "/messages", timeout=60).json()
        assert [m["id"] for m in listing["messages"]] == [ident]
        assert function.poll() is None, "the function keeps serving after answering"
    finally:
        if function is not None:
            stop(function)
        stop(watch)
