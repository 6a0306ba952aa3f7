#!/usr/bin/env bash
# Benchmark: N HTTP probes against one local nginx, authprobe (--concurrency 256) vs.
# `xargs -P 32 -n 1 curl` over the same N URLs, A/B interleaved, medians of RUNS runs.
# Also reports authprobe's peak RSS and `authprobe validate` on a 10,000-probe config.
# Prints figures with their goals; asserts nothing.
#
#   bench/http_scale.sh [N=1000] [RUNS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
RUNS=${2:-5}

command -v /usr/bin/time >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
# shellcheck source=bench/lib.sh
. bench/lib.sh
release_setup
scale_config "$N" 10s > "$work/probes.toml"
scale_urls "$N" > "$work/urls"
validate_config > "$work/validate.toml"

: > "$work/ap"; : > "$work/curl"; : > "$work/rss"; : > "$work/val"
for run in $(seq 1 "$RUNS"); do
  t0=$(now_ms)
  /usr/bin/time -f %M -o "$work/rss.$run" "$bin" run -c "$work/probes.toml" --concurrency 256 --format json > "$work/out.json"
  t1=$(now_ms)
  echo $((t1 - t0)) >> "$work/ap"
  cat "$work/rss.$run" >> "$work/rss"
  python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['summary']; assert s['passed']==$N, s" "$work/out.json"
  t0=$(now_ms)
  xargs -P 32 -n 1 curl -s -o /dev/null --fail < "$work/urls"
  t1=$(now_ms)
  echo $((t1 - t0)) >> "$work/curl"
done
# validate on its own, once the machine is quiet again after the runs (the last curl run
# leaves thousands of sockets closing), and more often: a figure of tens of milliseconds.
sleep 2
# Timed by bash itself ($EPOCHREALTIME, microseconds): a `date` process on each side
# would add its own start-up to a figure this small.
for run in $(seq 1 $((RUNS * 3))); do
  t0=${EPOCHREALTIME/./}
  "$bin" validate -c "$work/validate.toml" > /dev/null
  t1=${EPOCHREALTIME/./}
  echo $(((t1 - t0) / 1000)) >> "$work/val"
done

ap=$(median < "$work/ap"); cu=$(median < "$work/curl"); rss=$(sort -n "$work/rss" | tail -1); val=$(median < "$work/val")
echo
printf '%-58s %10s %14s\n' "figure (median of $RUNS, A/B interleaved)" "value" "goal"
printf '%-58s %8s ms\n' "authprobe run: $N HTTP probes, --concurrency 256" "$ap"
printf '%-58s %8s ms\n' "xargs -P 32 -n 1 curl: same $N URLs" "$cu"
printf '%-58s %9.1fx %14s\n' "speed-up (curl time / authprobe time)" "$(echo "$cu / $ap" | bc -l)" ">= 10x"
# Issue 37's goals: 64 MB for 10,000 probes, 150 MB for 100,000.
goal="< 64 MB"; [ "$N" -gt 10000 ] && goal="<= 150 MB"
printf '%-58s %8.1f MB %14s\n' "authprobe peak RSS (max of runs)" "$(echo "$rss / 1024" | bc -l)" "$goal"
printf '%-58s %8s ms %14s\n' "authprobe validate: 10,000-probe config (median of $((RUNS * 3)))" "$val" "< 50 ms"
