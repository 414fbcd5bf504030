#!/usr/bin/env bash
# Tests idlegate's container images and Kubernetes manifests, from any directory, as root
# (debootstrap and podman need it):
#
#   1. checks deploy/kubernetes/ (scripts/check-manifests.sh): renders the replicas layout
#      with `kubectl kustomize` and validates it and the other manifests against
#      Kubernetes' API schemas (kubernetes-validate, strict, Kubernetes 1.29 and 1.37), with
#      no network;
#   2. builds both images (scripts/build-image.sh), checks their user, files and binary, and
#      builds the example app image on top of the app base image (examples/Containerfile);
#   3. runs the example app image, and the sidecar image in front of Streamlit started here
#      from .venv; checks that every process in them runs as user 10001, and runs
#      crates/idlegate/tests/image.rs against both: the page is served with idlegate's page
#      script, and a tab nobody uses ends with reason idle;
#   4. stops both containers and checks that idlegate stopped cleanly (exit code 0).
#
# Removes the containers it started and the example image on exit; keeps idlegate's images
# and the cached Debian base and wheels under target/image/, so a second run is faster.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

die() {
    echo "test-image.sh: error: $*" >&2
    exit 1
}
say() {
    echo "test-image.sh: $*" >&2
}

[[ "$(id -u)" -eq 0 ]] || die "needs root (debootstrap and podman); run: sudo $0"

scripts/install-system-deps.sh
scripts/python-env.sh
cargo nextest --version >/dev/null 2>&1 \
    || die "cargo-nextest is not installed; run: cargo install --locked cargo-nextest"

image_dir=target/image
mkdir -p "$image_dir"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' crates/idlegate/Cargo.toml | head -n 1)"
app_image="localhost/idlegate:$version"
sidecar_image="localhost/idlegate-sidecar:$version"
example_image=localhost/idlegate-example:test

# podman as installed by scripts/install-system-deps.sh: runc as the runtime; the host's
# network, so the sidecar reaches an app on this machine's loopback as it would its pod's;
# and modest fixed limits, since podman's defaults (nofile 1048576) cannot be set where it
# lacks CAP_SYS_RESOURCE (inside another container, as CI may be).
limits=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
run_flags=(--runtime runc --network=host "${limits[@]}")

containers=()
streamlit_pid=
cleanup() {
    local status=$?
    local name
    for name in "${containers[@]}"; do
        if [[ $status -ne 0 ]]; then
            echo "--- last lines of $name's log" >&2
            podman logs --tail 30 "$name" >&2 2>&1 || true
        fi
        podman rm --force --time 0 "$name" >/dev/null 2>&1 || true
    done
    if [[ -n "$streamlit_pid" ]]; then
        kill "$streamlit_pid" 2>/dev/null || true
        wait "$streamlit_pid" 2>/dev/null || true
    fi
    podman image rm --force "$example_image" >/dev/null 2>&1 || true
    exit "$status"
}
trap cleanup EXIT

# Succeeds when URL answers 2xx.
http_ok() {
    .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)' \
        "$1" 2>/dev/null
}

# wait_ready URL CONTAINER: until idlegate in CONTAINER is ready, for up to 90 s.
wait_ready() {
    local url="$1" name="$2" i
    for ((i = 0; i < 180; i++)); do
        http_ok "$url/_idlegate/readyz" && return 0
        [[ "$(podman inspect --format '{{.State.Running}}' "$name")" == true ]] \
            || die "$name stopped before it was ready"
        sleep 0.5
    done
    die "$name was not ready within 90 s"
}

# Every process in the container runs as user 10001 (as the host sees them).
check_user() {
    local name="$1" users
    users="$(podman top "$name" huser | tail -n +2 | sort -u | tr -d ' ' | paste -sd ' ')"
    [[ "$users" == 10001 ]] || die "$name runs as user(s) '$users', not 10001"
}

# Stops the container as Kubernetes does (SIGTERM) and checks idlegate exited with 0.
check_clean_stop() {
    local name="$1" code
    podman stop --time 20 "$name" >/dev/null
    code="$(podman inspect --format '{{.State.ExitCode}}' "$name")"
    [[ "$code" == 0 ]] || die "$name exited with $code after SIGTERM"
}

# --- 1. The Kubernetes manifests ----------------------------------------------------------

scripts/check-manifests.sh

# --- 2. The images ------------------------------------------------------------------------

PODMAN_RUNTIME=runc scripts/build-image.sh

for image in "$app_image" "$sidecar_image"; do
    user="$(podman image inspect --format '{{.Config.User}}' "$image")"
    [[ "$user" == 10001:10001 ]] || die "$image runs as '$user', not 10001:10001"
done
podman run --rm "${run_flags[@]}" --entrypoint ls "$app_image" \
    /usr/local/share/man/man1/idlegate.1 \
    /usr/local/share/bash-completion/completions/idlegate \
    /usr/local/share/zsh/site-functions/_idlegate \
    /usr/local/share/fish/vendor_completions.d/idlegate.fish >/dev/null \
    || die "$app_image lacks the man page or a shell completion"
sidecar_version="$(podman run --rm "${run_flags[@]}" "$sidecar_image" --version)"
commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
[[ "$sidecar_version" == "idlegate $version (commit $commit)" ]] \
    || die "$sidecar_image --version printed '$sidecar_version'"

# The example's requirements, downloaded here (where pip is set up for this machine's
# network) and installed in the build from that folder, with no network.
host_python="$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
image_python="$(podman run --rm "${run_flags[@]}" --entrypoint python3 "$app_image" \
    -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[[ "$host_python" == "$image_python" ]] \
    || die "the wheels are downloaded with .venv's Python $host_python, but the image has $image_python"
wheels="$image_dir/wheels-$(sha256sum examples/requirements.txt | cut -c1-12)"
if [[ ! -d "$wheels" ]]; then
    rm -rf "$image_dir"/wheels-*
    .venv/bin/pip download --quiet --disable-pip-version-check \
        -r examples/requirements.txt -d "$wheels.tmp"
    mv "$wheels.tmp" "$wheels"
fi
printf '%s\n' '[global]' 'no-index = true' 'find-links = /wheels' >"$image_dir/pip.conf"
say "building $example_image from examples/Containerfile"
podman build --runtime runc "${limits[@]}" --layers=false \
    --volume "$repo_root/$wheels:/wheels:ro" \
    --volume "$repo_root/$image_dir/pip.conf:/etc/pip.conf:ro" \
    --build-arg "IDLEGATE_IMAGE=$app_image" \
    --tag "$example_image" examples >"$image_dir/build-example.log" 2>&1 \
    || { tail -n 30 "$image_dir/build-example.log" >&2; die "building $example_image failed"; }

# --- 3. The images at work ----------------------------------------------------------------

read -r app_port streamlit_port sidecar_port < <(.venv/bin/python -c '
import socket
sockets = [socket.socket() for _ in range(3)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))')

app_name="idlegate-test-app-$$"
say "running $example_image (launcher mode) on 127.0.0.1:$app_port"
containers+=("$app_name")
podman run --detach --name "$app_name" "${run_flags[@]}" \
    --env "IDLEGATE_LISTEN=127.0.0.1:$app_port" \
    --env IDLEGATE_TABS__IDLE_TIMEOUT=5s \
    "$example_image" >/dev/null
wait_ready "http://127.0.0.1:$app_port" "$app_name"
check_user "$app_name"

say "running Streamlit on 127.0.0.1:$streamlit_port and $sidecar_image in front of it on 127.0.0.1:$sidecar_port"
.venv/bin/streamlit run examples/app.py \
    --server.address 127.0.0.1 --server.port "$streamlit_port" --server.headless true \
    --server.disconnectedSessionTTL 20 --browser.gatherUsageStats false \
    >"$image_dir/streamlit.log" 2>&1 &
streamlit_pid=$!
for ((i = 0; i < 120; i++)); do
    http_ok "http://127.0.0.1:$streamlit_port/_stcore/health" && break
    kill -0 "$streamlit_pid" 2>/dev/null || { cat "$image_dir/streamlit.log" >&2; die "Streamlit exited"; }
    sleep 0.5
done
sidecar_name="idlegate-test-sidecar-$$"
containers+=("$sidecar_name")
podman run --detach --name "$sidecar_name" "${run_flags[@]}" \
    --env "IDLEGATE_UPSTREAM=http://127.0.0.1:$streamlit_port" \
    --env "IDLEGATE_LISTEN=127.0.0.1:$sidecar_port" \
    --env IDLEGATE_TABS__IDLE_TIMEOUT=5s \
    "$sidecar_image" >/dev/null
wait_ready "http://127.0.0.1:$sidecar_port" "$sidecar_name"
check_user "$sidecar_name"

say "testing both with crates/idlegate/tests/image.rs"
TEST_IMAGE_URL="http://127.0.0.1:$app_port" TEST_SIDECAR_URL="http://127.0.0.1:$sidecar_port" \
    cargo nextest run --no-fail-fast -p idlegate --test image --run-ignored only

# --- 4. Stopping ---------------------------------------------------------------------------

check_clean_stop "$app_name"
check_clean_stop "$sidecar_name"
say "passed"
