"""A MySQL 8 stand-in for the parts MariaDB lacks: caching_sha2_password (the default of
MySQL 8.0, 8.4 and 9.x) and sha256_password, as MySQL 8.4 implements them.

- caching_sha2_password: the fast path when the server's cache holds the account (a
  successful full authentication fills it; the "cold" account is never cached), full
  authentication otherwise: the password in clear over TLS, or RSA-OAEP encrypted to the
  server's key (sent when the client asks for it, or known to the client beforehand).
- sha256_password: the password over TLS, or RSA-encrypted.
- wrong passwords and unknown users: 1045; an expired password: 1862 at login for clients
  that cannot handle it, else the login succeeds and every query fails with 1820; a
  second listener with require_secure_transport=ON answers a login without TLS with 3159.
- a SELECT answered with one row, other statements with OK; COM_PING, COM_QUIT.

Each behaviour is checked with clients not written here (the MariaDB client's Connector/C
and PyMySQL) by tests/mysql8_standin.rs before authprobe is held to it.

    mysql8_standin.py serve PORT SECURE_PORT CERT KEY STATE_DIR
"""

import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import threading

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CLIENT_LONG_PASSWORD = 1
CLIENT_CONNECT_WITH_DB = 8
CLIENT_PROTOCOL_41 = 0x200
CLIENT_SSL = 0x800
CLIENT_TRANSACTIONS = 0x2000
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_MULTI_RESULTS = 0x20000
CLIENT_PLUGIN_AUTH = 0x80000
CLIENT_CONNECT_ATTRS = 0x100000
CLIENT_PLUGIN_AUTH_LENENC = 0x200000
CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 0x400000
SERVER_CAPS = (CLIENT_LONG_PASSWORD | CLIENT_CONNECT_WITH_DB | CLIENT_PROTOCOL_41 | CLIENT_SSL
               | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_RESULTS | CLIENT_PLUGIN_AUTH
               | CLIENT_CONNECT_ATTRS | CLIENT_PLUGIN_AUTH_LENENC | CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS)
VERSION = b"8.4.3-authprobe-standin"


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def xor(a, b):
    return bytes(x ^ b[i % len(b)] for i, x in enumerate(a))


class Packets:
    def __init__(self, sock):
        self.sock, self.seq = sock, 0

    def read(self):
        head = self._exact(4)
        length = head[0] | head[1] << 8 | head[2] << 16
        self.seq = (head[3] + 1) & 0xFF
        return self._exact(length)

    def _exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def write(self, payload):
        self.sock.sendall(struct.pack("<I", len(payload))[:3] + bytes([self.seq]) + payload)
        self.seq = (self.seq + 1) & 0xFF


def err(code, state, message):
    return b"\xff" + struct.pack("<H", code) + b"#" + state + message.encode()


def ok(status=2):
    return b"\x00\x00\x00" + struct.pack("<HH", status, 0)


def lenenc(n):
    return bytes([n]) if n < 251 else b"\xfc" + struct.pack("<H", n)


def read_lenenc(data, at):
    first = data[at]
    if first < 251:
        return first, at + 1
    if first == 0xFC:
        return struct.unpack_from("<H", data, at + 1)[0], at + 3
    if first == 0xFD:
        return int.from_bytes(data[at + 1:at + 4], "little"), at + 4
    return struct.unpack_from("<Q", data, at + 1)[0], at + 9


def cstring(data, at):
    end = data.index(b"\0", at)
    return data[at:end], end + 1


class Server:
    def __init__(self, cert, key, state):
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert, key)
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        with open(os.path.join(state, "public_key.pem"), "wb") as f:
            f.write(self.public_pem)
        env = os.environ
        self.accounts = {
            env["AP_MYSQL8_USER"]: ("caching_sha2_password", env["AP_MYSQL8_PASSWORD"], {}),
            env["AP_MYSQL8_COLD_USER"]: ("caching_sha2_password", env["AP_MYSQL8_PASSWORD"], {"never_cached": True}),
            env["AP_MYSQL8_SHA256_USER"]: ("sha256_password", env["AP_MYSQL8_PASSWORD"], {}),
            env["AP_MYSQL8_EXPIRED_USER"]: ("caching_sha2_password", env["AP_MYSQL8_PASSWORD"], {"expired": True}),
        }
        self.cache = set()
        self.lock = threading.Lock()
        self.log = open(os.path.join(state, "mysql8.log"), "a", buffering=1)

    def serve(self, port, secure_only):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=self.session, args=(conn, secure_only), daemon=True).start()

    def session(self, conn, secure_only):
        try:
            conn.settimeout(30)
            self.login(conn, secure_only)
        except (EOFError, OSError, ssl.SSLError, ValueError, IndexError):
            pass
        finally:
            conn.close()

    def note(self, what):
        self.log.write(what + "\n")

    def login(self, conn, secure_only):
        p = Packets(conn)
        scramble = os.urandom(20).replace(b"\0", b"\1")
        greeting = (b"\x0a" + VERSION + b"\0" + struct.pack("<I", threading.get_ident() & 0xFFFFFFFF)
                    + scramble[:8] + b"\0" + struct.pack("<H", SERVER_CAPS & 0xFFFF) + bytes([255])
                    + struct.pack("<H", 2) + struct.pack("<H", SERVER_CAPS >> 16) + bytes([21]) + b"\0" * 10
                    + scramble[8:] + b"\0" + b"caching_sha2_password\0")
        p.write(greeting)
        response = p.read()
        caps = struct.unpack_from("<I", response)[0]
        tls = False
        if caps & CLIENT_SSL and len(response) == 32:
            conn = self.tls.wrap_socket(conn, server_side=True)
            p.sock, tls = conn, True
            response = p.read()
            caps = struct.unpack_from("<I", response)[0]
        if secure_only and not tls:
            p.write(err(3159, b"HY000", "Connections using insecure transport are prohibited while --require_secure_transport=ON."))
            self.note("3159 insecure transport")
            return
        user, at = cstring(response, 32)
        user = user.decode()
        if caps & CLIENT_PLUGIN_AUTH_LENENC:
            n, at = read_lenenc(response, at)
        else:
            n, at = response[at], at + 1
        answer = response[at:at + n]
        at += n
        if caps & CLIENT_CONNECT_WITH_DB and at < len(response):
            _, at = cstring(response, at)
        client_plugin = b""
        if caps & CLIENT_PLUGIN_AUTH and at < len(response):
            client_plugin, at = cstring(response, at)
        account = self.accounts.get(user)
        denied = err(1045, b"28000", f"Access denied for user '{user}'@'localhost' (using password: {'YES' if answer else 'NO'})")
        if account is None:
            p.write(denied)
            return
        plugin, password, flags = account
        if client_plugin.decode() != plugin:
            p.write(b"\xfe" + plugin.encode() + b"\0" + scramble + b"\0")
            answer = p.read()
        authenticated = (self.caching_sha2 if plugin == "caching_sha2_password" else self.sha256)(
            p, user, password, flags, scramble, answer, tls)
        if not authenticated:
            self.note(f"1045 {user} {plugin}")
            p.write(denied)
            return
        if flags.get("expired") and not caps & CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS:
            p.write(err(1862, b"HY000", "Your password has expired. To log in you must change it using a client that supports expired passwords."))
            self.note(f"1862 {user}")
            return
        p.write(ok())
        self.note(f"ok {user} {plugin} tls={tls}")
        self.commands(p, flags.get("expired", False))

    def full_auth_password(self, p, scramble, tls, first=None):
        """The password of a full authentication: in clear over TLS, else RSA-encrypted."""
        data = first if first is not None else p.read()
        if tls:
            return data.rstrip(b"\0")
        if data == b"\x02" or data == b"\x01":
            p.write(b"\x01" + self.public_pem)
            self.note("sent the RSA public key")
            data = p.read()
        if len(data) != self.rsa.key_size // 8:
            return None
        plain = self.rsa.decrypt(data, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
        return xor(plain, scramble[:20]).rstrip(b"\0")

    def caching_sha2(self, p, user, password, flags, scramble, answer, tls):
        if not answer:
            return password == ""
        stage2 = sha256(sha256(password.encode()))
        with self.lock:
            warm = user in self.cache
        if warm:
            # The fast path: SHA256(password) recovered from the answer must hash to stage2.
            if len(answer) == 32 and sha256(xor(answer, sha256(stage2, scramble[:20]))) == stage2:
                p.write(b"\x01\x03")
                self.note(f"fast path {user}")
                return True
            return False
        p.write(b"\x01\x04")
        self.note(f"full authentication {user} tls={tls}")
        given = self.full_auth_password(p, scramble, tls)
        if given is None or given != password.encode():
            return False
        if not flags.get("never_cached"):
            with self.lock:
                self.cache.add(user)
        return True

    def sha256(self, p, user, password, flags, scramble, answer, tls):
        if tls:
            given = answer.rstrip(b"\0")
        else:
            given = self.full_auth_password(p, scramble, tls, first=answer)
        return given is not None and given == password.encode()

    def commands(self, p, expired):
        while True:
            p.seq = 0
            packet = p.read()
            command = packet[:1]
            if command == b"\x01":
                return
            p.seq = 1
            if command == b"\x0e":
                p.write(ok())
            elif command == b"\x03":
                if expired:
                    p.write(err(1820, b"HY000", "You must reset your password using ALTER USER statement before executing this statement."))
                    continue
                if not packet[1:].lstrip().upper().startswith(b"SELECT"):
                    p.write(ok())  # SET, USE and the like
                    continue
                column = (lenenc(3) + b"def" + lenenc(0) + lenenc(0) + lenenc(0) + lenenc(1) + b"1" + lenenc(0)
                          + b"\x0c" + struct.pack("<HIBHB", 63, 1, 8, 0x81, 0) + b"\0\0")
                p.write(lenenc(1))
                p.write(column)
                p.write(b"\xfe\0\0\x02\0")
                p.write(lenenc(1) + b"1")
                p.write(b"\xfe\0\0\x02\0")
            else:
                p.write(err(1047, b"08S01", "Unknown command"))


def main():
    if len(sys.argv) != 7 or sys.argv[1] != "serve":
        sys.exit(__doc__)
    _, _, port, secure_port, cert, key, state = sys.argv
    server = Server(cert, key, state)
    threading.Thread(target=server.serve, args=(int(secure_port), True), daemon=True).start()
    print(json.dumps({"port": int(port), "secure_port": int(secure_port)}), flush=True)
    server.serve(int(port), False)


if __name__ == "__main__":
    main()
