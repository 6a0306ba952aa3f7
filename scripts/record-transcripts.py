#!/usr/bin/env python3
"""Records what real servers say to authprobe, as seeds for the parsers' fuzzing.

Usage (with the harness up and its env loaded, and target/debug/authprobe built):
    scripts/record-transcripts.py fuzz/seeds

For each server it starts a loopback relay that writes every byte the server sends to
fuzz/seeds/KIND/NAME.bin, and runs `authprobe run` through the relay. Sessions are
unencrypted (tls.mode = "disable") so that the bytes are the protocol's own; what a
server sends before TLS starts is recorded even where it then insists on TLS.
Standard library only; a development tool, not part of the test suite.
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading


def relay(target_port, out_path):
    """Listens on a free loopback port; relays one connection to target_port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def run():
        client, _ = listener.accept()
        server = socket.create_connection(("127.0.0.1", target_port))
        recorded = bytearray()

        def pump(src, dst, keep):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    if keep:
                        recorded.extend(data)
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        up = threading.Thread(target=pump, args=(client, server, False))
        up.start()
        pump(server, client, True)
        up.join()
        with open(out_path, "wb") as f:
            f.write(bytes(recorded))

    thread = threading.Thread(target=run)
    thread.start()
    return port, thread


def record(seeds, kind, name, target_port, probe_body):
    os.makedirs(os.path.join(seeds, kind), exist_ok=True)
    out = os.path.join(seeds, kind, name + ".bin")
    port, thread = relay(target_port, out)
    config = f'[[probe]]\nname = "{name}"\nkind = "{kind if kind != "tds" else "mssql"}"\nhost = "127.0.0.1"\nport = {port}\n{probe_body}\n'
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(config)
    subprocess.run(["target/debug/authprobe", "run", "-c", f.name, "-q"], env=os.environ, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    thread.join(timeout=10)
    print(f"{out}: {os.path.getsize(out)} bytes")


def main():
    seeds = sys.argv[1] if len(sys.argv) > 1 else "fuzz/seeds"
    env = os.environ
    record(seeds, "postgres", "scram-login-and-query", int(env["AP_PG_PORT"]),
           'user = "${AP_PG_USER}"\npassword = "${AP_PG_PASSWORD}"\ndatabase = "appdb"\ntls = { mode = "disable" }')
    record(seeds, "postgres", "wrong-password", int(env["AP_PG_PORT"]),
           'user = "${AP_PG_USER}"\npassword = "not-the-password"\ndatabase = "appdb"\ntls = { mode = "disable" }')
    record(seeds, "postgres", "no-such-database", int(env["AP_PG_PORT"]),
           'user = "${AP_PG_USER}"\npassword = "${AP_PG_PASSWORD}"\ndatabase = "nosuchdb"\ntls = { mode = "disable" }')
    record(seeds, "mysql", "login-and-query", int(env["AP_MYSQL_PORT"]),
           'user = "${AP_MYSQL_USER}"\npassword = "${AP_MYSQL_PASSWORD}"\nquery = "SELECT item FROM appdb.orders"\ntls = { mode = "disable" }')
    record(seeds, "mysql", "ed25519-login", int(env["AP_MYSQL_PORT"]),
           'user = "${AP_MYSQL_ED25519_USER}"\npassword = "${AP_MYSQL_ED25519_PASSWORD}"\ntls = { mode = "disable" }')
    record(seeds, "mysql", "wrong-password", int(env["AP_MYSQL_PORT"]),
           'user = "${AP_MYSQL_USER}"\npassword = "not-the-password"\ntls = { mode = "disable" }')
    # The MySQL 8 stand-in: caching_sha2_password's full authentication by RSA (the key
    # configured, and asked of the server), sha256_password, an expired password, 3159.
    mysql8 = 'password = "${AP_MYSQL8_PASSWORD}"\ntls = { mode = "disable" }'
    record(seeds, "mysql", "caching-sha2-rsa-pinned-key", int(env["AP_MYSQL8_PORT"]),
           f'user = "${{AP_MYSQL8_COLD_USER}}"\n{mysql8}\nserver_public_key = "${{AP_MYSQL8_PUBLIC_KEY}}"')
    record(seeds, "mysql", "caching-sha2-rsa-asked", int(env["AP_MYSQL8_PORT"]),
           f'user = "${{AP_MYSQL8_COLD_USER}}"\n{mysql8}\nallow_unverified_password = true')
    record(seeds, "mysql", "sha256-rsa-pinned-key", int(env["AP_MYSQL8_PORT"]),
           f'user = "${{AP_MYSQL8_SHA256_USER}}"\n{mysql8}\nserver_public_key = "${{AP_MYSQL8_PUBLIC_KEY}}"')
    record(seeds, "mysql", "expired-password", int(env["AP_MYSQL8_PORT"]),
           f'user = "${{AP_MYSQL8_EXPIRED_USER}}"\n{mysql8}\nallow_unverified_password = true')
    record(seeds, "mysql", "insecure-transport-3159", int(env["AP_MYSQL8_SECURE_PORT"]),
           f'user = "${{AP_MYSQL8_USER}}"\n{mysql8}')
    record(seeds, "tds", "prelogin-answer", int(env["AP_MSSQL_PORT"]),
           'user = "${AP_MSSQL_USER}"\npassword = "${AP_MSSQL_PASSWORD}"\ntls = { mode = "disable" }')


if __name__ == "__main__":
    main()
