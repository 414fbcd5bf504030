#!/usr/bin/env bash
# Runs every benchmark on loopback and writes the report:
#   bench/results/latest.json, docs/benchmarks.md and docs/benchmarks/*.png.
# Builds idlegate and the load tools in release mode, sets up the Python environment (Streamlit,
# matplotlib) and, as root, installs nginx and wrk from Debian if they are missing. Extra
# arguments go to bench/run.py (see `bench/run.py --help`, e.g. `--only http websocket`).
# The soak runs only when asked for, alone: `bench/run.sh --only soak [--minutes 30
# --tabs-at-once 4000 --total 100000]`. So does the shared store's (about 3 minutes), which
# needs redis-server (installed from Debian as root): `bench/run.sh --only store`.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# The scenarios this run takes: those after --only, or bench/run.py's default set.
scenarios=" http websocket scale memory "
picked=""
in_only=false
for arg in "$@"; do
    case "$arg" in
        --only) in_only=true ;;
        --only=*) picked+=" ${arg#--only=}" ; in_only=false ;;
        -*) in_only=false ;;
        *) if $in_only; then picked+=" $arg"; fi ;;
    esac
done
[[ -n "$picked" ]] && scenarios="$picked "
runs() { [[ "$scenarios" == *" $1 "* ]]; }

# Debian packages a scenario needs: installed as root, or named for someone to install.
missing=()
if runs http || runs websocket; then
    command -v nginx >/dev/null || missing+=(nginx)
    command -v wrk >/dev/null || missing+=(wrk)
fi
if runs store; then
    command -v redis-server >/dev/null || missing+=(redis-server)
fi
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "bench/run.sh: ${missing[*]} missing; install: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

scripts/python-env.sh
.venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
cargo build --release --quiet -p idlegate -p benchkit

.venv/bin/python bench/run.py --out bench/results/latest.json "$@"
.venv/bin/python bench/report.py bench/results/latest.json \
    --out-md docs/benchmarks.md --plots docs/benchmarks/
