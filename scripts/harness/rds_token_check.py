#!/usr/bin/env python3
"""Checks an RDS IAM auth token the way RDS does, for the test databases' PAM login.

PostgreSQL (pg_hba `pam`) and MariaDB (auth_pam) hand the password a client sent to PAM;
pam_exec with expose_authtok gives it to this script on stdin and takes exit status 0 as
"authenticated". A token is accepted when it is a SigV4 presigned `connect` request for
this user, to one of this server's endpoints, in the expected region and service rds-db,
current (X-Amz-Date within X-Amz-Expires, at most 15 minutes), signed with a key listed in
the keys file (lines `ACCESS_KEY_ID SECRET [USER ...]`, the users that key may connect as,
like an rds-db:connect policy; none listed means any).

    rds_token_check.py KEYS_FILE REGION ENDPOINT [ENDPOINT ...]   (PAM_USER from pam_exec)

Reasons for a refusal go to stderr (pam_exec's log=), never the token or the secret.
"""

import datetime
import hashlib
import hmac
import os
import sys
import urllib.parse

MAX_LIFETIME = 900
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def refuse(why):
    print(f"rds_token_check: user {os.environ.get('PAM_USER', '?')}: refused: {why}", file=sys.stderr)
    sys.exit(1)


def aws_quote(value):
    return urllib.parse.quote(value, safe="-_.~")


def signing_key(secret, date, region, service):
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def load_keys(path):
    keys = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 2 and not fields[0].startswith("#"):
                keys[fields[0]] = (fields[1], set(fields[2:]))
    return keys


def check(token, user, keys, region, endpoints, now):
    host, sep, query = token.partition("/?")
    if not sep:
        refuse("not a presigned URL (host:port/?query)")
    if host not in endpoints:
        refuse(f"signed for {host}, not this server ({', '.join(endpoints)})")
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    params = dict(pairs)
    if len(params) != len(pairs):
        refuse("a query parameter appears twice")
    for name in ("Action", "DBUser", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                 "X-Amz-SignedHeaders", "X-Amz-Signature"):
        if name not in params:
            refuse(f"{name} is missing")
    if params["Action"] != "connect":
        refuse(f"Action is {params['Action']}, not connect")
    if params["DBUser"] != user:
        refuse(f"signed for database user {params['DBUser']}")
    if params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
        refuse("not AWS4-HMAC-SHA256")
    if params["X-Amz-SignedHeaders"] != "host":
        refuse("signed headers are not exactly host")
    key_id, _, scope = params["X-Amz-Credential"].partition("/")
    date, _, rest = scope.partition("/")
    if rest != f"{region}/rds-db/aws4_request":
        refuse(f"credential scope {rest} is not {region}/rds-db/aws4_request")
    if key_id not in keys:
        refuse(f"unknown access key {key_id[:8]}…")
    secret, users = keys[key_id]
    if users and user not in users:
        refuse(f"key {key_id[:8]}… may not rds-db:connect as {user}")
    try:
        signed_at = datetime.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
        lifetime = int(params["X-Amz-Expires"])
    except ValueError:
        refuse("X-Amz-Date or X-Amz-Expires is malformed")
    if not params["X-Amz-Date"].startswith(date):
        refuse("X-Amz-Date does not match the credential scope's date")
    if lifetime <= 0 or lifetime > MAX_LIFETIME:
        refuse(f"X-Amz-Expires {lifetime} is not within 1..{MAX_LIFETIME}")
    age = (now - signed_at).total_seconds()
    if age > lifetime:
        refuse(f"expired {int(age - lifetime)} s ago")
    if age < -300:
        refuse("signed in the future")
    canonical_query = "&".join(
        f"{aws_quote(k)}={aws_quote(v)}" for k, v in sorted(pairs) if k != "X-Amz-Signature")
    canonical_request = "\n".join(["GET", "/", canonical_query, f"host:{host}", "", "host", EMPTY_SHA256])
    string_to_sign = "\n".join([
        "AWS4-HMAC-SHA256", params["X-Amz-Date"], scope,
        hashlib.sha256(canonical_request.encode()).hexdigest()])
    expected = hmac.new(signing_key(secret, date, region, "rds-db"), string_to_sign.encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
        refuse("the signature does not match")


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    keys_file, region, endpoints = sys.argv[1], sys.argv[2], sys.argv[3:]
    token = sys.stdin.buffer.read(8192).split(b"\0", 1)[0].decode("utf-8", "replace").strip()
    user = os.environ.get("PAM_USER", "")
    check(token, user, load_keys(keys_file), region, endpoints, datetime.datetime.now(datetime.timezone.utc))
    print(f"rds_token_check: user {user}: accepted", file=sys.stderr)


if __name__ == "__main__":
    main()
