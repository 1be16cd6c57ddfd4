#!/usr/bin/env bash
# Builds the real control plane for the end-to-end tests (kube-apiserver and etcd) from the
# Go module proxy, at the versions pinned in go.mod, and caches the binaries outside the
# checkout, keyed by version. Prints the cache folder on stdout.
#
# The first build compiles a large part of Kubernetes: about 10-20 minutes on 2 cores.
# Later runs find the cache and return at once.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

k8s_version="$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' go.mod)"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2; exit}' go.mod)"
cache_root="${FG_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/failover-guard/controlplane}"
out="$cache_root/kube-$k8s_version-etcd-$etcd_version"

if [[ -x "$out/kube-apiserver" && -x "$out/etcd" ]]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is not installed" >&2; exit 3; }

echo "building kube-apiserver $k8s_version and etcd $etcd_version from the Go module proxy" >&2
echo "(first run only, cached in $out; this takes about 10-20 minutes on 2 cores)" >&2

minor="${k8s_version#v1.}"; minor="${minor%%.*}"
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"

tmp="$(mktemp -d "$cache_root.tmp.XXXXXX" 2>/dev/null || { mkdir -p "$cache_root"; mktemp -d "$cache_root.tmp.XXXXXX"; })"
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod
started=$SECONDS
go build -trimpath -ldflags "$ldflags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
echo "kube-apiserver built in $((SECONDS - started)) s" >&2
go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" ./etcd
echo "etcd built in $((SECONDS - started)) s in all" >&2

mkdir -p "$cache_root"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$out"
