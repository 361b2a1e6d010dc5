//! Test vectors: `tests/vectors/*.json` (format in `tests/vectors/README.md`).
//!
//! Every file is regenerated here from fixed inputs, each case is checked against the
//! implementation while it is generated (including its `expect` kind), and the result must equal
//! the committed file byte for byte. `PQRELAY_BLESS=1 cargo test -p pqrelay-protocol` rewrites
//! the files instead. The pairing derivations are also recomputed here from the formulas of §6
//! with the primitives alone (module `spec`), independently of the crate.

#![allow(clippy::type_complexity, clippy::too_many_lines)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use pqrelay_protocol::msgs::headers::decode_headers;
use pqrelay_protocol::msgs::relay_header::{sealed_headers_field, single_field};
use pqrelay_protocol::relay_key::{key_value_from_random, seed_from_client_id_secret};
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

fn b64(b: impl AsRef<[u8]>) -> String {
    codec::b64_encode(b.as_ref())
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
fn check<T, E: Into<Error>>(name: &str, expect: &str, r: Result<T, E>) -> Option<T> {
    match r.map_err(Into::into) {
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
    let mut names = BTreeSet::new();
    for c in &cases {
        let name = c["name"].as_str().expect("every case has a name");
        assert!(names.insert(name.to_owned()), "case name {name} twice");
        assert!(c["expect"].is_string(), "case {name} has no expect");
    }
    json!({ "description": description, "version": 2, "cases": cases })
}

const CLIENT_ID: [u8; 16] = *b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff";
const PAIR_ID: [u8; 16] = *b"\x0f\x0e\x0d\x0c\x0b\x0a\x09\x08\x07\x06\x05\x04\x03\x02\x01\x00";

/// The relay key values of the files: current, previous, and one the relay does not hold.
fn key_value(which: &str) -> String {
    key_value_from_random(&fixed_arr(&format!("relay key value {which}")))
}

fn relay_key(which: &str) -> RelayKey {
    RelayKey::from_value(&key_value(which)).unwrap()
}

/// The relay of the files: keys `current` then `previous`.
fn relay_keys() -> RelayKeySet {
    RelayKeySet::from_values([
        key_value("current").as_str(),
        key_value("previous").as_str(),
    ])
    .unwrap()
}

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

// ---------------------------------------------------------------------------------------------
// §6 recomputed from the primitives (independent of the crate's derivation code)

mod spec {
    use hkdf::Hkdf;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::{Digest, Sha256};

    pub(crate) fn extract(salt: &[u8], ikm: &[u8]) -> [u8; 32] {
        Hkdf::<Sha256>::extract(Some(salt), ikm).0.into()
    }

    pub(crate) fn expand(prk: &[u8; 32], info: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        Hkdf::<Sha256>::from_prk(prk)
            .unwrap()
            .expand(info, &mut out)
            .unwrap();
        out
    }

    pub(crate) fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
        let mut m = <Hmac<Sha256>>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().into()
    }

    pub(crate) fn relay_seed(salt: &str, value: &[u8]) -> [u8; 32] {
        expand(
            &extract(salt.as_bytes(), value),
            b"pqrelay/2 relay key seed",
        )
    }

    /// The public inputs of a pairing transcript.
    pub(crate) struct Transcript<'a> {
        pub(crate) id: &'a [u8; 16],
        pub(crate) fp: &'a [u8; 32],
        pub(crate) ct_r: &'a [u8],
        pub(crate) ek_e: &'a [u8],
        pub(crate) pids: &'a [[u8; 16]],
        pub(crate) ct_e: &'a [u8],
    }

    pub(crate) fn th(t: &Transcript<'_>) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"pqrelay/2 pairing");
        h.update(t.id);
        h.update(t.fp);
        h.update(t.ct_r);
        h.update(t.ek_e);
        h.update([t.pids.len() as u8]);
        for p in t.pids {
            h.update(p);
        }
        h.update(t.ct_e);
        h.finalize().into()
    }

    pub(crate) fn prk(ss_r: &[u8; 32], ss_e: &[u8; 32]) -> [u8; 32] {
        extract(b"pqrelay/2 pair", &[&ss_r[..], &ss_e[..]].concat())
    }

    pub(crate) fn root(prk: &[u8; 32], th: &[u8; 32]) -> [u8; 32] {
        expand(prk, &[&b"pqrelay/2 root"[..], th].concat())
    }

    pub(crate) fn ck0(root: &[u8; 32], pid: &[u8; 16]) -> [u8; 32] {
        expand(root, &[&b"pqrelay/2 chain"[..], pid].concat())
    }

    pub(crate) fn kc(root: &[u8; 32]) -> [u8; 32] {
        expand(root, b"pqrelay/2 confirm")
    }

    pub(crate) fn confirm(kc: &[u8; 32], keys: &[[u8; 32]]) -> [u8; 32] {
        let mut msg = b"pqrelay/2 confirm".to_vec();
        msg.push(keys.len() as u8);
        for k in keys {
            msg.extend_from_slice(k);
        }
        hmac(kc, &msg)
    }
}

// ---------------------------------------------------------------------------------------------
// relay_key.json

fn key_json(key: &RelayKey, seed: &[u8; 32]) -> Value {
    let entry = key.config().encode();
    json!({
        "seed": hx(seed),
        "pk_sha256": sha256_hex(key.config().public_key().as_bytes()),
        "entry_sha256": sha256_hex(&entry),
        "key_id": hx(key.id().as_bytes()),
        "fingerprint": key.id().fingerprint(),
        "kid": hx(key.id().kid().0),
    })
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn relay_key_vectors() -> Vec<Value> {
    let mut cases = Vec::new();
    let values = [
        ("value_keygen_current", key_value("current")),
        ("value_keygen_previous", key_value("previous")),
        (
            "value_long_with_dash_underscore",
            "A-long_relay-key_value-of-64-characters_0123456789-abcdefghijklm".to_owned(),
        ),
    ];
    for (i, (name, value)) in values.iter().enumerate() {
        let seed = relay_key::seed_from_value(value).unwrap();
        assert_eq!(
            seed.as_bytes(),
            &spec::relay_seed("pqrelay/2 relay key", value.as_bytes())
        );
        let key = RelayKey::from_value(value).unwrap();
        assert_eq!(KeyId::of_entry(&key.config().encode()), key.id());
        let mut c = merge(
            json!({"name": name, "type": "value", "value": value, "expect": "success"}),
            key_json(&key, seed.as_bytes()),
        );
        if i == 0 {
            c["entry"] = json!(key.config().to_b64());
        }
        cases.push(c);
    }
    for (name, secret) in [
        ("client_id_secret_ascii", "relay client-id secret"),
        ("client_id_secret_utf8", "s\u{e9}cret \u{1f511}"),
    ] {
        let seed = seed_from_client_id_secret(secret.as_bytes());
        assert_eq!(
            seed.as_bytes(),
            &spec::relay_seed(
                "pqrelay/2 relay key from client-id secret",
                secret.as_bytes()
            )
        );
        let key = RelayKey::from_client_id_secret(secret.as_bytes());
        cases.push(merge(
            json!({"name": name, "type": "client_id_secret", "secret": secret, "expect": "success"}),
            key_json(&key, seed.as_bytes()),
        ));
    }
    let v = key_value("current");
    for (name, value) in [
        ("value_42_characters", v[..42].to_owned()),
        ("value_empty", String::new()),
        ("value_plus", format!("{}+", &v[..43])),
        ("value_slash", format!("{}/", &v[..43])),
        ("value_padding", format!("{v}=")),
        ("value_dot", format!("{v}.x")),
        ("value_inner_space", format!("{} {}", &v[..20], &v[20..])),
        ("value_non_ascii", format!("{v}\u{e9}")),
    ] {
        check(
            name,
            "invalid_relay_key",
            RelayKey::from_value(&value).map(|_| ()),
        );
        cases.push(
            json!({"name": name, "type": "value", "value": value, "expect": "invalid_relay_key"}),
        );
    }
    // Fingerprints.
    let fp = relay_key("current").id().fingerprint();
    let fp_body = &fp[7..];
    for (name, text, expect) in [
        ("fingerprint_ok", fp.clone(), "success"),
        (
            "fingerprint_upper_prefix",
            format!("SHA256:{fp_body}"),
            "invalid_relay_key",
        ),
        (
            "fingerprint_no_prefix",
            fp_body.to_owned(),
            "invalid_relay_key",
        ),
        ("fingerprint_padding", format!("{fp}="), "invalid_relay_key"),
        (
            "fingerprint_short",
            fp[..49].to_owned(),
            "invalid_relay_key",
        ),
        (
            "fingerprint_std_alphabet",
            format!("{}+", &fp[..49]),
            "invalid_relay_key",
        ),
        (
            "fingerprint_trailing_space",
            format!("{fp} "),
            "invalid_relay_key",
        ),
        (
            "fingerprint_hex",
            format!("sha256:{}", hx(relay_key("current").id().0)),
            "invalid_relay_key",
        ),
    ] {
        let r = KeyId::parse_fingerprint(&text);
        let mut c = json!({"name": name, "type": "fingerprint", "text": text, "expect": expect});
        if let Some(id) = check(name, expect, r) {
            c["key_id"] = json!(hx(id.0));
        }
        cases.push(c);
    }
    // Entries.
    let good = relay_key("current").config().encode();
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut e = good.clone();
        f(&mut e);
        e
    };
    for (name, entry, why) in [
        ("entry_ok", good.clone(), ""),
        (
            "entry_other_kem_id",
            with(&|e| e[..2].copy_from_slice(&[0x00, 0x20])),
            "KEM id 0x0020 (DHKEM X25519)",
        ),
        ("entry_1217_bytes", good[..1217].to_vec(), "truncated"),
        ("entry_1219_bytes", with(&|e| e.push(0)), "one byte more"),
        (
            "entry_x25519_low_order",
            with(&|e| e[1186..].fill(0)),
            "X25519 part is the low-order point 0",
        ),
        (
            "entry_mlkem_out_of_range",
            with(&|e| {
                e[2] = 0xff;
                e[3] = 0xff;
            }),
            "first ML-KEM coefficient is 4095 >= q",
        ),
    ] {
        let expect = if why.is_empty() {
            "success"
        } else {
            "invalid_relay_key"
        };
        let r = RelayKeyConfig::parse(&entry);
        let mut c = json!({"name": name, "type": "entry", "entry": b64(&entry), "expect": expect});
        if !why.is_empty() {
            c["comment"] = json!(why);
        }
        if let Some(k) = check(name, expect, r) {
            c["key_id"] = json!(hx(k.id().0));
            c["fingerprint"] = json!(k.id().fingerprint());
        }
        cases.push(c);
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// pairing.json

/// The client's inputs of one pairing.
#[derive(Clone)]
struct PairingInputs {
    id: [u8; 16],
    key: &'static str,
    eseed_r: [u8; 64],
    seed_e: [u8; 32],
    eseed_e: [u8; 64],
    pids: Vec<[u8; 16]>,
}

impl PairingInputs {
    fn new(label: &str, id: [u8; 16], key: &'static str, n: usize) -> Self {
        let mut pids: Vec<[u8; 16]> = (1..n)
            .map(|i| fixed_arr(&format!("pairing {label} pair id {i}")))
            .collect();
        pids.insert(
            0,
            if label == "1" {
                PAIR_ID
            } else {
                fixed_arr(&format!("pairing {label} pair id 0"))
            },
        );
        Self {
            id,
            key,
            eseed_r: fixed_arr(&format!("pairing {label} eseed_R")),
            seed_e: fixed_arr(&format!("pairing {label} seed_E")),
            eseed_e: fixed_arr(&format!("pairing {label} eseed_E")),
            pids,
        }
    }

    fn client(&self) -> ClientPairing {
        ClientPairing::new(
            ClientId(self.id),
            relay_key(self.key).config(),
            &self.eseed_r,
            &DecapsulationSeed::from_bytes(self.seed_e),
            self.pids.iter().copied().map(PairId).collect(),
        )
        .unwrap()
    }

    fn request(&self) -> PairingRequest {
        PairingRequest::parse(self.client().request_body(), 25).unwrap()
    }

    /// The client's inputs as stored in a case.
    fn json(&self) -> Value {
        json!({
            "client_id": hx(self.id),
            "relay_key_value": key_value(self.key),
            "eseed_r": hx(self.eseed_r),
            "seed_e": hx(self.seed_e),
            "pair_ids": self.pids.iter().map(hx).collect::<Vec<_>>(),
        })
    }
}

/// The basic pairing of the files: client `CLIENT_ID`, current key, 3 pairs (the first is
/// `PAIR_ID`).
fn basic_inputs() -> PairingInputs {
    PairingInputs::new("1", CLIENT_ID, "current", 3)
}

/// `ck_0` of `PAIR_ID` in the basic pairing, and the kid of the current key.
fn basic_pair() -> ServerPair {
    let inp = basic_inputs();
    let relay = answer_pairing(
        &ClientId(inp.id),
        &relay_keys(),
        &inp.request(),
        &inp.eseed_e,
    )
    .unwrap();
    relay.pairs[0].1.clone()
}

/// The keys of exchange `n` of `PAIR_ID` in the basic pairing.
fn exchange_keys(n: u64) -> ExchangeKeys {
    basic_pair().accept(n, u64::MAX).unwrap().keys
}

/// Recomputes a pairing from the formulas and checks the crate against it.
fn pairing_transcript(name: &str, relay: &[&str], inp: &PairingInputs) -> Value {
    let keys = RelayKeySet::from_values(
        relay
            .iter()
            .map(|w| key_value(w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    )
    .unwrap();
    let cfg = relay_key(inp.key).config().clone();
    let pending = inp.client();
    let request_body = pending.request_body().to_vec();
    let request = PairingRequest::parse(&request_body, 25).unwrap();
    let answered = answer_pairing(&ClientId(inp.id), &keys, &request, &inp.eseed_e).unwrap();
    let response = PairingResponse::parse(&answered.body).unwrap();
    let confirmed = pending.complete(&answered.body).unwrap();

    // Independent recomputation.
    let (ct_r, ss_r) = cfg.public_key().encapsulate(&inp.eseed_r);
    assert_eq!(ct_r, request.ct);
    let ek_e = DecapsulationSeed::from_bytes(inp.seed_e).encapsulation_key();
    assert_eq!(ek_e, request.ek);
    let (ct_e, ss_e) = ek_e.encapsulate(&inp.eseed_e);
    assert_eq!(ct_e, response.ct);
    let th = spec::th(&spec::Transcript {
        id: &inp.id,
        fp: &cfg.id().0,
        ct_r: ct_r.as_bytes(),
        ek_e: ek_e.as_bytes(),
        pids: &inp.pids,
        ct_e: ct_e.as_bytes(),
    });
    assert_eq!(th, answered.transcript_hash);
    assert_eq!(th, confirmed.transcript_hash);
    let prk = spec::prk(ss_r.as_bytes(), ss_e.as_bytes());
    let root = spec::root(&prk, &th);
    let kc = spec::kc(&root);
    let ids: Vec<[u8; 32]> = keys.ids().iter().map(|k| k.0).collect();
    let confirm = spec::confirm(&kc, &ids);
    assert_eq!(confirm, response.confirm);
    assert_eq!(confirmed.keys, keys.ids());
    let mut ck0 = Vec::new();
    for (i, pid) in inp.pids.iter().enumerate() {
        let ck = spec::ck0(&root, pid);
        assert_eq!(confirmed.pairs[i].0, PairId(*pid));
        assert_eq!(confirmed.pairs[i].1.chain_key().as_bytes(), &ck);
        assert_eq!(confirmed.pairs[i].1.counter(), 0);
        assert_eq!(answered.pairs[i].1.chain_key().as_bytes(), &ck);
        assert_eq!(answered.pairs[i].1.next_counter(), 0);
        assert_eq!(answered.pairs[i].1.kid(), cfg.id().kid());
        ck0.push(hx(ck));
    }
    merge(
        merge(
            json!({"name": name, "type": "pairing", "expect": "success"}),
            inp.json(),
        ),
        json!({
            "relay_key_values": relay.iter().map(|w| key_value(w)).collect::<Vec<_>>(),
            "relay_key_ids": ids.iter().map(hx).collect::<Vec<_>>(),
            "key_id": hx(cfg.id().0),
            "kid": hx(cfg.id().kid().0),
            "eseed_e": hx(inp.eseed_e),
            "max_pairs": 25,
            "ek_e_sha256": sha256_hex(ek_e.as_bytes()),
            "ct_r_sha256": sha256_hex(ct_r.as_bytes()),
            "ss_r": hx(ss_r.as_bytes()),
            "ct_e_sha256": sha256_hex(ct_e.as_bytes()),
            "ss_e": hx(ss_e.as_bytes()),
            "th": hx(th),
            "prk": hx(prk),
            "root": hx(root),
            "kc": hx(kc),
            "confirm": hx(confirm),
            "ck0": ck0,
            "request_body": String::from_utf8(request_body).unwrap(),
            "response_body": String::from_utf8(answered.body).unwrap(),
        }),
    )
}

/// The relay's answer body to `request` under the files' relay, for the client id `id`.
fn relay_answer(id: [u8; 16], request: &PairingRequest, eseed_e: &[u8; 64]) -> Vec<u8> {
    answer_pairing(&ClientId(id), &relay_keys(), request, eseed_e)
        .unwrap()
        .body
}

fn pairing() -> Vec<Value> {
    let mut cases = vec![
        pairing_transcript(
            "pair_current_key_3_pairs",
            &["current", "previous"],
            &basic_inputs(),
        ),
        pairing_transcript(
            "pair_previous_key_1_pair",
            &["current", "previous"],
            &PairingInputs::new("2", [0xa5; 16], "previous", 1),
        ),
        pairing_transcript(
            "pair_single_key_relay_2_pairs",
            &["current"],
            &PairingInputs::new("3", CLIENT_ID, "current", 2),
        ),
    ];

    // The client refuses answers that do not confirm.
    let inp = basic_inputs();
    let req = inp.request();
    let good = relay_answer(inp.id, &req, &inp.eseed_e);
    let good_resp = PairingResponse::parse(&good).unwrap();
    let ids = relay_keys().ids();
    let (ct_e, ss_e) = req.ek.encapsulate(&inp.eseed_e);
    let spec_answer = |ss_r: &[u8; 32], keys: &[KeyId]| {
        let th = spec::th(&spec::Transcript {
            id: &inp.id,
            fp: &req.key.0,
            ct_r: req.ct.as_bytes(),
            ek_e: req.ek.as_bytes(),
            pids: &inp.pids,
            ct_e: ct_e.as_bytes(),
        });
        let kc = spec::kc(&spec::root(&spec::prk(ss_r, ss_e.as_bytes()), &th));
        let raw: Vec<[u8; 32]> = keys.iter().map(|k| k.0).collect();
        PairingResponse {
            ct: ct_e.clone(),
            keys: keys.to_vec(),
            confirm: spec::confirm(&kc, &raw),
        }
        .encode()
    };
    let other_ss_r = relay_key("other").decapsulate(&req.ct).unwrap();
    let (_, real_ss_r) = relay_key("current")
        .config()
        .public_key()
        .encapsulate(&inp.eseed_r);
    let tampered = |f: &dyn Fn(&mut PairingRequest), id: [u8; 16]| {
        let mut r = req.clone();
        f(&mut r);
        relay_answer(id, &r, &inp.eseed_e)
    };
    let attacker_ek =
        DecapsulationSeed::from_bytes(fixed_arr("attacker seed_E")).encapsulation_key();
    let attacker_ct_r = relay_key("current")
        .config()
        .public_key()
        .encapsulate(&fixed_arr("attacker eseed_R"))
        .0;
    let client_cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "confirm_from_another_key",
            "answered by a relay holding another key: it decapsulated ct_R with its own key",
            spec_answer(other_ss_r.as_bytes(), &ids),
            "mismatch",
        ),
        (
            "tampered_ct_e",
            "first byte of ct_E flipped on the wire",
            {
                let mut ct = good_resp.ct.as_bytes().to_vec();
                ct[0] ^= 1;
                PairingResponse {
                    ct: KemCiphertext::from_bytes(&ct).unwrap(),
                    ..good_resp.clone()
                }
                .encode()
            },
            "mismatch",
        ),
        (
            "tampered_pair_ids",
            "the third pair id was replaced on the wire; the relay answered that request",
            tampered(&|r| r.pairs[2] = PairId([0x77; 16]), inp.id),
            "mismatch",
        ),
        (
            "tampered_ek_e",
            "ek_E was replaced by an attacker's key on the wire; the relay answered that request",
            tampered(&|r| r.ek = attacker_ek.clone(), inp.id),
            "mismatch",
        ),
        (
            "tampered_ct_r",
            "ct_R was replaced by an attacker's encapsulation to the same relay key",
            tampered(&|r| r.ct = attacker_ct_r.clone(), inp.id),
            "mismatch",
        ),
        (
            "wrong_client_id",
            "the relay answered the same body sent under another client id",
            tampered(&|_| {}, [0x99; 16]),
            "mismatch",
        ),
        (
            "keys_list_altered",
            "the previous key was removed from `keys` on the wire",
            PairingResponse {
                keys: ids[..1].to_vec(),
                ..good_resp.clone()
            }
            .encode(),
            "mismatch",
        ),
        (
            "confirm_bit_flip",
            "last byte of confirm flipped",
            {
                let mut c = good_resp.clone();
                c.confirm[31] ^= 0x80;
                c.encode()
            },
            "mismatch",
        ),
        (
            "key_not_listed",
            "confirm verifies (made with the real secrets) but `keys` lacks the key paired with",
            spec_answer(real_ss_r.as_bytes(), &ids[1..]),
            "key_not_listed",
        ),
        (
            "ct_e_zero_x25519",
            "X25519 part of ct_E is the point 0: all-zero X25519 shared secret",
            {
                let mut ct = good_resp.ct.as_bytes().to_vec();
                ct[1088..].fill(0);
                PairingResponse {
                    ct: KemCiphertext::from_bytes(&ct).unwrap(),
                    ..good_resp.clone()
                }
                .encode()
            },
            "non_contributory",
        ),
        (
            "response_missing_confirm",
            "no `confirm` key",
            {
                let text = String::from_utf8(good.clone()).unwrap();
                let cut = text.find(",\"confirm\"").unwrap();
                format!("{}}}", &text[..cut]).into_bytes()
            },
            "malformed",
        ),
    ];
    for (name, why, response, reason) in client_cases {
        let r = inp.client().complete(&response);
        let e = r.expect_err(name);
        assert_eq!(e.key, relay_key("current").id(), "{name}");
        let got = match e.reason {
            ConfirmError::Malformed(_) => "malformed",
            ConfirmError::NonContributory => "non_contributory",
            ConfirmError::Mismatch => "mismatch",
            ConfirmError::KeyNotListed => "key_not_listed",
            _ => "other",
        };
        assert_eq!(got, reason, "{name}");
        assert_eq!(Error::from(e).kind(), "pairing_not_confirmed");
        cases.push(merge(
            json!({"name": name, "type": "client", "comment": why, "reason": reason,
                   "response_body": String::from_utf8(response).unwrap(), "expect": "pairing_not_confirmed"}),
            inp.json(),
        ));
    }

    // The relay refuses requests.
    let good_body = String::from_utf8(inp.client().request_body().to_vec()).unwrap();
    let other = PairingInputs {
        key: "other",
        ..basic_inputs()
    };
    let encode = |f: &dyn Fn(&mut PairingRequest)| {
        let mut r = req.clone();
        f(&mut r);
        String::from_utf8(r.encode()).unwrap()
    };
    let mut low_order = req.ek.as_bytes().to_vec();
    low_order[1184..].fill(0);
    let relay_cases: Vec<(&str, &str, String, usize, &str)> = vec![
        (
            "relay_unknown_key",
            "the request names a key the relay does not hold",
            String::from_utf8(other.client().request_body().to_vec()).unwrap(),
            25,
            "unknown_relay_key",
        ),
        (
            "relay_ct_r_zero_x25519",
            "X25519 part of ct_R is the point 0: all-zero X25519 shared secret",
            encode(&|r| {
                let mut ct = r.ct.as_bytes().to_vec();
                ct[1088..].fill(0);
                r.ct = KemCiphertext::from_bytes(&ct).unwrap();
            }),
            25,
            "invalid_pairing",
        ),
        (
            "relay_duplicate_json_key",
            "`key` twice (a parser that keeps the last one would accept it)",
            good_body.replacen(
                "{\"key\":",
                &format!("{{\"key\":\"{}\",\"key\":", req.key.to_b64()),
                1,
            ),
            25,
            "invalid_pairing",
        ),
        (
            "relay_pid_twice",
            "the first pair id is also the third",
            encode(&|r| r.pairs[2] = r.pairs[0]),
            25,
            "invalid_pairing",
        ),
        (
            "relay_ek_low_order",
            "X25519 part of ek_E is the low-order point 0",
            good_body.replace(&b64(req.ek.as_bytes()), &b64(&low_order)),
            25,
            "invalid_pairing",
        ),
        (
            "relay_too_many_pairs",
            "3 pairs, max-pairs 2",
            good_body.clone(),
            2,
            "invalid_pairing",
        ),
    ];
    for (name, why, request_body, max_pairs, expect) in relay_cases {
        let r = PairingRequest::parse(request_body.as_bytes(), max_pairs)
            .and_then(|r| answer_pairing(&ClientId(inp.id), &relay_keys(), &r, &inp.eseed_e));
        check(name, expect, r);
        cases.push(json!({
            "name": name, "type": "relay", "comment": why,
            "relay_key_values": [key_value("current"), key_value("previous")],
            "client_id": hx(inp.id), "max_pairs": max_pairs, "eseed_e": hx(inp.eseed_e),
            "request_body": request_body, "expect": expect,
        }));
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// ratchet.json

fn state_json(s: &ServerPair) -> Value {
    json!({
        "e": s.next_counter().to_string(),
        "ck": hx(s.chain_key().as_bytes()),
        "kid": hx(s.kid().0),
        "bytes": hx(*s.to_bytes()),
    })
}

fn keys_json(k: &ExchangeKeys) -> Value {
    json!({
        "kq": hx(k.request.as_bytes()),
        "ks": hx(k.response.as_bytes()),
        "ke": hx(k.error.as_bytes()),
    })
}

fn ratchet() -> Vec<Value> {
    let mut cases = Vec::new();
    let server0 = basic_pair();
    let ck0 = server0.chain_key().clone();
    let kid = server0.kid();
    // Client chain n = 0..4.
    let mut client = ClientPair::from_parts(PairId(PAIR_ID), 0, ck0.clone());
    let mut steps = Vec::new();
    for _ in 0..5 {
        let ck = client.chain_key().clone();
        let (keys, next) = client.next_exchange().unwrap();
        let derive = |label: &str| spec::expand(ck.as_bytes(), label.as_bytes());
        assert_eq!(keys.request.as_bytes(), &derive("pqrelay/2 request"));
        assert_eq!(keys.response.as_bytes(), &derive("pqrelay/2 response"));
        assert_eq!(keys.error.as_bytes(), &derive("pqrelay/2 error"));
        assert_eq!(next.chain_key().as_bytes(), &derive("pqrelay/2 next"));
        steps.push(merge(
            json!({
                "counter": keys.counter.to_string(),
                "ck": hx(ck.as_bytes()),
                "ck_next": hx(next.chain_key().as_bytes()),
            }),
            keys_json(&keys),
        ));
        client = next;
    }
    cases.push(json!({"name": "chain_0_to_4", "type": "chain", "comment": "ck0 of the first pair of pairing.json pair_current_key_3_pairs", "ck0": hx(ck0.as_bytes()), "steps": steps, "expect": "success"}));

    // The relay accepting (or refusing) counters, with and without flag retry.
    let state_at = |e: u64| -> ServerPair {
        let mut s = server0.clone();
        for _ in 0..e {
            let c = s.next_counter();
            s = s.accept(c, 0).unwrap().next;
        }
        s
    };
    let last = ServerPair::from_parts(u64::MAX - 1, ck0.clone(), kid);
    let accept_cases: Vec<(&str, ServerPair, u64, bool, &str)> = vec![
        ("accept_expected", state_at(0), 0, false, "success"),
        ("accept_skip_3", state_at(0), 3, false, "success"),
        ("accept_skip_max", state_at(2), 18, false, "success"),
        (
            "reject_beyond_max_skip",
            state_at(2),
            19,
            false,
            "counter_rejected",
        ),
        ("reject_replay", state_at(3), 2, false, "counter_rejected"),
        (
            "reject_replay_oldest",
            state_at(3),
            0,
            false,
            "counter_rejected",
        ),
        (
            "accept_last_counter",
            last.clone(),
            u64::MAX - 1,
            false,
            "success",
        ),
        (
            "reject_exhausted",
            last.clone(),
            u64::MAX,
            false,
            "counter_rejected",
        ),
        (
            "retry_previous_never_accepted",
            state_at(2),
            3,
            true,
            "success",
        ),
        ("retry_skip", state_at(2), 7, true, "success"),
        (
            "retry_previous_accepted",
            state_at(3),
            3,
            true,
            "retry_refused",
        ),
        ("retry_counter_0", state_at(0), 0, true, "retry_refused"),
        (
            "retry_replayed_counter",
            state_at(3),
            2,
            true,
            "counter_rejected",
        ),
    ];
    for (name, state, m, retry, expect) in accept_cases {
        let before = state_json(&state);
        let flags = if retry {
            Flags::HEADERS | Flags::RETRY
        } else {
            Flags::HEADERS
        };
        let accepted = state.accept(m, MAX_SKIP).map_err(Error::from);
        let mut case = json!({"name": name, "type": "accept", "state": before, "counter": m.to_string(),
                              "max_skip": MAX_SKIP, "retry": retry, "expect": expect});
        let r = accepted.and_then(|a| {
            case["e"] = json!(a.e.to_string());
            case["state_after"] = state_json(&a.next);
            case["keys"] = keys_json(&a.keys);
            a.check_retry(flags).map(|()| a).map_err(Error::from)
        });
        check(name, expect, r);
        cases.push(case);
    }
    // The retry rule alone: `m - 1 >= e`, never for m = 0.
    for (m, e) in [
        (3u64, 2u64),
        (3, 3),
        (2, 3),
        (1, 0),
        (0, 0),
        (u64::MAX - 1, 0),
        (u64::MAX, u64::MAX - 1),
    ] {
        let name = format!("retry_rule_m{m}_e{e}");
        let expect = if retry_allowed(m, e) {
            "success"
        } else {
            "retry_refused"
        };
        assert_eq!(retry_allowed(m, e), m > e, "{name}");
        cases.push(json!({"name": name, "type": "retry_rule", "counter": m.to_string(), "e": e.to_string(), "expect": expect}));
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// error_tag.json

fn error_tag_vectors() -> Vec<Value> {
    let mut cases = Vec::new();
    let k = exchange_keys(5);
    let exchange = ExchangeId {
        client_id: ClientId(CLIENT_ID),
        pair_id: PairId(PAIR_ID),
        counter: 5,
    };
    let ex_json = |x: &ExchangeId| json!({"client_id": hx(x.client_id.0), "pair_id": hx(x.pair_id.0), "counter": x.counter.to_string()});
    let report = |x: ExchangeId, status: u16, code: &'static str, verdict: Verdict| ErrorReport {
        exchange: x,
        status,
        code,
        verdict,
    };
    let max = ExchangeId {
        counter: u64::MAX - 1,
        ..exchange
    };
    let long_code: &'static str = Box::leak("c".repeat(255).into_boxed_str());
    let tags = [
        (
            "tag_dead_bad_gateway",
            report(exchange, 502, "bad_gateway", Verdict::Dead),
        ),
        (
            "tag_unknown_store",
            report(exchange, 503, "state_store_unavailable", Verdict::Unknown),
        ),
        (
            "tag_partial_decode",
            report(exchange, 562, "decode_failed", Verdict::Partial),
        ),
        (
            "tag_complete_timeout",
            report(exchange, 504, "gateway_timeout", Verdict::Complete),
        ),
        (
            "tag_retry_refused",
            report(exchange, 564, "retry_refused", Verdict::Dead),
        ),
        (
            "tag_max_counter_long_code",
            report(max, 400, long_code, Verdict::Dead),
        ),
    ];
    for (name, r) in &tags {
        let msg = r.message().unwrap();
        let mut expected = b"pqrelay/2 error".to_vec();
        expected.extend_from_slice(&r.exchange.client_id.0);
        expected.extend_from_slice(&r.exchange.pair_id.0);
        expected.extend_from_slice(&r.exchange.counter.to_be_bytes());
        expected.extend_from_slice(&r.status.to_be_bytes());
        expected.push(r.code.len() as u8);
        expected.extend_from_slice(r.code.as_bytes());
        expected.push(r.verdict as u8);
        assert_eq!(msg, expected, "{name}");
        let tag = r.tag(&k.error).unwrap();
        assert_eq!(tag, spec::hmac(k.error.as_bytes(), &msg));
        let [(vh, verdict), (th, tag_value)] = r.headers(&k.error).unwrap();
        assert_eq!((vh, th), (names::VERDICT_HEADER, names::TAG_HEADER));
        assert_eq!(
            verify_error_reply(
                &k.error,
                r.exchange,
                r.status,
                Some(r.code),
                Some(&verdict),
                Some(&tag_value)
            ),
            Ok(r.verdict)
        );
        cases.push(merge(
            json!({"name": name, "type": "tag", "ke": hx(k.error.as_bytes()), "status": r.status,
                   "code": r.code, "verdict": r.verdict.as_str(), "verdict_byte": r.verdict.to_byte(),
                   "message": hx(&msg), "tag": hx(tag), "tag_header": tag_value, "expect": "success"}),
            ex_json(&r.exchange),
        ));
    }
    let code_256: &'static str = Box::leak("c".repeat(256).into_boxed_str());
    check(
        "tag_code_too_long",
        "unauthenticated_error",
        report(exchange, 400, code_256, Verdict::Dead).tag(&k.error),
    );
    cases.push(merge(
        json!({"name": "tag_code_too_long", "type": "tag", "comment": "a code over 255 bytes cannot be bound",
               "ke": hx(k.error.as_bytes()), "status": 400, "code": code_256, "verdict": "dead",
               "expect": "unauthenticated_error"}),
        ex_json(&exchange),
    ));

    // Verifying a reply: the client's own exchange, status and the three headers.
    let base = report(exchange, 502, "bad_gateway", Verdict::Dead);
    let tag_of = |r: ErrorReport<'_>, key: &ErrorTagKey| b64(r.tag(key).unwrap());
    let good = tag_of(base, &k.error);
    let other_keys = exchange_keys(6);
    let with_ex = |f: &dyn Fn(&mut ExchangeId)| {
        let mut x = exchange;
        f(&mut x);
        tag_of(
            ErrorReport {
                exchange: x,
                ..base
            },
            &k.error,
        )
    };
    let verify_cases: Vec<(
        &str,
        &str,
        u16,
        Option<&str>,
        Option<&str>,
        Option<String>,
        &str,
    )> = vec![
        (
            "verify_ok",
            "",
            502,
            Some("bad_gateway"),
            Some("dead"),
            Some(good.clone()),
            "success",
        ),
        (
            "verify_other_counter",
            "tag made for counter 4",
            502,
            Some("bad_gateway"),
            Some("dead"),
            Some(with_ex(&|x| x.counter = 4)),
            "unauthenticated_error",
        ),
        (
            "verify_other_pair",
            "tag made for another pair id",
            502,
            Some("bad_gateway"),
            Some("dead"),
            Some(with_ex(&|x| x.pair_id.0[0] ^= 1)),
            "unauthenticated_error",
        ),
        (
            "verify_other_client",
            "tag made for another client id",
            502,
            Some("bad_gateway"),
            Some("dead"),
            Some(with_ex(&|x| x.client_id.0[15] ^= 1)),
            "unauthenticated_error",
        ),
        (
            "verify_other_key",
            "tag made with ke of counter 6",
            502,
            Some("bad_gateway"),
            Some("dead"),
            Some(tag_of(base, &other_keys.error)),
            "unauthenticated_error",
        ),
        (
            "verify_other_status",
            "status changed from 502 to 504",
            504,
            Some("bad_gateway"),
            Some("dead"),
            Some(good.clone()),
            "unauthenticated_error",
        ),
        (
            "verify_other_code",
            "code changed",
            502,
            Some("gateway_timeout"),
            Some("dead"),
            Some(good.clone()),
            "unauthenticated_error",
        ),
        (
            "verify_other_verdict",
            "verdict changed from dead to unknown",
            502,
            Some("bad_gateway"),
            Some("unknown"),
            Some(good.clone()),
            "unauthenticated_error",
        ),
        (
            "verify_verdict_uppercase",
            "",
            502,
            Some("bad_gateway"),
            Some("Dead"),
            Some(good.clone()),
            "unauthenticated_error",
        ),
        (
            "verify_verdict_unknown_word",
            "",
            502,
            Some("bad_gateway"),
            Some("lost"),
            Some(good.clone()),
            "unauthenticated_error",
        ),
        (
            "verify_no_tag",
            "",
            502,
            Some("bad_gateway"),
            Some("dead"),
            None,
            "unauthenticated_error",
        ),
        (
            "verify_no_verdict",
            "",
            502,
            Some("bad_gateway"),
            None,
            Some(good.clone()),
            "unauthenticated_error",
        ),
        (
            "verify_no_code",
            "",
            502,
            None,
            Some("dead"),
            Some(good.clone()),
            "unauthenticated_error",
        ),
        (
            "verify_tag_padding",
            "",
            502,
            Some("bad_gateway"),
            Some("dead"),
            Some(format!("{good}=")),
            "unauthenticated_error",
        ),
        (
            "verify_tag_short",
            "",
            502,
            Some("bad_gateway"),
            Some("dead"),
            Some(good[..42].to_owned()),
            "unauthenticated_error",
        ),
        (
            "verify_tag_hex",
            "",
            502,
            Some("bad_gateway"),
            Some("dead"),
            Some(hx(base.tag(&k.error).unwrap())),
            "unauthenticated_error",
        ),
    ];
    for (name, why, status, code, verdict, tag, expect) in verify_cases {
        let r = verify_error_reply(&k.error, exchange, status, code, verdict, tag.as_deref());
        let mut c = merge(
            json!({"name": name, "type": "verify", "ke": hx(k.error.as_bytes()), "status": status,
                   "code": code, "verdict": verdict, "tag_header": tag, "expect": expect}),
            ex_json(&exchange),
        );
        if !why.is_empty() {
            c["comment"] = json!(why);
        }
        if let Some(v) = check(name, expect, r) {
            c["verdict_out"] = json!(v.as_str());
        }
        cases.push(c);
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// aad.json

fn aad() -> Vec<Value> {
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
            "request_headers_retry_flag",
            Ctx::request(0x13, 6, "POST", "/ignored"),
            Part::Headers,
            0,
            true,
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
    // Methods that cannot be bound (§8: a token of 1..=255 bytes).
    let long_method = "M".repeat(256);
    for (name, method) in [
        ("method_empty", ""),
        ("method_with_space", "GE T"),
        ("method_with_slash", "GET/1"),
        ("method_256_bytes", long_method.as_str()),
    ] {
        let ctx = Ctx {
            method: method.into(),
            ..Ctx::request(0x03, 0, "GET", "")
        };
        let r = MessageContext::request(
            ClientId(CLIENT_ID),
            PairId(PAIR_ID),
            0,
            Flags::URL | Flags::HEADERS,
            method,
            "",
        );
        check(name, "invalid_method", r);
        cases.push(json!({"name": name, "context": ctx.json(), "part": 2, "index": "0", "final": true, "expect": "invalid_method"}));
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// seal.json (url and headers items)

fn seal_vectors() -> Vec<Value> {
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
    neg.push((
        "url_retry_flag_added",
        "url",
        &k0.request,
        req.clone(),
        url_sealed(&k0.request, &with(&|c| c.flags = 0x17)),
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
        "url_dot_segment",
        "url",
        &k0.request,
        req.clone(),
        bad_url("/public/%2e%2E/admin"),
        "invalid_url",
    ));
    neg.push((
        "url_encoded_slash",
        "url",
        &k0.request,
        req.clone(),
        bad_url("/a%2Fb"),
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
        eh_sealed(&k0.request, &req, r#"[["x-mte-relay","2"]]"#),
        "forbidden_header",
    ));
    neg.push((
        "headers_forbidden_x_forwarded_for",
        "headers",
        &k0.request,
        req.clone(),
        eh_sealed(&k0.request, &req, r#"[["x-forwarded-for","10.0.0.1"]]"#),
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
    cases
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

fn body_vectors() -> Vec<Value> {
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
    cases
}

// ---------------------------------------------------------------------------------------------
// lengths.json

fn lengths() -> Vec<Value> {
    let mut cases = Vec::new();
    for l in [0u64, 1, 65535, 65536, 65537, 131072, 3 * 65536 + 5, 1 << 32] {
        let e = encoded_len(l).unwrap();
        assert_eq!(plain_len(e), Some(l));
        cases.push(json!({"name": format!("plain_{l}"), "plain_len": l.to_string(), "encoded_len": e.to_string(), "expect": "success"}));
    }
    // Each invalid E once: 0 and 19 (below one record), just past a full record, a record of
    // 0 bytes after a full one, and just past two full records.
    for e in [0u64, 19, 65556 + 1, 65556 + 20, 131112 + 1, 131112 + 19] {
        let r = check_encoded_len(e);
        if r.is_ok() {
            continue;
        }
        check(&format!("encoded_{e}"), "invalid_length", r);
        cases.push(json!({"name": format!("encoded_{e}"), "encoded_len": e.to_string(), "expect": "invalid_length"}));
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// relay_header.json

fn parsed_header(h: &RelayHeader) -> Value {
    match h {
        RelayHeader::Discovery { token } => {
            json!({"form": "discovery", "token": token.encode(), "client_id": hx(token.id().as_bytes())})
        }
        RelayHeader::Exchange(x) => json!({
            "form": "exchange", "token": x.token.encode(), "client_id": hx(x.token.id().as_bytes()),
            "pair_id": hx(x.pair_id.as_bytes()), "counter": x.counter.to_string(), "flags": x.flags.bits(),
        }),
    }
}

fn relay_header() -> Vec<Value> {
    let mut cases = Vec::new();
    let token = client_id::issue(b"test secret", ClientId(CLIENT_ID));
    let t = token.encode();
    let pid = PairId(PAIR_ID).to_b64();
    let ok: Vec<(&str, String)> = vec![
        ("discovery", format!("2.{t}")),
        ("exchange", format!("2.{t}.{pid}.0.2")),
        ("exchange_all_flags", format!("2.{t}.{pid}.42.31")),
        ("exchange_retry", format!("2.{t}.{pid}.7.23")),
        (
            "exchange_max_counter",
            format!("2.{t}.{pid}.18446744073709551615.7"),
        ),
    ];
    for (name, value) in ok {
        let h = RelayHeader::parse(&value).unwrap();
        assert_eq!(h.encode(), value);
        cases.push(json!({"name": name, "type": "relay_header", "value": value, "parsed": parsed_header(&h), "expect": "success"}));
    }
    let bad: Vec<(&str, String, &str)> = vec![
        ("empty", String::new(), "invalid_header"),
        ("version_only", "2".into(), "client_id_missing"),
        ("version_dot", "2.".into(), "client_id_missing"),
        (
            "exchange_empty_token",
            format!("2..{pid}.0.2"),
            "client_id_missing",
        ),
        ("version_1", format!("1.{t}"), "unsupported_version"),
        (
            "version_1_exchange",
            format!("1.{t}.{pid}.0.2"),
            "unsupported_version",
        ),
        ("version_3", format!("3.{t}"), "unsupported_version"),
        ("version_leading_zero", format!("02.{t}"), "invalid_header"),
        ("version_not_number", format!("v2.{t}"), "invalid_header"),
        (
            "token_short",
            format!("2.{}", &t[..63]),
            "invalid_client_id",
        ),
        ("token_long", format!("2.{t}A"), "invalid_client_id"),
        ("token_padding", format!("2.{t}="), "invalid_client_id"),
        (
            "token_std_alphabet",
            format!("2.{}+", &t[..63]),
            "invalid_client_id",
        ),
        (
            "exchange_token_short",
            format!("2.{}.{pid}.0.2", &t[..63]),
            "invalid_client_id",
        ),
        ("three_fields", format!("2.{t}.{pid}"), "invalid_header"),
        ("four_fields", format!("2.{t}.{pid}.0"), "invalid_header"),
        ("six_fields", format!("2.{t}.{pid}.0.2.0"), "invalid_header"),
        (
            "trailing_dot",
            format!("2.{t}.{pid}.0.2."),
            "invalid_header",
        ),
        (
            "pid_short",
            format!("2.{t}.{}.0.2", &pid[..21]),
            "invalid_header",
        ),
        (
            "pid_non_canonical",
            format!("2.{t}.{}B.0.2", &pid[..21]),
            "invalid_header",
        ),
        (
            "counter_leading_zero",
            format!("2.{t}.{pid}.01.2"),
            "invalid_header",
        ),
        (
            "counter_sign",
            format!("2.{t}.{pid}.+1.2"),
            "invalid_header",
        ),
        (
            "counter_overflow",
            format!("2.{t}.{pid}.18446744073709551616.2"),
            "invalid_header",
        ),
        ("counter_empty", format!("2.{t}.{pid}..2"), "invalid_header"),
        (
            "flags_unknown_bit",
            format!("2.{t}.{pid}.0.34"),
            "invalid_header",
        ),
        (
            "flags_over_u8",
            format!("2.{t}.{pid}.0.258"),
            "invalid_header",
        ),
        (
            "flags_no_headers_bit",
            format!("2.{t}.{pid}.0.5"),
            "invalid_header",
        ),
        (
            "flags_retry_without_headers_bit",
            format!("2.{t}.{pid}.1.16"),
            "invalid_header",
        ),
        (
            "flags_leading_zero",
            format!("2.{t}.{pid}.0.02"),
            "invalid_header",
        ),
        ("space", format!("2.{t}.{pid}.0.2 "), "invalid_header"),
    ];
    for (name, value, expect) in bad {
        check(name, expect, RelayHeader::parse(&value));
        cases.push(json!({"name": name, "type": "relay_header", "value": value, "expect": expect}));
    }
    // The form a route requires: pairing takes `2.<token>`, an exchange five fields.
    for (name, ty, value, expect) in [
        (
            "pairing_form_ok",
            "pairing_form",
            format!("2.{t}"),
            "success",
        ),
        (
            "pairing_form_exchange_fields",
            "pairing_form",
            format!("2.{t}.{pid}.0.2"),
            "invalid_header",
        ),
        (
            "exchange_form_ok",
            "exchange_form",
            format!("2.{t}.{pid}.0.2"),
            "success",
        ),
        (
            "exchange_form_token_only",
            "exchange_form",
            format!("2.{t}"),
            "invalid_header",
        ),
    ] {
        let r = RelayHeader::parse(&value).and_then(|h| {
            if ty == "pairing_form" {
                h.into_discovery().map(|_| ())
            } else {
                h.into_exchange().map(|_| ())
            }
        });
        check(name, expect, r);
        cases.push(json!({"name": name, "type": ty, "value": value, "expect": expect}));
    }
    // Responses: flag retry is refused.
    for (name, value, expect) in [
        ("response_exchange", format!("2.{t}.{pid}.7.7"), "success"),
        ("response_discovery", format!("2.{t}"), "success"),
        (
            "response_retry_flag",
            format!("2.{t}.{pid}.7.23"),
            "invalid_header",
        ),
    ] {
        let r = RelayHeader::parse_response(&value);
        let mut c = json!({"name": name, "type": "relay_header_response", "value": value, "expect": expect});
        if let Some(h) = check(name, expect, r) {
            c["parsed"] = parsed_header(&h);
        }
        cases.push(c);
    }
    // The fields of one request: x-mte-relay once, x-mte-relay-eh once.
    let one = format!("2.{t}.{pid}.0.2");
    for (name, header, fields, expect) in [
        (
            "fields_relay_once",
            "x-mte-relay",
            vec![one.clone()],
            "success",
        ),
        (
            "fields_relay_absent",
            "x-mte-relay",
            vec![],
            "client_id_missing",
        ),
        (
            "fields_relay_twice",
            "x-mte-relay",
            vec![one.clone(), one.clone()],
            "invalid_header",
        ),
        (
            "fields_eh_once",
            "x-mte-relay-eh",
            vec!["AAAA".to_owned()],
            "success",
        ),
        (
            "fields_eh_absent",
            "x-mte-relay-eh",
            vec![],
            "invalid_header",
        ),
        (
            "fields_eh_twice",
            "x-mte-relay-eh",
            vec!["AAAA".to_owned(), "AAAA".to_owned()],
            "invalid_header",
        ),
    ] {
        let raw = fields.iter().map(String::as_bytes);
        let r = if header == names::RELAY_HEADER {
            RelayHeader::from_fields(raw, true).map(|_| ())
        } else {
            sealed_headers_field(raw).map(|_| ())
        };
        check(name, expect, r);
        cases.push(json!({"name": name, "type": "request_fields", "header": header, "fields": fields, "expect": expect}));
    }
    assert_eq!(single_field([]), Ok(None));

    // x-mte-relay-info
    for (name, value, expect) in [
        (
            "info_basic",
            "versions=2;max-pairs=25;chunk-size=65536;max-skip=16",
            "success",
        ),
        (
            "info_unknown_keys_and_spaces",
            "foo=bar; versions=1,2 ;max-pairs=5;chunk-size=65536;max-skip=16;x=y",
            "success",
        ),
        (
            "info_max_pairs_255",
            "versions=2;max-pairs=255;chunk-size=65536;max-skip=16",
            "success",
        ),
        (
            "info_missing_max_skip",
            "versions=2;max-pairs=25;chunk-size=65536",
            "invalid_relay_info",
        ),
        (
            "info_missing_versions",
            "max-pairs=25;chunk-size=65536;max-skip=16",
            "invalid_relay_info",
        ),
        (
            "info_bad_number",
            "versions=2;max-pairs=-1;chunk-size=65536;max-skip=16",
            "invalid_relay_info",
        ),
        (
            "info_max_pairs_0",
            "versions=2;max-pairs=0;chunk-size=65536;max-skip=16",
            "invalid_relay_info",
        ),
        (
            "info_max_pairs_256",
            "versions=2;max-pairs=256;chunk-size=65536;max-skip=16",
            "invalid_relay_info",
        ),
        (
            "info_key_twice",
            "versions=2;max-pairs=25;max-pairs=5;chunk-size=65536;max-skip=16",
            "invalid_relay_info",
        ),
        (
            "info_item_without_value",
            "versions=2;max-pairs=25;chunk-size=65536;max-skip=16;flag",
            "invalid_relay_info",
        ),
        (
            "info_version_1_only",
            "versions=1;max-pairs=25;chunk-size=65536;max-skip=16",
            "unsupported_relay",
        ),
        (
            "info_other_chunk_size",
            "versions=2;max-pairs=25;chunk-size=32768;max-skip=16",
            "unsupported_relay",
        ),
        (
            "info_other_max_skip",
            "versions=2;max-pairs=25;chunk-size=65536;max-skip=8",
            "unsupported_relay",
        ),
    ] {
        let r = RelayInfo::parse(value);
        let mut c = json!({"name": name, "type": "relay_info", "value": value, "expect": expect});
        if let Some(i) = check(name, expect, r) {
            c["parsed"] = json!({"versions": i.versions, "max_pairs": i.max_pairs});
        }
        cases.push(c);
    }
    let encoded = RelayInfo::new(25).encode();
    assert_eq!(
        encoded,
        "versions=2;max-pairs=25;chunk-size=65536;max-skip=16"
    );
    cases.push(json!({"name": "info_encode", "type": "relay_info_encode", "max_pairs": 25, "value": encoded, "expect": "success"}));

    // x-mte-relay-keys
    let cur = relay_key("current").config().clone();
    let prev = relay_key("previous").config().clone();
    let other_kem = b64([0x00, 0x20, 1, 2, 3, 4]);
    let mut low_order = cur.encode();
    low_order[1186..].fill(0);
    let (c64, p64) = (cur.to_b64(), prev.to_b64());
    let nine = vec![other_kem.clone(); 9].join(",");
    let keys_cases: Vec<(&str, String, &str)> = vec![
        ("keys_one", c64.clone(), "success"),
        (
            "keys_two_with_spaces",
            format!(" {c64} ,\t{p64}"),
            "success",
        ),
        (
            "keys_other_kem_skipped",
            format!("{other_kem},{p64}"),
            "success",
        ),
        ("keys_empty", String::new(), "invalid_relay_key"),
        ("keys_empty_item", format!("{c64},"), "invalid_relay_key"),
        ("keys_nine_items", nine, "invalid_relay_key"),
        (
            "keys_only_other_kem",
            other_kem.clone(),
            "invalid_relay_key",
        ),
        (
            "keys_entry_truncated",
            c64[..1600].to_owned(),
            "invalid_relay_key",
        ),
        ("keys_entry_padding", format!("{c64}="), "invalid_relay_key"),
        ("keys_low_order_key", b64(&low_order), "invalid_relay_key"),
        (
            "keys_same_key_twice",
            format!("{c64},{c64}"),
            "invalid_relay_key",
        ),
    ];
    for (name, value, expect) in keys_cases {
        let r = RelayKeys::parse(&value);
        let mut c = json!({"name": name, "type": "relay_keys", "value": value, "expect": expect});
        if let Some(keys) = check(name, expect, r) {
            c["key_ids"] = json!(keys.ids().iter().map(|k| hx(k.0)).collect::<Vec<_>>());
            c["fingerprints"] = json!(keys
                .ids()
                .iter()
                .map(KeyId::fingerprint)
                .collect::<Vec<_>>());
        }
        cases.push(c);
    }
    let both = relay_keys().header_value();
    assert_eq!(both, format!("{c64},{p64}"));
    // Choosing the key to pair with (§13).
    let other = relay_key("other").id();
    for (name, trusted, expect) in [
        ("choose_first_contact", vec![], "success"),
        ("choose_pinned_current", vec![cur.id()], "success"),
        ("choose_stored_previous", vec![other, prev.id()], "success"),
        ("choose_none_trusted", vec![other], "untrusted_relay_key"),
    ] {
        let offered = RelayKeys::parse(&both).unwrap();
        let r = offered.choose(&trusted).map(RelayKeyConfig::id);
        let mut c = json!({"name": name, "type": "choose", "value": both,
                           "trusted": trusted.iter().map(KeyId::fingerprint).collect::<Vec<_>>(), "expect": expect});
        if let Some(id) = check(name, expect, r) {
            c["chosen"] = json!(id.fingerprint());
        }
        cases.push(c);
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// client_id.json

fn client_ids() -> Vec<Value> {
    let mut cases = Vec::new();
    for (name, secret, id) in [
        ("issue_basic", "test secret", CLIENT_ID),
        ("issue_utf8_secret", "s\u{e9}cret \u{1f511}", [0xff; 16]),
    ] {
        let t = client_id::issue(secret.as_bytes(), ClientId(id));
        assert_eq!(ClientIdToken::parse(&t.encode()).unwrap(), t);
        assert_eq!(
            t.mac(),
            &spec::hmac(
                secret.as_bytes(),
                &[&b"pqrelay/2 client-id"[..], &id].concat()
            )
        );
        cases.push(json!({"name": name, "type": "issue", "secret": secret, "client_id": hx(id), "mac": hx(t.mac()), "token": t.encode(), "expect": "success"}));
    }
    let t_cur = client_id::issue(b"current", ClientId(CLIENT_ID)).encode();
    let t_old = client_id::issue(b"previous", ClientId(CLIENT_ID)).encode();
    let mut flipped = codec::b64_decode(&t_cur).unwrap();
    flipped[20] ^= 1;
    let flipped = b64(&flipped);
    let mut id_flipped = codec::b64_decode(&t_cur).unwrap();
    id_flipped[0] ^= 1;
    let id_flipped = b64(&id_flipped);
    let signer = ClientIdSigner::new(b"current", [b"previous"]);
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
        ("verify_long", format!("{t_cur}A"), "invalid_client_id"),
        ("verify_empty", String::new(), "invalid_client_id"),
        ("verify_padding", format!("{t_cur}="), "invalid_client_id"),
        (
            "verify_not_b64",
            format!("{}*", &t_cur[..63]),
            "invalid_client_id",
        ),
    ] {
        let secrets: [&[u8]; 2] = [b"current", b"previous"];
        let r = ClientIdToken::parse(&token).and_then(|t| client_id::verify(&secrets, &t));
        assert_eq!(r, signer.verify_text(&token), "{name}");
        let mut c = json!({"name": name, "type": "verify", "secrets": ["current", "previous"], "token": token, "expect": expect});
        if let Some(v) = check(name, expect, r) {
            c["client_id"] = json!(hx(v.id.as_bytes()));
            c["resigned"] = json!(v.resigned);
            c["token_out"] = json!(v.token.encode());
        }
        cases.push(c);
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// state.json

fn state() -> Vec<Value> {
    let mut cases = Vec::new();
    let sealer = StateSealer::new(b"state secret");
    let s0 = basic_pair();
    let s5 = s0.clone().accept(4, 16).unwrap().next;
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
        assert_eq!(blob.to_vec(), spec_blob(&*st.to_bytes(), &salt));
        cases.push(json!({
            "name": name, "type": "seal", "state_secret": "state secret",
            "client_id": hx(CLIENT_ID), "pair_id": hx(PAIR_ID),
            "e": st.next_counter().to_string(), "ck": hx(st.chain_key().as_bytes()), "kid": hx(st.kid().0),
            "state": hx(*st.to_bytes()), "salt": hx(salt), "blob": hx(blob), "expect": "success",
        }));
        good = Some(blob);
    }
    let good = good.unwrap();
    let mut flip = good;
    flip[30] ^= 4;
    let mut salt_flip = good;
    salt_flip[0] ^= 1;
    let v1_state = {
        // A version-1 state (41 bytes: version 1, e, ck), sealed the same way: a 73-byte blob
        // does not open (569, re-pair).
        let mut bytes = s5.to_bytes()[..41].to_vec();
        bytes[0] = 1;
        bytes
    };
    let other_version = {
        let mut bytes = s5.to_bytes().to_vec();
        bytes[0] = 3;
        bytes
    };
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
            good[..80].to_vec(),
            "state_failure",
        ),
        (
            "open_version_1_blob",
            "state secret",
            CLIENT_ID,
            PAIR_ID,
            spec_blob(&v1_state, &salt),
            "state_failure",
        ),
        (
            "open_version_3_state",
            "state secret",
            CLIENT_ID,
            PAIR_ID,
            spec_blob(&other_version, &salt),
            "invalid_state",
        ),
    ];
    for (name, secret, id, pid, blob, expect) in opens {
        let r = StateSealer::new(secret.as_bytes()).open(&ClientId(id), &PairId(pid), &blob);
        let mut c = json!({"name": name, "type": "open", "state_secret": secret, "client_id": hx(id), "pair_id": hx(pid), "blob": hx(&blob), "expect": expect});
        if let Some(st) = check(name, expect, r) {
            c["e"] = json!(st.next_counter().to_string());
            c["ck"] = json!(hx(st.chain_key().as_bytes()));
            c["kid"] = json!(hx(st.kid().0));
        }
        cases.push(c);
    }
    // A state's kid must name a configured key (§14).
    let keys = relay_keys();
    for (name, kid, expect) in [
        (
            "kid_current_key",
            relay_key("current").id().kid(),
            "success",
        ),
        (
            "kid_previous_key",
            relay_key("previous").id().kid(),
            "success",
        ),
        (
            "kid_removed_key",
            relay_key("other").id().kid(),
            "state_failure",
        ),
    ] {
        check(name, expect, keys.check_kid(&kid));
        cases.push(json!({"name": name, "type": "kid", "relay_key_values": [key_value("current"), key_value("previous")], "kid": hx(kid.0), "expect": expect}));
    }
    cases
}

/// A blob of arbitrary plain bytes under "state secret", built from the primitives (§14).
fn spec_blob(state: &[u8], salt: &[u8; 16]) -> Vec<u8> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let state_key = spec::expand(
        &spec::extract(b"pqrelay/2 state", b"state secret"),
        b"pqrelay/2 state key",
    );
    let k = spec::expand(&state_key, &[&b"pqrelay/2 state blob"[..], salt].concat());
    let aad = [&b"pqrelay/2 state"[..], &CLIENT_ID, &PAIR_ID].concat();
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

fn headers_json() -> Vec<Value> {
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
            "expect",
            r#"[["expect","100-continue"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "forwarded",
            r#"[["forwarded","for=10.0.0.1"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "x_real_ip",
            r#"[["x-real-ip","10.0.0.1"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "x_forwarded_for",
            r#"[["x-forwarded-for","10.0.0.1"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "x_forwarded_host",
            r#"[["x-forwarded-host","evil.example"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "x_forwarded_prefix",
            r#"[["x-forwarded-anything","x"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "x_forwarded_without_dash_allowed",
            r#"[["x-forwardedfor","x"]]"#,
            true,
            "success",
        ),
        (
            "x_mte_prefix",
            r#"[["x-mte-anything","x"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "x_mte_relay",
            r#"[["x-mte-relay","2"]]"#,
            true,
            "forbidden_header",
        ),
        (
            "response_may_carry_content_length",
            r#"[["content-length","5"]]"#,
            false,
            "success",
        ),
        (
            "response_may_carry_x_forwarded_for",
            r#"[["x-forwarded-for","10.0.0.1"]]"#,
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
    cases
}

fn urls() -> Vec<Value> {
    let mut cases = Vec::new();
    let plain: Vec<(&str, &str, &str, &str)> = vec![
        ("root", "/", "success", ""),
        ("path_query", "/api/v1/x?y=1&z=%20", "success", ""),
        ("reserved_chars", "/a;b,c=d@e:f!$&'()*+~-._", "success", ""),
        (
            "dots_inside_names",
            "/a/b.c/..d/.e/...",
            "success",
            "only whole segments . and .. are dot segments",
        ),
        (
            "empty_segment",
            "/a//b",
            "success",
            "only a leading // is refused",
        ),
        ("percent_other", "/%41%42/%7e", "success", ""),
        (
            "double_encoded_dot",
            "/a/%252e%252e/b",
            "success",
            "decoded once: %2e%2e is not a dot segment",
        ),
        (
            "query_not_inspected",
            "/q?redirect=https%3A%2F%2Fx%2F..%2F&p=../a",
            "success",
            "%2F and .. in the query are allowed",
        ),
        ("empty", "", "invalid_url", "not origin-form"),
        ("relative", "api/x", "invalid_url", "not origin-form"),
        (
            "absolute",
            "https://example.com/x",
            "invalid_url",
            "not origin-form",
        ),
        (
            "authority",
            "//example.com/x",
            "invalid_url",
            "starts with //",
        ),
        ("asterisk", "*", "invalid_url", "not origin-form"),
        ("backslash", "/a\\b", "invalid_url", "backslash"),
        (
            "backslash_in_query",
            "/a?b\\c",
            "invalid_url",
            "backslash anywhere",
        ),
        (
            "fragment",
            "/a#b",
            "invalid_url",
            "a fragment is never sent",
        ),
        (
            "fragment_in_query",
            "/a?b#c",
            "invalid_url",
            "a fragment is never sent",
        ),
        ("space", "/a b", "invalid_url", "byte 0x20"),
        ("tab", "/a\tb", "invalid_url", "control"),
        ("cr", "/a\rb", "invalid_url", "control"),
        ("nul_byte", "/a\u{0}b", "invalid_url", "control"),
        ("del", "/a\u{7f}", "invalid_url", "byte 0x7f"),
        ("non_ascii", "/caf\u{e9}", "invalid_url", "non-ASCII"),
        ("encoded_slash_upper", "/a%2Fb", "invalid_url", "%2F"),
        ("encoded_slash_lower", "/a%2fb", "invalid_url", "%2f"),
        ("encoded_backslash", "/a%5Cb", "invalid_url", "%5C"),
        ("encoded_nul", "/a%00b", "invalid_url", "%00"),
        ("encoded_slash_leading", "/%2F%2Fevil", "invalid_url", "%2F"),
        ("dot_dot", "/public/../admin", "invalid_url", "dot segment"),
        ("dot", "/public/./x", "invalid_url", "dot segment"),
        ("dot_dot_last", "/a/..", "invalid_url", "dot segment"),
        ("dot_last", "/a/.", "invalid_url", "dot segment"),
        (
            "dot_dot_before_query",
            "/a/..?x=1",
            "invalid_url",
            "dot segment",
        ),
        (
            "encoded_dot_dot_lower",
            "/%2e%2e/admin",
            "invalid_url",
            "dot segment, percent-encoded",
        ),
        (
            "encoded_dot_dot_mixed",
            "/a/%2e%2E/b",
            "invalid_url",
            "dot segment, percent-encoded",
        ),
        (
            "encoded_dot_half",
            "/.%2E/admin",
            "invalid_url",
            "dot segment, half encoded",
        ),
        (
            "encoded_dot",
            "/a/%2e/b",
            "invalid_url",
            "dot segment, percent-encoded",
        ),
        (
            "dot_dot_params",
            "/a/..;x/admin",
            "invalid_url",
            "dot segment with ;params",
        ),
        (
            "dot_params",
            "/a/.;jsessionid=1/b",
            "invalid_url",
            "dot segment with ;params",
        ),
        (
            "encoded_dot_dot_params",
            "/a/%2e%2e;x/b",
            "invalid_url",
            "dot segment, encoded, with ;params",
        ),
        (
            "dot_dot_encoded_semicolon",
            "/a/..%3bx/b",
            "invalid_url",
            "percent-decoded first: ..;x",
        ),
    ];
    for (name, url, expect, why) in plain {
        check(name, expect, validate_origin_form(url));
        let mut c = json!({"name": name, "url": url, "expect": expect});
        if !why.is_empty() {
            c["comment"] = json!(why);
        }
        cases.push(c);
    }
    // Long URLs: `url = url_prefix + url_fill repeated up to url_len bytes`.
    for (name, len, expect) in [
        ("length_8192", 8192usize, "success"),
        ("length_8193", 8193, "uri_too_long"),
    ] {
        let url = format!("/{}", "a".repeat(len - 1));
        check(name, expect, validate_origin_form(&url));
        cases.push(json!({"name": name, "url_prefix": "/", "url_fill": "a", "url_len": len, "expect": expect}));
    }
    let dots = format!("/../{}", "a".repeat(8193 - 4));
    assert_eq!(dots.len(), 8193);
    check(
        "length_8193_and_dot_segment",
        "uri_too_long",
        validate_origin_form(&dots),
    );
    cases.push(json!({"name": "length_8193_and_dot_segment", "comment": "the length is checked first",
                      "url_prefix": "/../", "url_fill": "a", "url_len": 8193, "expect": "uri_too_long"}));
    cases
}

fn pairing_json() -> Vec<Value> {
    let mut cases = Vec::new();
    let inp = basic_inputs();
    let req = inp.request();
    let key = req.key.to_b64();
    let ct = b64(req.ct.as_bytes());
    let ek = b64(req.ek.as_bytes());
    let pids: Vec<String> = req.pairs.iter().map(PairId::to_b64).collect();
    let (p0, p1) = (pids[0].clone(), pids[1].clone());
    let list = |ids: &[&str]| {
        ids.iter()
            .map(|i| format!("\"{i}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    let body = |key: &str, ct: &str, ek: &str, pairs: &str| {
        format!(r#"{{"key":"{key}","ct":"{ct}","ek":"{ek}","pairs":[{pairs}]}}"#)
    };
    let one = list(&[&p0]);
    let mut low = req.ek.as_bytes().to_vec();
    low[1184..].fill(0);
    let low = b64(&low);
    let req_cases: Vec<(&str, String, usize, &str)> = vec![
        ("request_one", body(&key, &ct, &ek, &one), 25, "success"),
        (
            "request_two_reordered_whitespace",
            format!("{{ \"pairs\" : [ \"{p0}\",\n \"{p1}\" ], \"ek\":\"{ek}\", \"ct\" : \"{ct}\", \"key\":\"{key}\" }}"),
            25,
            "success",
        ),
        ("request_not_json", "pairs".into(), 25, "invalid_pairing"),
        ("request_array", format!("[{}]", body(&key, &ct, &ek, &one)), 25, "invalid_pairing"),
        ("request_trailing_garbage", format!("{} x", body(&key, &ct, &ek, &one)), 25, "invalid_pairing"),
        ("request_unknown_key", body(&key, &ct, &ek, &one).replace("{\"key\"", "{\"x\":1,\"key\""), 25, "invalid_pairing"),
        ("request_missing_key", format!(r#"{{"ct":"{ct}","ek":"{ek}","pairs":[{one}]}}"#), 25, "invalid_pairing"),
        ("request_duplicate_key", body(&key, &ct, &ek, &one).replace("{\"key\"", &format!("{{\"key\":\"{key}\",\"key\"")), 25, "invalid_pairing"),
        ("request_duplicate_pairs", body(&key, &ct, &ek, &one).replace("{\"key\"", &format!("{{\"pairs\":[\"{p1}\"],\"key\"")), 25, "invalid_pairing"),
        ("request_pairs_not_array", body(&key, &ct, &ek, &one).replace(&format!("[{one}]"), &one), 25, "invalid_pairing"),
        ("request_key_number", body(&key, &ct, &ek, &one).replace(&format!("\"{key}\""), "1"), 25, "invalid_pairing"),
        ("request_no_pairs", body(&key, &ct, &ek, ""), 25, "invalid_pairing"),
        ("request_too_many_pairs", body(&key, &ct, &ek, &list(&[&p0, &p1])), 1, "invalid_pairing"),
        ("request_duplicate_pair_id", body(&key, &ct, &ek, &list(&[&p0, &p1, &p0])), 25, "invalid_pairing"),
        ("request_pair_id_short", body(&key, &ct, &ek, &list(&[&p0[..21]])), 25, "invalid_pairing"),
        ("request_pair_id_number", body(&key, &ct, &ek, "1"), 25, "invalid_pairing"),
        ("request_key_short", body(&key[..42], &ct, &ek, &one), 25, "invalid_pairing"),
        ("request_key_hex", body(&hx(req.key.0), &ct, &ek, &one), 25, "invalid_pairing"),
        ("request_ct_short", body(&key, &ct[..1400], &ek, &one), 25, "invalid_pairing"),
        ("request_ct_padding", body(&key, &format!("{ct}=="), &ek, &one), 25, "invalid_pairing"),
        ("request_ek_short", body(&key, &ct, &ek[..1600], &one), 25, "invalid_pairing"),
        ("request_ek_low_order", body(&key, &ct, &low, &one), 25, "invalid_pairing"),
    ];
    for (name, text, max, expect) in req_cases {
        let r = PairingRequest::parse(text.as_bytes(), max);
        let mut c = json!({"name": name, "type": "request", "body": text, "max_pairs": max, "expect": expect});
        if let Some(req) = check(name, expect, r) {
            c["key_id"] = json!(hx(req.key.0));
            c["ct_sha256"] = json!(sha256_hex(req.ct.as_bytes()));
            c["ek_sha256"] = json!(sha256_hex(req.ek.as_bytes()));
            c["pair_ids"] = json!(req.pairs.iter().map(|p| hx(p.0)).collect::<Vec<_>>());
        }
        cases.push(c);
    }
    let too_large = format!("{}{}", body(&key, &ct, &ek, &one), " ".repeat(65536));
    check(
        "request_too_large",
        "too_large",
        PairingRequest::parse(too_large.as_bytes(), 25),
    );
    cases.push(json!({"name": "request_too_large", "type": "request", "body_len": too_large.len(), "comment": "any body over 65536 bytes (413, before parsing)", "expect": "too_large"}));

    let resp = PairingResponse::parse(&relay_answer(inp.id, &req, &inp.eseed_e)).unwrap();
    let rct = b64(resp.ct.as_bytes());
    let k0 = resp.keys[0].to_b64();
    let k1 = resp.keys[1].to_b64();
    let conf = b64(resp.confirm);
    let rbody = |ct: &str, keys: &str, confirm: &str| {
        format!(r#"{{"ct":"{ct}","keys":[{keys}],"confirm":"{confirm}"}}"#)
    };
    let two = list(&[&k0, &k1]);
    let nine_keys: Vec<String> = (0..9u8).map(|i| KeyId([i; 32]).to_b64()).collect();
    let nine_refs: Vec<&str> = nine_keys.iter().map(String::as_str).collect();
    let resp_cases: Vec<(&str, String, &str)> = vec![
        ("response_ok", rbody(&rct, &two, &conf), "success"),
        (
            "response_unknown_key",
            rbody(&rct, &two, &conf).replace("{\"ct\"", "{\"pairs\":[],\"ct\""),
            "invalid_pairing",
        ),
        (
            "response_missing_confirm",
            format!(r#"{{"ct":"{rct}","keys":[{two}]}}"#),
            "invalid_pairing",
        ),
        (
            "response_duplicate_confirm",
            rbody(&rct, &two, &conf)
                .replace("{\"ct\"", &format!("{{\"confirm\":\"{conf}\",\"ct\"")),
            "invalid_pairing",
        ),
        (
            "response_no_keys",
            rbody(&rct, "", &conf),
            "invalid_pairing",
        ),
        (
            "response_nine_keys",
            rbody(&rct, &list(&nine_refs), &conf),
            "invalid_pairing",
        ),
        (
            "response_key_twice",
            rbody(&rct, &list(&[&k0, &k0]), &conf),
            "invalid_pairing",
        ),
        (
            "response_key_short",
            rbody(&rct, &list(&[&k0[..42]]), &conf),
            "invalid_pairing",
        ),
        (
            "response_confirm_short",
            rbody(&rct, &two, &conf[..42]),
            "invalid_pairing",
        ),
        (
            "response_ct_short",
            rbody(&rct[..1400], &two, &conf),
            "invalid_pairing",
        ),
    ];
    for (name, text, expect) in resp_cases {
        let r = PairingResponse::parse(text.as_bytes());
        let mut c = json!({"name": name, "type": "response", "body": text, "expect": expect});
        if let Some(resp) = check(name, expect, r) {
            c["ct_sha256"] = json!(sha256_hex(resp.ct.as_bytes()));
            c["key_ids"] = json!(resp.keys.iter().map(|k| hx(k.0)).collect::<Vec<_>>());
            c["confirm"] = json!(hx(resp.confirm));
        }
        cases.push(c);
    }
    cases
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
        ("relay_key.json", "Relay keys (§4): key value or client-id secret -> seed -> X-Wing pk, entry, key id, fingerprint, kid; fingerprint text; entries", relay_key_vectors()),
        ("pairing.json", "Pairing (§6): both sides of whole pairings with fixed randomness, and the answers each side refuses", pairing()),
        ("error_tag.json", "Authenticated errors (§11.2): tag = HMAC(ke_m, \"pqrelay/2 error\" || id || pid || u64(m) || u16(status) || u8(len(code)) || code || u8(verdict)); verifying replies", error_tag_vectors()),
        ("ratchet.json", "Key schedule and ratchet (§7): client chain steps (kq, ks, ke, next), the relay accepting counters with and without flag retry, 49-byte state (§14), the retry rule", ratchet()),
        ("aad.json", "AAD and nonce bytes (§8). `target` is only in the AAD of request headers without flag url", aad()),
        ("seal.json", "Sealed URL (`\"/\" || b64(..)`) and sealed header block (`x-mte-relay-eh`) items (§8, §9)", seal_vectors()),
        ("body.json", "STREAM bodies (§10). Plaintext is body(L)[i] = i mod 251; long encodings by SHA-256", body_vectors()),
        ("lengths.json", "encoded_len(L) and its inverse for sized bodies (§10)", lengths()),
        ("relay_header.json", "The x-mte-relay header (§9.1), its fields on a request, x-mte-relay-info and x-mte-relay-keys (§5), the choice of a key (§13)", relay_header()),
        ("client_id.json", "Client id tokens (§3): issue and verify against [current, previous] secrets", client_ids()),
        ("state.json", "Relay-side state (§14): 49-byte plain state (version 2, e, ck_e, kid) and 81-byte sealed blob; kid of a configured key", state()),
        ("headers.json", "Decoded header lists (§9.2): JSON shape, name/value validation, forbidden request names", headers_json()),
        ("url.json", "URLs (§9.2), decoded or plain: origin-form, characters, encoded separators, dot segments, length", urls()),
        ("pairing_json.json", "Pairing request and response JSON bodies (§6): strict objects, sizes, ids", pairing_json()),
    ];
    let mut stale = Vec::new();
    for (name, description, cases) in files {
        let mut text = String::new();
        write_json(&file(description, cases), 0, &mut text);
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
