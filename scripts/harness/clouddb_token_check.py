#!/usr/bin/env python3
"""Checks a cloud token sent as a database password, the way Azure Database for
PostgreSQL/MySQL (Microsoft Entra ID) and Cloud SQL (IAM database authentication) do, for
the test databases' PAM login (pg_hba `pam`, MariaDB auth_pam; pam_exec with
expose_authtok hands the password over on stdin, exit status 0 means authenticated).

- An Entra ID access token (a JWT): RS256 signature against the token service's JWKS,
  issuer https://sts.windows.net/TENANT/, audience https://ossrdbms-aad.database.windows.net,
  not before / expiry, and its object id (`oid`) the one the database role is mapped to.
- A Google access token (opaque): asked of tokeninfo, as Cloud SQL asks Google: valid, for
  the service account the IAM database user is made from, with the sqlservice.login or
  cloud-platform scope.

The mappings file has lines `DB_USER entra OBJECT_ID` or `DB_USER gcp SERVICE_ACCOUNT_EMAIL`.
Standard library only (it runs inside the database's PAM stack).

    clouddb_token_check.py MAPPINGS JWKS_FILE TOKENINFO_URL TENANT   (PAM_USER from pam_exec)

Reasons for a refusal go to stderr (pam_exec's log=), never the token.
"""

import base64
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ENTRA_AUDIENCE = "https://ossrdbms-aad.database.windows.net"
CLOUD_SQL_SCOPES = {"https://www.googleapis.com/auth/sqlservice.login", "https://www.googleapis.com/auth/cloud-platform"}
# DER prefix of a SHA-256 DigestInfo (RFC 8017, 9.2)
SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def refuse(why):
    print(f"clouddb_token_check: user {os.environ.get('PAM_USER', '?')}: refused: {why}", file=sys.stderr)
    sys.exit(1)


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rs256_valid(jwk, signed, signature):
    n = int.from_bytes(unb64url(jwk["n"]), "big")
    e = int.from_bytes(unb64url(jwk["e"]), "big")
    size = (n.bit_length() + 7) // 8
    if len(signature) != size:
        return False
    decoded = pow(int.from_bytes(signature, "big"), e, n).to_bytes(size, "big")
    digest_info = SHA256_PREFIX + hashlib.sha256(signed).digest()
    expected = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    return decoded == expected


def check_entra(token, expected_oid, jwks_file, tenant):
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header, claims = json.loads(unb64url(header_b64)), json.loads(unb64url(claims_b64))
        signature = unb64url(signature_b64)
    except Exception:
        refuse(f"not a JWT ({len(token)} characters, {token.count('.')} dots)")
    with open(jwks_file) as f:
        keys = {k["kid"]: k for k in json.load(f)["keys"]}
    if header.get("alg") != "RS256" or header.get("kid") not in keys:
        refuse("unknown signing key")
    if not rs256_valid(keys[header["kid"]], f"{header_b64}.{claims_b64}".encode(), signature):
        refuse("bad signature")
    if claims.get("iss") != f"https://sts.windows.net/{tenant}/":
        refuse(f"issuer {claims.get('iss')}")
    if claims.get("aud") != ENTRA_AUDIENCE:
        refuse(f"audience {claims.get('aud')} (not {ENTRA_AUDIENCE})")
    now = time.time()
    if not (claims.get("nbf", 0) <= now < claims.get("exp", 0)):
        refuse("expired or not yet valid")
    if claims.get("oid") != expected_oid:
        refuse(f"the token's principal {claims.get('oid')} is not the one this role is mapped to")


def check_google(token, expected_email, tokeninfo_url):
    url = tokeninfo_url + "?" + urllib.parse.urlencode({"access_token": token})
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            info = json.load(answer)
    except urllib.error.HTTPError as err:
        refuse(f"tokeninfo: HTTP {err.code}")
    except OSError as err:
        refuse(f"tokeninfo unreachable: {err}")
    if info.get("email") != expected_email:
        refuse(f"the token is for {info.get('email')}, not {expected_email}")
    if not CLOUD_SQL_SCOPES & set(info.get("scope", "").split()):
        refuse("the token's scopes include neither sqlservice.login nor cloud-platform")


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    mappings, jwks_file, tokeninfo_url, tenant = sys.argv[1:]
    user = os.environ.get("PAM_USER", "")
    token = sys.stdin.read().strip("\0\n")
    with open(mappings) as f:
        rows = [line.split() for line in f if line.strip()]
    mapped = [(kind, who) for name, kind, who in rows if name == user]
    if not mapped:
        refuse("no principal is mapped to this database user")
    kind, who = mapped[0]
    if kind == "entra":
        check_entra(token, who, jwks_file, tenant)
    else:
        check_google(token, who, tokeninfo_url)


if __name__ == "__main__":
    main()
