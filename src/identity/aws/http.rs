//! The AWS SDK's HTTP client, built on authprobe's own connection machinery: S3 and STS
//! requests go through the same `dns`, `connect` and `tls` stages as every other probe,
//! with the certificate recorded in the real handshake, `tls.ca`, pins, client
//! certificates and tunnels, instead of a client of the SDK's own that shows none of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http::{HeaderName, HeaderValue};

use crate::connect::context::ProbeContext;
use crate::connect::httpc;
use crate::connect::net::Record;
use crate::connect::tls::TlsOptions;
use crate::model::error::{ErrorClass, Failure};

/// The most of a response body the SDK is handed: S3 listings of one key and STS answers
/// are a few KiB.
const BODY_CAP: usize = 4 * 1024 * 1024;

/// A probe's failure carried through the SDK's error types, so the probe gets back the
/// exact class, message and hint (a TLS failure with its fingerprint, a tunnel failure).
#[derive(Debug)]
pub struct CarriedFailure(pub Failure);

impl std::fmt::Display for CarriedFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for CarriedFailure {}

/// An SDK HTTP client for one probe attempt. With `Record::Stages`, its first connection's
/// steps are the probe's `dns`, `connect` and `tls` stages; every later one is quiet.
pub fn client(ctx: &ProbeContext, tls: &TlsOptions, record: Record) -> SharedHttpClient {
    SharedHttpClient::new(ProbeHttp {
        ctx: ctx.clone(),
        tls: tls.clone(),
        record_next: Arc::new(AtomicBool::new(record == Record::Stages)),
    })
}

#[derive(Clone)]
struct ProbeHttp {
    ctx: ProbeContext,
    tls: TlsOptions,
    record_next: Arc<AtomicBool>,
}

impl std::fmt::Debug for ProbeHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeHttp").field("tls", &self.tls).finish()
    }
}

impl HttpClient for ProbeHttp {
    fn http_connector(&self, settings: &HttpConnectorSettings, _components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(Connector {
            http: self.clone(),
            connect_timeout: settings.connect_timeout(),
            read_timeout: settings.read_timeout(),
        })
    }
}

#[derive(Debug, Clone)]
struct Connector {
    http: ProbeHttp,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = self.clone();
        HttpConnectorFuture::new(async move { this.send(request).await.map_err(into_connector_error) })
    }
}

fn into_connector_error(failure: Failure) -> ConnectorError {
    let timed_out = failure.class == ErrorClass::Timeout;
    let carried = Box::new(CarriedFailure(failure));
    if timed_out { ConnectorError::timeout(carried) } else { ConnectorError::io(carried) }
}

/// Bounds `work` by `limit` when the SDK set one.
async fn within<T>(
    limit: Option<Duration>,
    what: &str,
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    match limit {
        None => work.await,
        Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(Failure::new(
                ErrorClass::Timeout,
                format!("{what} took longer than {}", humantime::format_duration(limit)),
            ))
        }),
    }
}

impl Connector {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, Failure> {
        let request = request
            .try_into_http1x()
            .map_err(|e| Failure::internal(format!("the AWS SDK built a request authprobe cannot send: {e}")))?;
        let url = url::Url::parse(&request.uri().to_string())
            .map_err(|e| Failure::internal(format!("the AWS SDK built an unusable URL: {e}")))?;
        let body = match request.body().bytes() {
            Some(bytes) => bytes::Bytes::copy_from_slice(bytes),
            None => return Err(Failure::internal("the AWS SDK sent a streaming body, which probes never send")),
        };
        let headers: Vec<(HeaderName, HeaderValue)> = request
            .headers()
            .iter()
            .filter(|(name, _)| *name != http::header::HOST)
            .map(|(name, value)| {
                let mut value = value.clone();
                value.set_sensitive(true);
                (name.clone(), value)
            })
            .collect();
        let record = if self.http.record_next.swap(false, Ordering::SeqCst) { Record::Stages } else { Record::Quietly };
        let ctx = &self.http.ctx;
        let mut conn =
            within(self.connect_timeout, "connecting", httpc::connect(ctx, &url, &self.http.tls, record)).await?;
        let exchange = async {
            let mut response = conn.send(request.method().clone(), &url, &headers, body).await?;
            ctx.diagnostic(httpc::describe_response(ctx, request.method(), &url, &response));
            let (bytes, truncated) = httpc::read_capped(response.body_mut(), BODY_CAP).await?;
            if truncated {
                return Err(Failure::new(
                    ErrorClass::UnexpectedResponse,
                    format!("the endpoint answered with more than {} MiB", BODY_CAP / 1024 / 1024),
                ));
            }
            Ok((response, bytes))
        };
        let (response, bytes) = within(self.read_timeout, "waiting for the answer", exchange).await?;
        let (parts, _) = response.into_parts();
        HttpResponse::try_from(http::Response::from_parts(parts, SdkBody::from(bytes)))
            .map_err(|e| Failure::new(ErrorClass::Protocol, format!("the endpoint's answer is not valid HTTP: {e}")))
    }
}
