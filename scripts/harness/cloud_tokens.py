#!/usr/bin/env python3
"""Local implementations of the cloud token protocols authprobe speaks, checking what
they receive the way the real services do:

- Google OAuth2 JWT bearer grant (RFC 7523, as oauth2.googleapis.com/token): the
  assertion's RS256 signature against the service account's registered public key, its
  key id, issuer, audience and lifetime; `scope` gives an access token, `target_audience`
  an ID token.
- GCP metadata server: /computeMetadata/v1/instance/service-accounts/{default|EMAIL}/token
  and /identity?audience=, only with `Metadata-Flavor: Google`.
- Azure IMDS: /metadata/identity/oauth2/token?api-version=…&resource=…[&client_id=…], only
  with `Metadata: true`.
- Microsoft Entra ID client credentials: POST /{tenant}/oauth2/v2.0/token with client_id,
  client_secret and a `…/.default` scope.
- AWS STS AssumeRoleWithWebIdentity (POST / with Action=AssumeRoleWithWebIdentity, as
  sts.amazonaws.com): the web identity token's RS256 signature against the local
  Kubernetes OIDC issuer's key, its issuer, audience (sts.amazonaws.com) and expiry, and the
  role's trust policy on its subject; answers carry STS's XML and error codes. The issuer
  mints service-account tokens into DIR/web-identity/ at each start (a good one, expired,
  wrong audience, forged, and one for a service account no role trusts). The roles hand
  out the harness's s3s-fs key (for s3) and RDS key (for rds_iam) with a session token.
- Google Cloud Storage's JSON API in front of the GCS emulator (PyPI gcp-storage-emulator,
  which checks no credentials): /storage/v1/b/{bucket}/o answers 401 without a token or
  with one not issued here, 403 when the service account has no storage.objects.list on
  the bucket (GCS_DENIED), and otherwise the emulator's own answer
  (the listing, or 404 for a bucket that does not exist), with GCS's error bodies.
- Google Cloud Storage's XML API for signed URLs (V4 and V2), in gcs_signed.py: GET/HEAD
  /BUCKET/OBJECT with the signature checked against the service account's registered key.
- Microsoft Entra ID workload identity: client credentials with a client_assertion, the
  Kubernetes service-account token, checked against the local cluster issuer's key, its
  issuer, subject (the app's federated credential) and audience api://AzureADTokenExchange,
  and its lifetime (AADSTS70021, AADSTS700024). The issuer also mints those tokens.
- Kubernetes TokenReview (POST /apis/authentication.k8s.io/v1/tokenreviews), as the API
  server answers it for OpenBao's kubernetes auth: the projected token's signature against
  the cluster issuer's key, its lifetime and the audiences asked for; `authenticated`
  with the service account's user name and uid, or not, with the API server's error text.
- Google's tokeninfo (/oauth2/v3/tokeninfo?access_token=): who an access token is for and
  its scopes, as Cloud SQL asks it; the Entra signing key as JWKS in DIR/entra-jwks.json.
  Both serve the databases' token checker (clouddb_token_check.py).
- Protected resources that accept only tokens issued here: /gcp/api (access tokens),
  /gcp/id-api (ID tokens for the audience https://api.authprobe.test), /azure/api.

Error bodies and status codes follow the real services' (error / error_description,
AADSTS codes). Every issued token is appended to ISSUED so tests can check none leaks.

  cloud_tokens.py keys DIR PORT    # writes the service-account key files
  cloud_tokens.py serve DIR PORT   # serves on 127.0.0.1:PORT
"""

import base64
import hashlib
import json
import os
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape as xml_escape

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import gcs_signed

PROJECT = "authprobe-test"
SA_EMAIL = f"probe@{PROJECT}.iam.gserviceaccount.com"
DELETED_EMAIL = f"deleted@{PROJECT}.iam.gserviceaccount.com"
ID_AUDIENCE = "https://api.authprobe.test"
AZURE_TENANT = "11111111-2222-3333-4444-555555555555"
AZURE_CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
AZURE_CLIENT_SECRET = os.environ.get("AP_AZURE_CLIENT_SECRET", "demo-azure-secret-4f7a9c")
AZURE_MI_CLIENT_ID = "99999999-8888-7777-6666-555555555555"
OIDC_ISSUER = "https://oidc.eks.authprobe.test/id/AUTHPROBE"
STS_AUDIENCE = "sts.amazonaws.com"
TRUSTED_SUBJECT = "system:serviceaccount:data:pipeline"
ACCOUNT = "123456789012"
# role name -> (the environment variables holding the key it hands out)
ROLES = {
    "authprobe-s3-reader": ("AP_S3_ACCESS_KEY", "AP_S3_SECRET_KEY"),
    "authprobe-db": ("AP_RDS_ACCESS_KEY_ID", "AP_RDS_SECRET_ACCESS_KEY"),
}
GCS_EMULATOR = f"http://127.0.0.1:{os.environ.get('AP_GCS_EMULATOR_PORT', '18097')}"
# The service account holds storage.objects.list on the project except on this bucket.
GCS_DENIED = {os.environ.get("AP_GCS_LOCKED_BUCKET", "authprobe-gcs-locked")}
AZURE_RESOURCES = {"https://storage.azure.com/", "https://management.azure.com/", "https://api.authprobe.test",
                   "https://ossrdbms-aad.database.windows.net/", "https://ossrdbms-aad.database.windows.net"}
ENTRA_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
GOOGLE_CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pem_private(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def write_key_file(path, email, key_id, key, token_uri):
    base = token_uri.rsplit("/", 1)[0]
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": key_id,
        "private_key": pem_private(key),
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        # Google's page of the account's public keys as certificates, as key files name it.
        "client_x509_cert_url": f"{base}/robot/v1/metadata/x509/{urllib.parse.quote(email)}",
    }
    with open(path, "w") as f:
        json.dump(info, f, indent=2)
    os.chmod(path, 0o600)


def write_certificate_page(path, key_id, key, age_days):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    import datetime
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, key_id)])
    made = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=age_days)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(made)
                   .not_valid_after(datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc))
                   .sign(key, hashes.SHA256()))
    with open(path, "w") as f:
        json.dump({key_id: certificate.public_bytes(serialization.Encoding.PEM).decode()}, f)


def make_keys(directory, port):
    """The registered key, an unregistered key of the same account (a deleted or rotated
    key), and a key of an account that does not exist."""
    os.makedirs(directory, exist_ok=True)
    token_uri = f"http://127.0.0.1:{port}/token"
    good = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good_id = secrets.token_hex(20)
    write_key_file(os.path.join(directory, "gcp-sa.json"), SA_EMAIL, good_id, good, token_uri)
    # The key's certificate as Google publishes it: valid from when the key was made (here
    # 100 days ago, so that a max_age of 90 days finds it old) until 9999, "never".
    write_certificate_page(os.path.join(directory, "gcp-sa-certs.json"), good_id, good, 100)
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_key_file(os.path.join(directory, "gcp-sa-rotated.json"), SA_EMAIL, secrets.token_hex(20), rotated, token_uri)
    gone = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_key_file(os.path.join(directory, "gcp-sa-deleted.json"), DELETED_EMAIL, secrets.token_hex(20), gone, token_uri)


def sign_jwt(key, claims, kid):
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
    body = b64url(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{body}.{b64url(signature)}"


def service_account_claim(subject):
    """The `kubernetes.io` claim a projected token carries for `system:serviceaccount:NS:NAME`
    (what Vault's kubernetes auth reads before asking the API server's TokenReview)."""
    _, _, namespace, name = subject.split(":", 3)
    uid = "00000000-0000-4000-8000-" + hashlib.sha256(subject.encode()).hexdigest()[:12]
    return {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}}


def mint_web_identity_tokens(directory, issuer_key):
    """Projected service-account tokens, as the kubelet writes them for EKS pod roles."""
    out = os.path.join(directory, "web-identity")
    os.makedirs(out, exist_ok=True)
    now = int(time.time())
    base = {"iss": OIDC_ISSUER, "aud": [STS_AUDIENCE], "sub": TRUSTED_SUBJECT, "iat": now, "nbf": now,
            "exp": now + 86400, "kubernetes.io": service_account_claim(TRUSTED_SUBJECT)}
    intruder = {"sub": "system:serviceaccount:data:intruder",
                "kubernetes.io": service_account_claim("system:serviceaccount:data:intruder")}
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tokens = {
        "token": sign_jwt(issuer_key, base, "cluster"),
        "token-expired": sign_jwt(issuer_key, dict(base, iat=now - 7200, nbf=now - 7200, exp=now - 3600), "cluster"),
        "token-wrong-audience": sign_jwt(issuer_key, dict(base, aud=["vault"]), "cluster"),
        "token-forged": sign_jwt(forger, base, "cluster"),
        "token-untrusted-sa": sign_jwt(issuer_key, dict(base, **intruder), "cluster"),
        # Azure workload identity: the same pod's token for Entra's token exchange.
        "azure-token": sign_jwt(issuer_key, dict(base, aud=[ENTRA_EXCHANGE_AUDIENCE]), "cluster"),
        "azure-token-expired": sign_jwt(issuer_key, dict(base, aud=[ENTRA_EXCHANGE_AUDIENCE], iat=now - 7200,
                                                         nbf=now - 7200, exp=now - 3600), "cluster"),
        "azure-token-other-sa": sign_jwt(issuer_key, dict(base, aud=[ENTRA_EXCHANGE_AUDIENCE], **intruder), "cluster"),
    }
    for name, token in tokens.items():
        path = os.path.join(out, name)
        with open(path, "w") as f:
            f.write(token)
        os.chmod(path, 0o644)
    return tokens


class State:
    def __init__(self, directory):
        self.directory = directory
        with open(os.path.join(directory, "gcp-sa.json")) as f:
            sa = json.load(f)
        key = serialization.load_pem_private_key(sa["private_key"].encode(), password=None)
        self.registered = {sa["private_key_id"]: key.public_key()}
        self.token_uri = sa["token_uri"]
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.lock = threading.Lock()
        # access token -> (service account, scopes)
        self.gcp_access = {}
        self.gcp_id = {}
        self.azure = set()
        self.issued_log = open(os.path.join(directory, "issued.log"), "a")
        self.oidc_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.signing_key.public_key().public_numbers()
        as_b64 = lambda n: b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))
        with open(os.path.join(directory, "entra-jwks.json"), "w") as f:
            json.dump({"keys": [{"kty": "RSA", "kid": "entra", "use": "sig", "n": as_b64(numbers.n), "e": as_b64(numbers.e)}]}, f)
        for token in mint_web_identity_tokens(directory, self.oidc_key).values():
            self.issued_log.write(token + "\n")
        self.issued_log.flush()

    def issue(self, bucket, token, value=None):
        with self.lock:
            if isinstance(bucket, dict):
                bucket[token] = value
            else:
                bucket.add(token)
            self.issued_log.write(token + "\n")
            self.issued_log.flush()
        return token

    def entra_token(self, resource, client_id):
        """An Entra ID access token as Azure Storage reads it (Azurite checks iss, aud, nbf, exp)."""
        now = int(time.time())
        claims = {"aud": resource.rstrip("/"), "iss": f"https://sts.windows.net/{AZURE_TENANT}/", "iat": now,
                  "nbf": now - 60, "exp": now + 3600, "appid": client_id, "oid": client_id, "sub": client_id,
                  "tid": AZURE_TENANT, "uti": secrets.token_urlsafe(16), "ver": "1.0"}
        return sign_jwt(self.signing_key, claims, "entra")

    def id_token(self, audience):
        now = int(time.time())
        header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "local"}).encode())
        claims = b64url(json.dumps({"iss": "https://accounts.google.com", "aud": audience, "sub": "100000000000000000001",
                                    "email": SA_EMAIL, "iat": now, "exp": now + 3600}).encode())
        signature = self.signing_key.sign(f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return self.issue(self.gcp_id, f"{header}.{claims}.{b64url(signature)}", audience)


def split_jwt(token):
    """(header, claims, signature, signed part), or None when it is not a JWT."""
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        return (json.loads(unb64url(header_b64)), json.loads(unb64url(claims_b64)), unb64url(signature_b64),
                f"{header_b64}.{claims_b64}".encode())
    except Exception:
        return None


def google_assertion_error(state, assertion):
    """None when the assertion is one Google would accept, else (error, description)."""
    parts = split_jwt(assertion)
    if parts is None:
        return ("invalid_grant", "Invalid JWT: the assertion is not a JWT.")
    header, claims, signature, signed = parts
    if header.get("alg") != "RS256":
        return ("invalid_grant", "Invalid JWT: unsupported algorithm.")
    if claims.get("iss") != SA_EMAIL:
        return ("invalid_grant", "Invalid grant: account not found")
    key = state.registered.get(header.get("kid"))
    if key is None:
        # Google checks against every current key of the account when the id is unknown.
        return ("invalid_grant", "Invalid JWT Signature.")
    try:
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return ("invalid_grant", "Invalid JWT Signature.")
    if claims.get("aud") != state.token_uri:
        return ("invalid_grant", "Invalid JWT: Failed audience check.")
    now = time.time()
    iat, exp = claims.get("iat", 0), claims.get("exp", 0)
    if not (iat - 300 <= now <= exp + 300) or exp - iat > 3600:
        return ("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
    if not claims.get("scope") and not claims.get("target_audience"):
        return ("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (40 ms a response).
    disable_nagle_algorithm = True
    state = None

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def reply(self, status, body, content_type="application/json"):
        data = (json.dumps(body) if not isinstance(body, str) else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def form(self):
        length = int(self.headers.get("Content-Length") or 0)
        return dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))

    def bearer(self):
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if url.path == "/token":
            return self.google_token(self.form())
        if url.path == "/":
            form = self.form()
            if form.get("Action") == "AssumeRoleWithWebIdentity":
                return self.assume_role_with_web_identity(form)
            return self.sts_error(400, "InvalidAction", f"Could not find operation {form.get('Action')} for version {form.get('Version')}")
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            return self.entra_token(parts[0], self.form())
        if url.path == "/apis/authentication.k8s.io/v1/tokenreviews":
            return self.token_review()
        self.reply(404, {"error": "not_found"})

    def token_review(self):
        """The Kubernetes API server's TokenReview, as Vault's kubernetes auth calls it: the
        token's signature against the cluster issuer's key, its lifetime and (when asked)
        its audiences; the answer names the service account as the API server does."""
        length = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
        try:
            review = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self.reply(400, {"kind": "Status", "status": "Failure", "message": "bad TokenReview", "code": 400})
        if not self.bearer():
            return self.reply(401, {"kind": "Status", "status": "Failure", "message": "Unauthorized", "code": 401})
        spec = review.get("spec") or {}
        token = spec.get("token", "")
        wanted = spec.get("audiences") or []
        status = {"authenticated": False, "error": "[invalid bearer token, token has been invalidated]"}
        parts = split_jwt(token)
        if parts is not None:
            header, claims, signature, signed = parts
            try:
                self.state.oidc_key.public_key().verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
                verified = claims.get("iss") == OIDC_ISSUER
            except InvalidSignature:
                verified = False
            audiences = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
            account = claims.get("kubernetes.io") or {}
            if not verified or not isinstance(claims.get("exp"), int) or claims["exp"] <= int(time.time()):
                pass
            elif wanted and not set(wanted) & set(audiences):
                status = {"authenticated": False, "error": "[invalid bearer token, token audiences is invalid]"}
            else:
                status = {
                    "authenticated": True,
                    "user": {"username": claims["sub"], "uid": account.get("serviceaccount", {}).get("uid", ""),
                             "groups": ["system:serviceaccounts", f"system:serviceaccounts:{account.get('namespace', '')}",
                                        "system:authenticated"]},
                    "audiences": wanted or audiences,
                }
        self.reply(201, {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {},
                         "spec": spec, "status": status})

    def google_token(self, form):
        state = self.state
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self.reply(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: " + form.get("grant_type", "")})
        problem = google_assertion_error(state, form.get("assertion", ""))
        if problem:
            return self.reply(400, {"error": problem[0], "error_description": problem[1]})
        claims = json.loads(unb64url(form["assertion"].split(".")[1]))
        if claims.get("target_audience"):
            return self.reply(200, {"id_token": state.id_token(claims["target_audience"])})
        token = state.issue(state.gcp_access, "ya29." + secrets.token_urlsafe(48), (SA_EMAIL, claims["scope"]))
        self.reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def sts_error(self, status, code, message):
        body = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                f'<Code>{code}</Code><Message>{xml_escape(message)}</Message></Error>'
                f'<RequestId>{secrets.token_hex(16)}</RequestId></ErrorResponse>')
        self.reply(status, body, "text/xml")

    def assume_role_with_web_identity(self, form):
        token = form.get("WebIdentityToken", "")
        role_arn = form.get("RoleArn", "")
        session = form.get("RoleSessionName", "")
        if not token or not role_arn or not session:
            return self.sts_error(400, "MissingParameter", "RoleArn, RoleSessionName and WebIdentityToken are required")
        parts = split_jwt(token)
        if parts is None:
            return self.sts_error(400, "InvalidIdentityToken", "Token is not a valid JWT")
        header, claims, signature, signed = parts
        if header.get("alg") != "RS256" or claims.get("iss") != OIDC_ISSUER:
            return self.sts_error(400, "InvalidIdentityToken", f"No OpenIDConnect provider found in your account for {claims.get('iss')}")
        try:
            self.state.oidc_key.public_key().verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return self.sts_error(400, "InvalidIdentityToken", "The token's signature does not verify against the provider's keys")
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if STS_AUDIENCE not in audiences:
            return self.sts_error(400, "InvalidIdentityToken", "Incorrect token audience")
        now = int(time.time())
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            return self.sts_error(400, "ExpiredTokenException", f"Token expired: current date/time {now} must be before the expiration date/time {claims.get('exp')}")
        prefix = f"arn:aws:iam::{ACCOUNT}:role/"
        role = role_arn[len(prefix):] if role_arn.startswith(prefix) else None
        if role not in ROLES or claims.get("sub") != TRUSTED_SUBJECT:
            return self.sts_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
        key_var, secret_var = ROLES[role]
        session_token = self.state.issue(set(), "IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(96))
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
        body = (f'<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                f'<AssumeRoleWithWebIdentityResult>'
                f'<SubjectFromWebIdentityToken>{xml_escape(claims["sub"])}</SubjectFromWebIdentityToken>'
                f'<Audience>{STS_AUDIENCE}</Audience>'
                f'<AssumedRoleUser><Arn>arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{xml_escape(session)}</Arn>'
                f'<AssumedRoleId>AROAAUTHPROBE{role.upper().replace("-", "")[:8]}:{xml_escape(session)}</AssumedRoleId></AssumedRoleUser>'
                f'<Credentials><SessionToken>{session_token}</SessionToken>'
                f'<SecretAccessKey>{os.environ[secret_var]}</SecretAccessKey>'
                f'<Expiration>{expiration}</Expiration><AccessKeyId>{os.environ[key_var]}</AccessKeyId></Credentials>'
                f'<Provider>{OIDC_ISSUER}</Provider></AssumeRoleWithWebIdentityResult>'
                f'<ResponseMetadata><RequestId>{secrets.token_hex(16)}</RequestId></ResponseMetadata>'
                f'</AssumeRoleWithWebIdentityResponse>')
        self.reply(200, body, "text/xml")

    def entra_token(self, tenant, form):
        state = self.state
        if tenant not in (AZURE_TENANT, "authprobe.onmicrosoft.com"):
            return self.reply(400, {"error": "invalid_request", "error_description": f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", "error_codes": [90002]})
        if form.get("grant_type") != "client_credentials":
            return self.reply(400, {"error": "unsupported_grant_type", "error_description": "AADSTS70003: The app requested an unsupported grant type."})
        if "client_assertion" in form:
            problem = self.federated_assertion_problem(form)
            if problem:
                return self.reply(400 if problem[0] != "invalid_client" else 401, {"error": problem[0], "error_description": problem[1], "error_codes": [int(problem[1][6:problem[1].index(":")])]})
        elif form.get("client_id") != AZURE_CLIENT_ID:
            return self.reply(400, {"error": "unauthorized_client", "error_description": f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not found in the directory '{tenant}'.", "error_codes": [700016]})
        elif form.get("client_secret") != AZURE_CLIENT_SECRET:
            return self.reply(401, {"error": "invalid_client", "error_description": f"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{AZURE_CLIENT_ID}'.", "error_codes": [7000215]})
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            return self.reply(400, {"error": "invalid_scope", "error_description": f"AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", "error_codes": [1002012]})
        token = state.issue(state.azure, state.entra_token(scope[: -len(".default")], form["client_id"]))
        self.reply(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})

    def signed_gcs(self, url, head):
        public_keys = list(self.state.registered.values())
        gcs_signed.serve(self, url, public_keys, SA_EMAIL, GCS_DENIED, GCS_EMULATOR, head)

    def do_HEAD(self):
        url = urllib.parse.urlsplit(self.path)
        if "X-Goog-Signature=" in url.query or "GoogleAccessId=" in url.query:
            return self.signed_gcs(url, head=True)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def federated_assertion_problem(self, form):
        """None when Entra would accept the client assertion for the app, else (error, AADSTS text)."""
        if form.get("client_id") != AZURE_CLIENT_ID:
            return ("unauthorized_client", f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not found in the directory.")
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return ("invalid_request", "AADSTS50027: JWT token is invalid or malformed (client_assertion_type).")
        parts = split_jwt(form["client_assertion"])
        if parts is None:
            return ("invalid_request", "AADSTS50027: JWT token is invalid or malformed.")
        header, claims, signature, signed = parts
        try:
            self.state.oidc_key.public_key().verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return ("invalid_client", "AADSTS700212: The signature of the client assertion does not verify against the issuer's keys.")
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if claims.get("iss") != OIDC_ISSUER or claims.get("sub") != TRUSTED_SUBJECT or ENTRA_EXCHANGE_AUDIENCE not in audiences:
            return ("invalid_client", f"AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '{claims.get('iss')}'. Assertion Subject: '{claims.get('sub')}'. Assertion Audience: '{','.join(map(str, audiences))}'.")
        now = int(time.time())
        if not (claims.get("nbf", 0) - 300 <= now < claims.get("exp", 0)):
            return ("invalid_client", f"AADSTS700024: Client assertion is not within its valid time range. Current time: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))}, expiry time of assertion {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(claims.get('exp', 0)))}.")
        return None

    def tokeninfo(self, query):
        entry = self.state.gcp_access.get(query.get("access_token", ""))
        if entry is None:
            return self.reply(400, {"error": "invalid_token", "error_description": "Invalid Value"})
        email, scopes = entry
        self.reply(200, {"azp": "100000000000000000001", "aud": "100000000000000000001", "scope": scopes,
                         "exp": str(int(time.time()) + 3000), "expires_in": "3000", "email": email, "email_verified": "true"})

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/oauth2/v3/tokeninfo":
            return self.tokeninfo(query)
        if "X-Goog-Signature=" in url.query or "GoogleAccessId=" in url.query:
            return self.signed_gcs(url, head=False)
        path = url.path
        state = self.state
        if path.startswith("/storage/v1/b/"):
            return self.gcs_list(path, url.query)
        if path == f"/robot/v1/metadata/x509/{urllib.parse.quote(SA_EMAIL)}":
            try:
                with open(os.path.join(self.state.directory, "gcp-sa-certs.json")) as f:
                    return self.reply(200, json.load(f))
            except OSError:
                return self.reply(404, {"error": "not_found"})
        if path.startswith("/computeMetadata/v1/"):
            return self.gcp_metadata(path, query)
        if path == "/metadata/identity/oauth2/token":
            return self.azure_imds(query)
        if path == "/gcp/api":
            ok = self.bearer() in state.gcp_access
            return self.reply(200 if ok else 401, {"ok": ok} if ok else {"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})
        if path == "/gcp/id-api":
            ok = state.gcp_id.get(self.bearer()) == ID_AUDIENCE
            return self.reply(200 if ok else 401, {"ok": ok})
        if path == "/azure/api":
            ok = self.bearer() in state.azure
            return self.reply(200 if ok else 401, {"ok": ok} if ok else {"error": {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}})
        self.reply(404, {"error": "not_found"})

    def gcs_error(self, code, message, reason, **where):
        self.reply(code, {"error": {"code": code, "message": message,
                                    "errors": [dict({"message": message, "domain": "global", "reason": reason}, **where)]}})

    def gcs_list(self, path, query):
        bucket, _, rest = path[len("/storage/v1/b/"):].partition("/")
        if rest not in ("o", "iam"):
            return self.gcs_error(404, "Not Found", "notFound")
        denied = f"does not have storage.objects.list access to the Google Cloud Storage bucket. Permission 'storage.objects.list' denied on resource (or it may not exist)."
        token = self.bearer()
        if token is None:
            return self.gcs_error(401, f"Anonymous caller {denied}", "required", locationType="header", location="Authorization")
        if token not in self.state.gcp_access:
            return self.gcs_error(401, "Invalid Credentials", "authError", locationType="header", location="Authorization")
        if bucket in GCS_DENIED:
            # The emulator decides whether the bucket exists; IAM is checked first, as GCS does.
            return self.gcs_error(403, f"{SA_EMAIL} {denied}", "forbidden")
        try:
            with urllib.request.urlopen(f"{GCS_EMULATOR}{path}?{query}", timeout=10) as answer:
                return self.reply(answer.status, answer.read().decode())
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return self.gcs_error(404, "The specified bucket does not exist.", "notFound")
            return self.gcs_error(err.code, f"emulator: HTTP {err.code}", "backendError")

    def gcp_metadata(self, path, query):
        if self.headers.get("Metadata-Flavor") != "Google":
            return self.reply(403, "Missing required header: Metadata-Flavor\n", "text/plain")
        prefix = "/computeMetadata/v1/instance/service-accounts/"
        if not path.startswith(prefix):
            return self.reply(404, "Not Found\n", "text/plain")
        account, _, what = path[len(prefix):].partition("/")
        if account not in ("default", SA_EMAIL):
            return self.reply(404, "Not Found\n", "text/plain")
        if what == "token":
            scopes = query.get("scopes", GOOGLE_CLOUD_PLATFORM).replace(",", " ")
            token = self.state.issue(self.state.gcp_access, "ya29.c." + secrets.token_urlsafe(48), (SA_EMAIL, scopes))
            return self.reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})
        if what == "identity":
            if not query.get("audience"):
                return self.reply(400, "non-empty audience parameter required\n", "text/plain")
            return self.reply(200, self.state.id_token(query["audience"]), "text/plain")
        self.reply(404, "Not Found\n", "text/plain")

    def azure_imds(self, query):
        if self.headers.get("Metadata") != "true":
            return self.reply(400, {"error": "invalid_request", "error_description": "Required metadata header not specified"})
        if not query.get("api-version"):
            return self.reply(400, {"error": "invalid_request", "error_description": "Required query variable 'api-version' is missing"})
        resource = query.get("resource")
        if not resource:
            return self.reply(400, {"error": "invalid_request", "error_description": "Required audience parameter not specified"})
        if query.get("client_id") not in (None, AZURE_MI_CLIENT_ID):
            return self.reply(400, {"error": "invalid_request", "error_description": "Identity not found"})
        if resource not in AZURE_RESOURCES:
            return self.reply(400, {"error": "invalid_resource", "error_description": f"AADSTS500011: The resource principal named {resource} was not found in the tenant named {AZURE_TENANT}."})
        token = self.state.issue(self.state.azure, self.state.entra_token(resource, query.get("client_id", AZURE_MI_CLIENT_ID)))
        now = int(time.time())
        self.reply(200, {"access_token": token, "client_id": query.get("client_id", AZURE_MI_CLIENT_ID), "expires_in": "86399",
                         "expires_on": str(now + 86399), "ext_expires_in": "86399", "not_before": str(now),
                         "resource": resource, "token_type": "Bearer"})


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("keys", "serve"):
        sys.exit(__doc__)
    command, directory, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if command == "keys":
        make_keys(directory, port)
        return
    Handler.state = State(directory)
    # The default backlog (5) drops concurrent connections, which then wait a second for
    # the SYN to be retried.
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
