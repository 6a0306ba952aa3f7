#!/usr/bin/env bash
# Longer fuzzing of every parser of server bytes (and of config loading) with cargo-fuzz:
#   bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Seeds come from fuzz/seeds/TARGET (real servers' transcripts, recorded with
# scripts/record-transcripts.py, and the hostile suite's shapes); new corpus entries and
# crashes stay under target/fuzz/. Prints inputs run and crashes per target; exits 1 on a
# crash. The test suite runs the same entry points over mutated seeds every time
# (src/fuzzing.rs); this is the long run. Needs cargo-fuzz (installed here if missing) and
# builds with RUSTC_BOOTSTRAP=1, as cargo-fuzz needs nightly flags.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(postgres mysql tds ssh_banner service_sniff known_hosts storage_errors targets proxy kdc_error config config_parts)
command -v cargo-fuzz >/dev/null || { echo "[fuzz] installing cargo-fuzz" >&2; cargo install --locked --quiet cargo-fuzz; }
work=$PWD/target/fuzz
mkdir -p "$work"
failed=0
printf '%-16s %12s %8s\n' target inputs crashes
for t in "${targets[@]}"; do
  corpus=$work/corpus/$t
  mkdir -p "$corpus"
  seeds=fuzz/seeds/$t
  [ "$t" = config ] && seeds=tests/configs/invalid
  [ "$t" = config_parts ] && seeds=tests/configs/invalid
  log=$work/$t.log
  if (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$t" "$corpus" "../$seeds" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=512 -timeout=10 >"$log" 2>&1); then
    status=0
  else
    status=1
    failed=1
  fi
  runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || echo 0)
  crashes=$(find "fuzz/artifacts/$t" -type f 2>/dev/null | wc -l)
  printf '%-16s %12s %8s%s\n' "$t" "$runs" "$crashes" "$([ $status = 0 ] || echo "  (failed: $log)")"
done
exit $failed
