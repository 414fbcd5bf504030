#!/usr/bin/env bash
# Runs idlegate's whole test suite, including the end-to-end tests against
# real Streamlit and headless Chromium, then builds the wheel and the container
# images and tries them (scripts/test-wheel.sh, scripts/test-image.sh). Works
# from any directory; extra arguments go to `cargo nextest run` (for example a
# test name filter) and skip the wheel and image tests.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# The Debian packages the tests run (scripts/install-system-deps.sh installs them all).
missing=()
for tool in chromium chromedriver redis-server prometheus promtool podman debootstrap node npm; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "test.sh: missing ${missing[*]}; install the tests' packages once as root:" >&2
        echo "    sudo $repo_root/scripts/install-system-deps.sh" >&2
        exit 1
    fi
    scripts/install-system-deps.sh
fi

scripts/python-env.sh
scripts/python-env.sh shiny
scripts/python-env.sh panel
scripts/python-env.sh gradio

# The OpenID provider the sign-in tests run: npm's oidc-provider, pinned in tests/idp.
if ! command -v npm >/dev/null 2>&1; then
    echo "test.sh: Node.js and npm are needed for the sign-in tests (an OpenID provider)" >&2
    exit 1
fi
if [[ ! -f tests/idp/node_modules/.package-lock.json \
      || tests/idp/package-lock.json -nt tests/idp/node_modules/.package-lock.json ]]; then
    npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "test.sh: cargo-nextest is not installed; run: cargo install --locked cargo-nextest" >&2
    exit 1
fi

# The admin API's checkers (tests/openapi.rs), in a virtualenv of their own: their pinned
# dependencies differ from Streamlit's.
api_venv=target/api-venv
if [[ ! -x "$api_venv/bin/schemathesis" || tests/api-requirements.txt -nt "$api_venv/.installed" ]]; then
    rm -rf "$api_venv"
    python3 -m venv "$api_venv"
    "$api_venv/bin/pip" install --quiet --disable-pip-version-check -r tests/api-requirements.txt
    touch "$api_venv/.installed"
fi

# The benchmark report generator has a smoke test of its own.
.venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
.venv/bin/python -m unittest --quiet bench/test_report.py

export TESTKIT_VENV="$repo_root/.venv"
status=0
cargo nextest run --workspace --no-fail-fast "$@" || status=$?

# The wheel and the container images, built and tried the way people install them. A test
# filter given above runs only the matching tests, without these.
if [[ $# -eq 0 ]]; then
    scripts/test-wheel.sh || status=1
    scripts/test-image.sh || status=1
fi
exit "$status"
