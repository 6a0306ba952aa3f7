# Shared by the bench scripts (sourced, not run): timing helpers, the generated configs,
# and the files the reference clients need.

# release_setup: starts the test servers and exports their endpoints, builds the release
# binary ($bin), makes a scratch directory removed on exit ($work), and raises the open-file
# limit for thousands of sockets.
release_setup() {
  scripts/servers.sh up
  set -a
  # shellcheck disable=SC1090
  . "$(scripts/servers.sh env)"
  set +a
  printf '[bench] building the release binary\n' >&2
  cargo build --release --quiet
  bin=$PWD/target/release/authprobe
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  ulimit -n 65536 2>/dev/null || true
}

now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# scale_config N TIMEOUT: a config of N http probes against the harness's nginx on stdout.
scale_config() {
  echo '[defaults]'
  echo "timeout = \"$2\""
  for i in $(seq 1 "$1"); do
    printf '[[probe]]\nname = "p%05d"\nkind = "http"\nurl = "http://127.0.0.1:%s/health?i=%d"\n' "$i" "$AP_HTTP_PORT" "$i"
  done
}

# scale_urls N: the same N URLs, one a line, for xargs curl.
scale_urls() { for i in $(seq 1 "$1"); do echo "http://127.0.0.1:$AP_HTTP_PORT/health?i=$i"; done; }

# validate_config: 10,000 https probes with bearer tokens and pins, for `authprobe validate`.
validate_config() {
  local pin
  pin=$(printf 'AB%.0s' $(seq 32) | sed 's/../&:/g; s/:$//')
  for i in $(seq 1 10000); do
    printf '[[probe]]\nname = "v%05d"\nkind = "http"\nurl = "https://host-%d.example.com/health"\nauth = { type = "bearer", token = "tok-%d" }\ntls = { pin_sha256 = ["%s"] }\n' "$i" "$i" "$i" "$pin"
  done
}

# reference_client_files DIR [CMD-PREFIX...]: known_hosts (scanned through the prefix,
# e.g. `ip netns exec NS`), the SFTP key and FreeTDS's config for tsql, written to DIR.
reference_client_files() {
  local dir=$1
  shift
  "$@" ssh-keyscan -p "$AP_SSH_PORT" 127.0.0.1 > "$dir/known_hosts" 2>/dev/null
  cp "$AP_SSH_DIR/client_ed25519" "$dir/id_ed25519"
  chmod 600 "$dir/id_ed25519"
  cat > "$dir/freetds.conf" <<CONF
[authprobe]
	host = localhost
	port = $AP_MSSQL_PORT
	tds version = 7.4
	encryption = require
	ca file = $AP_CA
CONF
}
