#!/bin/sh
# Health cron: run the probes and publish the result for node_exporter's textfile
# collector (authprobe_probe_success, durations, certificate expiry, failure classes).
#
#   */5 * * * * root /usr/local/bin/authprobe-textfile.sh
#
# The metrics file is replaced atomically (written next to it, then renamed), so
# node_exporter never reads half of it. A run that cannot start (a broken config, exit 2)
# leaves the previous file in place: alert on its age (see alerts.yml). Overlapping runs
# are skipped, not stacked.
set -u

CONFIG=${AUTHPROBE_CONFIG:-/etc/authprobe/probes.toml}
TEXTFILE_DIR=${TEXTFILE_DIR:-/var/lib/prometheus/node-exporter}
LOCK=${AUTHPROBE_LOCK:-/run/lock/authprobe-textfile.lock}
AUTHPROBE=${AUTHPROBE:-authprobe}

exec 9>"$LOCK" || exit 2
if ! flock -n 9; then
  echo "authprobe-textfile: the previous run is still going; skipped" >&2
  exit 0
fi

"$AUTHPROBE" run -c "$CONFIG" --format prometheus --output "$TEXTFILE_DIR/authprobe.prom" -q
# 0 all passed, 1 a probe failed (the metrics say which), 2 config error (nothing written).
exit $?
