//! `pqrelay-test-upstream --port PORT`: an upstream for tests that counts requests.
//!
//! - any request to `/count/<name>` increments counter `<name>` and answers
//!   `{"name":..,"count":n,"method":..}` (its body is read and dropped);
//! - `GET /counts/<name>` reads counter `<name>` without incrementing it;
//! - `GET /headers` answers the request's headers as a JSON object (repeated names joined
//!   with `, `);
//! - anything else is 404.
//!
//! Prints `test upstream listening at http://127.0.0.1:PORT` once it listens (port 0 picks one).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

type Counts = Arc<Mutex<HashMap<String, u64>>>;

fn json(status: u16, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

async fn handle(
    req: Request<Incoming>,
    counts: Counts,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().to_string();
    let mut headers = serde_json::Map::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let joined = match headers.get(name.as_str()).and_then(|v| v.as_str()) {
            Some(prev) => format!("{prev}, {value}"),
            None => value,
        };
        headers.insert(name.as_str().to_owned(), joined.into());
    }
    let _ = req.into_body().collect().await;
    let lock = || counts.lock().unwrap_or_else(|e| e.into_inner());
    let reply = if let Some(name) = path.strip_prefix("/count/") {
        let mut counts = lock();
        let count = counts.entry(name.to_owned()).or_default();
        *count += 1;
        json(
            200,
            serde_json::json!({"name": name, "count": *count, "method": method}),
        )
    } else if let Some(name) = path.strip_prefix("/counts/") {
        let count = lock().get(name).copied().unwrap_or(0);
        json(200, serde_json::json!({"name": name, "count": count}))
    } else if path == "/headers" {
        json(200, serde_json::Value::Object(headers))
    } else {
        json(404, serde_json::json!({"error": "not found"}))
    };
    Ok(reply)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--port", Some(p)) => port = p.parse().expect("--port takes a number"),
            _ => {
                eprintln!("usage: pqrelay-test-upstream --port PORT");
                std::process::exit(2);
            }
        }
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("cannot listen");
    let addr = listener.local_addr().expect("a local address");
    println!("test upstream listening at http://{addr}");
    let counts = Counts::default();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let counts = counts.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, counts.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
