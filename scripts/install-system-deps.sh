#!/usr/bin/env bash
# Installs the Debian packages idlegate's tests need, if any are missing:
#   chromium, chromium-driver  real headless browser for end-to-end tests
#   redis-server               shared session store for multi-instance tests
#   prometheus                 a real Prometheus scraping the admin listener, and promtool
#                              checking the metrics (tests/prometheus.rs)
#   nodejs, npm                the OpenID provider of the sign-in tests (only when no
#                              Node.js is installed at all; a newer one is kept)
#   podman, runc, debootstrap  the container images (scripts/build-image.sh) and their
#                              test (scripts/test-image.sh); runc is podman's runtime
#
# Does nothing (quickly, silently) when everything is present. Installing
# needs root, as in CI; run it with sudo otherwise.
set -euo pipefail

packages=(chromium chromium-driver redis-server prometheus podman runc debootstrap)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    packages+=(nodejs npm)
fi

is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for pkg in "${packages[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ "$(id -u)" -ne 0 ]]; then
    echo "install-system-deps.sh: missing Debian packages: ${missing[*]}" >&2
    echo "install-system-deps.sh: installing them needs root; run: sudo $0" >&2
    exit 1
fi

command -v apt-get >/dev/null 2>&1 \
    || { echo "install-system-deps.sh: apt-get not found; install ${missing[*]} by hand" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
echo "install-system-deps.sh: installing ${missing[*]}" >&2
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-system-deps.sh: done" >&2
