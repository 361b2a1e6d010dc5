//! Pairing request and response bodies (§6).
//!
//! ```text
//! request  {"key":"<b64(fp)>","ct":"<b64(ct_R)>","ek":"<b64(ek_E)>","pairs":["<b64(pid)>",...]}
//! response {"ct":"<b64(ct_E)>","keys":["<b64(fp')>",...],"confirm":"<b64(confirm)>"}
//! ```
//!
//! Parsing is strict: a JSON object with exactly these keys, each once (a duplicate key is
//! refused, not silently overwritten), no other key, values of the stated sizes.

use core::fmt;

use serde::de::{DeserializeSeed, Error as _, MapAccess, Visitor};
use serde::Deserializer;

use crate::codec::{b64_decode, b64_decode_array, b64_encode};
use crate::error::PairingError;
use crate::ids::PairId;
use crate::kem::{EncapsulationKey, KemCiphertext};
use crate::relay_key::{KeyId, MAX_RELAY_KEYS};

/// Largest accepted pairing request or response body (§15).
pub const MAX_PAIRING_BODY: usize = 64 * 1024;
/// Default `max-pairs` (`MAX_POOL_SIZE`, §15).
pub const DEFAULT_MAX_PAIRS: usize = 25;
/// Most pairs one pairing request can hold whatever `max-pairs` says: the transcript hash
/// encodes the count as `u8(n)` (§6).
pub const MAX_PAIRS_PER_REQUEST: usize = 255;
/// Size of `confirm`.
pub const CONFIRM_SIZE: usize = 32;

/// A pairing request body (§6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairingRequest {
    /// `fp`: the relay key the client encapsulated to.
    pub key: KeyId,
    /// `ct_R`: the encapsulation to that key.
    pub ct: KemCiphertext,
    /// `ek_E`: the client's ephemeral encapsulation key.
    pub ek: EncapsulationKey,
    /// The new pair ids, distinct, in order.
    pub pairs: Vec<PairId>,
}

/// A pairing response body (§6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairingResponse {
    /// `ct_E`: the relay's encapsulation to `ek_E`.
    pub ct: KemCiphertext,
    /// `fp'_1..fp'_k`: every key id of the relay, current first.
    pub keys: Vec<KeyId>,
    /// `confirm`: the MAC that proves the answer came from the holder of the relay key.
    pub confirm: [u8; CONFIRM_SIZE],
}

/// The JSON type a key of a strict object holds.
#[derive(Clone, Copy)]
enum Shape {
    Text,
    List,
}

/// One value of a strict object.
enum Field {
    Text(String),
    List(Vec<String>),
}

/// A JSON object with exactly the keys of `spec`, each once, in any order.
struct StrictObject(&'static [(&'static str, Shape)]);

impl<'de> DeserializeSeed<'de> for StrictObject {
    type Value = Vec<Field>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Field>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for StrictObject {
    type Value = Vec<Field>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with exactly the keys ")?;
        for (i, (name, _)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}`{name}`")?;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Field>, A::Error> {
        let mut slots: Vec<Option<Field>> = self.0.iter().map(|_| None).collect();
        while let Some(key) = map.next_key::<String>()? {
            let Some((i, (name, shape))) = self.0.iter().enumerate().find(|(_, (n, _))| *n == key)
            else {
                return Err(A::Error::custom(format_args!("unknown key `{key}`")));
            };
            let value = match shape {
                Shape::Text => Field::Text(map.next_value()?),
                Shape::List => Field::List(map.next_value()?),
            };
            match slots.get_mut(i) {
                Some(slot @ None) => *slot = Some(value),
                _ => return Err(A::Error::custom(format_args!("duplicate key `{name}`"))),
            }
        }
        slots
            .into_iter()
            .zip(self.0)
            .map(|(slot, (name, _))| {
                slot.ok_or_else(|| A::Error::custom(format_args!("missing key `{name}`")))
            })
            .collect()
    }
}

/// Parses `body` as a strict object of `N` keys; the values in `spec` order.
fn parse_object<const N: usize>(
    body: &[u8],
    spec: &'static [(&'static str, Shape); N],
) -> Result<[Field; N], PairingError> {
    if body.len() > MAX_PAIRING_BODY {
        return Err(PairingError::TooLarge);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let fields = StrictObject(spec)
        .deserialize(&mut de)
        .and_then(|f| de.end().map(|()| f))
        .map_err(|e| PairingError::Json(e.to_string()))?;
    fields
        .try_into()
        .map_err(|_| PairingError::Json("wrong number of keys".into()))
}

fn json_shape() -> PairingError {
    PairingError::Json("a key holds the wrong JSON type".into())
}

/// A compact JSON object of the given keys in order (values here are b64 and never need
/// escaping).
fn encode_object(fields: &[(&str, Field)]) -> Vec<u8> {
    let quoted = |v: &str| format!("\"{v}\"");
    let members: Vec<String> = fields
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Field::Text(text) => quoted(text),
                Field::List(items) => {
                    let items: Vec<String> = items.iter().map(|i| quoted(i)).collect();
                    format!("[{}]", items.join(","))
                }
            };
            format!("\"{name}\":{value}")
        })
        .collect();
    format!("{{{}}}", members.join(",")).into_bytes()
}

/// Parses a list of distinct ids; `bad` for an item that does not parse, `twice` for one given
/// twice.
fn parse_distinct<T: PartialEq>(
    texts: &[String],
    parse: impl Fn(&str) -> Option<T>,
    bad: PairingError,
    twice: PairingError,
) -> Result<Vec<T>, PairingError> {
    let mut out: Vec<T> = Vec::with_capacity(texts.len());
    for text in texts {
        let id = parse(text).ok_or_else(|| bad.clone())?;
        if out.contains(&id) {
            return Err(twice);
        }
        out.push(id);
    }
    Ok(out)
}

const REQUEST_SPEC: &[(&str, Shape); 4] = &[
    ("key", Shape::Text),
    ("ct", Shape::Text),
    ("ek", Shape::Text),
    ("pairs", Shape::List),
];

const RESPONSE_SPEC: &[(&str, Shape); 3] = &[
    ("ct", Shape::Text),
    ("keys", Shape::List),
    ("confirm", Shape::Text),
];

fn parse_ct(text: &str) -> Result<KemCiphertext, PairingError> {
    let ct = b64_decode_array::<{ crate::kem::CIPHERTEXT_SIZE }>(text)
        .ok_or(PairingError::BadCiphertext)?;
    KemCiphertext::from_bytes(&ct)
}

impl PairingRequest {
    /// Parses a request body (relay side, §6 step 3): at most [`MAX_PAIRING_BODY`] bytes
    /// ([`PairingError::TooLarge`]), exactly the keys `key`, `ct`, `ek`, `pairs`; `key` 32
    /// bytes, `ct` 1120 bytes, `ek` a valid X-Wing key, `pairs` 1 to `max_pairs` distinct
    /// 16-byte ids (`max_pairs` is capped at [`MAX_PAIRS_PER_REQUEST`]).
    pub fn parse(body: &[u8], max_pairs: usize) -> Result<Self, PairingError> {
        let [Field::Text(key), Field::Text(ct), Field::Text(ek), Field::List(pairs)] =
            parse_object(body, REQUEST_SPEC)?
        else {
            return Err(json_shape());
        };
        let key = KeyId::from_b64(&key).ok_or(PairingError::BadKeyId)?;
        let ct = parse_ct(&ct)?;
        let ek = b64_decode(&ek).ok_or(PairingError::BadEncapsulationKey)?;
        let ek = EncapsulationKey::from_bytes(&ek)?;
        if pairs.is_empty() || pairs.len() > max_pairs.min(MAX_PAIRS_PER_REQUEST) {
            return Err(PairingError::PairCount);
        }
        let pairs = parse_distinct(
            &pairs,
            PairId::from_b64,
            PairingError::BadPairId,
            PairingError::DuplicatePairId,
        )?;
        Ok(Self { key, ct, ek, pairs })
    }

    /// The compact JSON body, keys in the order `key`, `ct`, `ek`, `pairs`.
    pub fn encode(&self) -> Vec<u8> {
        encode_object(&[
            ("key", Field::Text(self.key.to_b64())),
            ("ct", Field::Text(b64_encode(self.ct.as_bytes()))),
            ("ek", Field::Text(b64_encode(self.ek.as_bytes()))),
            (
                "pairs",
                Field::List(self.pairs.iter().map(PairId::to_b64).collect()),
            ),
        ])
    }
}

impl PairingResponse {
    /// Parses a response body (client side, §6): exactly the keys `ct`, `keys`, `confirm`;
    /// `ct` 1120 bytes, `keys` 1 to 8 distinct 32-byte ids, `confirm` 32 bytes.
    pub fn parse(body: &[u8]) -> Result<Self, PairingError> {
        let [Field::Text(ct), Field::List(keys), Field::Text(confirm)] =
            parse_object(body, RESPONSE_SPEC)?
        else {
            return Err(json_shape());
        };
        let ct = parse_ct(&ct)?;
        if keys.is_empty() || keys.len() > MAX_RELAY_KEYS {
            return Err(PairingError::KeyCount);
        }
        let keys = parse_distinct(
            &keys,
            KeyId::from_b64,
            PairingError::BadKeyId,
            PairingError::KeyCount,
        )?;
        let confirm = b64_decode_array(&confirm).ok_or(PairingError::BadConfirm)?;
        Ok(Self { ct, keys, confirm })
    }

    /// The compact JSON body, keys in the order `ct`, `keys`, `confirm`.
    pub fn encode(&self) -> Vec<u8> {
        encode_object(&[
            ("ct", Field::Text(b64_encode(self.ct.as_bytes()))),
            (
                "keys",
                Field::List(self.keys.iter().map(KeyId::to_b64).collect()),
            ),
            ("confirm", Field::Text(b64_encode(&self.confirm))),
        ])
    }
}
