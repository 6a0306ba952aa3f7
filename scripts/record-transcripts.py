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


def tds_answers_after_login(recorded):
    """The server's cleartext TDS packets after the login-only TLS handshake: the answer to
    LOGIN7 and to the check query, as the wire crate's token walker reads them."""
    packets, at = [], 0
    while at + 8 <= len(recorded):
        length = int.from_bytes(recorded[at + 2:at + 4], "big")
        packets.append(recorded[at:at + length])
        at += length
    # PRELOGIN answer (0x04), the handshake inside PRELOGIN packets (0x12), then answers.
    last_handshake = max((i for i, p in enumerate(packets) if p[0] == 0x12), default=0)
    return b"".join(packets[last_handshake + 1:])


def record(seeds, kind, name, target_port, probe_body, fixture_dir=None):
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
    if fixture_dir:
        os.makedirs(fixture_dir, exist_ok=True)
        fixture = os.path.join(fixture_dir, name + ".bin")
        with open(out, "rb") as f, open(fixture, "wb") as g:
            g.write(tds_answers_after_login(f.read()))
        print(f"{fixture}: {os.path.getsize(fixture)} bytes")


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
    # The SQL Server stand-in's answers beyond a login (held to Microsoft's ODBC driver,
    # tedious, python-tds and tsql in tests/harness_servers.rs; the bytes are the server's,
    # whichever client asks). Encrypt=no, verified: the login travels in a login-only TLS
    # session and the answers after it in clear; those are also kept as the tds-wire
    # crate's fixtures.
    fixtures = "crates/tds-wire/fixtures"
    mssql = 'user = "${AP_MSSQL_USER}"\npassword = "${AP_MSSQL_PASSWORD}"\ntls = { mode = "disable", ca = "${AP_CA}" }'
    record(seeds, "tds", "routing-envchange", int(env["AP_MSSQL_GATEWAY_PORT"]), mssql, fixtures)
    record(seeds, "tds", "cannot-open-database-4060", int(env["AP_MSSQL_PORT"]),
           f'{mssql}\ndatabase = "no_such_db"', fixtures)
    record(seeds, "tds", "permission-denied-229", int(env["AP_MSSQL_PORT"]),
           f'{mssql}\nquery = "SELECT * FROM payroll"', fixtures)
    record(seeds, "tds", "packet-size-512", int(env["AP_MSSQL_ROUTED_PORT"]),
           f'''{mssql}\nquery = "SELECT REPLICATE('x', 1500) AS filler"''', fixtures)


if __name__ == "__main__":
    main()
