#!/usr/bin/env bash
# Builds the Kubernetes tools the operator tests run against (envtest style) into a cache outside
# the repository, once: kube-apiserver from the Go module k8s.io/kubernetes, etcd from
# go.etcd.io/etcd/server/v3, helm from helm.sh/helm/v4, and kubectl of the same release as the API
# server (the tests apply manifests with it as a user would). Everything comes from the Go module proxy.
# Prints nothing but progress; the binaries land in $DERECHO_K8S_TOOLS (default below).
# A version change builds into a new folder, so a stale binary is never picked up.
set -euo pipefail

KUBERNETES_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
HELM_VERSION=v4.3.2

tools_root=${DERECHO_K8S_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/derecho-k8s/tools}
bin="$tools_root/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION/bin"
mkdir -p "$bin"

if ! command -v go >/dev/null 2>&1; then
  echo "setup-k8s-tools: go is required (apt-get install golang-go, or Go >= 1.26 on PATH)" >&2
  exit 1
fi
export GOFLAGS=-mod=mod

# k8s.io/kubernetes replaces its staging modules with ./staging paths, which a dependent module
# cannot see; the published k8s.io/* modules of the same release (v0.X.Y for v1.X.Y) stand in.
build_kube_apiserver() {
  local src="$tools_root/src/kube-apiserver-$KUBERNETES_VERSION"
  mkdir -p "$src"
  local staging_version=v0.${KUBERNETES_VERSION#v1.}
  local modfile
  modfile=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  {
    echo "module derecho-k8s.local/tools/kube-apiserver"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    sed -n "s#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 $staging_version#p" "$modfile"
    echo ")"
  } >"$src/go.mod"
  (cd "$src" && go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBERNETES_VERSION" &&
    go build -trimpath -o "$bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
}

build_kubectl() {
  local src="$tools_root/src/kube-apiserver-$KUBERNETES_VERSION"
  [[ -f $src/go.mod ]] || build_kube_apiserver
  (cd "$src" && go get "k8s.io/kubernetes/cmd/kubectl@$KUBERNETES_VERSION" &&
    go build -trimpath -o "$bin/kubectl" k8s.io/kubernetes/cmd/kubectl)
}

# etcd's server module replaces its sibling modules with ../ paths; requiring the same release of
# each from a wrapper module builds the same binary.
build_etcd() {
  local src="$tools_root/src/etcd-$ETCD_VERSION"
  mkdir -p "$src"
  printf 'module derecho-k8s.local/tools/etcd\n\ngo 1.26.0\n' >"$src/go.mod"
  (cd "$src" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" \
    "go.etcd.io/etcd/api/v3@$ETCD_VERSION" "go.etcd.io/etcd/client/pkg/v3@$ETCD_VERSION" \
    "go.etcd.io/etcd/client/v3@$ETCD_VERSION" "go.etcd.io/etcd/pkg/v3@$ETCD_VERSION" &&
    go build -trimpath -o "$bin/etcd" go.etcd.io/etcd/server/v3)
}

build_helm() {
  GOBIN="$bin" go install -trimpath "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
}

for tool in etcd helm kube-apiserver kubectl; do
  if [[ -x $bin/$tool ]]; then
    echo "setup-k8s-tools: $tool present"
    continue
  fi
  echo "setup-k8s-tools: building $tool (once; cached in $bin)"
  "build_${tool//-/_}"
done
ln -sfn "$bin" "$tools_root/current"
echo "setup-k8s-tools: tools in $tools_root/current"
