#!/usr/bin/env python3
"""Signed links for the harness's storage servers, made by the services' own SDKs (boto3,
azure-storage-blob, google-cloud-storage), never by authprobe's code. Prints shell
assignments (AP_LINK_*=...) for servers.env:

- S3 (s3s-fs behind nginx's TLS, which checks SigV4 and SigV2 query signatures and their
  expiry): a good SigV4 link, one in the last quarter of its life, one expired two hours ago, one
  for a missing object, an empty object, a tampered signature, and a SigV2 link.
- Azure (Azurite): service SAS links for a blob: good, write-only (no read permission),
  missing blob, expired, not yet valid, tampered.
- Cloud Storage (gcs_signed.py in the cloud token service, behind nginx's TLS): V4 links
  (good, expired, a locked bucket, a missing object, signed with an unregistered key) and
  a V2 link.

  signed_links.py STATE_DIR     # the AP_* variables of defaults.env in the environment
"""

import datetime
import os
import shlex
import sys
import urllib.parse
from unittest import mock

import boto3
import botocore.auth
import botocore.config
from azure.storage.blob import BlobSasPermissions, generate_blob_sas
from google.cloud.storage import _signing
from google.oauth2 import service_account

env = os.environ
UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC).replace(microsecond=0)


def s3_links():
    endpoint = f"https://localhost:{env['AP_S3_TLS_PORT']}"
    bucket = env["AP_S3_BUCKET"]

    def presign(key, expires, ago=0, version="s3v4"):
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name=env["AP_S3_REGION"],
            aws_access_key_id=env["AP_S3_ACCESS_KEY"], aws_secret_access_key=env["AP_S3_SECRET_KEY"],
            config=botocore.config.Config(signature_version=version, s3={"addressing_style": "path"}))
        signed_at = NOW - datetime.timedelta(seconds=ago)
        with mock.patch.object(botocore.auth, "get_current_datetime", lambda: signed_at.replace(tzinfo=None)):
            return client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires)

    good = presign("reports/daily.csv", 7 * 86400)
    tampered = good[:-1] + ("0" if good[-1] != "0" else "1")
    return {
        "S3_V4": good,
        # In the last quarter of its life for the first hour after the harness starts.
        "S3_V4_SHORT": presign("reports/daily.csv", 4 * 3600, ago=3 * 3600),
        "S3_V4_EXPIRED": presign("reports/daily.csv", 3600, ago=3 * 3600),
        "S3_V4_MISSING": presign("reports/missing.csv", 7 * 86400),
        "S3_V4_EMPTY": presign("reports/empty.csv", 7 * 86400),
        "S3_V4_TAMPERED": tampered,
        "S3_V2": presign("reports/daily.csv", 7 * 86400, version="s3"),
    }


def azure_links():
    account, key, container = env["AP_AZURE_STORAGE_ACCOUNT"], env["AP_AZURE_STORAGE_KEY"], env["AP_AZURE_CONTAINER"]
    base = f"https://127.0.0.1:{env['AP_AZURITE_PORT']}/{account}/{container}"

    def sas(blob, permission, start, expiry):
        token = generate_blob_sas(account, container, blob, account_key=key, permission=permission,
                                  start=NOW + start, expiry=NOW + expiry)
        return f"{base}/{blob}?{token}"

    hour = datetime.timedelta(hours=1)
    good = sas("reports/2026-11.csv", BlobSasPermissions(read=True), -hour, 7 * 24 * hour)
    head, _, sig = good.rpartition("sig=")
    return {
        "AZURE_SAS": good,
        "AZURE_SAS_WRITE_ONLY": sas("reports/2026-11.csv", BlobSasPermissions(write=True), -hour, 7 * 24 * hour),
        "AZURE_SAS_MISSING": sas("reports/missing.csv", BlobSasPermissions(read=True), -hour, 7 * 24 * hour),
        "AZURE_SAS_EXPIRED": sas("reports/2026-11.csv", BlobSasPermissions(read=True), -3 * hour, -2 * hour),
        "AZURE_SAS_NOT_YET": sas("reports/2026-11.csv", BlobSasPermissions(read=True), 2 * hour, 7 * 24 * hour),
        "AZURE_SAS_TAMPERED": f"{head}sig={'A' if sig[0] != 'A' else 'B'}{sig[1:]}",
    }


def gcs_links(state):
    endpoint = f"https://localhost:{env['AP_CLOUD_TLS_PORT']}"
    good_key = service_account.Credentials.from_service_account_file(f"{state}/cloud/gcp-sa.json")
    rotated_key = service_account.Credentials.from_service_account_file(f"{state}/cloud/gcp-sa-rotated.json")
    bucket, locked = env["AP_GCS_BUCKET"], env["AP_GCS_LOCKED_BUCKET"]

    def v4(credentials, bucket, name, expires, ago=0):
        stamp = (NOW - datetime.timedelta(seconds=ago)).strftime("%Y%m%dT%H%M%SZ")
        return _signing.generate_signed_url_v4(
            credentials, resource=f"/{bucket}/{urllib.parse.quote(name, safe='/~')}", expiration=expires,
            api_access_endpoint=endpoint, method="GET", _request_timestamp=stamp)

    week = 7 * 86400
    v2 = _signing.generate_signed_url_v2(
        good_key, resource=f"/{bucket}/reports/2026-11.csv", expiration=NOW + datetime.timedelta(days=7),
        api_access_endpoint=endpoint, method="GET")
    return {
        "GCS_V4": v4(good_key, bucket, "reports/2026-11.csv", week),
        "GCS_V4_EXPIRED": v4(good_key, bucket, "reports/2026-11.csv", 3600, ago=3 * 3600),
        "GCS_V4_LOCKED": v4(good_key, locked, "reports/2026-11.csv", week),
        "GCS_V4_MISSING": v4(good_key, bucket, "reports/missing.csv", week),
        "GCS_V4_ROTATED_KEY": v4(rotated_key, bucket, "reports/2026-11.csv", week),
        "GCS_V2": v2,
    }


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    links = {}
    links.update(s3_links())
    links.update(azure_links())
    links.update(gcs_links(sys.argv[1]))
    for name, url in links.items():
        print(f"AP_LINK_{name}={shlex.quote(url)}")


if __name__ == "__main__":
    main()
