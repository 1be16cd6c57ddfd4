#!/usr/bin/env bash
# Builds the real helm CLI for the chart tests from the Go module proxy, at the version pinned in
# go.mod, and caches it outside the checkout. Prints the binary's path.
#
# The first build compiles helm and a part of Kubernetes' client libraries: a few minutes on 2
# cores (less when the control plane's Go build cache is warm). Later runs return at once.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

version="$(awk '$1 == "require" && $2 == "helm.sh/helm/v3" {print $3; exit}' go.mod)"
cache_root="${FG_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/failover-guard/helm}"
out="$cache_root/helm-$version"

if [[ -x "$out/helm" ]]; then
  echo "$out/helm"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is not installed" >&2; exit 3; }
echo "building helm $version from the Go module proxy (first run only, cached in $out)" >&2

mkdir -p "$cache_root"
tmp="$(mktemp -d "$cache_root.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod
started=$SECONDS
go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm
echo "helm built in $((SECONDS - started)) s" >&2
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$out/helm"
