#!/usr/bin/env bash
# Round trips per check: runs the test servers and the clients inside a private network
# namespace whose loopback can delay every packet by DELAY_MS (RTT = 2 × DELAY_MS), times
# each check with the delay and without it, and prints (delayed − undelayed) ÷ RTT: the
# round trips the check waited for, with process start-up and CPU time cancelled out.
# Per probe kind: authprobe, the reference client doing the same check, and the
# protocol's minimum. `tc netem` is not available on these kernels; an NFQUEUE program
# (bench/netem_delay.py) holds each packet instead. Loopback only: nothing leaves the
# namespace. Prints figures, asserts nothing.
#
#   bench/rtt.sh [DELAY_MS=25] [RUNS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
DELAY=${1:-25}
RUNS=${2:-5}
NS=authprobe-rtt
STATE=/tmp/authprobe-rtt

need() { command -v "$1" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null; }; }
need iptables iptables
need ip iproute2
need bc bc
need curl curl
need psql postgresql-client
need mariadb mariadb-client
need tsql freetds-bin
need sftp openssh-client
need gcc gcc
dpkg -s libnetfilter-queue-dev python3-dev libc6-dev >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libnetfilter-queue-dev python3-dev libc6-dev >/dev/null
# The harness's own Python environment (from Debian's python3), never this machine's pip.
pybin=$(scripts/servers.sh python-env awscli NetfilterQueue==1.1.0)
# Everything the harness fetches (Debian packages, wheels, npm modules) is fetched out here:
# the namespace below cannot reach the registries. The harness comes up once outside (left
# as it was found), then starts inside from the caches.
outside_was_up=0
case "$(scripts/servers.sh status 2>/dev/null || true)" in *": running"*) outside_was_up=1 ;; esac
scripts/servers.sh up >/dev/null
[ "$outside_was_up" = 1 ] || scripts/servers.sh down >/dev/null
cargo build --quiet
bin=$PWD/target/debug/authprobe
work=$(mktemp -d)

cleanup() {
  [ -f "$work/sshd-nodelay.pid" ] && kill "$(cat "$work/sshd-nodelay.pid")" 2>/dev/null || true
  ip netns exec "$NS" env AUTHPROBE_STATE=$STATE AUTHPROBE_BASTION_NETNS=$NS-bastion scripts/servers.sh down >/dev/null 2>&1 || true
  [ -n "${delay_pid:-}" ] && kill "$delay_pid" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
in_ns() { ip netns exec "$NS" "$@"; }
in_ns ip link set lo up
# The delay holds each packet inside this host, where Linux's TCP autocorking sees it as not
# yet sent and holds the sender's next small write until it leaves: a server's two answers
# written back to back (SHOW GRANTS' rows, then the query's) would arrive a round trip apart,
# which no real network does (a NIC sends in microseconds). Measured with tcpdump here.
in_ns sysctl -qw net.ipv4.tcp_autocorking=0
# Its own state directory and bastion namespace: the test harness may be running beside it.
in_ns env AUTHPROBE_STATE=$STATE AUTHPROBE_BASTION_NETNS=$NS-bastion AUTHPROBE_SERVERS=native scripts/servers.sh up >/dev/null
set -a
# shellcheck disable=SC1091
. "$STATE/servers.env"
set +a

reference_client_files "$work" ip netns exec "$NS"

# Not through in_ns: $! must be the delay program itself (ip netns exec execs it).
ip netns exec "$NS" "$pybin/python3" bench/netem_delay.py 7 "$DELAY" >/dev/null 2>&1 &
delay_pid=$!
sleep 1
delay_on() { in_ns iptables -A OUTPUT -o lo -j NFQUEUE --queue-num 7; }
delay_off() { in_ns iptables -D OUTPUT -o lo -j NFQUEUE --queue-num 7; }

ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000)); }
delay_on
rtt=$(in_ns "$pybin/python3" -c "
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
delay_off

# median_ms 0|1 CMD...: the median wall time of RUNS runs, without or with the delay.
median_ms() {
  local on=$1; shift
  [ "$on" = 1 ] && delay_on
  local t=()
  for _ in $(seq "$RUNS"); do t+=("$(ms in_ns "$@")"); done
  [ "$on" = 1 ] && delay_off
  printf '%s\n' "${t[@]}" | median
}
rounds() { # CMD...: (delayed − undelayed) ÷ RTT
  local fast slow
  fast=$(median_ms 0 "$@")
  slow=$(median_ms 1 "$@")
  echo "($slow - $fast) / $rtt" | bc -l
}
run_pair() { # NAME MIN REF_CMD... -- AP_CMD...
  local name=$1 min=$2; shift 2
  local ref=() ap=()
  while [ "$1" != -- ]; do ref+=("$1"); shift; done
  shift; ap=("$@")
  # Both must pass undelayed, or the comparison means nothing: a failing check is shown as
  # FAILED instead of a figure (a failure can be quicker than the real check).
  local ap_rounds=FAILED ref_rounds=FAILED
  in_ns "${ap[@]}" >/dev/null 2>&1 && ap_rounds=$(printf '%.1f' "$(rounds "${ap[@]}")")
  in_ns "${ref[@]}" >/dev/null 2>&1 && ref_rounds=$(printf '%.1f' "$(rounds "${ref[@]}")")
  printf '%-16s %7s %10s %10s %8s\n' "$name" "$rtt" "$ap_rounds" "$ref_rounds" "$min"
  [ "$ap_rounds" != FAILED ] && [ "$ref_rounds" != FAILED ] || failed=1
}

echo
printf '%-16s %7s %10s %10s %8s\n' kind "RTT ms" authprobe reference minimum
run_pair https 3 curl -sf -o /dev/null --cacert "$AP_CA" -H "Authorization: Bearer $AP_BEARER_TOKEN" "https://localhost:$AP_HTTPS_PORT/bearer" -- \
  "$bin" check "https://localhost:$AP_HTTPS_PORT/bearer" --bearer-env AP_BEARER_TOKEN --ca "$AP_CA"
run_pair postgres 7 env PGPASSWORD="$AP_PG_PASSWORD" psql -X -tA "host=localhost port=$AP_PG_PORT dbname=appdb user=app_user sslmode=verify-full sslrootcert=$AP_CA" -c 'SELECT 1' -- \
  env PGPASSWORD="$AP_PG_PASSWORD" "$bin" check "postgres://app_user@localhost:$AP_PG_PORT/appdb?sslmode=verify-full&sslrootcert=$AP_CA"
run_pair mysql 5 env MYSQL_PWD="$AP_MYSQL_PASSWORD" mariadb -h 127.0.0.1 -P "$AP_MYSQL_PORT" -u app_user --ssl-ca="$AP_CA" --ssl-verify-server-cert -e 'SELECT 1' -- \
  env MYSQL_PWD="$AP_MYSQL_PASSWORD" "$bin" check "mysql://app_user@localhost:$AP_MYSQL_PORT/?ssl-mode=VERIFY_IDENTITY&ssl-ca=$AP_CA"
run_pair mssql 6 sh -c "printf 'SELECT 1\ngo\nquit\n' | FREETDSCONF=$work/freetds.conf tsql -S authprobe -U app_user -P \"\$AP_MSSQL_PASSWORD\"" -- \
  env MSSQL_PASSWORD="$AP_MSSQL_PASSWORD" "$bin" check "mssql://app_user@localhost:$AP_MSSQL_PORT/?encrypt=verify-full&ssl-ca=$AP_CA"
run_pair s3 2 env AWS_ACCESS_KEY_ID="$AP_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$AP_S3_SECRET_KEY" AWS_DEFAULT_REGION=us-east-1 \
  "$pybin/aws" --endpoint-url "http://127.0.0.1:$AP_S3_PORT" s3api list-objects-v2 --bucket demo-bucket --max-keys 1 -- \
  env AWS_ACCESS_KEY_ID="$AP_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$AP_S3_SECRET_KEY" "$bin" check "s3://demo-bucket/?endpoint=http://127.0.0.1:$AP_S3_PORT"
run_pair sftp 8 sh -c "echo 'ls data' | sftp -q -b - -i $work/id_ed25519 -o UserKnownHostsFile=$work/known_hosts -o StrictHostKeyChecking=yes -P $AP_SSH_PORT sftp_key@127.0.0.1" -- \
  "$bin" check "sftp://sftp_key@127.0.0.1:$AP_SSH_PORT/~/data" -i "$work/id_ed25519" --known-hosts "$work/known_hosts"
# The same check against a second sshd started with TCP_NODELAY on its connections
# (bench/nodelay.c, an LD_PRELOAD shim): what remains is the protocol's, not sshd's writes.
gcc -shared -fPIC -O2 -o "$work/nodelay.so" bench/nodelay.c -ldl
nodelay_port=$(in_ns "$pybin/python3" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
sed -e "s/^Port .*/Port $nodelay_port/" -e "s|^PidFile .*|PidFile $work/sshd-nodelay.pid|" "$STATE/ssh/sshd_config" > "$work/sshd_nodelay_config"
in_ns env LD_PRELOAD="$work/nodelay.so" /usr/sbin/sshd -f "$work/sshd_nodelay_config"
sed "s/^\[127.0.0.1\]:$AP_SSH_PORT /[127.0.0.1]:$nodelay_port /" "$work/known_hosts" > "$work/known_hosts_nodelay"
cat "$work/known_hosts_nodelay" >> "$work/known_hosts"
run_pair sftp-nodelay 8 sh -c "echo 'ls data' | sftp -q -b - -i $work/id_ed25519 -o UserKnownHostsFile=$work/known_hosts -o StrictHostKeyChecking=yes -P $nodelay_port sftp_key@127.0.0.1" -- \
  "$bin" check "sftp://sftp_key@127.0.0.1:$nodelay_port/~/data" -i "$work/id_ed25519" --known-hosts "$work/known_hosts"
# Through the proxies (everything on the delayed loopback, so every hop the proxy makes
# counts too): next to curl through the same proxy, which makes the same hops.
squid_url="http://$AP_PROXY_USER:$AP_PROXY_PASSWORD@127.0.0.1:$AP_SQUID_PORT"
socks_url="socks5h://$AP_PROXY_USER:$AP_PROXY_PASSWORD@127.0.0.1:$AP_SOCKS_PORT"
run_pair https+http-proxy 7 curl -sf -o /dev/null -x "$squid_url" --cacert "$AP_CA" -H "Authorization: Bearer $AP_BEARER_TOKEN" "https://localhost:$AP_HTTPS_PORT/bearer" -- \
  "$bin" check "https://localhost:$AP_HTTPS_PORT/bearer" --bearer-env AP_BEARER_TOKEN --ca "$AP_CA" --proxy "$squid_url" -q
run_pair https+socks5h 9 curl -sf -o /dev/null -x "$socks_url" --cacert "$AP_CA" -H "Authorization: Bearer $AP_BEARER_TOKEN" "https://localhost:$AP_HTTPS_PORT/bearer" -- \
  "$bin" check "https://localhost:$AP_HTTPS_PORT/bearer" --bearer-env AP_BEARER_TOKEN --ca "$AP_CA" --proxy "$socks_url" -q

# What credential hygiene's questions cost: one probe run with `hygiene` on and off.
hygiene_pair() { # NAME PROBE-KEYS
  local name=$1 keys=$2 on off
  printf '[[probe]]\nname = "on"\n%b\n\n[[probe]]\nname = "off"\nhygiene = false\n%b\n' "$keys" "$keys" > "$work/hygiene-$name.toml"
  on=$(printf '%.1f' "$(rounds "$bin" run -c "$work/hygiene-$name.toml" --only on -q)")
  off=$(printf '%.1f' "$(rounds "$bin" run -c "$work/hygiene-$name.toml" --only off -q)")
  printf '%-16s %10s %10s %10s\n' "$name" "$on" "$off" "$(printf '%.1f' "$(echo "$on - $off" | bc -l)")"
}
echo
printf '%-16s %10s %10s %10s\n' hygiene "on" "off" "extra"
db='host = "localhost"\ndatabase = "appdb"\ntls = { ca = "${AP_CA}" }'
hygiene_pair postgres "kind = \"postgres\"\nport = \"\${AP_PG_PORT}\"\nuser = \"\${AP_PG_USER}\"\npassword = \"\${AP_PG_PASSWORD}\"\n$db"
hygiene_pair mysql "kind = \"mysql\"\nport = \"\${AP_MYSQL_PORT}\"\nuser = \"\${AP_MYSQL_USER}\"\npassword = \"\${AP_MYSQL_PASSWORD}\"\n$db"
hygiene_pair mssql "kind = \"mssql\"\nport = \"\${AP_MSSQL_PORT}\"\nuser = \"\${AP_MSSQL_USER}\"\npassword = \"\${AP_MSSQL_PASSWORD}\"\n$db"
hygiene_pair s3-moto 'kind = "s3"\nbucket = "${AP_MOTO_ALLOWED_BUCKET}"\nendpoint = "http://127.0.0.1:${AP_MOTO_PORT}"\nauth = { type = "static", access_key_id = "${AP_MOTO_ACCESS_KEY}", secret_access_key = "${AP_MOTO_SECRET_KEY}" }'
hygiene_pair azure_blob 'kind = "azure_blob"\naccount = "${AP_AZURE_STORAGE_ACCOUNT}"\ncontainer = "${AP_AZURE_CONTAINER}"\nendpoint = "https://127.0.0.1:${AP_AZURITE_PORT}/${AP_AZURE_STORAGE_ACCOUNT}"\ntls = { ca = "${AP_CA}" }\nauth = { type = "shared_key", key = "${AP_AZURE_STORAGE_KEY}" }'

echo
echo "Round trips waited for per check: (median delayed − median undelayed wall time) ÷ RTT, $RUNS runs"
echo "each, so process start-up and CPU time cancel out. Minimum: the protocol's round trips for the"
echo "check, TCP connect included. Hygiene: the same probe with its credential-hygiene questions"
echo "(roles, grants, public buckets, whose key) and without; PostgreSQL and SQL Server ask in the"
echo "check query's own write, S3's STS and IAM questions go out at once on their own connections."
echo
echo "What each minimum counts (a TCP handshake is 1; a server that speaks first adds 1 more: it"
echo "learns of the connection from the client's last handshake packet, half a round trip after the"
echo "client, and its first words take the other half):"
echo "  https     3    TCP 1, TLS 1.3 1, the request 1 (the harness's nginx offers TLS 1.3: Debian's"
echo "                 default offers 1.2 only, whose full handshake is a round trip more)"
echo "  postgres  7    TCP 1, SSLRequest 1 (PostgreSQL 17's direct TLS saves it; the harness runs 15),"
echo "                 TLS 1.3 1, startup to SCRAM challenge 1, client-first 1, client-final 1, query 1"
echo "  mysql     5    TCP 1, greeting 1, SSLRequest and TLS 1 (sent together), login 1, query 1"
echo "  mssql     6    TCP 1, PRELOGIN 1, TLS 1.2 inside TDS 2, LOGIN7 1, query 1"
echo "  s3        2    TCP 1, the signed request 1 (plain HTTP to the emulator)"
echo "  sftp      8    TCP 1, banners 1 (the KEXINITs go with them), key exchange 1, ssh-userauth"
echo "                 with a signed publickey request written behind it 1, channel 1, subsystem 1,"
echo "                 SFTP INIT with OPENDIR 1, READDIR 1. Against OpenSSH's sshd, 2 more that every"
echo "                 client pays (OpenSSH's sftp too; seen with tcpdump): sshd writes its KEXINIT after"
echo "                 its banner, and a channel's confirmation after the host-keys notice it sends on"
echo "                 login, and Nagle holds each second write until the client has acknowledged the"
echo "                 first. INIT could go right behind the subsystem request too (7), but sshd writes"
echo "                 that request's answer and SFTP's first answer apart, and Nagle would hold the"
echo "                 second for the same round trip: not done, nothing to gain against sshd."
echo "  sftp-nodelay   the same against a second sshd whose connections have TCP_NODELAY (an LD_PRELOAD"
echo "                 shim, bench/nodelay.c): without Nagle holding its second writes, the 2 are gone."
echo "  https+http-proxy  7  TCP to the proxy 1, CONNECT 2 (the proxy's own TCP to the server inside"
echo "                 it), then TLS 1.3 and the request 2 each: every exchange with the server crosses"
echo "                 both delayed legs"
echo "  https+socks5h  9  TCP to the proxy 1, method choice 1, username/password 1, CONNECT 2 (the"
echo "                 proxy's TCP inside it), TLS 1.3 2, the request 2"
echo "The namespace turns TCP autocorking off: with packets held inside the host, it would delay a"
echo "server's second small write by a round trip (seen with tcpdump), which no real network does."
[ -z "${failed:-}" ] || { echo "error: a check failed; its round trips were not measured" >&2; exit 1; }
