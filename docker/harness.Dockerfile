# One image for every test server of the harness except SQL Server: each compose service
# runs `scripts/servers.sh serve NAME`, the same code the native path runs, so both paths
# have the same users, passwords, ports and certificates.
FROM rust:1.85-bookworm AS s3s
RUN cargo install s3s-fs@0.14.1 --features binary --locked --root /opt/s3s

FROM node:20-bookworm-slim AS node

FROM debian:12
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nginx postgresql mariadb-server mariadb-client mariadb-plugin-gssapi-server mariadb-plugin-gssapi-client openssh-server vsftpd openssh-client sshpass socat iproute2 squid dante-server \
      python3 python3-venv ca-certificates openssl procps \
      krb5-kdc krb5-admin-server krb5-user faketime apache2 libapache2-mod-auth-gssapi \
 && mkdir -p /opt/authprobe-cache/deb/libpam-script && cd /opt/authprobe-cache/deb/libpam-script \
 && apt-get download libpam-script && dpkg-deb -x libpam-script_*.deb root && cd / \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir cryptography "moto[server]==5.2.5" boto3 azure-storage-blob==12.31.1 google-cloud-storage==3.17.1 pysqlbridge==2.1.3 PyMySQL==1.2.4 gcp-storage-emulator==2026.7.19
ENV PATH=/opt/venv/bin:$PATH AUTHPROBE_CACHE=/opt/authprobe-cache
COPY --from=s3s /opt/s3s /opt/authprobe-cache/s3s
RUN mkdir -p /opt/authprobe-cache/node && cd /opt/authprobe-cache/node \
 && npm install --no-audit --no-fund oidc-provider@9.13.3
RUN mkdir -p /opt/authprobe-cache/azurite && cd /opt/authprobe-cache/azurite \
 && npm install --no-audit --no-fund azurite@3.35.0
WORKDIR /authprobe
COPY scripts /authprobe/scripts
