#!/usr/bin/env bash
# Creates or refreshes a Python virtualenv with pinned packages:
#   scripts/python-env.sh            Streamlit: <repo>/.venv from examples/requirements.txt
#   scripts/python-env.sh shiny      Shiny: <repo>/.venv-shiny from examples/shiny/requirements.txt
#   scripts/python-env.sh panel      Panel and Bokeh: <repo>/.venv-panel from examples/panel/requirements.txt
#   scripts/python-env.sh gradio     Gradio: <repo>/.venv-gradio from examples/gradio/requirements.txt
#
# Idempotent: a stamp file inside the venv records the hash of the
# requirements it was built from, so a second run with unchanged requirements
# only checks that the interpreter still works and prints nothing.
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"

die() {
    echo "python-env.sh: error: $*" >&2
    exit 1
}

kind="${1:-streamlit}"
case "$kind" in
    streamlit)
        venv="$repo_root/.venv"
        requirements="$repo_root/examples/requirements.txt"
        module=streamlit
        imports="streamlit, numpy"
        ;;
    shiny | panel | gradio)
        venv="$repo_root/.venv-$kind"
        requirements="$repo_root/examples/$kind/requirements.txt"
        module="$kind"
        imports="$kind"
        ;;
    *) die "unknown kind '$kind' (streamlit, shiny, panel or gradio)" ;;
esac
stamp="$venv/.requirements.sha256"

[[ -f "$requirements" ]] || die "missing $requirements"

want_hash="$(sha256sum "$requirements" | cut -d' ' -f1)"

# Fast path: the venv exists, its interpreter runs, and it was built from
# exactly these requirements.
if [[ -x "$venv/bin/python" && -f "$stamp" ]] \
    && [[ "$(cat "$stamp")" == "$want_hash" ]] \
    && "$venv/bin/python" -c '' 2>/dev/null; then
    exit 0
fi

command -v "$python" >/dev/null 2>&1 \
    || die "'$python' not found; install Python 3.11+ or set PYTHON=/path/to/python3"

# A venv whose interpreter no longer runs (for example after the base Python
# was upgraded or removed) cannot be repaired in place; start over.
if [[ -d "$venv" ]] && ! "$venv/bin/python" -c '' 2>/dev/null; then
    echo "python-env.sh: recreating broken virtualenv at $venv" >&2
    rm -rf "$venv"
fi

if [[ ! -d "$venv" ]]; then
    echo "python-env.sh: creating virtualenv at $venv" >&2
    "$python" -m venv "$venv" || die "could not create a virtualenv with '$python -m venv' (on Debian: apt-get install python3-venv)"
fi

echo "python-env.sh: installing $(basename "$requirements") into $venv" >&2
# Remove the stamp first so an interrupted install is retried next time.
rm -f "$stamp"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" \
    || die "could not install $requirements into $venv"
"$venv/bin/python" -c "import $imports" \
    || die "packages installed but 'import $imports' fails in $venv"

echo "$want_hash" >"$stamp"
echo "python-env.sh: ready ($("$venv/bin/python" -c "import $module; print('$module', $module.__version__)"))" >&2
