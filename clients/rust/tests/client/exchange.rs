//! One exchange in-process: the client's sealed request opened by the protocol crate's relay
//! side, and a relay-sealed response opened by the client. No network.

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::{BodyExt as _, StreamBody};
use pqrelay_client::exchange::{
    is_relay_error, open_response_head, relay_error, seal_body, seal_head, BodyKind, PlainHead,
    SealOptions, SealedHead, SealingBody,
};
use pqrelay_client::{Error, HeaderSelection, RequestBody, ResponseBody};
use pqrelay_protocol::{
    check_encoded_len, client_id, open_headers, open_url, seal_headers, ClientId, ClientIdToken,
    DecapsulationSeed, ExchangeHeader, ExchangeKeys, Flags, MessageContext, PairId, PendingPair,
    RelayHeader, ServerPair, StreamDecoder, StreamEncoder, MAX_SKIP,
};

const SECRET: &[u8] = b"test secret";

struct Setup {
    token: ClientIdToken,
    pid: PairId,
    client: ExchangeKeys,
    server: ExchangeKeys,
}

/// Pairs in-process and starts exchange 0 on both sides.
fn setup() -> Setup {
    let token = client_id::issue(SECRET, ClientId([3; 16]));
    let id = token.id();
    let pid = PairId([4; 16]);
    let pending = PendingPair::new(pid, DecapsulationSeed::from_bytes([5; 32]));
    let (ct, server) = ServerPair::pair(&id, &pid, &pending.encapsulation_key(), &[6; 64]);
    let client = pending.complete(&id, &ct).unwrap();
    let (client, _) = client.next_exchange().unwrap();
    let (server, _) = server.accept(0, MAX_SKIP).unwrap();
    Setup {
        token,
        pid,
        client,
        server,
    }
}

fn headers(list: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in list {
        h.append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn seal(
    s: &Setup,
    method: &Method,
    path: &str,
    h: &HeaderMap,
    body: BodyKind,
    o: &SealOptions,
) -> SealedHead {
    seal_head(
        &s.token,
        s.pid,
        &s.client,
        &PlainHead {
            method,
            path_and_query: path,
            headers: h,
            body,
        },
        o,
    )
    .unwrap()
}

/// A `GET` without headers or body, default options.
fn seal_get(s: &Setup, path: &str) -> SealedHead {
    seal(
        s,
        &Method::GET,
        path,
        &HeaderMap::new(),
        BodyKind::None,
        &SealOptions::default(),
    )
}

/// What the relay does with a request head: parse, open the URL and headers.
fn relay_open(s: &Setup, head: &SealedHead) -> (MessageContext, String, Vec<(String, String)>) {
    let value = head.headers["x-mte-relay"].to_str().unwrap();
    let RelayHeader::Exchange(h) = RelayHeader::parse(value).unwrap() else {
        panic!()
    };
    assert_eq!(
        client_id::verify(&[SECRET], &h.token).unwrap().id,
        s.token.id()
    );
    let ctx = MessageContext::request(
        h.token.id(),
        h.pair_id,
        h.counter,
        h.flags,
        head.method.as_str(),
        &head.target,
    )
    .unwrap();
    let url = if h.flags.contains(Flags::URL) {
        open_url(&s.server.request, &ctx, &head.target).unwrap()
    } else {
        head.target.clone()
    };
    let eh = head.headers["x-mte-relay-eh"].to_str().unwrap();
    let list = open_headers(&s.server.request, &ctx, eh).unwrap();
    (ctx, url, list)
}

#[test]
fn exchange_request_round_trip_sized_body() {
    let s = setup();
    let h = headers(&[
        ("content-type", "application/json"),
        ("authorization", "Bearer x"),
        ("accept", "a"),
        ("accept", "b"),
        ("host", "ignored"),
        ("connection", "close"),
    ]);
    let body = vec![7u8; 200_000];
    let head = seal(
        &s,
        &Method::POST,
        "/api/items?x=1",
        &h,
        BodyKind::Sized(body.len() as u64),
        &SealOptions::default(),
    );

    // On the wire: the URL is sealed, headers are not in the clear, framing is ours.
    assert!(!head.target.contains("api"));
    assert!(head
        .flags
        .contains(Flags::URL | Flags::HEADERS | Flags::BODY));
    assert!(!head.flags.contains(Flags::STREAMING));
    assert!(head.headers.get("authorization").is_none());
    assert!(head.headers.get("connection").is_none() && head.headers.get("host").is_none());
    assert_eq!(head.headers["content-type"], "application/octet-stream");
    let wire = seal_body(&s.client, &head, &body).unwrap();
    assert_eq!(
        head.headers["content-length"].to_str().unwrap(),
        wire.len().to_string()
    );

    let (ctx, url, list) = relay_open(&s, &head);
    assert_eq!(url, "/api/items?x=1");
    let want: Vec<(String, String)> = [
        ("content-type", "application/json"),
        ("authorization", "Bearer x"),
        ("accept", "a"),
        ("accept", "b"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(list, want);
    let expected = check_encoded_len(wire.len() as u64).unwrap();
    let mut dec = StreamDecoder::new(&s.server.request, &ctx, Some(expected));
    let mut plain = Vec::new();
    dec.push(&wire, &mut plain).unwrap();
    dec.finish().unwrap();
    assert_eq!(plain, body);
}

#[test]
fn exchange_request_plain_url_and_selected_headers() {
    let s = setup();
    let h = headers(&[
        ("cookie", "a=b"),
        ("authorization", "x"),
        ("content-type", "text/plain"),
    ]);
    let o = SealOptions::default()
        .with_encode_url(false)
        .with_headers(HeaderSelection::Only(vec![http::header::AUTHORIZATION]));
    let head = seal(&s, &Method::PUT, "/p?q=1", &h, BodyKind::Sized(3), &o);
    assert_eq!(head.target, "/p?q=1");
    assert!(!head.flags.contains(Flags::URL));
    assert_eq!(head.headers["cookie"], "a=b");
    assert_eq!(head.plain_headers, vec![http::header::COOKIE]);
    let (_, url, list) = relay_open(&s, &head);
    assert_eq!(url, "/p?q=1");
    let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["authorization", "content-type"],
        "content-type is always sealed"
    );

    // The plain target is bound: the relay opening with another path fails.
    let ctx = MessageContext::request(s.token.id(), s.pid, 0, head.flags, "PUT", "/other").unwrap();
    let eh = head.headers["x-mte-relay-eh"].to_str().unwrap();
    assert!(open_headers(&s.server.request, &ctx, eh).is_err());
}

#[test]
fn exchange_request_without_body_and_default_content_type() {
    let s = setup();
    let head = seal_get(&s, "/");
    assert!(!head.flags.contains(Flags::BODY));
    assert!(
        head.headers.get("content-type").is_none() && head.headers.get("content-length").is_none()
    );
    let (_, _, list) = relay_open(&s, &head);
    assert!(list.is_empty());

    let head = seal(
        &s,
        &Method::POST,
        "/",
        &HeaderMap::new(),
        BodyKind::Sized(0),
        &SealOptions::default(),
    );
    let (_, _, list) = relay_open(&s, &head);
    assert_eq!(
        list,
        vec![(
            "content-type".to_string(),
            "application/octet-stream".to_string()
        )]
    );
}

#[test]
fn exchange_request_rejects_bad_input() {
    let s = setup();
    let h = headers(&[("x-mte-relay", "forged")]);
    let plain = PlainHead {
        method: &Method::GET,
        path_and_query: "/",
        headers: &h,
        body: BodyKind::None,
    };
    assert!(matches!(
        seal_head(&s.token, s.pid, &s.client, &plain, &SealOptions::default()),
        Err(Error::InvalidRequest(_))
    ));
    let empty = HeaderMap::new();
    for bad in ["http://evil/x", "//x", "/a b", "/a#f", ""] {
        let plain = PlainHead {
            method: &Method::GET,
            path_and_query: bad,
            headers: &empty,
            body: BodyKind::None,
        };
        assert!(
            matches!(
                seal_head(&s.token, s.pid, &s.client, &plain, &SealOptions::default()),
                Err(Error::Protocol(_))
            ),
            "{bad}"
        );
    }
}

fn chunks(pieces: Vec<Bytes>) -> pqrelay_client::exchange::ByteStream {
    Box::pin(futures_util::stream::iter(pieces.into_iter().map(Ok)))
}

async fn drain(body: SealingBody) -> Result<Vec<Bytes>, pqrelay_client::BoxError> {
    let mut body = body;
    let mut frames = Vec::new();
    while let Some(f) = body.frame().await {
        frames.push(f?.into_data().unwrap());
    }
    Ok(frames)
}

#[tokio::test]
async fn exchange_streamed_bodies_sized_and_chunked() {
    let s = setup();
    let pieces: Vec<Bytes> = (0..5).map(|i| Bytes::from(vec![i as u8; 30_000])).collect();
    let all: Vec<u8> = pieces.iter().flat_map(|b| b.to_vec()).collect();

    // Sized: exact encoded length, full records.
    let head = seal(
        &s,
        &Method::POST,
        "/u",
        &HeaderMap::new(),
        BodyKind::Sized(all.len() as u64),
        &SealOptions::default(),
    );
    let body = SealingBody::new(&s.client, &head, chunks(pieces.clone()));
    let wire: Vec<u8> = drain(body).await.unwrap().concat();
    assert_eq!(wire, seal_body(&s.client, &head, &all).unwrap());

    // Streaming: one record per chunk, flushed at once; the relay decodes without a length.
    let head = seal(
        &s,
        &Method::POST,
        "/u",
        &HeaderMap::new(),
        BodyKind::Streaming,
        &SealOptions::default(),
    );
    assert!(head.flags.contains(Flags::STREAMING));
    assert!(head.headers.get("content-length").is_none());
    let body = SealingBody::new(&s.client, &head, chunks(pieces.clone()));
    let frames = drain(body).await.unwrap();
    assert_eq!(frames.len(), 6, "five records and the final one");
    let (ctx, _, _) = relay_open(&s, &head);
    let mut dec = StreamDecoder::new(&s.server.request, &ctx, None);
    let mut plain = Vec::new();
    for f in &frames {
        dec.push(f, &mut plain).unwrap();
    }
    dec.finish().unwrap();
    assert_eq!(plain, all);

    // A sized stream that yields fewer bytes than announced fails.
    let head = seal(
        &s,
        &Method::POST,
        "/u",
        &HeaderMap::new(),
        BodyKind::Sized(all.len() as u64 + 1),
        &SealOptions::default(),
    );
    assert!(drain(SealingBody::new(&s.client, &head, chunks(pieces)))
        .await
        .is_err());
}

/// The relay side of a response: headers sealed under `ks`, body records as separate frames.
fn relay_response(
    s: &Setup,
    head: &SealedHead,
    status: u16,
    events: &[&str],
) -> (HeaderMap, Vec<Bytes>) {
    let (ctx, _, _) = relay_open(s, head);
    let flags = Flags::URL | Flags::HEADERS | Flags::BODY | Flags::STREAMING;
    let rctx = ctx.response(status, flags);
    let eh = seal_headers(
        &s.server.response,
        &rctx,
        [("content-type", "text/event-stream"), ("x-up", "1")],
    );
    let mut enc = StreamEncoder::new(&s.server.response, &rctx, None);
    let mut frames = Vec::new();
    for e in events {
        let mut out = Vec::new();
        enc.push(e.as_bytes(), &mut out).unwrap();
        enc.flush(&mut out).unwrap();
        frames.push(Bytes::from(out));
    }
    let mut out = Vec::new();
    enc.finish(&mut out).unwrap();
    frames.push(Bytes::from(out));
    let relay = ExchangeHeader {
        token: s.token.clone(),
        pair_id: s.pid,
        counter: 0,
        flags,
    };
    let h = headers(&[
        ("x-mte-relay", &relay.encode()),
        ("x-mte-relay-eh", &eh),
        ("content-type", "application/octet-stream"),
        ("set-cookie", "s=1"),
    ]);
    (h, frames)
}

fn source(frames: Vec<Bytes>) -> RequestBody {
    let stream = futures_util::stream::iter(
        frames
            .into_iter()
            .map(|b| Ok::<_, pqrelay_client::BoxError>(http_body::Frame::data(b))),
    );
    StreamBody::new(stream).boxed_unsync()
}

#[tokio::test]
async fn exchange_response_opens_record_by_record() {
    let s = setup();
    let head = seal(
        &s,
        &Method::GET,
        "/events",
        &HeaderMap::new(),
        BodyKind::None,
        &SealOptions::default(),
    );
    let (h, frames) = relay_response(&s, &head, 200, &["data: 1\n\n", "data: 2\n\n"]);
    assert!(!is_relay_error(200, &h));
    let opened = open_response_head(&s.client, &head, &s.token, 200, &h).unwrap();
    assert_eq!(opened.headers["content-type"], "text/event-stream");
    assert_eq!(opened.headers["x-up"], "1");
    assert_eq!(
        opened.headers["set-cookie"], "s=1",
        "plain cookies are kept"
    );
    assert!(opened.new_token.is_none());
    let mut body = ResponseBody::sealed(source(frames), &s.client, &opened);
    assert_eq!(body.next().await.unwrap().unwrap(), "data: 1\n\n");
    assert_eq!(body.next().await.unwrap().unwrap(), "data: 2\n\n");
    assert!(body.next().await.is_none());
    assert_eq!(body.plain_len(), 18);
}

#[tokio::test]
async fn exchange_response_rejects_tampering_and_truncation() {
    let s = setup();
    let head = seal_get(&s, "/");
    let (h, frames) = relay_response(&s, &head, 200, &["hello"]);

    // The status is bound.
    assert!(open_response_head(&s.client, &head, &s.token, 201, &h).is_err());
    // Another counter echoed.
    let mut other = h.clone();
    let relay = ExchangeHeader {
        token: s.token.clone(),
        pair_id: s.pid,
        counter: 1,
        flags: Flags::HEADERS,
    };
    other.insert(
        "x-mte-relay",
        HeaderValue::from_str(&relay.encode()).unwrap(),
    );
    assert!(matches!(
        open_response_head(&s.client, &head, &s.token, 200, &other),
        Err(Error::BadResponse(_))
    ));

    let opened = open_response_head(&s.client, &head, &s.token, 200, &h).unwrap();
    // Truncated: the final record is missing.
    let cut = frames[..1].to_vec();
    let body = ResponseBody::sealed(source(cut), &s.client, &opened);
    assert!(body.collect().await.is_err());
    // Altered.
    let mut bad = frames.clone();
    let mut b = bad[0].to_vec();
    b[6] ^= 1;
    bad[0] = b.into();
    assert!(ResponseBody::sealed(source(bad), &s.client, &opened)
        .collect()
        .await
        .is_err());
    // Intact.
    let all = ResponseBody::sealed(source(frames), &s.client, &opened)
        .collect()
        .await
        .unwrap();
    assert_eq!(all, "hello");
}

#[test]
fn exchange_response_resigned_token_is_reported() {
    let s = setup();
    let head = seal_get(&s, "/");
    let (mut h, _) = relay_response(&s, &head, 200, &[]);
    let resigned = client_id::issue(b"new secret", s.token.id());
    let relay = ExchangeHeader {
        token: resigned.clone(),
        pair_id: s.pid,
        counter: 0,
        flags: Flags::URL | Flags::HEADERS | Flags::BODY | Flags::STREAMING,
    };
    h.insert(
        "x-mte-relay",
        HeaderValue::from_str(&relay.encode()).unwrap(),
    );
    let opened = open_response_head(&s.client, &head, &s.token, 200, &h).unwrap();
    assert_eq!(opened.new_token, Some(resigned));
}

#[test]
fn exchange_relay_error_answers_are_recognised() {
    let h = headers(&[
        ("x-mte-relay-error", "counter_rejected"),
        ("content-type", "application/json"),
    ]);
    assert!(is_relay_error(564, &h));
    assert!(is_relay_error(559, &HeaderMap::new()));
    assert!(!is_relay_error(500, &HeaderMap::new()));
    let e = relay_error(
        564,
        &h,
        br#"{"status":564,"error":"counter_rejected","message":"stale counter"}"#,
    );
    match &e {
        Error::Relay {
            status,
            code,
            message,
        } => {
            assert_eq!(
                (*status, code.as_str(), message.as_str()),
                (564, "counter_rejected", "stale counter")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.relay_status(), Some(564));
    assert_eq!(
        e.to_string(),
        "relay answered 564 counter_rejected: stale counter"
    );
    // A body that is not JSON falls back to the header.
    let e = relay_error(502, &h, b"<html>");
    assert!(matches!(e, Error::Relay { status: 502, ref code, .. } if code == "counter_rejected"));
}
