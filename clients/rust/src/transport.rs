//! The hyper client both relay traffic and plain traffic go through: HTTP/1.1 with keep-alive
//! pooling, `https` through rustls with the webpki roots plus an optional extra CA, and a
//! second, unpooled client on the same connector for requests that must go on a new connection
//! (the one retry of [`crate::reuse`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

use crate::error::{BoxError, Error};
use crate::reuse::Connector;

/// The request body type of [`HttpClient`]: any body, boxed.
pub type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// The shared hyper client: a legacy pooled client over an http/https connector, plus an
/// unpooled one on the same connector. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct HttpClient {
    pooled: Client<Connector, RequestBody>,
    fresh: Client<Connector, RequestBody>,
}

impl core::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Sends `req`, on an idle keep-alive connection of the pool when there is one.
    pub fn request(&self, req: Request<RequestBody>) -> ResponseFuture {
        self.pooled.request(req)
    }

    /// Sends `req` on a new connection, closed after the response (never from the pool).
    pub(crate) fn request_fresh(&self, req: Request<RequestBody>) -> ResponseFuture {
        self.fresh.request(req)
    }
}

/// Options of [`http_client`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct HttpOptions {
    /// PEM bytes of extra CA certificates trusted for `https` besides the webpki roots (e.g. a
    /// test relay's self-signed certificate).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Idle keep-alive connections kept per host (default: hyper's, unbounded).
    pub max_idle_per_host: Option<usize>,
    /// How long an idle keep-alive connection is kept (default 90 s).
    pub idle_timeout: Option<Duration>,
    /// TCP connect timeout (default none).
    pub connect_timeout: Option<Duration>,
}

impl HttpOptions {
    /// Options with an extra trusted CA (PEM).
    pub fn with_extra_ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.extra_ca_pem = Some(pem);
        self
    }
}

/// Builds the hyper client: HTTP/1.1, keep-alive pooling, `http` and `https` (rustls with the
/// webpki roots and `options.extra_ca_pem`). Cheap to clone; clones share the pool.
///
/// The relay client uses it for its traffic; a benchmark can build one for plain traffic so
/// that both paths share the same stack.
pub fn http_client(options: &HttpOptions) -> Result<HttpClient, Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = &options.extra_ca_pem {
        let mut added = 0usize;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| Error::InvalidRequest(format!("CA file: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Error::InvalidRequest(format!("CA certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::InvalidRequest(
                "CA file holds no PEM certificate".into(),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::http("TLS configuration", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(options.connect_timeout);
    let connector: HttpsConnector<HttpConnector> = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let connector = Connector(connector);
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_idle_timeout(options.idle_timeout.unwrap_or(Duration::from_secs(90)));
    if let Some(n) = options.max_idle_per_host {
        builder.pool_max_idle_per_host(n);
    }
    let pooled = builder.build(connector.clone());
    let fresh = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector);
    Ok(HttpClient { pooled, fresh })
}

/// A [`RequestBody`] holding `bytes` (sized, `content-length` set by hyper).
pub fn full_body(bytes: impl Into<Bytes>) -> RequestBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty [`RequestBody`].
pub fn empty_body() -> RequestBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A loopback port that never completes a TCP handshake: its listener's accept queue is
    /// full (one queued connection never accepted), so the kernel drops further SYNs and a
    /// connect hangs until the connector gives up. No traffic leaves the machine.
    fn blackhole() -> (
        tokio::net::TcpListener,
        std::net::TcpStream,
        std::net::SocketAddr,
    ) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let queued = std::net::TcpStream::connect(addr).unwrap();
        (listener, queued, addr)
    }

    #[tokio::test]
    async fn http_client_gives_up_connecting_after_the_connect_timeout() {
        let (_listener, _queued, addr) = blackhole();
        let options = HttpOptions {
            connect_timeout: Some(Duration::from_millis(200)),
            ..HttpOptions::default()
        };
        let http = http_client(&options).unwrap();
        let req = Request::get(format!("http://{addr}/"))
            .body(empty_body())
            .unwrap();
        let started = Instant::now();
        let sent = tokio::time::timeout(Duration::from_secs(10), http.request(req)).await;
        let err = sent.expect("the connector gave up by itself").unwrap_err();
        let elapsed = started.elapsed();
        assert!(err.is_connect(), "{err:?}");
        assert!(
            elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(3),
            "{elapsed:?}"
        );
    }
}
