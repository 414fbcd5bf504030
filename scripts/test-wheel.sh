#!/usr/bin/env bash
# Builds the wheel (scripts/build-wheel.sh), installs it with its `streamlit`
# extra into a brand-new venv, and runs the wheel's end-to-end tests
# (crates/idlegate/tests/wheel.rs) with that venv's `idlegate` command:
# `idlegate --idle-timeout 5s -- streamlit run examples/app.py` ends an idle tab.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

scripts/build-wheel.sh
wheels=(target/wheels/idlegate-*.whl)
[[ ${#wheels[@]} -eq 1 ]] || { echo "test-wheel.sh: expected one wheel, found: ${wheels[*]}" >&2; exit 1; }

# pip takes it on any glibc Linux that new: auditwheel agrees with the manylinux tag.
audit="$(target/packaging-venv/bin/auditwheel show "${wheels[0]}")"
grep -q 'is consistent with' <<<"$audit" && grep -Eq '"manylinux_2_[0-9]+_x86_64"' <<<"$audit" \
    || { echo "test-wheel.sh: not a manylinux wheel: $audit" >&2; exit 1; }
[[ "${wheels[0]}" =~ -py3-none-manylinux_2_[0-9]+_x86_64\.whl$ ]] \
    || { echo "test-wheel.sh: unexpected wheel name ${wheels[0]}" >&2; exit 1; }

venv="$repo_root/target/wheel-test-venv"
rm -rf "$venv"
"${PYTHON:-python3}" -m venv "$venv"
echo "test-wheel.sh: installing ${wheels[0]}[streamlit] into a new venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${wheels[0]}[streamlit]"
"$venv/bin/idlegate" --version

TESTKIT_WHEEL_VENV="$venv" cargo nextest run -p idlegate --test wheel --run-ignored only
