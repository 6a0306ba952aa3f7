#!/usr/bin/env bash
# Round-trip efficiency: runs the test servers and the clients inside a private network
# namespace whose loopback delays every packet by DELAY_MS (so RTT = 2 × DELAY_MS), and
# prints, per probe kind, elapsed time ÷ RTT for authprobe and for the reference client
# doing the same check, next to the protocol's minimum. `tc netem` is not available on
# these kernels; an NFQUEUE program (bench/netem_delay.py) holds each packet instead.
# Loopback only: nothing leaves the namespace. Prints figures, asserts nothing.
#
#   bench/rtt.sh [DELAY_MS=25] [RUNS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
DELAY=${1:-25}
RUNS=${2:-5}
NS=authprobe-rtt
STATE=/tmp/authprobe-rtt

need() { command -v "$1" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null; }; }
need iptables iptables
need ip iproute2
dpkg -s libnetfilter-queue-dev >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libnetfilter-queue-dev >/dev/null
python3 -c 'import netfilterqueue' 2>/dev/null || pip install -q NetfilterQueue==1.1.0
cargo build --quiet
bin=$PWD/target/debug/authprobe

cleanup() {
  ip netns exec "$NS" env AUTHPROBE_STATE=$STATE scripts/servers.sh down >/dev/null 2>&1 || true
  [ -n "${delay_pid:-}" ] && kill "$delay_pid" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
in_ns() { ip netns exec "$NS" "$@"; }
in_ns ip link set lo up
in_ns env AUTHPROBE_STATE=$STATE AUTHPROBE_SERVERS=native scripts/servers.sh up >/dev/null
set -a; . "$STATE/servers.env"; set +a
# Latency only after the servers are set up, so that set-up is not slowed down.
in_ns iptables -A OUTPUT -o lo -j NFQUEUE --queue-num 7
# Not through in_ns: $! must be the delay program itself (ip netns exec execs it).
ip netns exec "$NS" python3 bench/netem_delay.py 7 "$DELAY" >/dev/null 2>&1 &
delay_pid=$!
sleep 1

ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
rtt=$(in_ns python3 -c "
import socket, time, threading
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); port = s.getsockname()[1]
def echo():
    c, _ = s.accept()
    while (d := c.recv(16)): c.send(d)
threading.Thread(target=echo, daemon=True).start()
c = socket.create_connection(('127.0.0.1', port)); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
r = []
for _ in range(7):
    t = time.perf_counter(); c.send(b'x'); c.recv(16); r.append((time.perf_counter() - t) * 1000)
print(round(sorted(r)[3]))")

declare -A AP REF
run_pair() { # NAME MIN REF_CMD... -- AP_CMD...
  local name=$1 min=$2; shift 2
  local ref=() ap=(); while [ "$1" != -- ]; do ref+=("$1"); shift; done; shift; ap=("$@")
  local a=() r=()
  for _ in $(seq "$RUNS"); do
    r+=("$(ms in_ns "${ref[@]}")")
    a+=("$(ms in_ns "${ap[@]}")")
  done
  local am rm
  am=$(printf '%s\n' "${a[@]}" | median); rm=$(printf '%s\n' "${r[@]}" | median)
  printf '%-10s %6s %9s %7.1f %11s %7.1f %8s\n' "$name" "$rtt" "$am" "$(echo "$am / $rtt" | bc -l)" "$rm" "$(echo "$rm / $rtt" | bc -l)" "$min"
}

echo
printf '%-10s %6s %9s %7s %11s %7s %8s\n' kind "RTT" "authprobe" "÷RTT" "reference" "÷RTT" "minimum"
run_pair https 3 curl -s -o /dev/null --cacert "$AP_CA" -H "Authorization: Bearer $AP_BEARER_TOKEN" "https://localhost:$AP_HTTPS_PORT/bearer" -- \
  "$bin" check "https://localhost:$AP_HTTPS_PORT/bearer" --bearer-env AP_BEARER_TOKEN --ca "$AP_CA"
run_pair postgres 7 env PGPASSWORD="$AP_PG_PASSWORD" psql -X -tA "host=localhost port=$AP_PG_PORT dbname=appdb user=app_user sslmode=verify-full sslrootcert=$AP_CA" -c 'SELECT 1' -- \
  env PGPASSWORD="$AP_PG_PASSWORD" "$bin" check "postgres://app_user@localhost:$AP_PG_PORT/appdb?sslmode=verify-full&sslrootcert=$AP_CA"
run_pair mysql 5 mariadb -h 127.0.0.1 -P "$AP_MYSQL_PORT" -u app_user "-p$AP_MYSQL_PASSWORD" --ssl-ca="$AP_CA" --ssl-verify-server-cert -e 'SELECT 1' -- \
  env MYSQL_PWD="$AP_MYSQL_PASSWORD" "$bin" check "mysql://app_user@localhost:$AP_MYSQL_PORT/?ssl-mode=VERIFY_IDENTITY&ssl-ca=$AP_CA"
echo
echo "RTT in ms (median echo over the delayed loopback); times are medians of $RUNS runs, A/B interleaved;"
echo "÷RTT is elapsed time in round trips (process start-up included); minimum is the protocol's round trips for the check."
