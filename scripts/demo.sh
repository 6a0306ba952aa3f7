#!/usr/bin/env bash
# authprobe's main job against real local servers: starts them (scripts/servers.sh), then
# runs `authprobe run -c probes.toml.example` and shows the report. The probes named
# broken-* fail on purpose, to show what each failure looks like; the demo checks that
# exactly those failed, each with its expected class.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/servers.sh up
set -a
# shellcheck disable=SC1090
. "$(scripts/servers.sh env)"
set +a
cargo build --quiet
# Where cargo put it: CARGO_TARGET_DIR and .cargo/config may move target/.
target_dir=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
bin=$target_dir/debug/authprobe

echo
echo "\$ authprobe run -c probes.toml.example"
code=0
"$bin" run -c probes.toml.example "$@" || code=$?
[ "$code" -le 1 ] || exit "$code"

# The same run as JSON, checked: every probe passes except the broken-* ones, which fail
# with the class they demonstrate.
"$bin" run -c probes.toml.example --format json > /tmp/authprobe-demo.json || true
"$(scripts/servers.sh python-env)/python3" - /tmp/authprobe-demo.json <<'PY'
import json, sys
expected = {
    "broken-wrong-token": "auth_rejected",
    "broken-untrusted-cert": "tls_untrusted",
    "broken-expired-cert": "tls_expired",
    "broken-missing-client-cert": "tls_client_cert",
    "broken-oauth2-secret": "auth_rejected",
    "broken-db-permission": "permission_denied",
    "broken-bucket-policy": "permission_denied",
    "broken-sftp-directory": "permission_denied",
    "broken-unknown-host-key": "host_key",
    "broken-behind-bastion": "connect_refused",
}
report = json.load(open(sys.argv[1]))
bad = []
for p in report["probes"]:
    want = expected.get(p["name"])
    got = p["error"]["class"] if p["error"] else None
    if want != got or (want is None and p["status"] not in ("pass", "warn")):
        bad.append(f'{p["name"]}: expected {want or "pass"}, got {got or p["status"]}')
if bad:
    print("demo: unexpected results:\n  " + "\n  ".join(bad), file=sys.stderr)
    sys.exit(1)
print(f'\ndemo OK: {report["summary"]["passed"]} probes passed, and the {len(expected)} broken-* probes failed as designed.')
print("Stop the servers with: scripts/servers.sh down")
PY
