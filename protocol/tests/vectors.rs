//! Test vectors: `tests/vectors/*.json` (format in `tests/vectors/README.md`).
//!
//! Every file is regenerated here from fixed inputs, each case is checked against the
//! implementation while it is generated (including its `expect` kind), and the result must equal
//! the committed file byte for byte. `PQRELAY_BLESS=1 cargo test -p pqrelay-protocol` rewrites
//! the files instead.

#![allow(clippy::type_complexity)]

use std::path::PathBuf;

use pqrelay_protocol::msgs::headers::decode_headers;
use pqrelay_protocol::state::StateSealer;
use pqrelay_protocol::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Fixed "random" bytes: SHA-256 in counter mode over a label. Only used to produce the inputs,
/// which are stored in the files themselves.
fn fixed(label: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0u32;
    while out.len() < n {
        let mut h = Sha256::new();
        h.update(label.as_bytes());
        h.update(i.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        i += 1;
    }
    out.truncate(n);
    out
}

fn fixed_arr<const N: usize>(label: &str) -> [u8; N] {
    fixed(label, N).try_into().unwrap()
}

fn hx(b: impl AsRef<[u8]>) -> String {
    hex::encode(b)
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// `body(L)[i] = i mod 251`.
fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn kind<T>(r: Result<T, Error>) -> &'static str {
    match r {
        Ok(_) => "success",
        Err(e) => e.kind(),
    }
}

/// Asserts that `r` matches the designed `expect`, and returns the Ok value if any.
fn check<T>(name: &str, expect: &str, r: Result<T, Error>) -> Option<T> {
    match r {
        Ok(v) => {
            assert_eq!(
                expect, "success",
                "case {name}: succeeded, expected {expect}"
            );
            Some(v)
        }
        Err(e) => {
            assert_eq!(
                expect,
                e.kind(),
                "case {name}: failed with {e:?}, expected {expect}"
            );
            None
        }
    }
}

fn file(description: &str, cases: Vec<Value>) -> Value {
    json!({ "description": description, "version": 1, "cases": cases })
}

const CLIENT_ID: [u8; 16] = *b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff";
const PAIR_ID: [u8; 16] = *b"\x0f\x0e\x0d\x0c\x0b\x0a\x09\x08\x07\x06\x05\x04\x03\x02\x01\x00";

/// A message context as stored in the files.
#[derive(Clone)]
struct Ctx {
    response: Option<u16>,
    flags: u8,
    client_id: [u8; 16],
    pair_id: [u8; 16],
    counter: u64,
    method: String,
    target: String,
}

impl Ctx {
    fn request(flags: u8, counter: u64, method: &str, target: &str) -> Self {
        Self {
            response: None,
            flags,
            client_id: CLIENT_ID,
            pair_id: PAIR_ID,
            counter,
            method: method.into(),
            target: target.into(),
        }
    }

    fn response(flags: u8, counter: u64, method: &str, status: u16) -> Self {
        Self {
            response: Some(status),
            target: String::new(),
            ..Self::request(flags, counter, method, "")
        }
    }

    fn msg(&self) -> MessageContext {
        let flags = Flags::from_bits(self.flags).unwrap();
        let req = MessageContext::request(
            ClientId(self.client_id),
            PairId(self.pair_id),
            self.counter,
            flags,
            &self.method,
            &self.target,
        )
        .unwrap();
        match self.response {
            None => req,
            Some(status) => req.response(status, flags),
        }
    }

    fn json(&self) -> Value {
        json!({
            "direction": if self.response.is_some() { "response" } else { "request" },
            "status": self.response.unwrap_or(0),
            "flags": self.flags,
            "client_id": hx(self.client_id),
            "pair_id": hx(self.pair_id),
            "counter": self.counter.to_string(),
            "method": self.method,
            "target": self.target,
        })
    }
}

/// The keys of exchange `n` of the pair of `pairing.json` case `pair_basic`.
fn exchange_keys(n: u64) -> ExchangeKeys {
    let (ct, server) = basic_server_pair();
    let _ = ct;
    server.accept(n, u64::MAX).unwrap().0
}

fn basic_seed() -> DecapsulationSeed {
    DecapsulationSeed::from_bytes(fixed_arr("pairing seed 1"))
}

fn basic_server_pair() -> (KemCiphertext, ServerPair) {
    let ek = basic_seed().encapsulation_key();
    ServerPair::pair(
        &ClientId(CLIENT_ID),
        &PairId(PAIR_ID),
        &ek,
        &fixed_arr("pairing eseed 1"),
    )
}

// ---------------------------------------------------------------------------------------------
// pairing.json

fn pairing() -> Value {
    let mut cases = Vec::new();
    for (name, seed_label, eseed_label, id, pid) in [
        (
            "pair_basic",
            "pairing seed 1",
            "pairing eseed 1",
            CLIENT_ID,
            PAIR_ID,
        ),
        (
            "pair_other_ids",
            "pairing seed 2",
            "pairing eseed 2",
            [0xa5; 16],
            [0x5a; 16],
        ),
    ] {
        let seed = DecapsulationSeed::from_bytes(fixed_arr(seed_label));
        let eseed: [u8; 64] = fixed_arr(eseed_label);
        let pending = PendingPair::new(PairId(pid), seed.clone());
        let ek = pending.encapsulation_key();
        let ek = EncapsulationKey::from_bytes(ek.as_bytes()).unwrap();
        let (ct, ss) = ek.encapsulate(&eseed);
        let (ct2, server) = ServerPair::pair(&ClientId(id), &PairId(pid), &ek, &eseed);
        assert_eq!(ct, ct2);
        assert_eq!(seed.decapsulate(&ct).unwrap().as_bytes(), ss.as_bytes());
        let client = pending.complete(&ClientId(id), &ct).unwrap();
        let ck0 = ChainKey::initial(&ss, &ClientId(id), &PairId(pid));
        assert_eq!(client.chain_key(), &ck0);
        assert_eq!(server.chain_key(), &ck0);
        cases.push(json!({
            "name": name,
            "side": "both",
            "seed": hx(seed.as_bytes()),
            "eseed": hx(eseed),
            "client_id": hx(id),
            "pair_id": hx(pid),
            "ek": hx(ek.as_bytes()),
            "ct": hx(ct.as_bytes()),
            "ss": hx(ss.as_bytes()),
            "ck0": hx(ck0.as_bytes()),
            "expect": "success",
        }));
    }
    let good_ek = basic_seed().encapsulation_key().as_bytes().to_vec();
    let mut low_order = good_ek.clone();
    low_order[1184..].fill(0);
    let mut one = good_ek.clone();
    one[1184..].fill(0);
    one[1184] = 1;
    let mut bad_mlkem = good_ek.clone();
    bad_mlkem[0] = 0xff;
    bad_mlkem[1] = 0xff;
    for (name, ek, why) in [
        (
            "ek_x25519_zero_point",
            low_order,
            "X25519 part is the low-order point 0",
        ),
        (
            "ek_x25519_point_one",
            one,
            "X25519 part is the low-order point 1",
        ),
        (
            "ek_mlkem_coefficient_out_of_range",
            bad_mlkem,
            "first ML-KEM coefficient is 4095 >= q",
        ),
        ("ek_too_short", good_ek[..1215].to_vec(), "1215 bytes"),
    ] {
        let r = EncapsulationKey::from_bytes(&ek).map_err(Error::from);
        check(name, "invalid_pairing", r);
        cases.push(json!({
            "name": name, "side": "relay", "comment": why, "ek": hx(&ek), "expect": "invalid_pairing",
        }));
    }
    let (ct, _) = basic_server_pair();
    let mut bad_ct = ct.as_bytes().to_vec();
    bad_ct[1088..].fill(0);
    let r = basic_seed()
        .decapsulate(&KemCiphertext::from_bytes(&bad_ct).unwrap())
        .map_err(Error::from);
    check("ct_x25519_zero_point", "invalid_pairing", r);
    cases.push(json!({
        "name": "ct_x25519_zero_point", "side": "client",
        "comment": "X25519 part of ct is 0: the X25519 shared secret is all zero",
        "seed": hx(basic_seed().as_bytes()), "ct": hx(&bad_ct), "expect": "invalid_pairing",
    }));
    file(
        "X-Wing pairing (§5, §6): seed -> ek; (ek, eseed) -> (ct, ss); ss, ids -> ck0",
        cases,
    )
}

// ---------------------------------------------------------------------------------------------
// ratchet.json

fn ratchet() -> Value {
    let mut cases = Vec::new();
    let (_, server0) = basic_server_pair();
    let ck0 = server0.chain_key().clone();
    // Client chain n = 0..4.
    let mut client = ClientPair::from_parts(PairId(PAIR_ID), 0, ck0.clone());
    let mut steps = Vec::new();
    for _ in 0..5 {
        let ck = client.chain_key().clone();
        let (keys, next) = client.next_exchange().unwrap();
        steps.push(json!({
            "counter": keys.counter.to_string(),
            "ck": hx(ck.as_bytes()),
            "kq": hx(keys.request.as_bytes()),
            "ks": hx(keys.response.as_bytes()),
            "ck_next": hx(next.chain_key().as_bytes()),
        }));
        client = next;
    }
    cases.push(json!({"name": "chain_0_to_4", "type": "chain", "ck0": hx(ck0.as_bytes()), "steps": steps, "expect": "success"}));

    // The relay accepting (or refusing) counters.
    let state_at = |e: u64| -> ServerPair {
        let mut s = server0.clone();
        let mut ck = s.chain_key().clone();
        for _ in 0..e {
            let c = s.next_counter();
            let (_, n) = s.accept(c, 0).unwrap();
            ck = n.chain_key().clone();
            s = n;
        }
        ServerPair::from_parts(e, ck)
    };
    let accept_cases: Vec<(&str, ServerPair, u64, u64, &str)> = vec![
        ("accept_expected", state_at(0), 0, 16, "success"),
        ("accept_skip_3", state_at(0), 3, 16, "success"),
        ("accept_skip_max", state_at(2), 18, 16, "success"),
        (
            "reject_beyond_max_skip",
            state_at(2),
            19,
            16,
            "counter_rejected",
        ),
        ("reject_replay", state_at(3), 2, 16, "counter_rejected"),
        ("reject_replay_same", state_at(3), 0, 16, "counter_rejected"),
        (
            "accept_last_counter",
            ServerPair::from_parts(u64::MAX - 1, ck0.clone()),
            u64::MAX - 1,
            16,
            "success",
        ),
        (
            "reject_exhausted",
            ServerPair::from_parts(u64::MAX - 1, ck0.clone()),
            u64::MAX,
            16,
            "counter_rejected",
        ),
    ];
    for (name, state, m, skip, expect) in accept_cases {
        let before = json!({"next": state.next_counter().to_string(), "ck": hx(state.chain_key().as_bytes()), "bytes": hx(*state.to_bytes())});
        let r = state.accept(m, skip).map_err(Error::from);
        let mut case = json!({"name": name, "type": "accept", "state": before, "counter": m.to_string(), "max_skip": skip, "expect": expect});
        if let Some((keys, after)) = check(name, expect, r) {
            case["kq"] = json!(hx(keys.request.as_bytes()));
            case["ks"] = json!(hx(keys.response.as_bytes()));
            case["state_after"] = json!({"next": after.next_counter().to_string(), "ck": hx(after.chain_key().as_bytes()), "bytes": hx(*after.to_bytes())});
        }
        cases.push(case);
    }
    file("Key schedule and ratchet (§6): client chain steps, relay accepting counters, 41-byte state (§10)", cases)
}

// ---------------------------------------------------------------------------------------------
// aad.json

fn aad() -> Value {
    let mut cases = Vec::new();
    let items = [
        (
            "request_url",
            Ctx::request(0x07, 0, "POST", "/ignored"),
            Part::Url,
            0,
            true,
        ),
        (
            "request_headers_sealed_url",
            Ctx::request(0x03, 5, "GET", "/ignored"),
            Part::Headers,
            0,
            true,
        ),
        (
            "request_headers_plain_url",
            Ctx::request(0x06, 5, "PUT", "/api/v1/items?id=7"),
            Part::Headers,
            0,
            true,
        ),
        (
            "request_body_record_2",
            Ctx::request(0x0f, 1, "POST", ""),
            Part::Body,
            2,
            false,
        ),
        (
            "response_headers",
            Ctx::response(0x07, 1, "POST", 200),
            Part::Headers,
            0,
            true,
        ),
        (
            "response_body_final",
            Ctx::response(0x0e, u64::MAX - 1, "DELETE", 404),
            Part::Body,
            7,
            true,
        ),
    ];
    for (name, ctx, part, index, fin) in items {
        let aad = ctx.msg().aad(part, index, fin);
        cases.push(json!({
            "name": name,
            "context": ctx.json(),
            "part": part as u8,
            "index": index.to_string(),
            "final": fin,
            "aad": hx(&aad),
            "nonce": hx(seal::nonce(part, fin, index)),
            "expect": "success",
        }));
    }
    file(
        "AAD and nonce bytes (§7). `target` is only in the AAD of request headers without flag url",
        cases,
    )
}

// ---------------------------------------------------------------------------------------------
// seal.json (url and headers items)

fn seal_vectors() -> Value {
    let mut cases = Vec::new();
    let k0 = exchange_keys(0);
    let k1 = exchange_keys(1);
    let req = Ctx::request(0x07, 0, "POST", "");
    let req_plain = Ctx::request(0x06, 0, "POST", "/api/v1/items?id=7");
    let resp = Ctx::response(0x07, 0, "POST", 201);

    let push_success = |cases: &mut Vec<Value>,
                        name: &str,
                        key: &AeadKey,
                        ctx: &Ctx,
                        part: Part,
                        plaintext: &str| {
        let m = ctx.msg();
        let (sealed, headers) = match part {
            Part::Url => {
                let s = seal_url(key, &m, plaintext).unwrap();
                assert_eq!(open_url(key, &m, &s).unwrap(), plaintext);
                (s, Value::Null)
            }
            _ => {
                let s = seal_headers_json(key, &m, plaintext.as_bytes());
                let list = open_headers(key, &m, &s).unwrap();
                let list: Vec<Value> = list.iter().map(|(n, v)| json!([n, v])).collect();
                (s, Value::Array(list))
            }
        };
        let mut c = json!({
            "name": name, "part": if part == Part::Url { "url" } else { "headers" },
            "key": hx(key.as_bytes()), "context": ctx.json(), "plaintext": plaintext,
            "sealed": sealed, "expect": "success",
        });
        if !headers.is_null() {
            c["headers"] = headers;
        }
        cases.push(c);
    };
    push_success(
        &mut cases,
        "url_basic",
        &k0.request,
        &req,
        Part::Url,
        "/api/v1/items?id=7&q=a%20b",
    );
    push_success(&mut cases, "url_root", &k0.request, &req, Part::Url, "/");
    push_success(
        &mut cases,
        "headers_request",
        &k0.request,
        &req,
        Part::Headers,
        r#"[["content-type","application/json"],["authorization","Bearer x"],["x-a","1"],["x-a","2"]]"#,
    );
    push_success(
        &mut cases,
        "headers_empty",
        &k0.request,
        &req,
        Part::Headers,
        "[]",
    );
    push_success(
        &mut cases,
        "headers_request_plain_url",
        &k0.request,
        &req_plain,
        Part::Headers,
        r#"[["accept","text/html"]]"#,
    );
    push_success(
        &mut cases,
        "headers_response",
        &k0.response,
        &resp,
        Part::Headers,
        "[[\"content-type\",\"text/plain; charset=utf-8\"],[\"x-note\",\"caf\u{e9} \\\"q\\\"\"]]",
    );
    push_success(
        &mut cases,
        "headers_json_whitespace",
        &k0.request,
        &req,
        Part::Headers,
        "[ [\"accept\" , \"*/*\"] ]\n",
    );

    // Negative cases: `sealed` was made under the `made_with` variant, opened under `context`.
    let url_sealed = |key: &AeadKey, ctx: &Ctx| seal_url(key, &ctx.msg(), "/secret?x=1").unwrap();
    let eh_sealed =
        |key: &AeadKey, ctx: &Ctx, json: &str| seal_headers_json(key, &ctx.msg(), json.as_bytes());
    let h = r#"[["accept","*/*"]]"#;
    let mut neg: Vec<(&str, &str, &AeadKey, Ctx, String, &str)> = Vec::new();
    let with = |f: &dyn Fn(&mut Ctx)| {
        let mut c = req.clone();
        f(&mut c);
        c
    };
    neg.push((
        "url_wrong_key",
        "url",
        &k0.request,
        req.clone(),
        url_sealed(&k1.request, &req),
        "decode_failure",
    ));
    neg.push((
        "url_response_key",
        "url",
        &k0.request,
        req.clone(),
        url_sealed(&k0.response, &req),
        "decode_failure",
    ));
    neg.push((
        "url_wrong_pair",
        "url",
        &k0.request,
        req.clone(),
        url_sealed(&k0.request, &with(&|c| c.pair_id[0] ^= 1)),
        "decode_failure",
    ));
    neg.push((
        "url_wrong_client",
        "url",
        &k0.request,
        req.clone(),
        url_sealed(&k0.request, &with(&|c| c.client_id[15] ^= 0x80)),
        "decode_failure",
    ));
    neg.push((
        "url_wrong_counter",
        "url",
        &k0.request,
        req.clone(),
        url_sealed(&k0.request, &with(&|c| c.counter = 1)),
        "decode_failure",
    ));
    neg.push((
        "url_wrong_method",
        "url",
        &k0.request,
        req.clone(),
        url_sealed(&k0.request, &with(&|c| c.method = "GET".into())),
        "decode_failure",
    ));
    neg.push((
        "url_wrong_flags",
        "url",
        &k0.request,
        req.clone(),
        url_sealed(&k0.request, &with(&|c| c.flags = 0x0f)),
        "decode_failure",
    ));
    {
        let s = url_sealed(&k0.request, &req);
        let mut raw = codec::b64_decode(&s[1..]).unwrap();
        raw[3] ^= 0x01;
        neg.push((
            "url_bit_flip_ciphertext",
            "url",
            &k0.request,
            req.clone(),
            format!("/{}", codec::b64_encode(&raw)),
            "decode_failure",
        ));
        let mut raw = codec::b64_decode(&s[1..]).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0x80;
        neg.push((
            "url_bit_flip_tag",
            "url",
            &k0.request,
            req.clone(),
            format!("/{}", codec::b64_encode(&raw)),
            "decode_failure",
        ));
        neg.push((
            "url_truncated",
            "url",
            &k0.request,
            req.clone(),
            format!("/{}", codec::b64_encode(&raw[..raw.len() - 1])),
            "decode_failure",
        ));
        neg.push((
            "url_not_b64",
            "url",
            &k0.request,
            req.clone(),
            format!("{s}="),
            "decode_failure",
        ));
    }
    let bad_url = |u: &str| {
        format!(
            "/{}",
            codec::b64_encode(&seal::seal_item(
                &k0.request,
                &req.msg(),
                Part::Url,
                u.as_bytes()
            ))
        )
    };
    neg.push((
        "url_absolute_form",
        "url",
        &k0.request,
        req.clone(),
        bad_url("http://evil.example/x"),
        "invalid_url",
    ));
    neg.push((
        "url_authority_form",
        "url",
        &k0.request,
        req.clone(),
        bad_url("//evil.example/x"),
        "invalid_url",
    ));
    neg.push((
        "url_backslash",
        "url",
        &k0.request,
        req.clone(),
        bad_url("/a\\b"),
        "invalid_url",
    ));
    neg.push((
        "url_fragment",
        "url",
        &k0.request,
        req.clone(),
        bad_url("/a#b"),
        "invalid_url",
    ));
    neg.push((
        "url_space",
        "url",
        &k0.request,
        req.clone(),
        bad_url("/a b"),
        "invalid_url",
    ));
    neg.push((
        "url_control_char",
        "url",
        &k0.request,
        req.clone(),
        bad_url("/a\r\nHost: x"),
        "invalid_url",
    ));

    neg.push((
        "headers_wrong_key",
        "headers",
        &k0.request,
        req.clone(),
        eh_sealed(&k1.request, &req, h),
        "decode_failure",
    ));
    neg.push((
        "headers_wrong_direction",
        "headers",
        &k0.request,
        req.clone(),
        eh_sealed(&k0.request, &Ctx::response(0x07, 0, "POST", 0), h),
        "decode_failure",
    ));
    neg.push((
        "headers_wrong_status",
        "headers",
        &k0.response,
        resp.clone(),
        eh_sealed(&k0.response, &Ctx::response(0x07, 0, "POST", 200), h),
        "decode_failure",
    ));
    neg.push((
        "headers_wrong_target",
        "headers",
        &k0.request,
        req_plain.clone(),
        eh_sealed(
            &k0.request,
            &Ctx::request(0x06, 0, "POST", "/api/v1/items?id=8"),
            h,
        ),
        "decode_failure",
    ));
    neg.push((
        "headers_wrong_counter",
        "headers",
        &k0.request,
        req.clone(),
        eh_sealed(&k0.request, &with(&|c| c.counter = 7), h),
        "decode_failure",
    ));
    neg.push((
        "headers_url_part_swapped",
        "headers",
        &k0.request,
        req.clone(),
        codec::b64_encode(&seal::seal_item(
            &k0.request,
            &req.msg(),
            Part::Url,
            h.as_bytes(),
        )),
        "decode_failure",
    ));
    neg.push((
        "headers_not_json",
        "headers",
        &k0.request,
        req.clone(),
        eh_sealed(&k0.request, &req, "accept: */*"),
        "decode_failure",
    ));
    neg.push((
        "headers_wrong_shape",
        "headers",
        &k0.request,
        req.clone(),
        eh_sealed(&k0.request, &req, r#"{"accept":"*/*"}"#),
        "decode_failure",
    ));
    neg.push((
        "headers_triple",
        "headers",
        &k0.request,
        req.clone(),
        eh_sealed(&k0.request, &req, r#"[["a","b","c"]]"#),
        "decode_failure",
    ));
    neg.push((
        "headers_forbidden_host",
        "headers",
        &k0.request,
        req.clone(),
        eh_sealed(&k0.request, &req, r#"[["host","evil"]]"#),
        "forbidden_header",
    ));
    neg.push((
        "headers_forbidden_x_mte",
        "headers",
        &k0.request,
        req.clone(),
        eh_sealed(&k0.request, &req, r#"[["x-mte-relay","1"]]"#),
        "forbidden_header",
    ));
    neg.push((
        "headers_uppercase_name",
        "headers",
        &k0.request,
        req.clone(),
        eh_sealed(&k0.request, &req, r#"[["Accept","*/*"]]"#),
        "forbidden_header",
    ));
    neg.push((
        "headers_value_crlf",
        "headers",
        &k0.request,
        req.clone(),
        eh_sealed(&k0.request, &req, r#"[["accept","a\r\nx: y"]]"#),
        "forbidden_header",
    ));
    neg.push((
        "headers_too_large",
        "headers",
        &k0.request,
        req.clone(),
        "A".repeat(16385),
        "headers_too_large",
    ));

    for (name, part, key, ctx, sealed, expect) in neg {
        let m = ctx.msg();
        let r = if part == "url" {
            kind(open_url(key, &m, &sealed))
        } else {
            kind(open_headers(key, &m, &sealed))
        };
        assert_eq!(r, expect, "case {name}");
        cases.push(json!({
            "name": name, "part": part, "key": hx(key.as_bytes()), "context": ctx.json(),
            "sealed": sealed, "expect": expect,
        }));
    }
    file(
        "Sealed URL (`\"/\" || b64(..)`) and sealed header block (`x-mte-relay-eh`) items (§7, §8)",
        cases,
    )
}

// ---------------------------------------------------------------------------------------------
// body.json

const SMALL: usize = 4096;

fn encode_body(
    key: &AeadKey,
    ctx: &MessageContext,
    plain: &[u8],
    records: Option<&[usize]>,
) -> Vec<u8> {
    let mut out = Vec::new();
    match records {
        None => {
            let mut enc = StreamEncoder::new(key, ctx, Some(plain.len() as u64));
            enc.push(plain, &mut out).unwrap();
            enc.finish(&mut out).unwrap();
        }
        Some(sizes) => {
            let mut enc = StreamEncoder::new(key, ctx, None);
            let mut rest = plain;
            for (i, &n) in sizes.iter().enumerate() {
                let (piece, r) = rest.split_at(n);
                rest = r;
                enc.push(piece, &mut out).unwrap();
                if i + 1 < sizes.len() {
                    enc.flush(&mut out).unwrap();
                }
            }
            assert!(rest.is_empty());
            enc.finish(&mut out).unwrap();
        }
    }
    out
}

fn decode_body(
    key: &AeadKey,
    ctx: &MessageContext,
    expected: Option<u64>,
    wire: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut dec = StreamDecoder::new(key, ctx, expected);
    let mut out = Vec::new();
    dec.push(wire, &mut out)?;
    dec.finish()?;
    Ok(out)
}

/// Splits a valid stream into its records (header parsed, no checks).
fn split_records(wire: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let len = (u32::from_be_bytes(rest[..4].try_into().unwrap()) & 0x7fff_ffff) as usize;
        let (rec, r) = rest.split_at(4 + len + 16);
        out.push(rec.to_vec());
        rest = r;
    }
    out
}

fn body_vectors() -> Value {
    let mut cases = Vec::new();
    let k = exchange_keys(2);
    let req = Ctx::request(0x07, 2, "POST", "");
    let resp = Ctx::response(0x0f, 2, "POST", 200);
    let mut push_ok =
        |name: &str, key: &AeadKey, ctx: &Ctx, len: usize, records: Option<Vec<usize>>| {
            let plain = body(len);
            let m = ctx.msg();
            let wire = encode_body(key, &m, &plain, records.as_deref());
            let sized = records.is_none();
            if sized {
                assert_eq!(encoded_len(len as u64), Some(wire.len() as u64));
                assert_eq!(plain_len(wire.len() as u64), Some(len as u64));
            }
            let expected = sized.then_some(len as u64);
            assert_eq!(decode_body(key, &m, expected, &wire).unwrap(), plain);
            let record_sizes: Vec<usize> =
                split_records(&wire).iter().map(|r| r.len() - 20).collect();
            let mut c = json!({
                "name": name, "key": hx(key.as_bytes()), "context": ctx.json(),
                "mode": if sized { "sized" } else { "streaming" },
                "plain_len": len, "plain_sha256": sha256_hex(&plain),
                "records": record_sizes, "expected_plain_len": expected,
                "encoded_len": wire.len(), "encoded_sha256": sha256_hex(&wire), "expect": "success",
            });
            if wire.len() <= SMALL {
                c["encoded"] = json!(hx(&wire));
            }
            cases.push(c);
        };
    for len in [0usize, 1, 65535, 65536, 65537, 3 * 65536 + 5] {
        push_ok(&format!("sized_{len}"), &k.request, &req, len, None);
    }
    push_ok("sized_response_100", &k.response, &resp, 100, None);
    push_ok("streaming_empty", &k.response, &resp, 0, Some(vec![0]));
    push_ok("streaming_one_final", &k.response, &resp, 5, Some(vec![5]));
    push_ok(
        "streaming_events",
        &k.response,
        &resp,
        30,
        Some(vec![10, 7, 13, 0]),
    );
    push_ok(
        "streaming_mixed",
        &k.response,
        &resp,
        65536 + 1000,
        Some(vec![1000, 65536, 0]),
    );
    push_ok(
        "streaming_full_final",
        &k.response,
        &resp,
        2 * 65536,
        Some(vec![65536, 65536]),
    );
    push_ok(
        "streaming_request",
        &k.request,
        &Ctx::request(0x0f, 2, "PATCH", ""),
        300,
        Some(vec![100, 150, 50]),
    );

    // Negative cases over small streaming bodies: records [10, 7, 13] + empty final.
    let m = resp.msg();
    let good = encode_body(&k.response, &m, &body(30), Some(&[10, 7, 13, 0]));
    let recs = split_records(&good);
    let join = |rs: &[&Vec<u8>]| {
        rs.iter()
            .flat_map(|r| r.iter().copied())
            .collect::<Vec<u8>>()
    };
    let flip = |bytes: &[u8], i: usize, mask: u8| {
        let mut b = bytes.to_vec();
        b[i] ^= mask;
        b
    };
    let other_ctx = |f: &dyn Fn(&mut Ctx)| {
        let mut c = resp.clone();
        f(&mut c);
        encode_body(&k.response, &c.msg(), &body(30), Some(&[10, 7, 13, 0]))
    };
    let sized_good = encode_body(&k.request, &req.msg(), &body(100), None);
    let mut neg: Vec<(&str, &str, &AeadKey, &Ctx, Option<u64>, Vec<u8>)> = vec![
        (
            "bit_flip_ciphertext",
            "decode_failure",
            &k.response,
            &resp,
            None,
            flip(&good, 4 + 3, 0x10),
        ),
        (
            "bit_flip_tag",
            "decode_failure",
            &k.response,
            &resp,
            None,
            flip(&good, 4 + 10 + 15, 0x01),
        ),
        (
            "bit_flip_header_final",
            "decode_failure",
            &k.response,
            &resp,
            None,
            flip(&good, 0, 0x80),
        ),
        (
            "bit_flip_header_reserved",
            "framing_failure",
            &k.response,
            &resp,
            None,
            flip(&good, 1, 0x02),
        ),
        (
            "header_len_over_chunk",
            "framing_failure",
            &k.response,
            &resp,
            None,
            {
                let mut b = good.clone();
                b[..4].copy_from_slice(&0x0001_0001u32.to_be_bytes());
                b
            },
        ),
        (
            "empty_non_final_record",
            "framing_failure",
            &k.response,
            &resp,
            None,
            {
                let mut b = 0u32.to_be_bytes().to_vec();
                b.extend_from_slice(&good);
                b
            },
        ),
        (
            "bit_flip_header_len",
            "decode_failure",
            &k.response,
            &resp,
            None,
            flip(&good, 3, 0x01),
        ),
        (
            "truncated_mid_record",
            "framing_failure",
            &k.response,
            &resp,
            None,
            good[..good.len() - 5].to_vec(),
        ),
        (
            "truncated_mid_header",
            "framing_failure",
            &k.response,
            &resp,
            None,
            good[..recs[0].len() + 2].to_vec(),
        ),
        (
            "missing_final_record",
            "framing_failure",
            &k.response,
            &resp,
            None,
            join(&[&recs[0], &recs[1], &recs[2]]),
        ),
        (
            "empty_stream",
            "framing_failure",
            &k.response,
            &resp,
            None,
            Vec::new(),
        ),
        (
            "reordered_records",
            "decode_failure",
            &k.response,
            &resp,
            None,
            join(&[&recs[1], &recs[0], &recs[2], &recs[3]]),
        ),
        (
            "duplicated_record",
            "decode_failure",
            &k.response,
            &resp,
            None,
            join(&[&recs[0], &recs[0], &recs[1], &recs[2], &recs[3]]),
        ),
        (
            "dropped_record",
            "decode_failure",
            &k.response,
            &resp,
            None,
            join(&[&recs[0], &recs[2], &recs[3]]),
        ),
        (
            "trailing_bytes",
            "framing_failure",
            &k.response,
            &resp,
            None,
            {
                let mut b = good.clone();
                b.push(0);
                b
            },
        ),
        (
            "trailing_record",
            "framing_failure",
            &k.response,
            &resp,
            None,
            join(&[&recs[0], &recs[1], &recs[2], &recs[3], &recs[3]]),
        ),
        (
            "wrong_key",
            "decode_failure",
            &k.request,
            &resp,
            None,
            good.clone(),
        ),
        (
            "wrong_pair",
            "decode_failure",
            &k.response,
            &resp,
            None,
            other_ctx(&|c| c.pair_id[7] ^= 4),
        ),
        (
            "wrong_client",
            "decode_failure",
            &k.response,
            &resp,
            None,
            other_ctx(&|c| c.client_id[0] ^= 1),
        ),
        (
            "wrong_counter",
            "decode_failure",
            &k.response,
            &resp,
            None,
            other_ctx(&|c| c.counter = 3),
        ),
        (
            "wrong_status",
            "decode_failure",
            &k.response,
            &resp,
            None,
            other_ctx(&|c| c.response = Some(500)),
        ),
        (
            "wrong_method",
            "decode_failure",
            &k.response,
            &resp,
            None,
            other_ctx(&|c| c.method = "GET".into()),
        ),
        (
            "wrong_flags",
            "decode_failure",
            &k.response,
            &resp,
            None,
            other_ctx(&|c| c.flags = 0x07),
        ),
        (
            "wrong_direction",
            "decode_failure",
            &k.response,
            &resp,
            None,
            {
                let c = Ctx::request(0x0f, 2, "POST", "");
                encode_body(&k.response, &c.msg(), &body(30), Some(&[10, 7, 13, 0]))
            },
        ),
        (
            "sized_length_mismatch",
            "framing_failure",
            &k.request,
            &req,
            Some(99),
            sized_good.clone(),
        ),
        (
            "sized_length_short",
            "framing_failure",
            &k.request,
            &req,
            Some(101),
            sized_good.clone(),
        ),
    ];
    // The other exchange's body (replay of exchange 1 into exchange 2).
    let k1 = exchange_keys(1);
    let old = encode_body(
        &k1.response,
        &Ctx::response(0x0f, 1, "POST", 200).msg(),
        &body(30),
        Some(&[10, 7, 13, 0]),
    );
    neg.push((
        "replayed_exchange",
        "decode_failure",
        &k.response,
        &resp,
        None,
        old,
    ));
    for (name, expect, key, ctx, expected, wire) in neg {
        let r = decode_body(key, &ctx.msg(), expected, &wire);
        check(name, expect, r);
        cases.push(json!({
            "name": name, "key": hx(key.as_bytes()), "context": ctx.json(),
            "expected_plain_len": expected, "encoded": hx(&wire), "expect": expect,
        }));
    }
    file(
        "STREAM bodies (§9). Plaintext is body(L)[i] = i mod 251; long encodings by SHA-256",
        cases,
    )
}

// ---------------------------------------------------------------------------------------------
// lengths.json

fn lengths() -> Value {
    let mut cases = Vec::new();
    for l in [0u64, 1, 65535, 65536, 65537, 131072, 3 * 65536 + 5, 1 << 32] {
        let e = encoded_len(l).unwrap();
        assert_eq!(plain_len(e), Some(l));
        cases.push(json!({"name": format!("plain_{l}"), "plain_len": l.to_string(), "encoded_len": e.to_string(), "expect": "success"}));
    }
    for e in [0u64, 19, 65556 + 1, 65556 + 20, 131112 + 1, 65557 + 65556] {
        let r = check_encoded_len(e);
        if r.is_ok() {
            continue;
        }
        check(&format!("encoded_{e}"), "invalid_length", r);
        cases.push(json!({"name": format!("encoded_{e}"), "encoded_len": e.to_string(), "expect": "invalid_length"}));
    }
    file(
        "encoded_len(L) and its inverse for sized bodies (§9)",
        cases,
    )
}

// ---------------------------------------------------------------------------------------------
// relay_header.json

fn relay_header() -> Value {
    let mut cases = Vec::new();
    let token = client_id::issue(b"test secret", ClientId(CLIENT_ID));
    let t = token.encode();
    let pid = PairId(PAIR_ID).to_b64();
    let ok: Vec<(&str, String)> = vec![
        ("discovery", format!("1.{t}")),
        ("exchange", format!("1.{t}.{pid}.0.2")),
        ("exchange_all_flags", format!("1.{t}.{pid}.42.15")),
        (
            "exchange_max_counter",
            format!("1.{t}.{pid}.18446744073709551615.7"),
        ),
    ];
    for (name, value) in ok {
        let h = RelayHeader::parse(&value).unwrap();
        assert_eq!(h.encode(), value);
        let parsed = match &h {
            RelayHeader::Discovery { token } => {
                json!({"form": "discovery", "token": token.encode(), "client_id": hx(token.id().as_bytes())})
            }
            RelayHeader::Exchange(x) => json!({
                "form": "exchange", "token": x.token.encode(), "client_id": hx(x.token.id().as_bytes()),
                "pair_id": hx(x.pair_id.as_bytes()), "counter": x.counter.to_string(), "flags": x.flags.bits(),
            }),
        };
        cases.push(json!({"name": name, "type": "relay_header", "value": value, "parsed": parsed, "expect": "success"}));
    }
    let bad: Vec<(&str, String, &str)> = vec![
        ("empty", String::new(), "invalid_header"),
        ("version_only", "1".into(), "invalid_header"),
        ("version_2", format!("2.{t}"), "unsupported_version"),
        (
            "version_2_exchange",
            format!("2.{t}.{pid}.0.2"),
            "unsupported_version",
        ),
        ("version_leading_zero", format!("01.{t}"), "invalid_header"),
        ("version_not_number", format!("v1.{t}"), "invalid_header"),
        ("token_short", format!("1.{}", &t[..63]), "invalid_header"),
        ("token_padding", format!("1.{t}="), "invalid_header"),
        (
            "token_std_alphabet",
            format!("1.{}+", &t[..63]),
            "invalid_header",
        ),
        ("three_fields", format!("1.{t}.{pid}"), "invalid_header"),
        ("four_fields", format!("1.{t}.{pid}.0"), "invalid_header"),
        ("six_fields", format!("1.{t}.{pid}.0.2.0"), "invalid_header"),
        (
            "trailing_dot",
            format!("1.{t}.{pid}.0.2."),
            "invalid_header",
        ),
        (
            "pid_short",
            format!("1.{t}.{}.0.2", &pid[..21]),
            "invalid_header",
        ),
        (
            "pid_non_canonical",
            format!("1.{t}.{}B.0.2", &pid[..21]),
            "invalid_header",
        ),
        (
            "counter_leading_zero",
            format!("1.{t}.{pid}.01.2"),
            "invalid_header",
        ),
        (
            "counter_sign",
            format!("1.{t}.{pid}.+1.2"),
            "invalid_header",
        ),
        (
            "counter_overflow",
            format!("1.{t}.{pid}.18446744073709551616.2"),
            "invalid_header",
        ),
        ("counter_empty", format!("1.{t}.{pid}..2"), "invalid_header"),
        (
            "flags_unknown_bit",
            format!("1.{t}.{pid}.0.18"),
            "invalid_header",
        ),
        (
            "flags_over_u8",
            format!("1.{t}.{pid}.0.258"),
            "invalid_header",
        ),
        (
            "flags_no_headers_bit",
            format!("1.{t}.{pid}.0.5"),
            "invalid_header",
        ),
        (
            "flags_leading_zero",
            format!("1.{t}.{pid}.0.02"),
            "invalid_header",
        ),
        ("space", format!("1.{t}.{pid}.0.2 "), "invalid_header"),
    ];
    for (name, value, expect) in bad {
        let r = RelayHeader::parse(&value).map_err(Error::from);
        check(name, expect, r);
        cases.push(json!({"name": name, "type": "relay_header", "value": value, "expect": expect}));
    }
    // x-mte-relay-info
    for (name, value, ok) in [
        (
            "info_basic",
            "versions=1;max-pairs=25;chunk-size=65536;max-skip=16",
            true,
        ),
        (
            "info_unknown_keys",
            "foo=bar;versions=1,2;max-pairs=5;chunk-size=65536;max-skip=16;x=y",
            true,
        ),
        (
            "info_missing_key",
            "versions=1;max-pairs=25;chunk-size=65536",
            false,
        ),
        (
            "info_bad_number",
            "versions=1;max-pairs=-1;chunk-size=65536;max-skip=16",
            false,
        ),
    ] {
        let info = RelayInfo::parse(value);
        assert_eq!(info.is_some(), ok, "{name}");
        let mut c = json!({"name": name, "type": "relay_info", "value": value, "expect": if ok { "success" } else { "invalid_header" }});
        if let Some(i) = info {
            c["parsed"] = json!({"versions": i.versions, "max_pairs": i.max_pairs, "chunk_size": i.chunk_size, "max_skip": i.max_skip});
        }
        cases.push(c);
    }
    file(
        "The x-mte-relay header (§4, §8.1) and x-mte-relay-info (§4)",
        cases,
    )
}

// ---------------------------------------------------------------------------------------------
// client_id.json

fn client_ids() -> Value {
    let mut cases = Vec::new();
    for (name, secret, id) in [
        ("issue_basic", "test secret", CLIENT_ID),
        ("issue_utf8_secret", "s\u{e9}cret \u{1f511}", [0xff; 16]),
    ] {
        let t = client_id::issue(secret.as_bytes(), ClientId(id));
        assert_eq!(ClientIdToken::parse(&t.encode()).unwrap(), t);
        cases.push(json!({"name": name, "type": "issue", "secret": secret, "client_id": hx(id), "mac": hx(t.mac()), "token": t.encode(), "expect": "success"}));
    }
    let t_cur = client_id::issue(b"current", ClientId(CLIENT_ID)).encode();
    let t_old = client_id::issue(b"previous", ClientId(CLIENT_ID)).encode();
    let mut flipped = codec::b64_decode(&t_cur).unwrap();
    flipped[20] ^= 1;
    let flipped = codec::b64_encode(&flipped);
    let mut id_flipped = codec::b64_decode(&t_cur).unwrap();
    id_flipped[0] ^= 1;
    let id_flipped = codec::b64_encode(&id_flipped);
    for (name, token, expect) in [
        ("verify_current", t_cur.clone(), "success"),
        ("verify_previous_resigned", t_old.clone(), "success"),
        (
            "verify_unknown_secret",
            client_id::issue(b"other", ClientId(CLIENT_ID)).encode(),
            "invalid_client_id",
        ),
        ("verify_mac_bit_flip", flipped, "invalid_client_id"),
        ("verify_id_bit_flip", id_flipped, "invalid_client_id"),
        ("verify_short", t_cur[..63].to_string(), "invalid_client_id"),
        ("verify_padding", format!("{t_cur}="), "invalid_client_id"),
        (
            "verify_not_b64",
            format!("{}*", &t_cur[..63]),
            "invalid_client_id",
        ),
    ] {
        let secrets: [&[u8]; 2] = [b"current", b"previous"];
        let r = ClientIdToken::parse(&token)
            .and_then(|t| client_id::verify(&secrets, &t))
            .map_err(Error::from);
        let mut c = json!({"name": name, "type": "verify", "secrets": ["current", "previous"], "token": token, "expect": expect});
        if let Some(v) = check(name, expect, r) {
            c["client_id"] = json!(hx(v.id.as_bytes()));
            c["resigned"] = json!(v.resigned);
            c["token_out"] = json!(v.token.encode());
        }
        cases.push(c);
    }
    file(
        "Client id tokens (§3): issue and verify against [current, previous] secrets",
        cases,
    )
}

// ---------------------------------------------------------------------------------------------
// state.json

fn state() -> Value {
    let mut cases = Vec::new();
    let sealer = StateSealer::new(b"state secret");
    let (_, s0) = basic_server_pair();
    let s5 = s0.clone().accept(4, 16).unwrap().1;
    let salt: [u8; 16] = fixed_arr("state salt");
    let mut good = None;
    for (name, st) in [("seal_fresh_pair", &s0), ("seal_after_exchange_4", &s5)] {
        let blob = sealer.seal(&ClientId(CLIENT_ID), &PairId(PAIR_ID), st, salt);
        assert_eq!(
            &sealer
                .open(&ClientId(CLIENT_ID), &PairId(PAIR_ID), &blob)
                .unwrap(),
            st
        );
        cases.push(json!({
            "name": name, "type": "seal", "state_secret": "state secret",
            "client_id": hx(CLIENT_ID), "pair_id": hx(PAIR_ID),
            "next": st.next_counter().to_string(), "ck": hx(st.chain_key().as_bytes()),
            "state": hx(*st.to_bytes()), "salt": hx(salt), "blob": hx(blob), "expect": "success",
        }));
        good = Some(blob);
    }
    let good = good.unwrap();
    let mut flip = good;
    flip[30] ^= 4;
    let mut salt_flip = good;
    salt_flip[0] ^= 1;
    let bad_version = {
        let mut bytes = *s5.to_bytes();
        bytes[0] = 2;
        bytes
    };
    // A version-2 state sealed by hand (same construction), to check the version check.
    let sealed_bad_version = sealer_blob_for_test(&bad_version, &salt);
    let opens: Vec<(&str, &str, [u8; 16], [u8; 16], Vec<u8>, &str)> = vec![
        (
            "open_ok",
            "state secret",
            CLIENT_ID,
            PAIR_ID,
            good.to_vec(),
            "success",
        ),
        (
            "open_wrong_secret",
            "other secret",
            CLIENT_ID,
            PAIR_ID,
            good.to_vec(),
            "state_failure",
        ),
        (
            "open_wrong_client",
            "state secret",
            [1; 16],
            PAIR_ID,
            good.to_vec(),
            "state_failure",
        ),
        (
            "open_wrong_pair",
            "state secret",
            CLIENT_ID,
            [1; 16],
            good.to_vec(),
            "state_failure",
        ),
        (
            "open_bit_flip",
            "state secret",
            CLIENT_ID,
            PAIR_ID,
            flip.to_vec(),
            "state_failure",
        ),
        (
            "open_salt_flip",
            "state secret",
            CLIENT_ID,
            PAIR_ID,
            salt_flip.to_vec(),
            "state_failure",
        ),
        (
            "open_truncated",
            "state secret",
            CLIENT_ID,
            PAIR_ID,
            good[..72].to_vec(),
            "state_failure",
        ),
        (
            "open_bad_state_version",
            "state secret",
            CLIENT_ID,
            PAIR_ID,
            sealed_bad_version.to_vec(),
            "invalid_state",
        ),
    ];
    for (name, secret, id, pid, blob, expect) in opens {
        let r = StateSealer::new(secret.as_bytes())
            .open(&ClientId(id), &PairId(pid), &blob)
            .map_err(Error::from);
        let mut c = json!({"name": name, "type": "open", "state_secret": secret, "client_id": hx(id), "pair_id": hx(pid), "blob": hx(&blob), "expect": expect});
        if let Some(st) = check(name, expect, r) {
            c["next"] = json!(st.next_counter().to_string());
            c["ck"] = json!(hx(st.chain_key().as_bytes()));
        }
        cases.push(c);
    }
    file(
        "Relay-side state (§10): 41-byte plain state and 73-byte sealed blob",
        cases,
    )
}

/// A blob holding arbitrary 41 bytes, built with the public primitives (test-only).
fn sealer_blob_for_test(state: &[u8; 41], salt: &[u8; 16]) -> Vec<u8> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use hkdf::Hkdf;
    let (prk, _) = Hkdf::<Sha256>::extract(Some(b"pqrelay/1 state"), b"state secret");
    let mut state_key = [0u8; 32];
    Hkdf::<Sha256>::from_prk(&prk)
        .unwrap()
        .expand(b"pqrelay/1 state key", &mut state_key)
        .unwrap();
    let mut k = [0u8; 32];
    let info = [&b"pqrelay/1 state blob"[..], salt].concat();
    Hkdf::<Sha256>::from_prk(&state_key)
        .unwrap()
        .expand(&info, &mut k)
        .unwrap();
    let aad = [&b"pqrelay/1 state"[..], &CLIENT_ID, &PAIR_ID].concat();
    let ct = aes_gcm::Aes256Gcm::new_from_slice(&k)
        .unwrap()
        .encrypt(
            &[0u8; 12].into(),
            Payload {
                msg: state,
                aad: &aad,
            },
        )
        .unwrap();
    [&salt[..], &ct].concat()
}

// ---------------------------------------------------------------------------------------------
// headers.json, url.json, pairing_json.json

fn headers_json() -> Value {
    let mut cases = Vec::new();
    for (name, json_text, request, expect) in [
        ("empty", "[]", true, "success"),
        (
            "duplicates_kept_in_order",
            r#"[["x-a","1"],["accept","*/*"],["x-a","2"]]"#,
            true,
            "success",
        ),
        (
            "token_chars",
            r#"[["!#$%&'*+-.^_`|~09az","v"]]"#,
            true,
            "success",
        ),
        (
            "value_tab_and_utf8",
            "[[\"x-v\",\"a\\tb caf\u{e9}\"]]",
            true,
            "success",
        ),
        ("empty_value", r#"[["x-e",""]]"#, true, "success"),
        ("not_array", r#"{"a":"b"}"#, true, "decode_failure"),
        ("pair_too_short", r#"[["a"]]"#, true, "decode_failure"),
        ("non_string_value", r#"[["a",1]]"#, true, "decode_failure"),
        (
            "trailing_garbage",
            r#"[["a","b"]] x"#,
            true,
            "decode_failure",
        ),
        ("empty_name", r#"[["","b"]]"#, true, "forbidden_header"),
        (
            "name_with_space",
            r#"[["a b","c"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "name_with_colon",
            r#"[["a:","c"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "uppercase_name",
            r#"[["Content-Type","c"]]"#,
            true,
            "forbidden_header",
        ),
        ("value_lf", r#"[["a","b\nc"]]"#, true, "forbidden_header"),
        (
            "value_nul",
            r#"[["a","b\u0000"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "value_del",
            "[[\"a\",\"b\u{7f}\"]]",
            true,
            "forbidden_header",
        ),
        ("host", r#"[["host","x"]]"#, true, "forbidden_header"),
        (
            "content_length",
            r#"[["content-length","1"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "transfer_encoding",
            r#"[["transfer-encoding","chunked"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "connection",
            r#"[["connection","close"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "keep_alive",
            r#"[["keep-alive","1"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "proxy_connection",
            r#"[["proxy-connection","x"]]"#,
            true,
            "forbidden_header",
        ),
        ("te", r#"[["te","trailers"]]"#, true, "forbidden_header"),
        ("trailer", r#"[["trailer","x"]]"#, true, "forbidden_header"),
        (
            "upgrade",
            r#"[["upgrade","h2c"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "x_mte_prefix",
            r#"[["x-mte-anything","x"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "response_may_carry_content_length",
            r#"[["content-length","5"]]"#,
            false,
            "success",
        ),
    ] {
        let r = decode_headers(json_text.as_bytes(), request);
        let mut c = json!({"name": name, "json": json_text, "direction": if request { "request" } else { "response" }, "expect": expect});
        if let Some(list) = check(name, expect, r) {
            c["headers"] = Value::Array(list.iter().map(|(n, v)| json!([n, v])).collect());
        }
        cases.push(c);
    }
    file(
        "Decoded header lists (§8.2): JSON shape, name/value validation, forbidden request names",
        cases,
    )
}

fn urls() -> Value {
    let mut cases = Vec::new();
    let long_ok = format!("/{}", "a".repeat(8191));
    let long_bad = format!("/{}", "a".repeat(8192));
    for (name, url, expect) in [
        ("root", "/", "success"),
        ("path_query", "/api/v1/x?y=1&z=%20", "success"),
        ("reserved_chars", "/a;b,c=d@e:f!$&'()*+~-._", "success"),
        ("max_length", long_ok.as_str(), "success"),
        ("too_long", long_bad.as_str(), "invalid_url"),
        ("empty", "", "invalid_url"),
        ("relative", "api/x", "invalid_url"),
        ("absolute", "https://example.com/x", "invalid_url"),
        ("authority", "//example.com/x", "invalid_url"),
        ("asterisk", "*", "invalid_url"),
        ("backslash", "/a\\b", "invalid_url"),
        ("fragment", "/a#b", "invalid_url"),
        ("space", "/a b", "invalid_url"),
        ("tab", "/a\tb", "invalid_url"),
        ("cr", "/a\rb", "invalid_url"),
        ("del", "/a\u{7f}", "invalid_url"),
        ("non_ascii", "/caf\u{e9}", "invalid_url"),
    ] {
        check(name, expect, validate_origin_form(url).map_err(Error::from));
        cases.push(json!({"name": name, "url": url, "expect": expect}));
    }
    file("The origin-form check of decoded URLs (§8.2)", cases)
}

fn pairing_json() -> Value {
    let mut cases = Vec::new();
    let ek = codec::b64_encode(basic_seed().encapsulation_key().as_bytes());
    let ek2 = codec::b64_encode(
        DecapsulationSeed::from_bytes(fixed_arr("pairing seed 2"))
            .encapsulation_key()
            .as_bytes(),
    );
    let pid = PairId(PAIR_ID).to_b64();
    let pid2 = PairId([0x5a; 16]).to_b64();
    let (ct, _) = basic_server_pair();
    let ct = codec::b64_encode(ct.as_bytes());
    let mut low = basic_seed().encapsulation_key().as_bytes().to_vec();
    low[1184..].fill(0);
    let low = codec::b64_encode(&low);
    let req_cases: Vec<(&str, String, usize, &str)> = vec![
        ("request_one", format!(r#"{{"pairs":[{{"id":"{pid}","ek":"{ek}"}}]}}"#), 25, "success"),
        ("request_two_whitespace", format!("{{ \"pairs\" : [ {{\"ek\":\"{ek}\", \"id\":\"{pid}\"}},\n {{\"id\":\"{pid2}\",\"ek\":\"{ek2}\"}} ] }}"), 25, "success"),
        ("request_not_json", "pairs".into(), 25, "invalid_pairing"),
        ("request_array", format!(r#"[[{{"id":"{pid}","ek":"{ek}"}}]]"#), 25, "invalid_pairing"),
        ("request_unknown_top_key", format!(r#"{{"pairs":[{{"id":"{pid}","ek":"{ek}"}}],"x":1}}"#), 25, "invalid_pairing"),
        ("request_unknown_pair_key", format!(r#"{{"pairs":[{{"id":"{pid}","ek":"{ek}","x":1}}]}}"#), 25, "invalid_pairing"),
        ("request_duplicate_key", format!(r#"{{"pairs":[{{"id":"{pid}","id":"{pid}","ek":"{ek}"}}]}}"#), 25, "invalid_pairing"),
        ("request_no_pairs", r#"{"pairs":[]}"#.into(), 25, "invalid_pairing"),
        ("request_too_many_pairs", format!(r#"{{"pairs":[{{"id":"{pid}","ek":"{ek}"}},{{"id":"{pid2}","ek":"{ek2}"}}]}}"#), 1, "invalid_pairing"),
        ("request_duplicate_id", format!(r#"{{"pairs":[{{"id":"{pid}","ek":"{ek}"}},{{"id":"{pid}","ek":"{ek2}"}}]}}"#), 25, "invalid_pairing"),
        ("request_bad_id", format!(r#"{{"pairs":[{{"id":"{}","ek":"{ek}"}}]}}"#, &pid[..21]), 25, "invalid_pairing"),
        ("request_ek_padding", format!(r#"{{"pairs":[{{"id":"{pid}","ek":"{ek}=="}}]}}"#), 25, "invalid_pairing"),
        ("request_ek_short", format!(r#"{{"pairs":[{{"id":"{pid}","ek":"{}"}}]}}"#, &ek[..1600]), 25, "invalid_pairing"),
        ("request_ek_low_order", format!(r#"{{"pairs":[{{"id":"{pid}","ek":"{low}"}}]}}"#), 25, "invalid_pairing"),
        ("request_id_number", format!(r#"{{"pairs":[{{"id":1,"ek":"{ek}"}}]}}"#), 25, "invalid_pairing"),
    ];
    for (name, body, max, expect) in req_cases {
        let r = PairingRequest::parse(body.as_bytes(), max).map_err(Error::from);
        let mut c = json!({"name": name, "type": "request", "body": body, "max_pairs": max, "expect": expect});
        if let Some(req) = check(name, expect, r) {
            c["pairs"] = Value::Array(req.pairs.iter().map(|(id, ek)| json!({"id": hx(id.as_bytes()), "ek_sha256": sha256_hex(ek.as_bytes())})).collect());
        }
        cases.push(c);
    }
    let too_large = format!(
        r#"{{"pairs":[{{"id":"{pid}","ek":"{ek}"}}]}}{}"#,
        " ".repeat(65536)
    );
    check(
        "request_too_large",
        "invalid_pairing",
        PairingRequest::parse(too_large.as_bytes(), 25).map_err(Error::from),
    );
    cases.push(json!({"name": "request_too_large", "type": "request", "body_len": too_large.len(), "comment": "any body over 65536 bytes (status 413)", "expect": "invalid_pairing"}));
    let resp_cases: Vec<(&str, String, Vec<String>, &str)> = vec![
        (
            "response_one",
            format!(r#"{{"pairs":[{{"id":"{pid}","ct":"{ct}"}}]}}"#),
            vec![pid.clone()],
            "success",
        ),
        (
            "response_wrong_id",
            format!(r#"{{"pairs":[{{"id":"{pid2}","ct":"{ct}"}}]}}"#),
            vec![pid.clone()],
            "invalid_pairing",
        ),
        (
            "response_missing_pair",
            format!(r#"{{"pairs":[{{"id":"{pid}","ct":"{ct}"}}]}}"#),
            vec![pid.clone(), pid2.clone()],
            "invalid_pairing",
        ),
        (
            "response_ek_key",
            format!(r#"{{"pairs":[{{"id":"{pid}","ek":"{ct}"}}]}}"#),
            vec![pid.clone()],
            "invalid_pairing",
        ),
        (
            "response_ct_short",
            format!(r#"{{"pairs":[{{"id":"{pid}","ct":"{}"}}]}}"#, &ct[..1400]),
            vec![pid.clone()],
            "invalid_pairing",
        ),
    ];
    for (name, body, ids, expect) in resp_cases {
        let pids: Vec<PairId> = ids.iter().map(|s| PairId::from_b64(s).unwrap()).collect();
        let r = PairingResponse::parse(body.as_bytes(), &pids).map_err(Error::from);
        let mut c = json!({"name": name, "type": "response", "body": body, "request_ids": ids.iter().map(|s| hx(PairId::from_b64(s).unwrap().as_bytes())).collect::<Vec<_>>(), "expect": expect});
        if let Some(resp) = check(name, expect, r) {
            c["pairs"] = Value::Array(resp.pairs.iter().map(|(id, ct)| json!({"id": hx(id.as_bytes()), "ct_sha256": sha256_hex(ct.as_bytes())})).collect());
        }
        cases.push(c);
    }
    file("Pairing request/response JSON bodies (§5)", cases)
}

// ---------------------------------------------------------------------------------------------

/// Pretty JSON with a fixed key order: `name`, `type`, `comment` first, `expect` last, the rest
/// sorted; arrays of numbers on one line.
fn write_json(v: &Value, indent: usize, out: &mut String) {
    let pad = |n: usize| "  ".repeat(n);
    match v {
        Value::Object(map) => {
            let rank = |k: &str| match k {
                "name" => 0,
                "type" => 1,
                "comment" => 2,
                "expect" => 4,
                _ => 3,
            };
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| (rank(a), a).cmp(&(rank(b), b)));
            out.push_str("{\n");
            for (i, k) in keys.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push_str(": ");
                write_json(&map[k.as_str()], indent + 1, out);
                out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        Value::Array(items) if items.iter().all(|x| !x.is_object()) => {
            out.push_str(&serde_json::to_string(v).unwrap());
        }
        Value::Array(items) => {
            out.push_str("[\n");
            for (i, x) in items.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                write_json(x, indent + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        _ => out.push_str(&serde_json::to_string(v).unwrap()),
    }
}

#[test]
fn vectors_match_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let bless = std::env::var_os("PQRELAY_BLESS").is_some_and(|v| v == "1");
    let files = [
        ("pairing.json", pairing()),
        ("ratchet.json", ratchet()),
        ("aad.json", aad()),
        ("seal.json", seal_vectors()),
        ("body.json", body_vectors()),
        ("lengths.json", lengths()),
        ("relay_header.json", relay_header()),
        ("client_id.json", client_ids()),
        ("state.json", state()),
        ("headers.json", headers_json()),
        ("url.json", urls()),
        ("pairing_json.json", pairing_json()),
    ];
    let mut stale = Vec::new();
    for (name, value) in files {
        let mut text = String::new();
        write_json(&value, 0, &mut text);
        text.push('\n');
        let path = dir.join(name);
        if bless {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "vector files differ from the implementation: {stale:?} (PQRELAY_BLESS=1 rewrites them)"
    );
}
