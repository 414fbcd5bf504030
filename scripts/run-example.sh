#!/usr/bin/env bash
# Runs an example app behind idlegate on http://127.0.0.1:8080/: the Streamlit
# one (examples/app.py), or with `shiny`, `panel` or `gradio` first the Shiny one
# (examples/shiny/app.py), the Panel one (examples/panel/app.py, at /app) or the
# Gradio one (examples/gradio/app.py).
#
# Idle sessions end after IDLE_TIMEOUT (default 5m); any further arguments
# are passed to idlegate before the `--` that separates its options from the
# app's command, e.g.:
#   IDLE_TIMEOUT=60s scripts/run-example.sh
#   scripts/run-example.sh shiny --log-level debug
#   scripts/run-example.sh panel
#   scripts/run-example.sh gradio
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

kind=streamlit
if [[ "${1:-}" =~ ^(streamlit|shiny|panel|gradio)$ ]]; then
    kind="$1"
    shift
fi
case "$kind" in
    streamlit) app=(.venv/bin/streamlit run examples/app.py) ;;
    shiny) app=(.venv-shiny/bin/shiny run examples/shiny/app.py) ;;
    panel) app=(.venv-panel/bin/panel serve examples/panel/app.py) ;;
    # `python app.py` could be any framework: the kind is named.
    gradio) app=(.venv-gradio/bin/python examples/gradio/app.py) ;;
esac
kind_option=()
[[ "$kind" == gradio ]] && kind_option=(--app-kind gradio)

scripts/python-env.sh "$kind"
binary="${CARGO_TARGET_DIR:-target}/release/idlegate"
if [[ ! -x "$binary" ]]; then
    echo "run-example.sh: building idlegate (release; the first build takes 5 to 15 minutes on two cores)" >&2
fi
# Cargo shows its progress: a bar on a terminal, a line per crate elsewhere.
cargo build --release -p idlegate

# idlegate prints the address to open once the app is ready.
exec "$binary" \
    --listen 127.0.0.1:8080 \
    --idle-timeout "${IDLE_TIMEOUT:-5m}" \
    "${kind_option[@]}" \
    "$@" \
    -- "${app[@]}"
