#!/usr/bin/env bash
# Builds the Istio harness (tests/istio/main.go: Istio's own validation and pilot, at the
# version pinned in go.mod) from the Go module proxy and caches the binary outside the
# checkout, keyed by the Istio version and the harness source, with istioctl from the same
# module beside it. Prints the harness binary's path.
#
# The first build compiles a large part of Istio: about 10-15 minutes on 2 cores. Later runs
# find the cache and return at once.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

istio_version="$(awk '$1 == "istio.io/istio" {print $2; exit}' go.mod)"
source_hash="$(cat go.mod go.sum *.go | sha256sum | cut -c1-12)"
cache_root="${FG_ISTIO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/failover-guard/istio}"
out="$cache_root/istio-$istio_version-$source_hash"

if [[ -x "$out/istio-harness" ]]; then
  echo "$out/istio-harness"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is not installed" >&2; exit 3; }

echo "building the Istio harness against istio.io/istio $istio_version from the Go module proxy" >&2
echo "(first run only, cached in $out; a cold build takes about 10-15 minutes on 2 cores)" >&2

mkdir -p "$cache_root"
tmp="$(mktemp -d "$cache_root.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0
started=$SECONDS
go build -trimpath -ldflags "-s -w" -o "$tmp/istio-harness" .
# istioctl from the same module, for `istioctl analyze` (the README's user-report table).
go build -trimpath -ldflags "-s -w" -o "$tmp/istioctl" istio.io/istio/istioctl/cmd/istioctl
echo "istio harness and istioctl built in $((SECONDS - started)) s" >&2

# Older builds of the harness for this Istio version are stale.
find "$cache_root" -maxdepth 1 -name "istio-$istio_version-*" ! -name "$(basename "$out")" -exec rm -rf {} +
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$out/istio-harness"
