#!/usr/bin/env bash
# Builds idlegate's two container images from this repository, from any directory:
#
#   idlegate:<version>          idlegate in launcher mode, listening on 0.0.0.0:8080, in front
#                               of the Streamlit app an image built FROM it adds (a Python venv
#                               in /opt/venv, user 10001). See examples/Containerfile.
#   idlegate-sidecar:<version>  idlegate alone (no Python, no shell), for --upstream mode next
#                               to an app container.
#
# <version> is crates/idlegate/Cargo.toml's; both images are tagged :latest as well.
# docs/container.md explains how to use them.
#
# The release binary is built here (cargo build --release) and copied in, with the man page
# and shell completions from packaging/wheel-data/data/share. The base images are made from Debian's
# own packages with debootstrap (bookworm, minbase), so no container registry is needed: the
# app base gets python3, python3-venv and ca-certificates; the sidecar base only the C
# library and libgcc, unpacked from the same download. Their root filesystems are cached
# under target/image/, keyed by the package lists and the recipe, so a second build takes
# seconds. Building them needs root (debootstrap); scripts/install-system-deps.sh installs
# podman and debootstrap.
#
# Environment:
#   BASE_IMAGE          build the app image on this image instead of the debootstrapped
#                       base, e.g. docker.io/library/python:3.11-slim-bookworm or
#                       docker.io/library/debian:bookworm-slim (Python is then installed
#                       with apt-get)
#   SIDECAR_BASE_IMAGE  likewise for the sidecar, e.g. gcr.io/distroless/cc-debian12 or
#                       docker.io/library/debian:bookworm-slim
#   CONTAINER_ENGINE    podman (default) or docker
#   DEBIAN_MIRROR       where debootstrap downloads from (default http://deb.debian.org/debian)
#   REFRESH_BASE=1      debootstrap again even when a cached base exists (to pick up
#                       Debian's security updates)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

die() {
    echo "build-image.sh: error: $*" >&2
    exit 1
}
say() {
    echo "build-image.sh: $*" >&2
}

engine="${CONTAINER_ENGINE:-podman}"
command -v "$engine" >/dev/null 2>&1 \
    || die "$engine not found; install it (as root: scripts/install-system-deps.sh)"

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' crates/idlegate/Cargo.toml | head -n 1)"
[[ -n "$version" ]] || die "no version in crates/idlegate/Cargo.toml"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD 2>/dev/null || revision+="-dirty"

share=packaging/wheel-data/data/share
for f in man/man1/idlegate.1 bash-completion/completions/idlegate \
    zsh/site-functions/_idlegate fish/vendor_completions.d/idlegate.fish; do
    [[ -f "$share/$f" ]] \
        || die "missing $share/$f (the man page and shell completions the image installs)"
done

# RUN steps get modest fixed limits: an engine's defaults (nofile 1048576) cannot be set
# where it lacks CAP_SYS_RESOURCE, for example when it runs inside another container.
build_flags=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
if [[ "$engine" == podman && -n "${PODMAN_RUNTIME:-}" ]]; then
    build_flags+=(--runtime "$PODMAN_RUNTIME")
fi

image_exists() {
    "$engine" image inspect "$1" >/dev/null 2>&1
}

# import_rootfs TAR IMAGE [--change ...]: a root filesystem as an image, quietly unless it
# fails.
import_rootfs() {
    local tarball="$1" image="$2"
    shift 2
    "$engine" import "$@" "$tarball" "$image" >"$image_dir/import.log" 2>&1 \
        || { cat "$image_dir/import.log" >&2; die "importing $image failed"; }
}

# --- The base images, from Debian's packages ---------------------------------------------

suite=bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
app_packages=(python3 python3-venv ca-certificates)
# The sidecar needs only what the binary links to (ld.so, libc, libm, libgcc_s).
sidecar_packages=(base-files libc6 libgcc-s1 gcc-12-base)
image_dir=target/image

# Unpacks a minimal Debian into $1/app (with the app packages) and the sidecar packages
# alone into $1/sidecar, both without documentation, caches or the host's files.
make_rootfs() {
    local dir="$1" app="$1/app" sidecar="$1/sidecar" pkg deb
    debootstrap --variant=minbase --include="$(IFS=,; echo "${app_packages[*]}")" \
        "$suite" "$app" "$mirror" >"$dir/debootstrap.log" 2>&1 \
        || { tail -n 20 "$dir/debootstrap.log" >&2; die "debootstrap failed (log: $dir/debootstrap.log)"; }

    mkdir -p "$sidecar/var/lib/dpkg/status.d"
    for pkg in "${sidecar_packages[@]}"; do
        deb="$(compgen -G "$app/var/cache/apt/archives/${pkg}_*.deb" | head -n 1)" \
            || die "debootstrap left no $pkg package"
        dpkg-deb --extract "$deb" "$sidecar"
        # What was installed, where image scanners look for it in images without dpkg.
        dpkg-deb --field "$deb" >"$sidecar/var/lib/dpkg/status.d/$pkg"
    done
    # iconv modules: idlegate does not use them.
    rm -rf "$sidecar"/usr/lib/*/gconv
    printf '%s\n' 'root:x:0:0:root:/root:/usr/sbin/nologin' \
        'idlegate:x:10001:10001:idlegate:/nonexistent:/usr/sbin/nologin' >"$sidecar/etc/passwd"
    printf '%s\n' 'root:x:0:' 'idlegate:x:10001:' >"$sidecar/etc/group"
    printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$sidecar/etc/nsswitch.conf"

    rm -rf "$app"/var/cache/apt/archives/*.deb "$app"/var/cache/apt/*.bin \
        "$app"/var/lib/apt/lists/* "$app"/var/log/* "$app"/var/cache/debconf/*-old \
        "$app"/etc/hostname "$app"/etc/resolv.conf "$app"/etc/machine-id
    # Leave out what debian-slim images leave out, now and in later apt-get installs.
    cat >"$app/etc/dpkg/dpkg.cfg.d/excludes" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    local root
    for root in "$app" "$sidecar"; do
        find "$root/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null || true
        find "$root/usr/share/doc" -depth -type d -empty -delete 2>/dev/null || true
        rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian
        find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias \
            -exec rm -rf {} + 2>/dev/null || true
        find "$root/dev" -mindepth 1 -delete 2>/dev/null || true
    done
}

# The cache key: the recipe above (as bash prints it, without comments) and its inputs.
key="$( { declare -f make_rootfs; echo "$suite $mirror ${app_packages[*]} / ${sidecar_packages[*]}"; } \
    | sha256sum | cut -c1-12)"
base_image="localhost/idlegate-base:$suite-$key"
sidecar_base_image="localhost/idlegate-sidecar-base:$suite-$key"
cache="$image_dir/base-$key"

need_local_base=()
[[ -z "${BASE_IMAGE:-}" ]] && need_local_base+=("$base_image")
[[ -z "${SIDECAR_BASE_IMAGE:-}" ]] && need_local_base+=("$sidecar_base_image")

if [[ ${#need_local_base[@]} -gt 0 ]]; then
    [[ -n "${REFRESH_BASE:-}" ]] && rm -rf "$cache"
    missing=()
    for image in "${need_local_base[@]}"; do
        if [[ -n "${REFRESH_BASE:-}" ]] || ! image_exists "$image"; then
            missing+=("$image")
        fi
    done
    if [[ ${#missing[@]} -gt 0 && ! -f "$cache/sidecar.tar" ]]; then
        [[ "$(id -u)" -eq 0 ]] \
            || die "making the Debian base needs root (debootstrap); run as root, or set BASE_IMAGE and SIDECAR_BASE_IMAGE"
        command -v debootstrap >/dev/null 2>&1 \
            || die "debootstrap not found; install it (as root: scripts/install-system-deps.sh)"
        say "making the Debian $suite base from $mirror (debootstrap, about a minute)"
        rm -rf "$cache"
        mkdir -p "$cache"
        make_rootfs "$cache"
        for part in app sidecar; do
            tar -C "$cache/$part" --numeric-owner -cf "$cache/$part.tar.tmp" .
            mv "$cache/$part.tar.tmp" "$cache/$part.tar"
            rm -rf "${cache:?}/$part"
        done
    fi
    path_env='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    for image in "${missing[@]}"; do
        if [[ "$image" == "$base_image" ]]; then
            import_rootfs "$cache/app.tar" "$image" --change "$path_env" --change 'CMD ["bash"]'
        else
            import_rootfs "$cache/sidecar.tar" "$image" --change "$path_env"
        fi
    done
    # Bases of earlier recipes are no longer needed.
    for old in "$image_dir"/base-*; do
        if [[ -e "$old" && "$old" != "$cache" ]]; then
            rm -rf "$old"
        fi
    done
    "$engine" image ls --format '{{.Repository}}:{{.Tag}}' \
        | grep -E '^localhost/idlegate-(sidecar-)?base:' \
        | grep -v -e "^$base_image\$" -e "^$sidecar_base_image\$" \
        | xargs -r "$engine" image rm >/dev/null 2>&1 || true
fi

# --- The images ---------------------------------------------------------------------------

say "building idlegate $version (cargo build --release)"
cargo build --release --locked --quiet -p idlegate
binary="${CARGO_TARGET_DIR:-target}/release/idlegate"
[[ -x "$binary" ]] || die "no binary at $binary after cargo build"

# A small build context: the binary and the files the image installs, nothing else.
context="$image_dir/context"
rm -rf "$context"
mkdir -p "$context"
cp "$binary" "$context/idlegate"
if command -v strip >/dev/null 2>&1; then
    strip "$context/idlegate"
fi
cp -r "$share" "$context/share"

build() {
    local containerfile="$1" base="$2" name="$3"
    say "building $name:$version on $base"
    "$engine" build "${build_flags[@]}" \
        --file "$containerfile" \
        --build-arg "BASE=$base" \
        --build-arg "VERSION=$version" \
        --build-arg "REVISION=$revision" \
        --tag "$name:$version" --tag "$name:latest" \
        "$context" >"$image_dir/build-$name.log" 2>&1 \
        || { tail -n 30 "$image_dir/build-$name.log" >&2; die "building $name failed"; }
}
build packaging/container/Containerfile "${BASE_IMAGE:-$base_image}" idlegate
build packaging/container/Containerfile.sidecar "${SIDECAR_BASE_IMAGE:-$sidecar_base_image}" \
    idlegate-sidecar

for name in idlegate idlegate-sidecar; do
    # Earlier builds of this image, now untagged.
    "$engine" image prune --force --filter "label=org.opencontainers.image.title=$name" \
        >/dev/null 2>&1 || true
    say "built $name:$version ($("$engine" image inspect --format '{{.Size}}' "$name:$version" \
        | awk '{ printf "%.0f MB", $1 / 1000000 }'))"
done
