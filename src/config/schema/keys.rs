//! Every table and key of `probes.toml` (docs/config.md says what each does at length).

use super::{Key, Table, Tagged, Ty, Variant};

const fn key(name: &'static str, ty: Ty, doc: &'static str) -> Key {
    Key { name, ty, doc }
}

// ------------------------------------------------------------------ shared tables

const TLS_KEYS: &[Key] = &[
    key("ca", Ty::Path, "PEM bundle that replaces the system trust store"),
    key("client_cert", Ty::Path, "client certificate (PEM); with client_key"),
    key("client_key", Ty::Path, "client key (PEM); with client_cert"),
    key("server_name", Ty::Str, "the name the certificate must carry (and SNI)"),
    key("pin_sha256", Ty::StrList, "SHA-256 fingerprints of the certificates to trust"),
    key(
        "insecure",
        Ty::Bool,
        "no verification at all (the probe WARNs; credentials still need allow_unverified_password)",
    ),
];

static TLS: Table = Table { name: Some("tls"), keys: &[TLS_KEYS] };

static DB_TLS: Table = Table {
    name: Some("database_tls"),
    keys: &[
        TLS_KEYS,
        &[key(
            "mode",
            Ty::Str,
            "disable, prefer, require, verify-ca, verify-full (mssql also strict); MySQL's spellings too [prefer; verify-full with ca or pin_sha256]",
        )],
    ],
};

static FTP_TLS: Table = Table {
    name: Some("ftp_tls"),
    keys: &[TLS_KEYS, &[key("mode", Ty::OneOf(&["explicit", "implicit", "disable"]), "how TLS starts [explicit]")]],
};

const COMMON: &[Key] = &[
    key("name", Ty::Str, "unique; used by --only/--skip and in every report"),
    key("tags", Ty::StrList, "matched by --only/--skip; tags also name the probe's environment"),
    key("timeout", Ty::Duration, "the probe's time, all stages together"),
    key("warn_expiry_days", Ty::Int, "a certificate or credential ending sooner makes the probe WARN"),
    key("via", Ty::Str, "the [[tunnel]] every connection of this probe goes through"),
    key("proxy", Ty::Str, "http://, socks5:// or socks5h:// proxy URL, or \"none\""),
    key("allowed_targets", Ty::StrList, "the servers serve may aim this probe at (?module=NAME&target=…)"),
    key(
        "allow_unverified_password",
        Ty::Bool,
        "let a secret go in recoverable form to a server whose identity is not verified",
    ),
    key("hygiene", Ty::Bool, "ask, read-only, what the credential may do beyond the probe's need"),
    key("expect_read_only", Ty::Bool, "the credential is meant to read only"),
    key("expect_scopes", Ty::StrList, "the OAuth2 scopes the probe's token needs"),
    key("max_age", Ty::Duration, "a credential older than this WARNs"),
];

const WITH_TLS: &[Key] = &[key("tls", Ty::Table(&TLS), "how the server is verified (and the client certificate)")];
const WITH_DB_TLS: &[Key] =
    &[key("tls", Ty::Table(&DB_TLS), "whether and how the session is encrypted and the server verified")];
const WITH_FTP_TLS: &[Key] = &[key("tls", Ty::Table(&FTP_TLS), "how TLS starts and the server is verified")];

// ------------------------------------------------------------------ identities

const GCP_TARGET: &[Key] = &[
    key("scopes", Ty::StrList, "OAuth2 scopes for an access token [cloud-platform]"),
    key("audience", Ty::Str, "for an ID token instead (Cloud Run, IAP, your own services)"),
];

const AZURE_AUTHORITY: Key = key("authority", Ty::Url, "the Entra authority [https://login.microsoftonline.com]");

static CLOUD_VARIANTS: [Variant; 5] = [
    Variant {
        tag: "gcp_service_account",
        doc: "a service-account JSON key",
        keys: &[&[key("key_file", Ty::Path, "the service account's JSON key")], GCP_TARGET],
    },
    Variant {
        tag: "gcp_metadata",
        doc: "GCP's metadata server (on GCP itself)",
        keys: &[
            &[
                key("endpoint", Ty::Url, "the metadata server [http://metadata.google.internal]"),
                key("service_account", Ty::Str, "[default]"),
            ],
            GCP_TARGET,
        ],
    },
    Variant {
        tag: "azure_managed_identity",
        doc: "Azure's instance metadata service (on Azure itself)",
        keys: &[&[
            key("resource", Ty::Str, "the resource the token is for"),
            key("client_id", Ty::Str, "a user-assigned identity"),
            key("endpoint", Ty::Url, "the metadata service [http://169.254.169.254]"),
        ]],
    },
    Variant {
        tag: "azure_workload_identity",
        doc: "Entra Workload ID: the projected service-account token as a client assertion",
        keys: &[&[
            key("tenant_id", Ty::Str, "[AZURE_TENANT_ID]"),
            key("client_id", Ty::Str, "[AZURE_CLIENT_ID]"),
            key("token_file", Ty::Path, "[AZURE_FEDERATED_TOKEN_FILE]"),
            key("scope", Ty::Str, "ends in /.default"),
            AZURE_AUTHORITY,
        ]],
    },
    Variant {
        tag: "azure_client_secret",
        doc: "an app registration's client secret",
        keys: &[&[
            key("tenant_id", Ty::Str, "the directory"),
            key("client_id", Ty::Str, "the app registration"),
            key("client_secret", Ty::Secret, "the app's secret"),
            key("scope", Ty::Str, "ends in /.default"),
            AZURE_AUTHORITY,
        ]],
    },
];

static CLOUD: Tagged = Tagged { name: "cloud_identity", tag: "type", common: &[], variants: &CLOUD_VARIANTS };

static AWS_VARIANTS: [Variant; 7] = [
    Variant {
        tag: "static",
        doc: "an IAM user's or a session's keys",
        keys: &[&[
            key("access_key_id", Ty::Str, "AKIA…/ASIA…"),
            key("secret_access_key", Ty::Secret, "the secret key"),
            key("session_token", Ty::Secret, "for temporary credentials"),
        ]],
    },
    Variant {
        tag: "profile",
        doc: "a profile of the AWS config and credentials files",
        keys: &[&[key("profile", Ty::Str, "the profile's name")]],
    },
    Variant { tag: "env", doc: "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, …", keys: &[] },
    Variant { tag: "default_chain", doc: "the SDK's chain: environment, files, web identity, ECS, IMDS", keys: &[] },
    Variant { tag: "anonymous", doc: "unsigned requests", keys: &[] },
    Variant {
        tag: "assume_role",
        doc: "STS AssumeRole with another source's credentials",
        keys: &[&[
            key("role_arn", Ty::Str, "the role to assume"),
            key("external_id", Ty::Secret, "the external id the role's trust policy asks for"),
            key("session_name", Ty::Str, "[authprobe]"),
            key("source", Ty::Tagged(&AWS), "the credentials to call STS with [default_chain]"),
        ]],
    },
    Variant {
        tag: "web_identity",
        doc: "STS AssumeRoleWithWebIdentity with a token file (EKS IRSA, CI OIDC)",
        keys: &[&[
            key("role_arn", Ty::Str, "the role to assume"),
            key("token_file", Ty::Path, "the identity token, read at each attempt"),
            key("session_name", Ty::Str, "[authprobe]"),
            key("sts_endpoint", Ty::Url, "a regional or VPC STS endpoint"),
        ]],
    },
];

static AWS: Tagged = Tagged { name: "aws_credentials", tag: "type", common: &[], variants: &AWS_VARIANTS };

const KERBEROS_KEYS: &[Key] = &[
    key("principal", Ty::Str, "user@REALM, with keytab or password"),
    key("keytab", Ty::Path, "a keytab holding the principal's key"),
    key("password", Ty::Secret, "the principal's password"),
    key("ccache", Ty::Str, "a ticket cache (FILE:…) [KRB5CCNAME, krb5.conf's default]"),
    key("realm", Ty::Str, "instead of krb5.conf's default"),
    key("kdc", Ty::StrOrList, "host[:port] of the realm's KDCs"),
    key("krb5_conf", Ty::Path, "a krb5.conf to read instead of KRB5_CONFIG or /etc/krb5.conf"),
    key("service_principal", Ty::Str, "instead of the one derived from the host"),
];

const KERBEROS: Variant = Variant { tag: "kerberos", doc: "a Kerberos ticket (GSS-API)", keys: &[KERBEROS_KEYS] };

// ------------------------------------------------------------------ http

const OAUTH2_COMMON: &[Key] = &[
    key("token_url", Ty::Url, "the token endpoint"),
    key("client_id", Ty::Str, "the client"),
    key("client_secret", Ty::Secret, "the client's secret"),
    key("scope", Ty::Str, "the scopes asked for"),
    key("client_auth", Ty::OneOf(&["basic", "post"]), "how the client authenticates [basic]"),
];

static HTTP_AUTH_VARIANTS: [Variant; 13] = [
    Variant { tag: "none", doc: "no credentials", keys: &[] },
    Variant {
        tag: "basic",
        doc: "HTTP basic auth",
        keys: &[&[key("username", Ty::Str, "the user"), key("password", Ty::Secret, "the password")]],
    },
    Variant { tag: "bearer", doc: "Authorization: Bearer", keys: &[&[key("token", Ty::Secret, "the token")]] },
    Variant {
        tag: "api_key",
        doc: "an API key in a header or the query",
        keys: &[&[
            key("key", Ty::Secret, "the key"),
            key("header", Ty::Str, "the header that carries it (or query)"),
            key("query", Ty::Str, "the query parameter that carries it (or header)"),
        ]],
    },
    Variant { tag: "oauth2_client_credentials", doc: "OAuth2 client credentials", keys: &[OAUTH2_COMMON] },
    Variant {
        tag: "oauth2_refresh_token",
        doc: "OAuth2 refresh token",
        keys: &[&[
            key("token_url", Ty::Url, "the token endpoint"),
            key("client_id", Ty::Str, "the client"),
            key("client_secret", Ty::Secret, "the client's secret, if it has one"),
            key("refresh_token", Ty::Secret, "the refresh token"),
        ]],
    },
    Variant { tag: "gcp_service_account", doc: CLOUD_VARIANTS[0].doc, keys: CLOUD_VARIANTS[0].keys },
    Variant { tag: "gcp_metadata", doc: CLOUD_VARIANTS[1].doc, keys: CLOUD_VARIANTS[1].keys },
    Variant { tag: "azure_managed_identity", doc: CLOUD_VARIANTS[2].doc, keys: CLOUD_VARIANTS[2].keys },
    Variant { tag: "azure_workload_identity", doc: CLOUD_VARIANTS[3].doc, keys: CLOUD_VARIANTS[3].keys },
    Variant { tag: "azure_client_secret", doc: CLOUD_VARIANTS[4].doc, keys: CLOUD_VARIANTS[4].keys },
    Variant {
        tag: "aws_sigv4",
        doc: "the request signed with AWS Signature Version 4",
        keys: &[&[
            key("service", Ty::Str, "execute-api, es, lambda, s3, …"),
            key("region", Ty::Str, "the region signed for"),
            key("credentials", Ty::Tagged(&AWS), "where the AWS credentials come from [default_chain]"),
        ]],
    },
    KERBEROS,
];

static HTTP_AUTH: Tagged = Tagged { name: "http_auth", tag: "type", common: &[], variants: &HTTP_AUTH_VARIANTS };

static EXPECT: Table = Table {
    name: None,
    keys: &[&[
        key("status", Ty::Statuses, "accepted statuses: 200, \"2xx\", or an array [any 2xx]"),
        key("body_contains", Ty::Str, "text the body must contain (first 1 MiB)"),
    ]],
};

const HTTP: &[Key] = &[
    key("url", Ty::Str, "http:// or https://"),
    key("method", Ty::Str, "[GET]"),
    key("headers", Ty::StrMap, "extra headers; credential-like names are secrets"),
    key("body", Ty::Secret, "the request body"),
    key("url_is_secret", Ty::Bool, "mask the whole URL everywhere (a webhook whose path is its key)"),
    key("expect", Ty::Table(&EXPECT), "what the response must be"),
    key("auth", Ty::Tagged(&HTTP_AUTH), "the credentials [none]"),
];

// ------------------------------------------------------------------ databases

static DB_AUTH_VARIANTS: [Variant; 4] = [
    Variant {
        tag: "rds_iam",
        doc: "an RDS IAM token as the password",
        keys: &[&[
            key("region", Ty::Str, "the instance's region"),
            key("credentials", Ty::Tagged(&AWS), "the AWS credentials that sign the token [default_chain]"),
        ]],
    },
    Variant {
        tag: "entra",
        doc: "a Microsoft Entra ID token as the password",
        keys: &[&[key("credentials", Ty::Tagged(&CLOUD), "the Azure identity")]],
    },
    Variant {
        tag: "gcp_iam",
        doc: "a Google access token as the password (Cloud SQL IAM)",
        keys: &[&[key("credentials", Ty::Tagged(&CLOUD), "the Google identity")]],
    },
    KERBEROS,
];

static DB_AUTH: Tagged = Tagged { name: "database_auth", tag: "type", common: &[], variants: &DB_AUTH_VARIANTS };

const DB: &[Key] = &[
    key("host", Ty::Str, "the server"),
    key("port", Ty::Port, "[5432 / 3306 / 1433]"),
    key("user", Ty::Str, "the database user"),
    key("password", Ty::Secret, "the password"),
    key("database", Ty::Str, "[postgres: the user; others: the server's default]"),
    key("query", Ty::Str, "the check [SELECT 1]"),
];

const DB_TOKEN_AUTH: &[Key] = &[key("auth", Ty::Tagged(&DB_AUTH), "a cloud token or Kerberos instead of password")];

const POSTGRES: &[Key] = &[
    key("require_auth", Ty::StrOrList, "the methods the server may ask for, as libpq's (!method forbids)"),
    key("channel_binding", Ty::OneOf(&["disable", "prefer", "require"]), "SCRAM-SHA-256-PLUS [prefer]"),
];

const MYSQL: &[Key] = &[key("server_public_key", Ty::Path, "the server's RSA public key (PEM)")];

// ------------------------------------------------------------------ object stores

const S3: &[Key] = &[
    key("bucket", Ty::Str, "the bucket"),
    key("prefix", Ty::Str, "at most one object under it is listed"),
    key("region", Ty::Str, "[us-east-1]"),
    key("endpoint", Ty::Url, "an S3-compatible server"),
    key("path_style", Ty::Bool, "the bucket in the path [true with endpoint]"),
    key("auth", Ty::Tagged(&AWS), "the AWS credentials [default_chain]"),
];

static GCS_AUTH_VARIANTS: [Variant; 4] = [
    Variant { tag: "gcp_service_account", doc: CLOUD_VARIANTS[0].doc, keys: CLOUD_VARIANTS[0].keys },
    Variant { tag: "gcp_metadata", doc: CLOUD_VARIANTS[1].doc, keys: CLOUD_VARIANTS[1].keys },
    Variant {
        tag: "hmac",
        doc: "an HMAC interoperability key (the XML API, SigV4)",
        keys: &[&[key("access_id", Ty::Str, "the key's id"), key("secret", Ty::Secret, "the key's secret")]],
    },
    Variant { tag: "anonymous", doc: "a public bucket", keys: &[] },
];

static GCS_AUTH: Tagged = Tagged { name: "gcs_auth", tag: "type", common: &[], variants: &GCS_AUTH_VARIANTS };

const GCS: &[Key] = &[
    key("bucket", Ty::Str, "the bucket"),
    key("prefix", Ty::Str, "at most one object under it is listed"),
    key("endpoint", Ty::Url, "[https://storage.googleapis.com]"),
    key("auth", Ty::Tagged(&GCS_AUTH), "the credentials"),
];

static AZURE_AUTH_VARIANTS: [Variant; 6] = [
    Variant {
        tag: "shared_key",
        doc: "an account key",
        keys: &[&[key("key", Ty::Secret, "the account key (base64)")]],
    },
    Variant {
        tag: "sas",
        doc: "a shared access signature",
        keys: &[&[key("token", Ty::Secret, "the SAS query string (sv=…&sp=…&sig=…)")]],
    },
    Variant { tag: "azure_managed_identity", doc: CLOUD_VARIANTS[2].doc, keys: CLOUD_VARIANTS[2].keys },
    Variant { tag: "azure_client_secret", doc: CLOUD_VARIANTS[4].doc, keys: CLOUD_VARIANTS[4].keys },
    Variant { tag: "azure_workload_identity", doc: CLOUD_VARIANTS[3].doc, keys: CLOUD_VARIANTS[3].keys },
    Variant { tag: "anonymous", doc: "a public container", keys: &[] },
];

static AZURE_AUTH: Tagged =
    Tagged { name: "azure_blob_auth", tag: "type", common: &[], variants: &AZURE_AUTH_VARIANTS };

const AZURE: &[Key] = &[
    key("account", Ty::Str, "the storage account"),
    key("container", Ty::Str, "the container"),
    key("prefix", Ty::Str, "at most one blob under it is listed"),
    key("endpoint", Ty::Url, "[https://{account}.blob.core.windows.net]"),
    key("auth", Ty::Tagged(&AZURE_AUTH), "the credentials"),
];

// ------------------------------------------------------------------ ssh and ftp

static SSH_AUTH_VARIANTS: [Variant; 4] = [
    Variant { tag: "password", doc: "a password", keys: &[&[key("password", Ty::Secret, "the password")]] },
    Variant {
        tag: "key",
        doc: "a private key (OpenSSH or PEM)",
        keys: &[&[
            key("private_key", Ty::Path, "the key file"),
            key("passphrase", Ty::Secret, "for an encrypted key"),
            key("certificate", Ty::Path, "an OpenSSH user certificate for the key [KEY-cert.pub]"),
        ]],
    },
    Variant { tag: "agent", doc: "every key of the agent at SSH_AUTH_SOCK", keys: &[] },
    KERBEROS,
];

static SSH_AUTH: Tagged = Tagged { name: "ssh_auth", tag: "type", common: &[], variants: &SSH_AUTH_VARIANTS };

const SSH_TARGET: &[Key] = &[
    key("host", Ty::Str, "the server"),
    key("port", Ty::Port, "[22]"),
    key("user", Ty::Str, "the user"),
    key("auth", Ty::Tagged(&SSH_AUTH), "the credentials"),
    key("host_key", Ty::StrOrList, "SHA256:… (ssh-keygen -lf), a key type and fingerprint, or a public key line"),
    key("known_hosts", Ty::Path, "an OpenSSH known_hosts file"),
];

const SFTP: &[Key] = &[key("path", Ty::Str, "the directory to list [.]")];

const FTP: &[Key] = &[
    key("host", Ty::Str, "the server"),
    key("port", Ty::Port, "[21; 990 with tls.mode = \"implicit\"]"),
    key("user", Ty::Str, "[anonymous]"),
    key("password", Ty::Secret, "required for users other than anonymous and ftp"),
    key("path", Ty::Str, "the directory to list [.]"),
    key("passive", Ty::Bool, "[true]; active mode is not supported"),
];

// ------------------------------------------------------------------ probes

static KIND_VARIANTS: [Variant; 9] = [
    Variant { tag: "http", doc: "an HTTP(S) API", keys: &[HTTP, WITH_TLS] },
    Variant { tag: "postgres", doc: "a PostgreSQL login", keys: &[DB, DB_TOKEN_AUTH, POSTGRES, WITH_DB_TLS] },
    Variant { tag: "mysql", doc: "a MySQL or MariaDB login", keys: &[DB, DB_TOKEN_AUTH, MYSQL, WITH_DB_TLS] },
    Variant { tag: "mssql", doc: "a SQL Server login", keys: &[DB, WITH_DB_TLS] },
    Variant { tag: "s3", doc: "an S3 bucket", keys: &[S3, WITH_TLS] },
    Variant { tag: "sftp", doc: "an SFTP login", keys: &[SSH_TARGET, SFTP] },
    Variant { tag: "ftp", doc: "an FTP or FTPS login", keys: &[FTP, WITH_FTP_TLS] },
    Variant { tag: "azure_blob", doc: "an Azure Blob container", keys: &[AZURE, WITH_TLS] },
    Variant { tag: "gcs", doc: "a Google Cloud Storage bucket", keys: &[GCS, WITH_TLS] },
];

static PROBE: Tagged = Tagged { name: "probe", tag: "kind", common: COMMON, variants: &KIND_VARIANTS };

/// The probe kinds the shape declares.
pub fn probe_kinds() -> &'static [Variant] {
    &KIND_VARIANTS
}

// ------------------------------------------------------------------ the rest of the file

static DEFAULTS: Table = Table {
    name: None,
    keys: &[&[
        key("timeout", Ty::Duration, "per probe, all stages together [10s]"),
        key("concurrency", Ty::Int, "probes running at once [32]"),
        key("warn_expiry_days", Ty::Int, "a certificate expiring sooner makes the probe WARN [14]"),
        key("max_age", Ty::Duration, "a credential older than this WARNs"),
        key("approvals", Ty::Path, "approved certificates and host keys [approvals.toml beside the config]"),
        key("proxy", Ty::Str, "the proxy for every probe that sets none"),
        key("environments", Ty::ListsByName, "which tags put a probe in which environment"),
        key("hygiene", Ty::Bool, "ask what credentials may do beyond the probes' need [true]"),
        key("expect_read_only", Ty::Bool, "credentials are meant to read only"),
        key("expect_scopes", Ty::StrList, "the OAuth2 scopes the tokens need"),
    ]],
};

static TUNNEL: Table = Table { name: None, keys: &[&[key("name", Ty::Str, "what probes name with via")], SSH_TARGET] };

static VAULT_AUTH_VARIANTS: [Variant; 5] = [
    Variant {
        tag: "token",
        doc: "a token [VAULT_TOKEN, ~/.vault-token]",
        keys: &[&[key("token", Ty::Secret, "the token")]],
    },
    Variant {
        tag: "approle",
        doc: "AppRole",
        keys: &[&[
            key("role_id", Ty::Str, "the role"),
            key("secret_id", Ty::Secret, "the secret id"),
            key("mount", Ty::Str, "[approle]"),
        ]],
    },
    Variant {
        tag: "userpass",
        doc: "a user name and password",
        keys: &[&[
            key("username", Ty::Str, "the user"),
            key("password", Ty::Secret, "the password"),
            key("mount", Ty::Str, "[userpass]"),
        ]],
    },
    Variant {
        tag: "jwt",
        doc: "a signed JWT for a jwt auth role",
        keys: &[&[
            key("role", Ty::Str, "the role"),
            key("jwt", Ty::Secret, "the token"),
            key("mount", Ty::Str, "[jwt]"),
        ]],
    },
    Variant {
        tag: "kubernetes",
        doc: "the pod's service-account token",
        keys: &[&[
            key("role", Ty::Str, "the role"),
            key("token_path", Ty::Path, "[/var/run/secrets/kubernetes.io/serviceaccount/token]"),
            key("mount", Ty::Str, "[kubernetes]"),
        ]],
    },
];

static VAULT_AUTH: Tagged = Tagged { name: "vault_auth", tag: "type", common: &[], variants: &VAULT_AUTH_VARIANTS };

const AWS_STORE: &[Key] = &[
    key("region", Ty::Str, "[AWS_REGION]"),
    key("endpoint", Ty::Url, "[AWS_ENDPOINT_URL_…]"),
    key("auth", Ty::Tagged(&AWS), "the AWS credentials [default_chain]"),
    key("tls", Ty::Table(&TLS), "how the endpoint is verified"),
];

static STORE_VARIANTS: [Variant; 4] = [
    Variant {
        tag: "vault",
        doc: "Vault or OpenBao",
        keys: &[&[
            key("address", Ty::Url, "[VAULT_ADDR]"),
            key("tls", Ty::Table(&TLS), "how the server is verified [VAULT_CACERT]"),
            key("namespace", Ty::Str, "[VAULT_NAMESPACE]"),
            key("auth", Ty::Tagged(&VAULT_AUTH), "how the store logs in [token]"),
            key("allow_unverified_password", Ty::Bool, "the store's token may go over plain http://"),
        ]],
    },
    Variant {
        tag: "command",
        doc: "a program that prints the secret",
        keys: &[&[key("command", Ty::StrList, "the argv (no shell); the reference is appended")]],
    },
    Variant { tag: "aws_secrets_manager", doc: "AWS Secrets Manager", keys: &[AWS_STORE] },
    Variant { tag: "aws_ssm", doc: "AWS SSM Parameter Store", keys: &[AWS_STORE] },
];

static STORE: Tagged = Tagged {
    name: "secret_store",
    tag: "type",
    common: &[
        key("name", Ty::Str, "the STORE of ${STORE:REF}"),
        key("timeout", Ty::Duration, "how long a read may take"),
        key("cache", Ty::Duration, "how long serve keeps a value read [0s]"),
    ],
    variants: &STORE_VARIANTS,
};

static DELIVER: Table = Table {
    name: None,
    keys: &[&[
        key("age_recipients", Ty::StrList, "age1… public keys results are sealed to"),
        key("outbox", Ty::Path, "where sealed results and the links' state go"),
    ]],
};

static CARDS: Table = Table {
    name: None,
    keys: &[&[
        key("key", Ty::Secret, "signs links and forms (32 bytes or more)"),
        key("public_url", Ty::Url, "where serve is reached"),
        key("deliver", Ty::Table(&DELIVER), "where results go"),
    ]],
};

static CARD: Table = Table {
    name: None,
    keys: &[&[
        key("name", Ty::Str, "what card create names"),
        key("title", Ty::Str, "shown to the owner [the name]"),
        key("probe", Ty::Str, "the template [[probe]]"),
        key("fields", Ty::StrList, "what the owner fills in (dotted for tables: auth.token)"),
        key("expires", Ty::Duration, "a link's lifetime [24h]"),
        key("redirect_uri", Ty::Url, "where the owner goes after a pass"),
    ]],
};

/// The file's own keys.
pub static ROOT: Table = Table {
    name: None,
    keys: &[&[
        key("defaults", Ty::Table(&DEFAULTS), "settings every probe starts from"),
        key("probe", Ty::TaggedTables(&PROBE), "one credential check"),
        key("tunnel", Ty::Tables(&TUNNEL), "an SSH bastion probes go through (via)"),
        key("secret_store", Ty::TaggedTables(&STORE), "where ${STORE:REF} references are read"),
        key("cards", Ty::Table(&CARDS), "check cards: links a credential's owner fills in"),
        key("card", Ty::Tables(&CARD), "one check card"),
    ]],
};
