#!/usr/bin/env python3
"""SQL Server stand-in: pysqlbridge (a TDS server whose protocol layer is a state machine
over byte buffers) with the harness's certificate, SQL logins from its config file and
tables from CSV files, extended where SQL Server and Azure SQL behave in ways authprobe must
handle and pysqlbridge does not model:

- packet size: the client's LOGIN7 request is honoured up to the listener's limit and
  announced with ENVCHANGE 4; answers are split at it, and a client packet larger than it
  ends the connection (SQL Server closes a session whose packets exceed the negotiated size);
- databases: a LOGIN7 naming a database the server does not have is refused with Msg 4060
  and then Msg 18456, in that order, as SQL Server does; the login's database is announced;
- permissions: a login denied a table gets Msg 229 (severity 14, state 5) for a batch that
  reads it;
- roles: IS_SRVROLEMEMBER and IS_MEMBER answer 1 for a role the config gives the login
  (sysadmin, db_owner) and 0 otherwise, as SQL Server does for its fixed roles (pysqlbridge
  keeps no roles and answers 0 to everyone);
- routing (Azure SQL's Redirect policy): a gateway listener checks the login, then answers
  LOGINACK, ENVCHANGE 20 (protocol TCP, port, server name) and DONE; the client must close
  and log in again at the routed host;
- TDS 8 strict: TLS first (ALPN tds/8.0), then PRELOGIN and LOGIN7 inside it, with no
  inner handshake.

Each behaviour is checked with clients not written here (Microsoft's ODBC driver through
mssql-python, FreeTDS tsql, python-tds) in tests/harness_servers.rs.

Usage: mssql_standin.py BRIDGE_CONFIG STANDIN_CONFIG CERT KEY
STANDIN_CONFIG (JSON): {"database": "appdb", "denied": {"login": ["table", ...]},
  "roles": {"login": ["sysadmin", "db_owner"]},
  "listeners": [{"port": N, "packet_size_limit": N, "route_to": "host:port",
                 "strict": bool, "cert": path, "key": path}, ...]}
"""
import json
import logging
import re
import socket
import socketserver
import ssl
import sys
import threading

from pysqlbridge.catalog import load as load_catalog
from pysqlbridge.certificate import load as load_certificate
from pysqlbridge.logins import load as load_logins
from pysqlbridge.tds.connection import Connection, ConnectionState
from pysqlbridge.tds.login import Login7, deobfuscate_password
from pysqlbridge.tds.packet import (
    DEFAULT_PACKET_SIZE,
    PacketType,
    TdsProtocolError,
    build_message,
    build_packet,
    iter_packets,
    next_session_id,
    reassemble,
)
from pysqlbridge.tds.prelogin import Encryption, Prelogin, server_response
from pysqlbridge.tds.result import QueryError
from pysqlbridge.tds.token import (
    DoneStatus,
    done,
    error,
    login_ack,
    login_response,
    negotiate,
)

log = logging.getLogger("standin")

MIN_PACKET_SIZE = 512
MAX_PACKET_SIZE = 32767
LOGIN_FAILED = 18456
CANNOT_OPEN_DATABASE = 4060
PERMISSION_DENIED = 229
ROUTING = 20


class ClearTunnel:
    """Under TDS 8 the socket is already TLS: the inner tunnel passes bytes through."""

    handshake_complete = True

    def unwrap(self, data: bytes) -> bytes:
        return data

    def wrap(self, data: bytes) -> bytes:
        return data


def routing_envchange(host: str, port: int) -> bytes:
    """ENVCHANGE type 20: new value = protocol (0, TCP), port, server name; old value empty."""
    name = host.encode("utf-16-le")
    value = bytes([0]) + port.to_bytes(2, "little") + len(host).to_bytes(2, "little") + name
    body = bytes([ROUTING]) + len(value).to_bytes(2, "little") + value + (0).to_bytes(2, "little")
    return bytes([0xE3]) + len(body).to_bytes(2, "little") + body


class FaithfulConnection(Connection):
    def __init__(self, certificate, *, listener: dict, **kwargs) -> None:
        super().__init__(certificate, **kwargs)
        self._listener = listener
        self._packet_size = DEFAULT_PACKET_SIZE
        self._login_database = kwargs.get("database") or "master"

    @staticmethod
    def _expect(source: bytearray, kind: PacketType):
        """The next whole message in `source`, if one is there; it must be a `kind`."""
        message = reassemble(source)
        if message is None:
            return None
        del source[: message.consumed]
        if message.type is not kind:
            raise TdsProtocolError(f"expected {kind.name}, got {message.type.name}")
        return message

    # -- TDS 8: PRELOGIN inside the TLS the socket already carries, no inner handshake
    def _step_prelogin(self, responses):
        if not self._listener.get("strict"):
            return super()._step_prelogin(responses)
        message = self._expect(self._buffer, PacketType.PRELOGIN)
        if message is None:
            return False
        self._client_prelogin = Prelogin.parse(message.payload)
        log.info("strict: PRELOGIN inside TLS, client ENCRYPTION=%s", self._client_prelogin.encryption)
        # The ENCRYPTION option means nothing once TLS came first; SQL Server answers it
        # as not applicable.
        answer = server_response(encryption=Encryption.NOT_SUPPORTED, asked=self._client_prelogin)
        responses.append(build_packet(PacketType.TABULAR_RESULT, answer.build()))
        self._tunnel = ClearTunnel()
        self._session_encrypted = False
        self._state = ConnectionState.EXPECT_LOGIN
        return True

    def _check_packet_sizes(self, source) -> None:
        for header, _ in iter_packets(bytes(source)):
            if header.length > self._packet_size:
                log.warning("client packet of %d bytes exceeds the negotiated %d: closing",
                            header.length, self._packet_size)
                raise TdsProtocolError("packet larger than the negotiated packet size")

    def _take_message(self):
        if self._session_encrypted and self._tunnel is not None and self._buffer:
            self._plaintext += self._tunnel.unwrap(bytes(self._buffer))
            self._buffer.clear()
        self._check_packet_sizes(self._plaintext if self._session_encrypted else self._buffer)
        return super()._take_message()

    def _send(self, responses, payload: bytes, packet_id: int = 1) -> None:
        packets = build_message(PacketType.TABULAR_RESULT, payload, packet_size=self._packet_size,
                                spid=self._spid, packet_id_start=packet_id)
        if self._session_encrypted and self._tunnel is not None:
            responses.append(self._tunnel.wrap(b"".join(packets)))
        else:
            responses.extend(packets)

    # -- LOGIN7: password, database, packet size, routing
    def _step_login(self, responses):
        moved = False
        if self._buffer:
            self._plaintext += self._tunnel.unwrap(bytes(self._buffer))
            self._buffer.clear()
            moved = True
        message = self._expect(self._plaintext, PacketType.LOGIN7)
        if message is None:
            return moved
        self._login = Login7.parse(message.payload)
        self._tds_version = negotiate(self._login.tds_version)
        if self._login.uses_integrated_auth:
            raise TdsProtocolError("this stand-in admits SQL logins only")

        user = self._login.user_name
        if not (self._logins is not None and self._logins.admits(user, deobfuscate_password(self._login.password))):
            log.warning("refused a login for %r", user)
            self._refuse(responses, [(LOGIN_FAILED, 14, 1, f"Login failed for user '{user}'.")])
            return True

        wanted = self._login.database or self._database
        known = {name.lower(): name for name in ("master", self._database)}
        if wanted.lower() not in known:
            log.warning("login %r asked for database %r, which does not exist", user, wanted)
            self._refuse(responses, [
                (CANNOT_OPEN_DATABASE, 11, 1,
                 f'Cannot open database "{wanted}" requested by the login. The login failed.'),
                (LOGIN_FAILED, 14, 1, f"Login failed for user '{user}'."),
            ])
            return True
        self._login_database = known[wanted.lower()]

        limit = int(self._listener.get("packet_size_limit", DEFAULT_PACKET_SIZE))
        asked = self._login.packet_size or DEFAULT_PACKET_SIZE
        agreed = max(MIN_PACKET_SIZE, min(asked, limit, MAX_PACKET_SIZE))
        log.info("login %r for server name %r: packet size asked %d, agreed %d", user, self._login.server_name,
                 self._login.packet_size, agreed)

        route = self._listener.get("route_to")
        if route:
            host, port = route.rsplit(":", 1)
            log.info("login %r routed to %s", user, route)
            self._send(responses, login_ack(version=(self._version.major, self._version.minor, self._version.build),
                                            tds_version=self._tds_version)
                       + routing_envchange(host, int(port)) + done(tds_version=self._tds_version))
            self._state = ConnectionState.FAILED
            return True

        self._spid = next_session_id()
        self._send(responses, login_response(
            version=(self._version.major, self._version.minor, self._version.build),
            server_name=self._server_name, database=self._login_database,
            packet_size=agreed, tds_version=self._tds_version))
        # The answer to the login still goes out at the old size; everything after at the new.
        self._packet_size = agreed
        self._state = ConnectionState.READY
        log.info("%r logged in (database %r)", user, self._login_database)
        return True

    def _refuse(self, responses, errors) -> None:
        payload = b"".join(
            error(number, text, severity=severity, state=state, server=self._server_name,
                  tds_version=self._tds_version)
            for number, severity, state, text in errors
        ) + done(status=DoneStatus.ERROR, tds_version=self._tds_version)
        self._send(responses, payload)
        self._state = ConnectionState.FAILED

    def _about(self) -> dict:
        about = super()._about()
        about["login"] = self._login.user_name if self._login else None
        return about


def guarded(answer, database: str, denied: dict):
    """The catalog's answer, except for tables the login may not read: Msg 229."""

    def handler(query):
        login = (query.session or {}).get("login") or ""
        for table in denied.get(login, []):
            if re.search(rf"\b{re.escape(table)}\b", query.sql or "", re.IGNORECASE):
                raise QueryError(
                    f"The SELECT permission was denied on the object '{table}', database '{database}', schema 'dbo'.",
                    number=PERMISSION_DENIED, severity=14, state=5)
        return answer(query)

    return handler


def answer_roles(roles: dict) -> None:
    """IS_SRVROLEMEMBER('sysadmin') and IS_MEMBER('db_owner') from the config's roles."""
    from pysqlbridge import predicate

    def member(about, role=None, *rest):
        return 1 if str(role).strip().lower() in roles.get(about.get("login") or "", []) else 0

    predicate.CONTEXT_FUNCTIONS["IS_SRVROLEMEMBER"] = member
    predicate.CONTEXT_FUNCTIONS["IS_MEMBER"] = member


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server = self.server
        sock = self.request
        sock.settimeout(30)
        if server.listener.get("strict"):
            try:
                sock = server.outer_tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                # A TDS 7 client sends PRELOGIN in clear, which is no ClientHello.
                log.warning("strict listener: TLS handshake failed (%s); closing", exc)
                return
            log.info("strict: TLS %s, ALPN %r", sock.version(), sock.selected_alpn_protocol())
        connection = FaithfulConnection(
            server.certificate, listener=server.listener,
            query_handler=server.query_handler, database=server.policy["database"],
            reached_at=f"127.0.0.1,{server.server_address[1]}", logins=server.logins)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                for response in connection.receive(data):
                    sock.sendall(response)
                if connection.state is ConnectionState.FAILED:
                    return
        except Exception as exc:  # noqa: BLE001 - one client's failure ends its connection only
            log.info("connection ended: %s", exc)
        finally:
            try:
                sock.close()
            except OSError:
                pass


class Listener(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class Listener6(Listener):
    """The same port on ::1: clients that resolve localhost to ::1 first (Microsoft's ODBC
    driver does, and does not fall back) find the server there too."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


def main() -> None:
    bridge_config, standin_config, cert, key = sys.argv[1:5]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(message)s")
    with open(standin_config, encoding="utf-8") as f:
        policy = json.load(f)
    catalog = load_catalog(bridge_config)
    catalog.warm()
    logins = load_logins(bridge_config)
    handler = guarded(catalog.answer, policy["database"], policy.get("denied", {}))
    answer_roles(policy.get("roles", {}))
    servers = []
    # Microsoft's ODBC driver takes "localhost" to mean this machine and connects to the
    # address of its host name, which Debian maps to 127.0.1.1: the stand-in listens on every
    # loopback address that name has, as well as on 127.0.0.1 and ::1.
    try:
        own = {a for a in socket.gethostbyname_ex(socket.gethostname())[2] if a.startswith("127.")}
    except OSError:
        own = set()
    addresses = [(Listener, "127.0.0.1")] + [(Listener, a) for a in sorted(own - {"127.0.0.1"})] + [(Listener6, "::1")]
    for listener, (family, address) in [(l, a) for l in policy["listeners"] for a in addresses]:
        try:
            server = family((address, int(listener["port"])), Handler)
        except OSError as exc:
            if address == "127.0.0.1":
                raise
            log.warning("no listener on %s port %s: %s", address, listener["port"], exc)
            continue
        server.listener = listener
        server.policy = policy
        server.logins = logins
        server.query_handler = handler
        server.certificate = load_certificate(listener.get("cert", cert), listener.get("key", key))
        if listener.get("strict"):
            outer = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            outer.load_cert_chain(listener.get("cert", cert), listener.get("key", key))
            outer.set_alpn_protocols(["tds/8.0"])
            server.outer_tls = outer
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        log.info("listening on %s:%s %s", server.server_address[0], listener["port"],
                 {k: v for k, v in listener.items() if k not in ("port", "cert", "key")})
    threading.Event().wait()


if __name__ == "__main__":
    main()
