//! A small demo upstream, with in-memory state only.
//!
//! Routes:
//! - `GET /echo?msg=...` → `{"echo":"...","method":"GET"}`
//! - `POST /login` JSON `{"username"|"email": "...", "password": "..."}` → a greeting and two
//!   cookies; 401 on an empty password, 400 on bad JSON
//! - `POST /upload` → streams the body and answers `{"size":N,"sha256":"hex"}`
//! - `GET /events` → Server-Sent Events: five events 200 ms apart
//! - `GET /headers` → the method, path, query and headers it received, as JSON, and the
//!   request's position on its connection (`connection_request`)
//! - `GET /redirect` → 302 to `/echo?msg=redirected`
//! - `GET /` → a short text
//!
//! `pqrelay demo` runs it beside the relay; `pqrelay demo-upstream --port N` runs it alone.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

/// Largest JSON body `/login` reads.
const MAX_LOGIN_BODY: usize = 64 * 1024;
/// Number of Server-Sent Events `/events` sends.
const EVENT_COUNT: usize = 5;
/// Delay between two events.
const EVENT_INTERVAL: Duration = Duration::from_millis(200);

type Body = BoxBody<Bytes, std::io::Error>;

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    full(status, "application/json", v.to_string())
}

/// Handles one request.
///
/// `nth` is the request's position on its connection (1 for the first), reported by
/// `/headers` so tests can see that the relay reuses upstream connections.
async fn handle(req: Request<Incoming>, nth: usize) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let resp = match (req.method().clone(), path.as_str()) {
        (Method::GET, "/") => full(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "pqrelay demo upstream: /echo /login /upload /events /headers\n",
        ),
        (Method::GET, "/echo") => {
            let msg = query_param(req.uri().query().unwrap_or(""), "msg").unwrap_or_default();
            json(
                StatusCode::OK,
                serde_json::json!({"echo": msg, "method": "GET"}),
            )
        }
        (Method::POST, "/login") => login(req).await,
        (Method::POST, "/upload") => upload(req).await,
        (Method::GET, "/events") => events(),
        (_, "/headers") => headers(&req, nth),
        (Method::GET, "/redirect") => {
            let mut r = full(StatusCode::FOUND, "text/plain", "see /echo\n");
            r.headers_mut().insert(
                header::LOCATION,
                header::HeaderValue::from_static("/echo?msg=redirected"),
            );
            r
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not_found", "path": path}),
        ),
    };
    Ok(resp)
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

async fn login(req: Request<Incoming>) -> Response<Body> {
    let body = match http_body_util::Limited::new(req.into_body(), MAX_LOGIN_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({"error": "body too large"}),
            )
        }
    };
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "expected a JSON object"}),
            )
        }
    };
    let name = v
        .get("username")
        .or_else(|| v.get("email"))
        .and_then(|n| n.as_str())
        .unwrap_or("guest")
        .to_owned();
    let password = v.get("password").and_then(|p| p.as_str()).unwrap_or("");
    if password.is_empty() {
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "invalid credentials"}),
        );
    }
    let mut r = json(
        StatusCode::OK,
        serde_json::json!({"message": format!("Welcome, {name}!"), "user": name}),
    );
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        header::HeaderValue::from_static("demo_session=logged-in; Path=/; HttpOnly; SameSite=Lax"),
    );
    h.append(
        header::SET_COOKIE,
        header::HeaderValue::from_static("demo_theme=dark; Path=/"),
    );
    r
}

async fn upload(req: Request<Incoming>) -> Response<Body> {
    let mut body = req.into_body();
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(data) = f.data_ref() {
                    size += data.len() as u64;
                    hasher.update(data);
                }
            }
            Err(_) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": "body read failed"}),
                )
            }
        }
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json(
        StatusCode::OK,
        serde_json::json!({"size": size, "sha256": hex}),
    )
}

fn events() -> Response<Body> {
    let stream = futures::stream::unfold(0usize, |i| async move {
        if i >= EVENT_COUNT {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(EVENT_INTERVAL).await;
        }
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let event = format!("id: {i}\nevent: tick\ndata: {{\"n\":{i},\"time\":\"{ts}\"}}\n\n");
        Some((
            Ok::<_, std::io::Error>(Frame::data(Bytes::from(event))),
            i + 1,
        ))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    r
}

fn headers(req: &Request<Incoming>, nth: usize) -> Response<Body> {
    let mut map = serde_json::Map::new();
    for (k, v) in req.headers() {
        let v = serde_json::Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned());
        match map.get_mut(k.as_str()) {
            Some(serde_json::Value::Array(a)) => a.push(v),
            Some(prev) => {
                let p = prev.take();
                *prev = serde_json::Value::Array(vec![p, v]);
            }
            None => {
                map.insert(k.as_str().to_owned(), v);
            }
        }
    }
    json(
        StatusCode::OK,
        serde_json::json!({
            "method": req.method().as_str(),
            "path": req.uri().path(),
            "query": req.uri().query(),
            "headers": map,
            "connection_request": nth,
        }),
    )
}

/// Serves connections from `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    log::debug!("demo upstream accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        tokio::spawn(serve_connection(stream));
    }
}

/// Serves HTTP/1.1 on one connection (plain TCP, or TLS in tests) until it closes.
pub async fn serve_connection<I>(io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let service = service_fn(move |req| {
        let nth = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        handle(req, nth)
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    if let Err(e) = conn.await {
        log::debug!("demo upstream connection ended: {e}");
    }
}

/// The demo upstream as a Pingora background service (used by `pqrelay demo`).
pub struct DemoUpstream {
    listener: Mutex<Option<std::net::TcpListener>>,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl DemoUpstream {
    /// Binds `addr` now (port 0 picks a free port), so the relay can be pointed at it.
    pub fn bind(addr: SocketAddr) -> std::io::Result<DemoUpstream> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(DemoUpstream {
            listener: Mutex::new(Some(listener)),
            addr,
        })
    }
}

#[async_trait]
impl BackgroundService for DemoUpstream {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let std_listener = match self.listener.lock() {
            Ok(mut l) => l.take(),
            Err(_) => None,
        };
        let Some(std_listener) = std_listener else {
            return;
        };
        let listener = match TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                log::error!("demo upstream cannot listen: {e}");
                return;
            }
        };
        serve(listener, async move {
            let _ = shutdown.changed().await;
        })
        .await;
    }
}

/// Runs the demo upstream alone until Ctrl-C (`pqrelay demo-upstream`); `on_listening` gets
/// the bound address once the port accepts connections.
pub async fn run_standalone(
    addr: SocketAddr,
    on_listening: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    on_listening(listener.local_addr()?);
    serve(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
