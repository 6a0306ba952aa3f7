#!/usr/bin/env bash
# The README's two commands on a truly fresh Debian 12, as a new user's machine would be:
#   scripts/fresh-machine.sh
# Builds a clean bookworm root (debootstrap --variant=minbase, from Debian's mirror; the
# download is cached as a tarball), adds only Rust (this machine's toolchain, mounted
# read-only, as rustup would install it) and a copy of this checkout, then runs
# scripts/demo.sh and scripts/test.sh inside it. Nothing the development machine carries
# (pyenv Python, pip, Node 20, installed packages) is visible there.
#
# Needs root. Shares this machine's network (apt, crates.io, PyPI and npm are reached from
# the chroot), so the harness's ports must be free: run it with the harness down.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_SRC=$PWD

log() { printf '[fresh %ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, mounts, chroot)"
CACHE=${AUTHPROBE_CACHE:-$HOME/.cache/authprobe}
TARBALL=$CACHE/bookworm-minbase.tgz
WORK=${AUTHPROBE_FRESH_DIR:-/tmp/authprobe-fresh}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
toolchain=$(rustc --print sysroot) || die "no Rust toolchain on this machine"
nextest=$(command -v cargo-nextest || true)

cleanup() {
  # Servers the root started (a failed run leaves them up): stopped, so the ports are free.
  local pidfile
  for pidfile in "$WORK"/root/tmp/authprobe-servers/pids/*.pid; do
    [ -e "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  ip netns del authprobe-bastion 2>/dev/null || true
  for m in "$WORK/root/opt/rust" "$WORK/root/dev/shm" "$WORK/root/dev/pts" "$WORK/root/dev" "$WORK/root/proc" "$WORK/root/sys" "$WORK/root"; do
    mountpoint -q "$m" 2>/dev/null && umount -l "$m" || true
  done
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$WORK/root" "$CACHE"

if [ ! -f "$TARBALL" ]; then
  log "downloading a minimal bookworm (cached in $TARBALL)"
  debootstrap --variant=minbase --make-tarball="$TARBALL" bookworm "$WORK/tarball" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || die "debootstrap --make-tarball failed (log: $WORK/debootstrap.log)"
fi
log "unpacking a clean bookworm root in $WORK/root"
debootstrap --variant=minbase --unpack-tarball="$TARBALL" bookworm "$WORK/root" "$MIRROR" >>"$WORK/debootstrap.log" 2>&1 \
  || die "debootstrap failed (log: $WORK/debootstrap.log)"

R=$WORK/root
# `ip netns` inside a chroot needs its root to be a mount point.
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sys "$R/sys"
mount --bind /dev "$R/dev"
mount --bind /dev/pts "$R/dev/pts"
# A Debian machine has a tmpfs on /dev/shm (squid's shared memory needs it); the bind of
# /dev does not carry this machine's.
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
# apt must not start services on this machine's network.
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"
# An installed Debian has the installer's /etc/hosts, which names the machine itself
# ("127.0.1.1 NAME"); a debootstrapped root has none (netbase writes one without the name
# later), and clients that resolve their own host name (Microsoft's ODBC driver does) then
# fail where they would not on a real machine.
if [ -f "$R/etc/hosts" ]; then
  grep -qw "$(hostname)" "$R/etc/hosts" || printf '127.0.1.1\t%s\n' "$(hostname)" >> "$R/etc/hosts"
else
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n' \
    "$(hostname)" > "$R/etc/hosts"
fi
chmod +x "$R/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$R/etc/resolv.conf"
mkdir -p "$R/opt/rust" "$R/root/authprobe"
mount --bind -o ro "$toolchain" "$R/opt/rust"
[ -n "$nextest" ] && cp "$nextest" "$R/usr/local/bin/cargo-nextest"
log "copying this checkout (committed files only)"
git -C "$ROOT_SRC" archive HEAD | tar -x -C "$R/root/authprobe"

# Rust needs a C compiler and linker (aws-lc-sys builds with cc), and cargo fetches over
# HTTPS: what a new user installs with rustup's instructions.
# The machine's own network set-up comes along, as it would on any machine of this
# workplace: the CA certificates it trusts beyond Debian's (a registry proxy's), and the
# variables that point tools at the system bundle. Nothing else of its environment does.
passthrough=()
for var in SSL_CERT_FILE SSL_CERT_DIR PIP_CERT NODE_EXTRA_CA_CERTS CURL_CA_BUNDLE GIT_SSL_CAINFO PIP_DEFAULT_TIMEOUT \
  http_proxy https_proxy HTTP_PROXY HTTPS_PROXY no_proxy NO_PROXY; do
  [ -n "${!var:-}" ] && passthrough+=("$var=${!var}")
done
inside() {
  chroot "$R" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 CI="${CI:-}" "${passthrough[@]}" \
    PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CARGO_HOME=/root/.cargo /bin/bash -c "$1"
}
log "installing the Rust prerequisites (gcc, libc6-dev, ca-certificates, git)"
inside 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates git >/dev/null'
if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
  cp -r /usr/local/share/ca-certificates/. "$R/usr/local/share/ca-certificates/"
  inside 'update-ca-certificates >/dev/null 2>&1'
fi
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$R/etc/pip.conf"

log "README command 1: scripts/demo.sh"
inside 'cd /root/authprobe && scripts/demo.sh' > "$WORK/demo.log" 2>&1 || { tail -40 "$WORK/demo.log"; die "scripts/demo.sh failed on a fresh bookworm (log: $WORK/demo.log)"; }
tail -3 "$WORK/demo.log"
inside 'cd /root/authprobe && scripts/servers.sh down' >/dev/null 2>&1 || true

log "README command 2: scripts/test.sh"
inside 'cd /root/authprobe && CI=true scripts/test.sh' > "$WORK/test.log" 2>&1 || { tail -60 "$WORK/test.log"; die "scripts/test.sh failed on a fresh bookworm (log: $WORK/test.log)"; }
grep -E 'Summary|test result' "$WORK/test.log" | tail -2
log "both README commands pass on a fresh Debian 12"
