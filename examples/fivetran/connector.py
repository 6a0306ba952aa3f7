"""A Fivetran Connector SDK connector whose credentials authprobe checks: at setup (the
configuration form's tests) and as the first line of every sync (`fail_fast`), with the
three probes the SDK's documentation writes by hand — an API key against a health
endpoint, SQL Server, and an S3 bucket — each with stages, error classes and hints.

    fivetran debug --configuration configuration.json
    fivetran configuration --test
"""

from authprobe.fivetran import fail_fast, setup_test
from fivetran_connector_sdk import ConfigurationForm, Connector
from fivetran_connector_sdk import Logging as log
from fivetran_connector_sdk import Operations as op


def api(configuration):
    """The API key against the API's health endpoint."""
    return {
        "name": "api",
        "kind": "http",
        "url": configuration["api_url"],
        "auth": {"type": "bearer", "token": configuration["api_key"]},
        "tls": {"ca": configuration.get("ca_file") or None},
    }


def sql_server(configuration):
    """A SQL Server login and a query, over verified TLS."""
    return {
        "name": "sql_server",
        "kind": "mssql",
        "host": configuration["mssql_host"],
        "port": configuration["mssql_port"],
        "user": configuration["mssql_user"],
        "password": configuration["mssql_password"],
        "query": "SELECT 1",
        "tls": {"mode": "verify-full", "ca": configuration.get("ca_file") or None},
    }


def bucket(configuration):
    """Listing the bucket with the access key."""
    return {
        "name": "bucket",
        "kind": "s3",
        "bucket": configuration["s3_bucket"],
        "endpoint": configuration.get("s3_endpoint") or None,
        "region": configuration.get("s3_region") or "us-east-1",
        "auth": {
            "type": "static",
            "access_key_id": configuration["s3_access_key_id"],
            "secret_access_key": configuration["s3_secret_access_key"],
        },
    }


PROBES = (api, sql_server, bucket)


def configuration_form():
    form = ConfigurationForm()
    form.add_test(label="The API key works", func=setup_test(api))
    form.add_test(label="The SQL Server login works", func=setup_test(sql_server))
    form.add_test(label="The S3 key can list the bucket", func=setup_test(bucket))
    return form


def schema(configuration):
    return [{"table": "checks", "primary_key": ["probe"]}]


def update(configuration, state):
    # Before any sync work: credentials that do not work stop the sync here, with why.
    for probe in PROBES:
        fail_fast(probe, configuration)
    log.info("all credentials work; syncing")
    for probe in PROBES:
        op.upsert(table="checks", data={"probe": probe.__name__, "ok": True})
    op.checkpoint(state)


connector = Connector(update=update, schema=schema, configuration_form=configuration_form)

if __name__ == "__main__":
    connector.debug()
