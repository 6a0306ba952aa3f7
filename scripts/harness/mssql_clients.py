#!/usr/bin/env python3
"""Logs in to a SQL Server (or the stand-in) with a client not written here and prints one
line: `ok ROWS [FIRST ROW]` or `error NUMBER MESSAGE`. For checking the stand-in in tests/harness_servers.rs.

Usage: mssql_clients.py odbc|pytds PORT ENCRYPT [DATABASE [SQL [PASSWORD]]]
  odbc   Microsoft's ODBC driver 18 (inside mssql-python); ENCRYPT yes|strict|no; the
         harness CA is trusted through SSL_CERT_FILE (OpenSSL's), the name is localhost.
  pytds  python-tds; ENCRYPT yes (verified against the harness CA) or no.
The password defaults to $AP_MSSQL_PASSWORD; the user is $MSSQL_CLIENT_USER, else $AP_MSSQL_USER.
"""
import os
import re
import sys

client, port, encrypt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
database = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None
sql = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] else "SELECT 1"
password = sys.argv[6] if len(sys.argv) > 6 else os.environ["AP_MSSQL_PASSWORD"]
user = os.environ.get("MSSQL_CLIENT_USER") or os.environ["AP_MSSQL_USER"]


def report(rows):
    print("ok", len(rows), list(rows[0]) if rows else "")


try:
    if client == "odbc":
        os.environ["SSL_CERT_FILE"] = os.environ["AP_CA"]
        import mssql_python

        mssql_python.pooling(enabled=False)
        conn = (f"Server=localhost,{port};UID={user};PWD={password};Encrypt={encrypt};"
                + (f"Database={database};" if database else ""))
        try:
            c = mssql_python.connect(conn, timeout=15)
        except Exception as exc:  # the driver reports the last message; its number is in the text
            text = str(exc)
            number = re.search(r"\b(18456|4060|229)\b", text)
            if "Cannot open database" in text:
                number = "4060"
            elif "Login failed" in text:
                number = "18456"
            print("error", number if isinstance(number, str) else (number.group(1) if number else "-"), text)
            sys.exit(1)
        cur = c.cursor()
        try:
            cur.execute(sql)
            report(cur.fetchall())
        except Exception as exc:
            text = str(exc)
            print("error", "229" if "permission was denied" in text else "-", text)
            sys.exit(1)
    elif client == "pytds":
        import pytds

        kwargs = dict(server="localhost", port=port, user=user, password=password, database=database,
                      login_timeout=15, timeout=15)
        if encrypt == "yes":
            kwargs.update(cafile=os.environ["AP_CA"], validate_host=True)
        try:
            c = pytds.connect(**kwargs)
            cur = c.cursor()
            cur.execute(sql)
            report(cur.fetchall())
        except pytds.Error as exc:
            print("error", getattr(exc, "msg_no", "-"), exc)
            sys.exit(1)
    else:
        sys.exit(f"unknown client {client}")
except SystemExit:
    raise
except Exception as exc:  # connection-level failures: no server number
    print("error", "-", type(exc).__name__, exc)
    sys.exit(1)
