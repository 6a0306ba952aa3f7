#!/usr/bin/env bash
# The comparison benchmark: authprobe against the checks people script today, on the test
# servers (scripts/servers.sh), with a release build. Every figure is the median of RUNS
# runs, authprobe and the reference interleaved (A/B) so that a noisy machine hurts both
# alike; the table prints each figure with its goal. Asserts nothing.
#
#   bench/compare.sh [RUNS=5]
#
# SCALE="1000 10000" sets the HTTP scale runs; FUZZ_SECONDS=60 runs the config fuzzer for
# that long at the end (0 skips it; the first run builds it, about 7 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
SCALE=${SCALE:-1000 10000}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

log() { printf '[bench] %s\n' "$*" >&2; }
missing=()
command -v /usr/bin/time >/dev/null || missing+=(time)
command -v bc >/dev/null || missing+=(bc)
command -v tsql >/dev/null || missing+=(freetds-bin)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v mariadb >/dev/null || missing+=(mariadb-client)
command -v sftp >/dev/null || missing+=(openssh-client)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v aws >/dev/null || pip install -q awscli

# shellcheck source=bench/lib.sh
. bench/lib.sh
release_setup
# timed FILE CMD...: appends CMD's wall time in ms to FILE; its output is discarded.
timed() { local file=$1 t0 t1; shift; t0=$(now_ms); "$@" >/dev/null 2>&1 || true; t1=$(now_ms); echo $((t1 - t0)) >> "$file"; }

# ---------------------------------------------------------------- the six-kind suite
reference_client_files "$work"
cat > "$work/suite.toml" <<EOF
[[probe]]
name = "http"
kind = "http"
url = "https://localhost:$AP_HTTPS_PORT/bearer"
auth = { type = "bearer", token = "\${AP_BEARER_TOKEN}" }
tls = { ca = "$AP_CA" }

[[probe]]
name = "postgres"
kind = "postgres"
host = "localhost"
port = $AP_PG_PORT
database = "appdb"
user = "app_user"
password = "\${AP_PG_PASSWORD}"
tls = { mode = "verify-full", ca = "$AP_CA" }

[[probe]]
name = "mysql"
kind = "mysql"
host = "localhost"
port = $AP_MYSQL_PORT
database = "appdb"
user = "app_user"
password = "\${AP_MYSQL_PASSWORD}"
tls = { mode = "verify-full", ca = "$AP_CA" }

[[probe]]
name = "mssql"
kind = "mssql"
host = "localhost"
port = $AP_MSSQL_PORT
user = "app_user"
password = "\${AP_MSSQL_PASSWORD}"
tls = { mode = "verify-full", ca = "$AP_CA" }

[[probe]]
name = "s3"
kind = "s3"
bucket = "demo-bucket"
endpoint = "http://127.0.0.1:$AP_S3_PORT"
auth = { type = "static", access_key_id = "\${AP_S3_ACCESS_KEY}", secret_access_key = "\${AP_S3_SECRET_KEY}" }

[[probe]]
name = "sftp"
kind = "sftp"
host = "127.0.0.1"
port = $AP_SSH_PORT
user = "sftp_key"
path = "data"
auth = { type = "key", private_key = "$work/id_ed25519" }
known_hosts = "$work/known_hosts"
EOF
# The same six checks, done by the clients people use, one after another.
reference_suite() {
  curl -sf -o /dev/null --cacert "$AP_CA" -H "Authorization: Bearer $AP_BEARER_TOKEN" "https://localhost:$AP_HTTPS_PORT/bearer"
  PGPASSWORD=$AP_PG_PASSWORD psql -X -tA "host=localhost port=$AP_PG_PORT dbname=appdb user=app_user sslmode=verify-full sslrootcert=$AP_CA" -c 'SELECT 1'
  MYSQL_PWD=$AP_MYSQL_PASSWORD mariadb -h 127.0.0.1 -P "$AP_MYSQL_PORT" -u app_user --ssl-ca="$AP_CA" --ssl-verify-server-cert appdb -e 'SELECT 1'
  printf 'SELECT 1\ngo\nquit\n' | FREETDSCONF=$work/freetds.conf tsql -S authprobe -U app_user -P "$AP_MSSQL_PASSWORD"
  AWS_ACCESS_KEY_ID=$AP_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$AP_S3_SECRET_KEY AWS_DEFAULT_REGION=us-east-1 \
    aws --endpoint-url "http://127.0.0.1:$AP_S3_PORT" s3api list-objects-v2 --bucket demo-bucket --max-keys 1
  echo 'ls data' | sftp -q -b - -i "$work/id_ed25519" -o UserKnownHostsFile="$work/known_hosts" -o StrictHostKeyChecking=yes -P "$AP_SSH_PORT" sftp_key@127.0.0.1
}
# Every reference check must pass, or the comparison means nothing.
reference_suite > "$work/reference.out" 2>&1 || { cat "$work/reference.out"; log "a reference client failed"; exit 1; }
"$bin" run -c "$work/suite.toml" -q > /dev/null || { "$bin" run -c "$work/suite.toml"; log "the authprobe suite failed"; exit 1; }

log "six-kind suite, $RUNS runs"
for _ in $(seq "$RUNS"); do
  timed "$work/suite.ap" "$bin" run -c "$work/suite.toml"
  timed "$work/suite.ref" reference_suite
  for kind in http postgres mysql mssql s3 sftp; do timed "$work/alone.$kind" "$bin" run -c "$work/suite.toml" --only "$kind"; done
done
slowest_kind=http; slowest=0
for kind in http postgres mysql mssql s3 sftp; do
  m=$(median < "$work/alone.$kind")
  if [ "$(echo "$m > $slowest" | bc)" = 1 ]; then slowest=$m; slowest_kind=$kind; fi
done

# ---------------------------------------------------------------- one check vs curl
log "one https check vs curl, $((RUNS * 4)) runs"
for _ in $(seq $((RUNS * 4))); do
  timed "$work/check.ap" env AP_TOKEN="$AP_BEARER_TOKEN" "$bin" check "https://localhost:$AP_HTTPS_PORT/bearer" --bearer-env AP_TOKEN --ca "$AP_CA"
  timed "$work/check.ref" curl -sf -o /dev/null --cacert "$AP_CA" -H "Authorization: Bearer $AP_BEARER_TOKEN" "https://localhost:$AP_HTTPS_PORT/bearer"
done

# ---------------------------------------------------------------- HTTP at scale
for n in $SCALE; do
  log "$n HTTP probes vs xargs -P 32 curl, $RUNS runs"
  scale_config "$n" 30s > "$work/scale-$n.toml"
  scale_urls "$n" > "$work/urls-$n"
  for run in $(seq "$RUNS"); do
    t0=$(now_ms)
    /usr/bin/time -f %M -o "$work/rss-$n.$run" "$bin" run -c "$work/scale-$n.toml" --concurrency 256 --format json > "$work/scale.json"
    t1=$(now_ms)
    echo $((t1 - t0)) >> "$work/scale-$n.ap"
    cat "$work/rss-$n.$run" >> "$work/rss-$n"
    python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['summary']; assert s['passed']==$n, s" "$work/scale.json"
    timed "$work/scale-$n.ref" xargs -P 32 -n 1 curl -sf -o /dev/null < "$work/urls-$n"
  done
done

# ---------------------------------------------------------------- validate at scale
validate_config > "$work/validate.toml"
for _ in $(seq "$RUNS"); do timed "$work/validate.ms" "$bin" validate -c "$work/validate.toml"; done

# ---------------------------------------------------------------- the table
row() { # LABEL AUTHPROBE REFERENCE RATIO GOAL
  printf '%-52s %11s %11s %9s %10s\n' "$1" "$2" "$3" "$4" "$5"
}
ratio() { echo "scale=1; $1 / $2" | bc -l; }
suite_ap=$(median < "$work/suite.ap"); suite_ref=$(median < "$work/suite.ref")
check_ap=$(median < "$work/check.ap"); check_ref=$(median < "$work/check.ref")
echo
echo "authprobe $("$bin" --version | cut -d' ' -f2), release build; medians of $RUNS runs (A/B interleaved) on $(nproc) cores"
row "figure" "authprobe" "reference" "ratio" "goal"
row "six kinds at once vs the six clients in sequence" "${suite_ap} ms" "${suite_ref} ms" "$(ratio "$suite_ref" "$suite_ap")x" ">= 10x"
row "six kinds at once vs the slowest ($slowest_kind) alone" "${suite_ap} ms" "${slowest} ms" "$(ratio "$suite_ap" "$slowest")x" "<= 1.2x"
for n in $SCALE; do
  ap=$(median < "$work/scale-$n.ap"); ref=$(median < "$work/scale-$n.ref")
  row "$n HTTP probes vs xargs -P 32 curl" "${ap} ms" "${ref} ms" "$(ratio "$ref" "$ap")x" ">= 10x"
  rss=$(sort -n "$work/rss-$n" | tail -1)
  goal=""; [ "$n" = 1000 ] && goal="<= 64 MB"
  row "peak RSS, $n HTTP probes (max of runs)" "$(echo "scale=1; $rss / 1024" | bc) MB" "" "" "$goal"
done
row "validate, a 10,000-probe config" "$(median < "$work/validate.ms") ms" "" "" "< 200 ms"
row "one https check vs curl" "${check_ap} ms" "${check_ref} ms" "$(ratio "$check_ap" "$check_ref")x" "<= 1.5x"

# ---------------------------------------------------------------- fuzzing
if [ "$FUZZ_SECONDS" != 0 ]; then
  command -v cargo-fuzz >/dev/null || { log "installing cargo-fuzz"; cargo install --locked --quiet cargo-fuzz; }
  log "fuzzing config loading for ${FUZZ_SECONDS}s (the first build takes minutes)"
  mkdir -p "$work/fuzz-corpus"
  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none config "$work/fuzz-corpus" ../tests/configs/invalid -- \
    -max_total_time="$FUZZ_SECONDS" -max_len=4096 > "$work/fuzz.log" 2>&1) && fuzz_ok=yes || fuzz_ok=no
  runs=$(grep -o 'Done [0-9]* runs' "$work/fuzz.log" | grep -o '[0-9]*' || echo 0)
  crashes=$(ls fuzz/artifacts/config 2>/dev/null | wc -l)
  row "fuzz config loading: inputs run in ${FUZZ_SECONDS}s" "$runs" "" "" ""
  row "fuzz: crashes and panics" "$crashes" "" "" "0"
  [ "$fuzz_ok" = yes ] || { tail -30 "$work/fuzz.log"; log "the fuzzer stopped with a finding: see fuzz/artifacts/config"; }
fi
