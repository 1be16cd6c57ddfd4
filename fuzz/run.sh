#!/usr/bin/env bash
# Fuzzes each target for a bounded time (default 60 s each), seeded from the test fixtures.
#   fuzz/run.sh [SECONDS]
# Crashes land in fuzz/artifacts/<target>/; add each as a regression test in tests/.
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable toolchain provide them.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/admission corpus/check_yaml
cp ../tests/fixtures/apiserver/*.json corpus/admission/
find ../tests/fixtures/manifests ../src/rules/fixtures -name '*.yaml' -exec cp {} corpus/check_yaml/ \;
if [ -d ../../shared/corpus ]; then
  for f in ../../shared/corpus/*/*.yaml; do cp "$f" "corpus/check_yaml/$(basename "$(dirname "$f")")__$(basename "$f")"; done
fi
export RUSTC_BOOTSTRAP=1
for target in admission check_yaml; do
  echo "== fuzzing $target for ${seconds}s"
  cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=1048576
done
