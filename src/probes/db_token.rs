//! Cloud tokens as database passwords: RDS IAM (a presigned `connect` request signed with
//! AWS credentials), Microsoft Entra ID for Azure Database for PostgreSQL and MySQL (an
//! access token for `https://ossrdbms-aad.database.windows.net`), and Cloud SQL IAM
//! database authentication (a Google OAuth2 access token). Each is made at every attempt in
//! stage `token` and sent only over TLS (verify-full by default), as the services require.

use std::sync::Arc;
use std::time::SystemTime;

use crate::config::TableReader;
use crate::connect::context::ProbeContext;
use crate::connect::tls::TlsOptions;
use crate::identity::aws::creds::{Source, Sts};
use crate::identity::cloud::{self, CloudIdentity};
use crate::model::error::{ErrorClass, Failure, Stage};
use crate::model::redact::Secret;

/// The auth types that make the password a token.
pub const TOKEN_TYPES: &[&str] = &["rds_iam", "entra", "gcp_iam"];

/// The resource Azure's open-source database services accept Entra tokens for.
const OSSRDBMS_RESOURCE: &str = "https://ossrdbms-aad.database.windows.net/";
const ENTRA_SOURCES: &[&str] = &["azure_managed_identity", "azure_client_secret", "azure_workload_identity"];
const GOOGLE_SOURCES: &[&str] = &["gcp_service_account", "gcp_metadata"];

#[derive(Debug)]
pub enum DbToken {
    /// `auth = { type = "rds_iam", region, credentials }`: an RDS auth token, presigned at
    /// each attempt from AWS credentials (valid 15 minutes).
    Rds { region: String, credentials: Source },
    /// `auth = { type = "entra", credentials = { type = "azure_…" } }`.
    Entra { identity: CloudIdentity, source: String },
    /// `auth = { type = "gcp_iam", credentials = { type = "gcp_…" } }`.
    GcpIam { identity: CloudIdentity, source: String },
}

impl DbToken {
    /// Reads `auth` of one of [`TOKEN_TYPES`].
    pub fn read(a: TableReader<'_, '_>, auth_type: &str) -> Option<Arc<DbToken>> {
        let token = match auth_type {
            "rds_iam" => read_rds(&a),
            "entra" => read_cloud(&a, "entra", ENTRA_SOURCES, Some(OSSRDBMS_RESOURCE))
                .map(|(identity, source)| DbToken::Entra { identity, source }),
            _ => read_cloud(&a, "gcp_iam", GOOGLE_SOURCES, None)
                .map(|(identity, source)| DbToken::GcpIam { identity, source }),
        };
        a.finish();
        token.map(Arc::new)
    }

    pub fn name(&self) -> &'static str {
        match self {
            DbToken::Rds { .. } => "rds_iam",
            DbToken::Entra { .. } => "entra",
            DbToken::GcpIam { .. } => "gcp_iam",
        }
    }

    /// This attempt's password (run in stage `token`).
    pub async fn fetch(&self, ctx: &ProbeContext, host: &str, port: u16, user: &str) -> Result<Secret, Failure> {
        ctx.stage(Stage::Token, async {
            match self {
                DbToken::Rds { region, credentials } => {
                    // STS, when the source needs it, is AWS's own, judged against the system roots.
                    let sts_tls = TlsOptions::default();
                    let sts = Sts { region, endpoint: None, tls: &sts_tls };
                    let creds = credentials
                        .resolve(ctx, &sts)
                        .await?
                        .ok_or_else(|| Failure::internal("no credentials to sign the RDS token with"))?;
                    let token =
                        crate::identity::aws::sign::rds_token(&creds, region, host, port, user, SystemTime::now())?;
                    ctx.detail(format!(
                        "token: RDS auth token for {user}@{host}:{port} in {region}, signed with {}",
                        credentials.describe()
                    ));
                    Ok(Secret::new(token))
                }
                DbToken::Entra { identity, source } => {
                    let token = identity.token(ctx).await?;
                    ctx.detail(format!("token: an Entra ID access token for {OSSRDBMS_RESOURCE} from {source}, as the password of {user}"));
                    Ok(token)
                }
                DbToken::GcpIam { identity, source } => {
                    let token = identity.token(ctx).await?;
                    ctx.detail(format!("token: a Google access token from {source}, as the password of IAM database user {user}"));
                    Ok(token)
                }
            }
        })
        .await
    }

    /// A refused login explained for a token, whose causes are not a wrong password.
    pub fn explain(&self, user: &str, host: &str, port: u16, failure: Failure) -> Failure {
        if failure.class != ErrorClass::AuthRejected {
            return failure;
        }
        let hint = match self {
            DbToken::Rds { region, credentials } => format!(
                "the RDS IAM token was refused: check that IAM database authentication is enabled on the instance, that `{user}` is an IAM user there (PostgreSQL: GRANT rds_iam; MySQL: IDENTIFIED WITH AWSAuthenticationPlugin), that the credentials ({}) may rds-db:connect as it, and that host, port and region ({region}) are the instance's own endpoint ({host}:{port})",
                credentials.describe()
            ),
            DbToken::Entra { source, .. } => format!(
                "the Entra ID token ({source}) was refused: check that Microsoft Entra authentication is enabled on the server, that `{user}` is the database role mapped to this principal (PostgreSQL: pgaadauth_create_principal with the principal's exact name, or the Entra admin; MySQL: CREATE AADUSER), and that the token is for {OSSRDBMS_RESOURCE} (the default scope)"
            ),
            DbToken::GcpIam { source, .. } => format!(
                "the Google access token ({source}) was refused: check that the instance has cloudsql.iam_authentication on, that `{user}` is the IAM database user of this principal (PostgreSQL: the service account's email without .gserviceaccount.com; MySQL: the part before @), that the principal holds cloudsql.instances.login (roles/cloudsql.instanceUser), and that the token's scopes include sqlservice.login or cloud-platform"
            ),
        };
        failure.with_hint(hint)
    }
}

fn read_rds(a: &TableReader<'_, '_>) -> Option<DbToken> {
    let region = a.required_string("region", "the database's AWS region, e.g. \"eu-west-1\"");
    let credentials = match a.table("credentials") {
        Some(c) => {
            let source = Source::read(&c, false, "rds_iam credentials");
            if source.is_some() {
                c.finish();
            }
            source
        }
        None => (!a.has("credentials")).then_some(Source::DefaultChain),
    };
    if matches!(credentials, Some(Source::Anonymous)) {
        a.error_at("credentials", "an RDS auth token is signed: anonymous has nothing to sign with");
        return None;
    }
    Some(DbToken::Rds { region: region?, credentials: credentials? })
}

/// `credentials = { type = SOURCE, … }`, one of `sources`.
fn read_cloud(
    a: &TableReader<'_, '_>,
    auth_type: &str,
    sources: &[&str],
    default_resource: Option<&str>,
) -> Option<(CloudIdentity, String)> {
    let listed = sources.join(" | ");
    let Some(c) = a.table("credentials") else {
        if !a.has("credentials") {
            a.error_here(format!("{auth_type} needs `credentials = {{ type = \"…\" }}`, one of: {listed}"));
        }
        return None;
    };
    let source = c.required_string("type", &listed)?;
    if !sources.contains(&source.as_str()) {
        c.error_at("type", format!("`{source}` is not an identity {auth_type} can use; use one of: {listed}"));
        return None;
    }
    if auth_type == "gcp_iam" && c.has("audience") {
        c.error_at("audience", "Cloud SQL takes an access token (scopes), not an ID token (audience)");
        return None;
    }
    let identity = cloud::read(&c, &source, default_resource);
    if identity.is_some() {
        c.finish();
    }
    Some((identity?, source))
}
