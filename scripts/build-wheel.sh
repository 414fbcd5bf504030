#!/usr/bin/env bash
# Builds the idlegate wheel: a Python package that carries the native `idlegate`
# executable, its man pages and shell completions (no Python bindings). The
# wheel lands in target/wheels; `auditwheel show` then prints which manylinux
# platforms it runs on. Extra arguments go to `maturin build`, for example
# `--target aarch64-unknown-linux-gnu` (see docs/install.md).
#
# The build tools (maturin, auditwheel) are pinned in packaging/requirements.txt
# and installed into target/packaging-venv; only Python 3 and Rust are needed.
#
# Environment:
#   PYTHON                 interpreter for the build venv (default: python3)
#   GIT_COMMIT             commit `idlegate --version` names (default: git's HEAD)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

venv=target/packaging-venv
requirements=packaging/requirements.txt
stamp="$venv/.requirements.sha256"
want_hash="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want_hash" ]]; then
    echo "build-wheel.sh: installing the build tools into $venv" >&2
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want_hash" >"$stamp"
fi

if [[ -z "${GIT_COMMIT:-}" ]]; then
    GIT_COMMIT="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
fi
export GIT_COMMIT

rm -f target/wheels/idlegate-*.whl
echo "build-wheel.sh: building the wheel (a release build; the first takes a few minutes)" >&2
"$venv/bin/maturin" build --release --locked --out target/wheels "$@"

for wheel in target/wheels/idlegate-*.whl; do
    "$venv/bin/auditwheel" show "$wheel"
    echo "build-wheel.sh: $wheel ($(du -k "$wheel" | cut -f1) KiB)" >&2
done
