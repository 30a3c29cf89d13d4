#!/usr/bin/env bash
# The benchmark, in one command: builds what it needs, then runs bench/harness.py (the package
# bench/harness/), which starts and stops the latency file system itself and runs every function
# instance at Lambda's CPU share for its memory size (cgroup v1 CPU quota; needs root). See
# bench/README.md.
#
#   bench/run.sh                  full run (10-20 minutes on 2 cores once built: 8.3 min on the old store, with 5 samples per page variant then; 9 now)
#   bench/run.sh --quick          small counts, a smoke test of the whole pipeline (about 70 s)
#   bench/run.sh --sizes 10,1k,10k --skip-designs    any harness option
#   bench/run.sh --help           this script's environment and every option (builds nothing)
#   BENCH_BUILD_ZIPS=no bench/run.sh   do not build the arm64 bootstrap.zip files if missing
#                                      (--quick never builds them)
#
# Results: bench/results/report.md (tables), results.json (every figure), latency.png (the Lambda
# model's plot: a line per memory size), latency-designs.png (the in-process design comparison).
set -euo pipefail
bench=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$bench")

# --help (or -h): what this script does, then the harness's options. Builds nothing, needs no root.
for arg in "$@"; do
  case "$arg" in
    -h|--help)
      cat <<'EOF'
bench/run.sh [OPTION...]: the benchmark, in one command (see bench/README.md).

It builds, in order: the bench (efs-bench: cargo build --release in bench/), the latency file
system and the function binaries in the root workspace (cargo build --release -p efs-model
-p get-messages -p post-message -p delete-messages: target/release/latfs and the functions),
the arm64 bootstrap.zip files if missing (scripts/build-artifacts or cargo lambda; never with
--quick), and a venv with matplotlib for the plots (bench/.venv). Then it runs the harness,
bench/harness.py, with every OPTION. The harness needs root for Lambda's CPU share (cgroup v1)
and for the latency file system (FUSE); without them it says so and measures what it can.

Environment:
  BENCH_BUILD_ZIPS=no   do not build missing bootstrap.zip files (zip sizes then read "not built")
  BENCH_WORK=DIR        default of --work, the scratch directory (/tmp/efs-bench)

Results: bench/results/ (bench/results/tmp/quick/ with --quick): report.md, results.json,
latency.png, latency-designs.png.

The harness's options (bench/harness.py --help), which run.sh passes on:

EOF
      exec python3 "$bench/harness.py" --help
      ;;
  esac
done

echo "== building the bench (efs-bench: bench/, its own workspace and target dir)" >&2
(cd "$bench" && cargo build --release --quiet)

echo "== building latfs (efs-model) and the function binaries (x86_64 release: what the Lambda model runs)" >&2
(cd "$root" && cargo build --release --quiet -p efs-model -p get-messages -p post-message -p delete-messages)

missing_zip=no
for f in get-messages post-message delete-messages; do
  [ -f "$root/target/lambda/$f/bootstrap.zip" ] || missing_zip=yes
done
build_zips=${BENCH_BUILD_ZIPS:-yes}
for arg in "$@"; do
  [ "$arg" = --quick ] && build_zips=no
done
if [ "$missing_zip" = yes ] && [ "$build_zips" != no ]; then
  if [ -x "$root/scripts/build-artifacts" ]; then
    echo "== building the arm64 bootstrap.zip files (scripts/build-artifacts)" >&2
    "$root/scripts/build-artifacts" >&2 || echo "scripts/build-artifacts failed: zip sizes will read 'not built'" >&2
  elif [ -x "$root/.venv/bin/cargo-lambda" ]; then
    echo "== building the arm64 bootstrap.zip files (cargo lambda build)" >&2
    (cd "$root" && PATH="$root/.venv/bin:$PATH" cargo lambda build --release --arm64 --output-format zip) >&2 \
      || echo "cargo lambda build failed: zip sizes will read 'not built'" >&2
  else
    echo "== no cargo-lambda: zip sizes will read 'not built'" >&2
  fi
fi

# The plot needs matplotlib: a venv of the bench's own, so the project's .venv stays as pinned.
python=python3
if [ ! -x "$bench/.venv/bin/python" ]; then
  python3 -m venv "$bench/.venv" >&2 || true
fi
if [ -x "$bench/.venv/bin/python" ]; then
  python="$bench/.venv/bin/python"
  "$python" -c 'import matplotlib' 2>/dev/null \
    || "$bench/.venv/bin/pip" install --quiet --disable-pip-version-check 'matplotlib>=3.8,<4' >&2 \
    || echo "could not install matplotlib: the run goes on without the plot" >&2
fi

echo "== running the benchmark" >&2
exec "$python" "$bench/harness.py" "$@"
