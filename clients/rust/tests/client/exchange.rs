//! One exchange in-process: the client's sealed request opened by the protocol crate's relay
//! side, a relay-sealed response opened by the client, and relay error replies whose tag the
//! client verifies (§11.2). No network.

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::{BodyExt as _, StreamBody};
use pqrelay_client::delivery::{is_idempotent, Delivery, Failure, Next};
use pqrelay_client::engine::merge_trusted;
use pqrelay_client::exchange::{
    is_relay_error, open_response_head, read_relay_error, relay_error, seal_body, seal_head,
    verify_relay_error, BodyKind, PlainHead, SealOptions, SealedHead, SealingBody,
};
use pqrelay_client::{seeded_pairing, Error, HeaderSelection, RequestBody, ResponseBody};
use pqrelay_protocol::{
    answer_pairing, check_encoded_len, client_id, open_headers, open_url, seal_headers, ClientId,
    ClientIdToken, ErrorReport, ExchangeHeader, ExchangeId, ExchangeKeys, Flags, KeyId,
    MessageContext, PairId, PairingRequest, RelayHeader, RelayKeySet, StreamDecoder, StreamEncoder,
    Verdict, MAX_SKIP,
};

const SECRET: &[u8] = b"test secret";
const RELAY_KEY: &str = "k7Bq2mXo5RrT0aWfY1sPzLh8vC3nGdE9uJ6iKy4tQwA";

struct Setup {
    token: ClientIdToken,
    pid: PairId,
    client: ExchangeKeys,
    server: ExchangeKeys,
}

/// Pairs in-process (the client's own random pairing against the protocol crate's relay side)
/// and starts exchange 0 on both sides.
fn setup() -> Setup {
    let token = client_id::issue(SECRET, ClientId([3; 16]));
    let id = token.id();
    let keys = RelayKeySet::from_values([RELAY_KEY]).unwrap();
    let config = keys.current().unwrap().config().clone();
    let pid = PairId([4; 16]);
    let pending = seeded_pairing(id, &config, vec![pid]).unwrap();
    let request = PairingRequest::parse(pending.request_body(), 25).unwrap();
    let answered = answer_pairing(&id, &keys, &request, &[6; 64]).unwrap();
    let confirmed = pending.complete(&answered.body).unwrap();
    assert_eq!(confirmed.keys, keys.ids());
    let (_, client) = confirmed.pairs[0].clone();
    let (_, server) = answered.pairs[0].clone();
    let (client, _) = client.next_exchange().unwrap();
    let server = server.accept(0, MAX_SKIP).unwrap().keys;
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
            retry: false,
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
    // (A version-2 relay drops the plain headers, cookies excepted: §9.2.)
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
fn exchange_request_empty_body_is_content_length_0_without_an_invented_content_type() {
    let s = setup();
    // No body: no flag `body`, no framing header.
    let head = seal_get(&s, "/");
    assert!(!head.flags.contains(Flags::BODY));
    assert!(
        head.headers.get("content-type").is_none() && head.headers.get("content-length").is_none()
    );
    let (_, _, list) = relay_open(&s, &head);
    assert!(list.is_empty());

    // An empty body (issue 19): no flag `body`, `content-length: 0`, no content type invented.
    let head = seal(
        &s,
        &Method::POST,
        "/",
        &HeaderMap::new(),
        BodyKind::Empty,
        &SealOptions::default(),
    );
    assert!(!head.flags.contains(Flags::BODY));
    assert_eq!(head.headers["content-length"], "0");
    assert!(head.headers.get("content-type").is_none());
    let (_, _, list) = relay_open(&s, &head);
    assert!(list.is_empty(), "{list:?}");

    // A body without a content type: none is sealed either.
    let head = seal(
        &s,
        &Method::POST,
        "/",
        &HeaderMap::new(),
        BodyKind::Sized(3),
        &SealOptions::default(),
    );
    assert_eq!(head.headers["content-type"], "application/octet-stream");
    let (_, _, list) = relay_open(&s, &head);
    assert!(list.is_empty(), "{list:?}");
}

#[test]
fn exchange_request_retry_flag_is_sent_and_authenticated() {
    let s = setup();
    let plain = PlainHead {
        method: &Method::POST,
        path_and_query: "/",
        headers: &HeaderMap::new(),
        body: BodyKind::None,
        retry: true,
    };
    let head = seal_head(&s.token, s.pid, &s.client, &plain, &SealOptions::default()).unwrap();
    assert!(head.flags.contains(Flags::RETRY));
    let (ctx, _, _) = relay_open(&s, &head);
    assert!(ctx.flags().contains(Flags::RETRY));
    // Stripping the flag on the wire breaks the sealed headers.
    let stripped = head.flags.without(Flags::RETRY);
    let ctx = MessageContext::request(s.token.id(), s.pid, 0, stripped, "POST", &head.target);
    let eh = head.headers["x-mte-relay-eh"].to_str().unwrap();
    assert!(open_headers(&s.server.request, &ctx.unwrap(), eh).is_err());
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
        retry: false,
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
            retry: false,
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
        None,
    );
    match &e {
        Error::Relay {
            status,
            code,
            message,
            verdict,
        } => {
            assert_eq!(
                (*status, code.as_str(), message.as_str(), *verdict),
                (564, "counter_rejected", "stale counter", None)
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
    let e = relay_error(502, &h, b"<html>", None);
    assert!(matches!(e, Error::Relay { status: 502, ref code, .. } if code == "counter_rejected"));
}

/// The relay's error reply to the exchange of `s`: status, code, verdict, tagged with `ke_0`.
fn tagged_error(s: &Setup, status: u16, code: &str, verdict: Verdict) -> HeaderMap {
    let exchange = ExchangeId {
        client_id: s.token.id(),
        pair_id: s.pid,
        counter: 0,
    };
    let report = ErrorReport {
        exchange,
        status,
        code,
        verdict,
    };
    let [(vn, vv), (tn, tv)] = report.headers(&s.server.error).unwrap();
    headers(&[("x-mte-relay-error", code), (vn, &vv), (tn, &tv)])
}

#[test]
fn exchange_relay_error_tags_are_verified_with_the_exchange_key() {
    let s = setup();
    let h = tagged_error(&s, 562, "decode_failed", Verdict::Dead);
    let verify = |status, h: &HeaderMap| verify_relay_error(&s.client, &s.token, s.pid, status, h);
    assert_eq!(verify(562, &h), Some(Verdict::Dead));
    let e = read_relay_error(&s.client, &s.token, s.pid, 562, &h, b"{}");
    assert!(
        matches!(
            e,
            Error::Relay {
                verdict: Some(Verdict::Dead),
                ..
            }
        ),
        "{e:?}"
    );

    // Forged: no tag, another status, code, verdict, pair or counter.
    let mut plain = h.clone();
    plain.remove("x-mte-relay-tag");
    assert_eq!(verify(562, &plain), None);
    assert_eq!(verify(564, &h), None);
    let mut code = h.clone();
    code.insert(
        "x-mte-relay-error",
        HeaderValue::from_static("state_not_found"),
    );
    assert_eq!(verify(562, &code), None);
    let mut verdict = h.clone();
    verdict.insert("x-mte-relay-verdict", HeaderValue::from_static("unknown"));
    assert_eq!(verify(562, &verdict), None);
    assert_eq!(
        verify_relay_error(&s.client, &s.token, PairId([9; 16]), 562, &h),
        None
    );
    let mut later = s.client.clone();
    later.counter = 1;
    assert_eq!(verify_relay_error(&later, &s.token, s.pid, 562, &h), None);
}

#[test]
fn delivery_idempotent_requests_resend_once_per_error_and_per_lost_connection() {
    let get = |h: &[(&str, &str)]| is_idempotent(&Method::GET, &headers(h));
    assert!(get(&[]));
    for m in ["HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
        assert!(is_idempotent(
            &Method::from_bytes(m.as_bytes()).unwrap(),
            &HeaderMap::new()
        ));
    }
    assert!(!is_idempotent(&Method::POST, &HeaderMap::new()));
    assert!(!is_idempotent(&Method::PATCH, &HeaderMap::new()));
    assert!(is_idempotent(
        &Method::POST,
        &headers(&[("idempotency-key", "k1")])
    ));

    let forged = Failure::Unauthenticated { status: 562 };
    let mut d = Delivery::new(true);
    assert_eq!(d.after(forged, false, true), Next::Resend);
    assert_eq!(
        d.after(Failure::NoAnswer, false, true),
        Next::ResendSamePair
    );
    assert_eq!(
        d.after(forged, false, true),
        Next::Fail,
        "one resend per relay error"
    );
    assert_eq!(d.after(Failure::NoAnswer, false, true), Next::Fail);
    // A relay error no §11.1 action recovers from, and a consumed stream, end the request.
    let refused = Failure::Authenticated {
        status: 400,
        code: "forbidden_header",
        verdict: Verdict::Dead,
    };
    assert_eq!(Delivery::new(true).after(refused, false, true), Next::Fail);
    assert_eq!(Delivery::new(true).after(forged, false, false), Next::Fail);
}

#[test]
fn delivery_non_idempotent_requests_never_run_twice() {
    let dead = |status, code| Failure::Authenticated {
        status,
        code,
        verdict: Verdict::Dead,
    };
    let verdict = |verdict| Failure::Authenticated {
        status: 502,
        code: "upstream_unavailable",
        verdict,
    };
    // Authenticated dead: a new attempt, once.
    let mut d = Delivery::new(false);
    assert_eq!(
        d.after(dead(562, "decode_failed"), false, true),
        Next::Resend
    );
    assert_eq!(d.after(dead(562, "decode_failed"), false, true), Next::Fail);
    // ... but not a consumed stream, nor a dead error no §11.1 action recovers from.
    assert_eq!(
        Delivery::new(false).after(dead(562, "decode_failed"), false, false),
        Next::Fail
    );
    assert_eq!(
        Delivery::new(false).after(dead(400, "invalid_url"), false, true),
        Next::Fail
    );
    // retry_refused, partial, complete: outcome unknown.
    for f in [
        dead(564, "retry_refused"),
        verdict(Verdict::Partial),
        verdict(Verdict::Complete),
    ] {
        assert_eq!(
            Delivery::new(false).after(f, false, true),
            Next::OutcomeUnknown,
            "{f:?}"
        );
    }
    // Unknown, unauthenticated, lost: ONE retry attempt on the same pair, then unknown.
    for f in [
        verdict(Verdict::Unknown),
        Failure::Unauthenticated { status: 562 },
        Failure::NoAnswer,
    ] {
        let mut d = Delivery::new(false);
        assert_eq!(d.after(f, false, true), Next::Retry, "{f:?}");
        assert_eq!(d.after(f, true, true), Next::OutcomeUnknown, "{f:?}");
        assert_eq!(
            Delivery::new(false).after(f, false, false),
            Next::OutcomeUnknown
        );
    }
    // A pair the error ended cannot carry the retry.
    for status in [560, 563, 566, 568, 569] {
        let f = Failure::Unauthenticated { status };
        assert_eq!(
            Delivery::new(false).after(f, false, true),
            Next::OutcomeUnknown
        );
    }
    // Dead after a retry: a new attempt is safe (neither ran), but at most three attempts.
    let mut d = Delivery::new(false);
    assert_eq!(d.after(Failure::NoAnswer, false, true), Next::Retry);
    assert_eq!(
        d.after(dead(562, "decode_failed"), true, true),
        Next::Resend
    );
    assert_eq!(
        d.after(Failure::NoAnswer, false, true),
        Next::OutcomeUnknown
    );
}

#[test]
fn trust_on_first_use_keeps_confirmed_keys_first() {
    let (a, b, c) = (KeyId([1; 32]), KeyId([2; 32]), KeyId([3; 32]));
    assert_eq!(merge_trusted(&[a], &[]), vec![a]);
    assert_eq!(merge_trusted(&[b, a], &[a, c]), vec![b, a, c]);
    let many: Vec<KeyId> = (0..40).map(|i| KeyId([i; 32])).collect();
    assert_eq!(
        merge_trusted(&[a], &many).len(),
        pqrelay_client::engine::MAX_TRUSTED_KEYS
    );
}
