#!/usr/bin/env python3
"""Fills the harness's Azurite (Azure Blob Storage emulator) the way a customer's account
would be: a container with one blob (and a public one, CONTAINER-public), created through the Blob REST API with Shared Key
signatures (which Azurite checks), and account SAS tokens signed with the account key
(good, read-only without list, expired). Writes the SAS tokens to OUT as KEY=VALUE lines.

    azurite_setup.py ENDPOINT ACCOUNT KEY CONTAINER CA_FILE OUT
"""

import base64
import datetime
import email.utils
import hashlib
import hmac
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

API_VERSION = "2021-12-02"
SAS_VERSION = "2019-12-12"


def shared_key(account, key, method, url, headers, length):
    parsed = urllib.parse.urlsplit(url)
    ms = sorted((k.lower(), v.strip()) for k, v in headers.items() if k.lower().startswith("x-ms-"))
    resource = f"/{account}{parsed.path}"
    for name, value in sorted((k.lower(), v) for k, v in urllib.parse.parse_qsl(parsed.query)):
        resource += f"\n{name}:{value}"
    string_to_sign = "\n".join([
        method, "", "", str(length) if length else "", "", headers.get("Content-Type", ""), "", "", "", "", "", "",
    ]) + "\n" + "".join(f"{k}:{v}\n" for k, v in ms) + resource
    signature = hmac.new(base64.b64decode(key), string_to_sign.encode(), hashlib.sha256).digest()
    return f"SharedKey {account}:{base64.b64encode(signature).decode()}"


def request(ctx, account, key, method, url, body=b"", extra=None):
    headers = {"x-ms-date": email.utils.formatdate(usegmt=True), "x-ms-version": API_VERSION}
    headers.update(extra or {})
    headers["Authorization"] = shared_key(account, key, method, url, headers, len(body))
    req = urllib.request.Request(url, data=body if method == "PUT" else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        if err.code == 409:  # already there (a restart with kept data)
            return err.code
        raise SystemExit(f"azurite_setup: {method} {urllib.parse.urlsplit(url).path} -> {err.code} {err.read()[:300]!r}")


def account_sas(account, key, permissions, start, expiry):
    """An account SAS (Blob service; service, container and object resource types)."""
    fields = {"ss": "b", "srt": "sco", "sp": permissions, "st": start, "se": expiry, "spr": "https", "sv": SAS_VERSION}
    string_to_sign = "\n".join([account, permissions, "b", "sco", start, expiry, "", "https", SAS_VERSION]) + "\n"
    fields["sig"] = base64.b64encode(hmac.new(base64.b64decode(key), string_to_sign.encode(), hashlib.sha256).digest()).decode()
    return urllib.parse.urlencode(fields)


def main():
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    endpoint, account, key, container, ca, out = sys.argv[1:]
    ctx = ssl.create_default_context(cafile=ca)
    request(ctx, account, key, "PUT", f"{endpoint}/{container}?restype=container", extra={"Content-Type": "application/octet-stream"})
    blob = b"id,item\n1,widget\n"
    request(ctx, account, key, "PUT", f"{endpoint}/{container}/reports/2026-11.csv", blob,
            {"x-ms-blob-type": "BlockBlob", "Content-Type": "text/csv"})
    # A container anyone may read and list (public access level `container`), for hygiene.
    request(ctx, account, key, "PUT", f"{endpoint}/{container}-public?restype=container",
            extra={"Content-Type": "application/octet-stream", "x-ms-blob-public-access": "container"})
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
    hour, day = datetime.timedelta(hours=1), datetime.timedelta(days=1)
    with open(out, "w") as f:
        # Quoted: a SAS is a query string, and the file is also sourced by shells.
        f.write(f"AP_AZURE_SAS='{account_sas(account, key, 'rl', fmt(now - hour), fmt(now + 7 * day))}'\n")
        f.write(f"AP_AZURE_SAS_NO_LIST='{account_sas(account, key, 'r', fmt(now - hour), fmt(now + 7 * day))}'\n")
        f.write(f"AP_AZURE_SAS_EXPIRED='{account_sas(account, key, 'rl', fmt(now - 2 * hour), fmt(now - hour))}'\n")


if __name__ == "__main__":
    main()
