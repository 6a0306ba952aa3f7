#!/usr/bin/env python3
"""SQL Server stand-in: pysqlbridge (a TDS server) with the harness's certificate instead
of the self-signed one its command line makes, SQL logins from a config file, and tables
from CSV files. Usage: mssql_standin.py CONFIG CERT KEY PORT"""
import logging
import sys

from pysqlbridge.catalog import load as load_catalog
from pysqlbridge.certificate import load as load_certificate
from pysqlbridge.logins import load as load_logins
from pysqlbridge.server import BridgeServer

config, cert, key, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(message)s")
catalog = load_catalog(config)
catalog.warm()
server = BridgeServer("127.0.0.1", port, load_certificate(cert, key), catalog.answer, logins=load_logins(config))
logging.info("listening on 127.0.0.1:%s", port)
server.serve_forever()
