#!/usr/bin/env python3
"""Initialises and fills the harness's OpenBao (Vault's API) for the secret-store tests.

Usage: openbao_setup.py ADDR CA_FILE STATE_DIR
Prints the AP_VAULT_* lines of the env file. Standard library only. Run on a fresh (raft)
server: it initialises with one unseal key, unseals, and writes:
- KV v2 at secret/ (secret/app: api_token, pg_password, the bearer token), KV v1 at kv1/;
- a policy that reads exactly those (probe-read) and one that reads nothing;
- tokens: a reader, a nothing-reader, a revoked one, a short-lived one that expires;
- AppRole `probe` (probe-read) and `no-access` (nothing), userpass `probe-user`;
- jwt role `ci`, and kubernetes role `pipeline` (service account data/pipeline) whose
  TokenReview the cloud token service answers.
The values are the harness's own test credentials from the environment (defaults.env).
"""

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

ADDR, CA, STATE = sys.argv[1], sys.argv[2], sys.argv[3]
CONTEXT = ssl.create_default_context(cafile=CA)


def call(method, path, body=None, token=None, ok=(200, 204)):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{ADDR}/v1/{path}", data=data, method=method)
    if token:
        request.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(request, context=CONTEXT, timeout=10) as answer:
            text = answer.read()
            status = answer.status
    except urllib.error.HTTPError as err:
        text, status = err.read(), err.code
    if status not in ok:
        raise SystemExit(f"openbao {method} {path}: HTTP {status}: {text[:300]!r}")
    return json.loads(text) if text else {}


def wait_ready(token=None):
    for _ in range(100):
        try:
            health = call("GET", "sys/health", ok=(200, 429, 472, 473, 501, 503))
            if health.get("initialized") and not health.get("sealed") and not health.get("standby", False):
                return
            if not health.get("initialized"):
                return
        except (OSError, SystemExit):
            pass
        time.sleep(0.2)
    raise SystemExit("openbao did not become ready")


wait_ready()
init = call("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
root = init["root_token"]
with open(os.path.join(STATE, "unseal.json"), "w") as f:
    json.dump({"key": init["keys_base64"][0], "root": root}, f)
call("PUT", "sys/unseal", {"key": init["keys_base64"][0]})
# Raft elects the node leader a moment after unsealing.
for _ in range(100):
    health = call("GET", "sys/health", ok=(200, 429, 472, 473, 501, 503))
    if not health.get("sealed") and not health.get("standby", True):
        break
    time.sleep(0.2)

env = os.environ
call("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}}, root)
call("POST", "sys/mounts/kv1", {"type": "kv", "options": {"version": "1"}}, root)
app = {
    "api_token": env["AP_BEARER_TOKEN"],
    "pg_password": env["AP_PG_PASSWORD"],
    "pg_user": env["AP_PG_USER"],
}
call("POST", "secret/data/app", {"data": app}, root)
call("POST", "kv1/app", app, root)
call("POST", "secret/data/other-team", {"data": {"token": "not-for-the-probe-3c1f"}}, root)
# A whole URL in the store (a webhook's): the probe's `url` comes from it.
hook = f"https://localhost:{env['AP_HTTPS_PORT']}/bearer?token=hook-secret-9a7c"
call("POST", "secret/data/hooks", {"data": {"url": hook}}, root)

# The policy may read secret/gone too, which does not exist: a read of it is a real 404.
reads = (
    'path "secret/data/app" { capabilities = ["read"] }\n'
    'path "secret/data/gone" { capabilities = ["read"] }\n'
    'path "secret/data/hooks" { capabilities = ["read"] }\n'
    'path "kv1/app" { capabilities = ["read"] }\n'
)
call("PUT", "sys/policies/acl/probe-read", {"policy": reads}, root)
call("PUT", "sys/policies/acl/nothing", {"policy": 'path "secret/data/nowhere" { capabilities = ["read"] }\n'}, root)


def token(policies, ttl="24h"):
    return call("POST", "auth/token/create", {"policies": policies, "ttl": ttl, "no_parent": True}, root)["auth"][
        "client_token"
    ]


reader = token(["probe-read"])
nothing = token(["nothing"])
revoked = token(["probe-read"])
call("POST", "auth/token/revoke", {"token": revoked}, root)
short = token(["probe-read"], ttl="2s")

call("POST", "sys/auth/approle", {"type": "approle"}, root)
call("POST", "auth/approle/role/probe", {"token_policies": ["probe-read"], "token_ttl": "10m"}, root)
call("POST", "auth/approle/role/no-access", {"token_policies": ["nothing"], "token_ttl": "10m"}, root)


def approle(role):
    role_id = call("GET", f"auth/approle/role/{role}/role-id", token=root)["data"]["role_id"]
    secret_id = call("POST", f"auth/approle/role/{role}/secret-id", {}, root)["data"]["secret_id"]
    return role_id, secret_id


role_id, secret_id = approle("probe")
no_role_id, no_secret_id = approle("no-access")

call("POST", "sys/auth/userpass", {"type": "userpass"}, root)
call("POST", "auth/userpass/users/probe-user", {"password": env["AP_VAULT_USER_PASSWORD"], "token_policies": ["probe-read"]}, root)

# Dynamic PostgreSQL credentials: members of vault_dynamic that may read appdb's orders,
# created at each read and dropped when their lease is revoked.
call("POST", "sys/mounts/database", {"type": "database"}, root)
call(
    "POST",
    "database/config/harness-pg",
    {
        "plugin_name": "postgresql-database-plugin",
        "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{env['AP_PG_PORT']}/appdb?sslmode=disable",
        "username": "vault_admin",
        "password": env["AP_PG_VAULT_ADMIN_PASSWORD"],
        "allowed_roles": ["readonly"],
        "verify_connection": True,
    },
    root,
)
call(
    "POST",
    "database/roles/readonly",
    {
        "db_name": "harness-pg",
        "creation_statements": [
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' IN ROLE vault_dynamic;",
            "GRANT SELECT ON orders TO \"{{name}}\";",
        ],
        "revocation_statements": [
            "REVOKE SELECT ON orders FROM \"{{name}}\";",
            "DROP ROLE \"{{name}}\";",
        ],
        "default_ttl": "10m",
        "max_ttl": "1h",
    },
    root,
)
# Dynamic MariaDB credentials: users that may read appdb.orders from 127.0.0.1.
call(
    "POST",
    "database/config/harness-mariadb",
    {
        "plugin_name": "mysql-database-plugin",
        "connection_url": f"{{{{username}}}}:{{{{password}}}}@tcp(127.0.0.1:{env['AP_MYSQL_PORT']})/",
        "username": "root",
        "password": env["AP_MYSQL_ROOT_PASSWORD"],
        "allowed_roles": ["readonly-mariadb"],
        "verify_connection": True,
    },
    root,
)
call(
    "POST",
    "database/roles/readonly-mariadb",
    {
        "db_name": "harness-mariadb",
        "creation_statements": [
            "CREATE USER '{{name}}'@'127.0.0.1' IDENTIFIED BY '{{password}}';",
            f"GRANT SELECT ON {env['AP_MYSQL_DATABASE']}.orders TO '{{{{name}}}}'@'127.0.0.1';",
        ],
        "revocation_statements": ["DROP USER '{{name}}'@'127.0.0.1';"],
        "default_ttl": "10m",
        "max_ttl": "1h",
    },
    root,
)
dynamic = (
    'path "database/creds/readonly" { capabilities = ["read"] }\n'
    'path "database/creds/readonly-mariadb" { capabilities = ["read"] }\n'
    'path "sys/leases/revoke" { capabilities = ["update"] }\n'
)
call("PUT", "sys/policies/acl/probe-read", {"policy": reads + dynamic}, root)

# JWT auth: a key of the harness's own signs the probe's JWT (as a CI system's OIDC issuer
# would); OpenBao checks it against the public key, the audience and the lifetime.
import base64
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(lifetime, audience="authprobe"):
    now = int(time.time())
    header = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    claims = {"iss": "https://ci.authprobe.test", "sub": "repo:authprobe:ref:main", "aud": audience, "iat": now - 60, "nbf": now - 60, "exp": now + lifetime}
    payload = b64(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{b64(signature)}"


call("POST", "sys/auth/jwt", {"type": "jwt"}, root)
call("POST", "auth/jwt/config", {"jwt_validation_pubkeys": [public]}, root)
call(
    "POST",
    "auth/jwt/role/ci",
    {"role_type": "jwt", "bound_audiences": ["authprobe"], "user_claim": "sub", "token_policies": ["probe-read"], "token_ttl": "10m"},
    root,
)
for name, token in (("ci.jwt", jwt(24 * 3600)), ("expired.jwt", jwt(-3600)), ("wrong-audience.jwt", jwt(24 * 3600, "someone-else"))):
    with open(os.path.join(STATE, name), "w") as f:
        f.write(token + "\n")

# Kubernetes auth: OpenBao asks the cluster's TokenReview (the cloud token service plays the
# API server, checking the projected service-account tokens it mints) who a pod's token is.
KUBE_API = f"http://127.0.0.1:{os.environ['AP_CLOUD_PORT']}"
call("POST", "sys/auth/kubernetes", {"type": "kubernetes"}, root)
call("POST", "auth/kubernetes/config", {"kubernetes_host": KUBE_API, "disable_local_ca_jwt": True, "kubernetes_ca_cert": open(CA).read()}, root)
call(
    "POST",
    "auth/kubernetes/role/pipeline",
    {"bound_service_account_names": ["pipeline"], "bound_service_account_namespaces": ["data"],
     "token_policies": ["probe-read"], "token_ttl": "10m"},
    root,
)
# Its tokens last 3 s: serve must log in again before they run out.
call(
    "POST",
    "auth/kubernetes/role/pipeline-short",
    {"bound_service_account_names": ["pipeline"], "bound_service_account_namespaces": ["data"],
     "token_policies": ["probe-read"], "token_ttl": "3s", "token_max_ttl": "3s"},
    root,
)

lines = {
    "AP_VAULT_ADDR": ADDR,
    "AP_VAULT_TOKEN": reader,
    "AP_VAULT_NOTHING_TOKEN": nothing,
    "AP_VAULT_REVOKED_TOKEN": revoked,
    "AP_VAULT_SHORT_TOKEN": short,
    "AP_VAULT_ROLE_ID": role_id,
    "AP_VAULT_SECRET_ID": secret_id,
    "AP_VAULT_NOACCESS_ROLE_ID": no_role_id,
    "AP_VAULT_NOACCESS_SECRET_ID": no_secret_id,
    "AP_VAULT_ROOT_TOKEN": root,
    "AP_VAULT_JWT_FILE": os.path.join(STATE, "ci.jwt"),
    "AP_VAULT_EXPIRED_JWT_FILE": os.path.join(STATE, "expired.jwt"),
    "AP_VAULT_WRONG_AUDIENCE_JWT_FILE": os.path.join(STATE, "wrong-audience.jwt"),
}
for name, value in lines.items():
    print(f"{name}={value}")
