#!/usr/bin/env bash
# Runs every benchmark on loopback and writes the report:
#   bench/results/latest.json, docs/benchmarks.md and docs/benchmarks/*.png.
# Builds idlegate and the load tools in release mode, sets up the Python environment (Streamlit,
# matplotlib) and, as root, installs nginx and wrk from Debian if they are missing. Extra
# arguments go to bench/run.py (see `bench/run.py --help`, e.g. `--only http websocket`).
# The soak runs only when asked for, alone: `bench/run.sh --only soak [--minutes 30
# --tabs-at-once 4000 --total 100000]`.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "bench/run.sh: nginx and wrk are missing; install them: sudo apt-get install nginx wrk" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >/dev/null
fi

scripts/python-env.sh
.venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
cargo build --release --quiet -p idlegate -p benchkit

.venv/bin/python bench/run.py --out bench/results/latest.json "$@"
.venv/bin/python bench/report.py bench/results/latest.json \
    --out-md docs/benchmarks.md --plots docs/benchmarks/
