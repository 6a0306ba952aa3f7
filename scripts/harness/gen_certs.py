#!/usr/bin/env python3
"""Generates the test PKI the servers and tests share, fresh per run.

Writes PEM files into the directory given as the only argument:
  ca.crt/ca.key                 the test CA (what tls.ca points at)
  rogue-ca.crt                  a CA nobody trusts
  server.crt/.key               localhost, 127.0.0.1, ::1; signed by the test CA
  expired.crt/.key              same names, expired a month ago
  wrong-host.crt/.key           only wrong.example.com
  untrusted.crt/.key            same names, signed by the rogue CA
  expiring-soon.crt/.key        expires in 5 days
  client.crt/.key               client certificate (CN=authprobe-client) from the test CA
  client-pg.crt/.key            client certificate CN=cert_user (PostgreSQL cert auth)
  client-mysql.crt/.key         client certificate CN=x509_user (MariaDB REQUIRE X509)
  rogue-client.crt/.key         client certificate from the rogue CA
"""
import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def key():
    return ec.generate_private_key(ec.SECP256R1())


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "authprobe tests")])


def write(out, stem, cert, private_key):
    with open(os.path.join(out, stem + ".crt"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    if private_key is not None:
        path = os.path.join(out, stem + ".key")
        with open(path, "wb") as f:
            f.write(private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        os.chmod(path, 0o600)


def make_ca(cn):
    k = key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(cn))
        .issuer_name(name(cn))
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 3650 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
        .sign(k, hashes.SHA256())
    )
    return cert, k


def make_leaf(ca, ca_key, cn, names, start, end, client=False):
    k = key()
    sans = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(cn))
        .issuer_name(ca.subject)
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), k


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    ca, ca_key = make_ca("authprobe Test CA")
    rogue, rogue_key = make_ca("Rogue CA")
    write(out, "ca", ca, ca_key)
    write(out, "rogue-ca", rogue, None)
    local = ["localhost", "127.0.0.1", "::1"]
    leaves = {
        "server": (ca, ca_key, "localhost", local, NOW - DAY, NOW + 365 * DAY, False),
        "expired": (ca, ca_key, "localhost", local, NOW - 400 * DAY, NOW - 35 * DAY, False),
        "wrong-host": (ca, ca_key, "wrong.example.com", ["wrong.example.com"], NOW - DAY, NOW + 365 * DAY, False),
        "untrusted": (rogue, rogue_key, "localhost", local, NOW - DAY, NOW + 365 * DAY, False),
        "expiring-soon": (ca, ca_key, "localhost", local, NOW - DAY, NOW + 5 * DAY, False),
        "client": (ca, ca_key, "authprobe-client", [], NOW - DAY, NOW + 365 * DAY, True),
        "client-pg": (ca, ca_key, "cert_user", [], NOW - DAY, NOW + 365 * DAY, True),
        "client-mysql": (ca, ca_key, "x509_user", [], NOW - DAY, NOW + 365 * DAY, True),
        "rogue-client": (rogue, rogue_key, "authprobe-client", [], NOW - DAY, NOW + 365 * DAY, True),
    }
    for stem, (issuer, issuer_key, cn, names, start, end, client) in leaves.items():
        cert, k = make_leaf(issuer, issuer_key, cn, names, start, end, client)
        write(out, stem, cert, k)


if __name__ == "__main__":
    main()
