"""Google Cloud Storage's XML API for signed URLs, as the cloud token service serves it in
front of the GCS emulator: GET (or HEAD) /BUCKET/OBJECT with a V4 (X-Goog-*) or V2
(GoogleAccessId/Expires/Signature) query signature, checked the way GCS checks it: the
RSA-SHA256 signature against the service account's registered keys, the signing time
and lifetime, then the account's access to the bucket, then the object. Answers carry
GCS's XML error bodies and codes (ExpiredToken, SignatureDoesNotMatch, AccessDenied,
NoSuchKey), and a Range header is honoured.
"""

import base64
import binascii
import datetime
import hashlib
import time
import urllib.error
import urllib.parse
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding


def xml_error(code, message, details=None):
    extra = f"<Details>{details}</Details>" if details else ""
    return f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message>{extra}</Error>"


def quote(text):
    return urllib.parse.quote(text, safe="~-._")


def v4_problem(method, path, pairs, host, public_keys, email, now):
    """None when the V4 signature is valid now, else (status, code, message, details)."""
    query = dict(pairs)
    mismatch = (403, "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your Google secret key and signing method.")
    try:
        date = query["X-Goog-Date"]
        lifetime = int(query["X-Goog-Expires"])
        credential = query["X-Goog-Credential"]
        signature = binascii.unhexlify(query["X-Goog-Signature"])
        signed_at = datetime.datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    except (KeyError, ValueError, binascii.Error):
        return (400, "AuthorizationQueryParametersError", "Query-string authentication version 4 requires the X-Goog-Algorithm, X-Goog-Credential, X-Goog-Signature, X-Goog-Date, X-Goog-SignedHeaders, and X-Goog-Expires parameters.", None)
    if query.get("X-Goog-Algorithm") != "GOOG4-RSA-SHA256" or lifetime > 604800:
        return (400, "AuthorizationQueryParametersError", "Invalid argument.", None)
    if now > signed_at + lifetime:
        expired_at = datetime.datetime.fromtimestamp(signed_at + lifetime, datetime.timezone.utc).isoformat()
        return (400, "ExpiredToken", "Invalid argument.", f"Request signature expired at: {expired_at}")
    if signed_at > now + 900:
        return (400, "RequestTimeTooSkewed", "Invalid argument.", None)
    account, _, scope = credential.partition("/")
    if account != email:
        return mismatch + (None,)
    canonical_query = "&".join(f"{quote(k)}={quote(v)}" for k, v in sorted(pairs) if k != "X-Goog-Signature")
    signed_headers = query.get("X-Goog-SignedHeaders", "")
    if signed_headers != "host":
        return mismatch + (None,)
    canonical = "\n".join([method, path, canonical_query, f"host:{host}\n", signed_headers, "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["GOOG4-RSA-SHA256", date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    if not verified(public_keys, signature, to_sign.encode()):
        return mismatch + (None,)
    return None


def v2_problem(method, path, pairs, public_keys, email, now):
    query = dict(pairs)
    try:
        expires = int(query["Expires"])
        signature = base64.b64decode(query["Signature"])
    except (KeyError, ValueError, binascii.Error):
        return (400, "MissingSecurityHeader", "Your request was missing a required header.", None)
    if now > expires:
        return (400, "ExpiredToken", "Invalid argument.", f"Request signature expired at: {expires}")
    to_sign = f"{method}\n\n\n{expires}\n{urllib.parse.unquote(path)}"
    if query.get("GoogleAccessId") != email or not verified(public_keys, signature, to_sign.encode()):
        return (403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your Google secret key and signing method.", None)
    return None


def verified(public_keys, signature, message):
    for key in public_keys:
        try:
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            return True
        except InvalidSignature:
            continue
    return False


def serve(handler, url, public_keys, email, denied_buckets, emulator, head=False):
    """Answers a signed GET/HEAD on handler (a BaseHTTPRequestHandler)."""
    pairs = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
    method = "HEAD" if head else "GET"
    host = handler.headers.get("Host", "")
    now = time.time()
    if any(k == "X-Goog-Signature" for k, _ in pairs):
        problem = v4_problem(method, url.path, pairs, host, public_keys, email, now)
    else:
        problem = v2_problem(method, url.path, pairs, public_keys, email, now)
    bucket, _, name = urllib.parse.unquote(url.path).lstrip("/").partition("/")
    if problem is None and bucket in denied_buckets:
        problem = (403, "AccessDenied", "Access denied.",
                   f"{email} does not have storage.objects.get access to the Google Cloud Storage object. Permission 'storage.objects.get' denied on resource (or it may not exist).")
    data = None
    if problem is None:
        try:
            source = f"{emulator}/download/storage/v1/b/{quote(bucket)}/o/{quote(name)}?alt=media"
            with urllib.request.urlopen(source, timeout=10) as answer:
                data = answer.read()
        except urllib.error.HTTPError:
            problem = (404, "NoSuchKey", "The specified key does not exist.", None)
    if problem is not None:
        status, code, message, details = problem
        body = b"" if head else xml_error(code, message, details).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/xml; charset=UTF-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return
    status, headers, body = 200, {}, data
    wanted = handler.headers.get("Range", "")
    if wanted.startswith("bytes=") and "-" in wanted:
        first, _, last = wanted[6:].partition("-")
        if first.isdigit():
            start = int(first)
            end = min(int(last), len(data) - 1) if last.isdigit() else len(data) - 1
            if start >= len(data):
                status, body, headers = 416, b"", {"Content-Range": f"bytes */{len(data)}"}
            else:
                status, body = 206, data[start:end + 1]
                headers = {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
    handler.send_response(status)
    for k, v in headers.items():
        handler.send_header(k, v)
    handler.send_header("Content-Type", "application/octet-stream")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if not head:
        handler.wfile.write(body)
