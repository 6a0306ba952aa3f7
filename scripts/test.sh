#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs the tools the tests use,
# checks formatting and lints, starts every real test server (scripts/servers.sh), and
# runs all tests against them.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test %ss] %s\n' "$SECONDS" "$*" >&2; }

# Each run has its own test servers, so that two runs on one machine (a developer's and
# CI's, two branches) do not meet: the first free slot (0-3, held by a lock for the run)
# names the state directory, shifts every port by 200 per slot and names the bastion's
# network namespace. Slot 0 is the harness `scripts/servers.sh up` starts by default.
# AUTHPROBE_STATE set by the caller means: that harness, as it is.
if [ -z "${AUTHPROBE_STATE:-}" ]; then
  slot=
  for candidate in 0 1 2 3; do
    exec {slot_fd}>"/tmp/authprobe-test-slot-$candidate.lock"
    if flock -n "$slot_fd"; then slot=$candidate; break; fi
    exec {slot_fd}>&-
  done
  [ -n "$slot" ] || { log "four test runs are going on already on this machine"; exit 1; }
  if [ "$slot" != 0 ]; then
    export AUTHPROBE_STATE=/tmp/authprobe-servers-$slot AUTHPROBE_PORT_OFFSET=$((slot * 200))
    export AUTHPROBE_BASTION_NETNS=authprobe-bastion-$slot
  fi
  log "test servers: slot $slot (${AUTHPROBE_STATE:-/tmp/authprobe-servers}, ports +$((slot * 200)))"
fi
# Installing packages and starting servers, one run at a time (apt and pip share their
# locks and caches); the tests themselves then run side by side.
exec {setup_fd}>/tmp/authprobe-test-setup.lock
flock "$setup_fd"

# Tools the tests drive as real consumers of authprobe's output.
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v xmllint >/dev/null || missing+=(libxml2-utils)
command -v unshare >/dev/null || missing+=(util-linux)
command -v openssl >/dev/null || missing+=(openssl)
# Reference clients the harness tests use to prove each server accepts and refuses for real.
command -v psql >/dev/null || missing+=(postgresql-client)
command -v mariadb >/dev/null || missing+=(mariadb-client)
command -v sftp >/dev/null || missing+=(openssh-client)
command -v sshpass >/dev/null || missing+=(sshpass)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v curl >/dev/null || missing+=(curl)
command -v kinit >/dev/null || missing+=(krb5-user)
command -v tsql >/dev/null || missing+=(freetds-bin)
# The integrations in examples/: a real node_exporter serves the cron recipe's metrics.
command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
command -v flock >/dev/null || missing+=(util-linux)
# Kerberos's error paths are checked for lost krb5 allocations under valgrind.
command -v valgrind >/dev/null || missing+=(valgrind)
# `authprobe man` is checked with the groff man(1) uses.
command -v groff >/dev/null || missing+=(groff-base)
# Check cards seal results to age recipients; the tests open them with Debian's age.
command -v age >/dev/null || missing+=(age)
# serve's status page is checked in a real browser (tests/serve_page.rs).
command -v chromium-headless-shell >/dev/null || missing+=(chromium-headless-shell)
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The tests' Python tools live in the harness's venv (Debian's python3 refuses a global pip
# install); its bin directory goes first on PATH, so `python3` in the tests is the venv's.
venv_bin=$(scripts/servers.sh python-env)
export PATH="$venv_bin:$PATH"
python3 -c 'import jsonschema, cryptography, boto3, pytds, OpenSSL, yaml, kubernetes_validate, dockerfile' 2>/dev/null \
  && command -v check-jsonschema >/dev/null \
  || scripts/servers.sh python-env jsonschema cryptography boto3 python-tds pyopenssl pyyaml \
       kubernetes-validate==1.37.0 check-jsonschema==0.39.0 dockerfile==3.4.0 >/dev/null

log "cargo fmt --all --check"
cargo fmt --all --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --quiet --all-targets -- -D warnings
# A long file is a question for review (docs/development.md's checklist), not a failure.
find src crates -name '*.rs' -exec wc -l {} + | awk '$2 != "total" && $1 > 600 { print "[review] " $2 " has " $1 " lines: does it hold more than one concern?" }' >&2

# The servers outlive this run (outside CI) and must not inherit its slot's lock: a later
# run would find the slot taken by a harness that is only waiting to be reused.
if [ -n "${slot_fd:-}" ]; then scripts/servers.sh up {slot_fd}>&-; else scripts/servers.sh up; fi
scripts/servers.sh clients
flock -u "$setup_fd"
set -a
# shellcheck disable=SC1090
. "$(scripts/servers.sh env)"
set +a

profile=default
[ "${CI:-}" = true ] && profile=ci
# Every config the tests write is kept (tests/util: keep_for_the_schema_check) for the
# schema check below.
AUTHPROBE_SCHEMA_CORPUS=$(mktemp -d /tmp/authprobe-schema-corpus.XXXXXX)
export AUTHPROBE_SCHEMA_CORPUS
trap 'rm -rf "$AUTHPROBE_SCHEMA_CORPUS"' EXIT
if [ "${CI:-}" = true ]; then trap 'rm -rf "$AUTHPROBE_SCHEMA_CORPUS"; scripts/servers.sh down' EXIT; fi
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --profile "$profile" "$@"
else
  log "cargo-nextest not found; falling back to cargo test"
  cargo test "$@"
fi

# The published schema never refuses what authprobe takes: each config the tests wrote
# that `authprobe validate` accepts (with the harness's variables) must pass
# schemas/probes.schema.json in a validator not written here.
if [ $# -eq 0 ]; then
  accepted=()
  for config in "$AUTHPROBE_SCHEMA_CORPUS"/*.toml; do
    [ -e "$config" ] || continue
    "${CARGO_TARGET_DIR:-target}/debug/authprobe" validate -c "$config" >/dev/null 2>&1 && accepted+=("$config")
  done
  log "schema: ${#accepted[@]} configs the tests wrote and authprobe accepts, against schemas/probes.schema.json"
  [ "${#accepted[@]}" -gt 0 ] || { log "no config was kept for the schema check"; exit 1; }
  check-jsonschema --default-filetype toml --schemafile schemas/probes.schema.json "${accepted[@]}"
fi

# Doc tests (nextest does not run them): among them, the compile-fail proof that nothing
# outside the crate can make a release proof (src/model/release.rs).
log "cargo test --doc"
cargo test --doc --quiet

# tests/docker_real.rs: the same cases against MySQL 8.4 and SQL Server 2022, which only
# docker-compose.yml provides. Run when the servers came up that way; otherwise said.
if [ "${AP_SERVERS:-}" = compose ]; then
  log "real MySQL 8.4 and SQL Server 2022 (docker-compose): running tests/docker_real.rs"
  cargo nextest run --profile "$profile" --run-ignored only -E 'test(/^docker_real::/)'
else
  log "NOT RUN: tests/docker_real.rs (MySQL 8.4 and SQL Server 2022 need a Docker engine; the stand-ins' cases above ran)"
fi
