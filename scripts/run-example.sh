#!/usr/bin/env bash
# Runs the example Streamlit app behind idlegate on http://127.0.0.1:8080/.
#
# Idle sessions end after IDLE_TIMEOUT (default 5m); any further arguments
# are passed to idlegate before the `--` that separates its options from the
# Streamlit command, e.g.:
#   IDLE_TIMEOUT=60s scripts/run-example.sh
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

scripts/python-env.sh
cargo build --release --quiet -p idlegate

echo "idlegate: open http://127.0.0.1:8080/ (sessions end after ${IDLE_TIMEOUT:-5m} without activity; Ctrl-C to stop)" >&2
exec target/release/idlegate \
    --listen 127.0.0.1:8080 \
    --idle-timeout "${IDLE_TIMEOUT:-5m}" \
    "$@" \
    -- .venv/bin/streamlit run examples/app.py
