#!/usr/bin/env bash
# Build the pinned Kubernetes binaries (kube-apiserver, kubectl, and for the multi-node cluster kubelet,
# kube-controller-manager, kube-scheduler, kube-proxy), etcd, helm and CoreDNS from the Go module proxy
# with the plain go client, and cache them outside the repo by version. A second run only checks that
# the binaries are there. Prints the bin directory on stdout.
set -euo pipefail

K8S_VERSION=v1.33.13
ETCD_VERSION=v3.5.24
HELM_VERSION=v3.18.6
COREDNS_VERSION=v1.12.4
K8S_CMDS=(kube-apiserver kubectl kubelet kube-controller-manager kube-scheduler kube-proxy)
here=$(cd "$(dirname "$0")" && pwd)
cache=${EDGE_ROLLOUT_CACHE:-$HOME/.cache/edge-rollout}
bin="$cache/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION-coredns-$COREDNS_VERSION"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
log() { printf 'build-binaries: %s\n' "$*" >&2; }

build_kubernetes() {
  local minor ldf p
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  ldf="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  log "building ${K8S_CMDS[*]} $K8S_VERSION (cold: ~20-30 min on 2 cores)"
  (cd "$here/k8s-bins" && go build -ldflags "$ldf" -o "$bin.tmp/" "${K8S_CMDS[@]/#/k8s.io/kubernetes/cmd/}")
}

build_etcd() {
  log "building etcd $ETCD_VERSION"
  (cd "$here/etcd-bin" && go build -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
    -o "$bin.tmp/etcd" go.etcd.io/etcd/server/v3)
}

build_helm() {
  local minor h=helm.sh/helm/v3
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  log "building helm $HELM_VERSION"
  GOBIN="$bin.tmp" go install -ldflags "-s -w -X $h/internal/version.version=$HELM_VERSION \
    -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=$minor \
    -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=$minor" \
    "$h/cmd/helm@$HELM_VERSION"
}

build_coredns() {
  log "building coredns $COREDNS_VERSION"
  GOBIN="$bin.tmp" go install -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
}

all_present() {
  local b
  for b in "${K8S_CMDS[@]}" etcd helm coredns; do [ -x "$1/$b" ] || return 1; done
}

k8s_present() {
  local b
  for b in "${K8S_CMDS[@]}"; do [ -x "$1/$b" ] || return 1; done
}

if ! all_present "$bin"; then
  # One build at a time: a second caller (a parallel test run, `make generate`) waits for the first.
  mkdir -p "$cache/bin"
  exec 9>"$cache/bin/.build.lock"
  flock 9
fi
if ! all_present "$bin"; then
  command -v go >/dev/null || { log "go is required (https://go.dev/dl); none found on PATH"; exit 1; }
  mkdir -p "$bin.tmp"
  [ -x "$bin.tmp/etcd" ] || build_etcd
  [ -x "$bin.tmp/helm" ] || build_helm
  [ -x "$bin.tmp/coredns" ] || build_coredns
  k8s_present "$bin.tmp" || build_kubernetes
  rm -rf "$bin" && mv "$bin.tmp" "$bin"
  log "binaries cached in $bin"
fi
echo "$bin"
