//! Pairing request and response bodies (§5).

use core::fmt;
use core::marker::PhantomData;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::codec::{b64_decode, b64_encode};
use crate::error::PairingError;
use crate::ids::PairId;
use crate::kem::{EncapsulationKey, KemCiphertext};

/// Largest accepted pairing request or response body (§12).
pub const MAX_PAIRING_BODY: usize = 64 * 1024;
/// Default `max-pairs` (MAX_POOL_SIZE, §12).
pub const DEFAULT_MAX_PAIRS: usize = 25;

/// `{"pairs":[{"id":"<b64(pid)>","ek":"<b64(ek)>"}, ...]}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairingRequest {
    /// The pairs, in order.
    pub pairs: Vec<(PairId, EncapsulationKey)>,
}

/// `{"pairs":[{"id":"<b64(pid)>","ct":"<b64(ct)>"}, ...]}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairingResponse {
    /// The pairs, in the request's order.
    pub pairs: Vec<(PairId, KemCiphertext)>,
}

/// The second key of a pair entry (`ek` or `ct`).
trait DataKey {
    const NAME: &'static str;
}
struct Ek;
impl DataKey for Ek {
    const NAME: &'static str = "ek";
}
struct Ct;
impl DataKey for Ct {
    const NAME: &'static str = "ct";
}

/// `{"pairs":[...]}`, accepted only as a JSON object with exactly that key.
struct Top<K>(Vec<Entry<K>>);
/// `{"id":"..","<K>":".."}`, accepted only as an object with exactly those keys, once each.
struct Entry<K> {
    id: String,
    data: String,
    _key: PhantomData<K>,
}

impl<'de, K: DataKey> Deserialize<'de> for Top<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<K>(PhantomData<K>);
        impl<'de, K: DataKey> Visitor<'de> for V<K> {
            type Value = Top<K>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with exactly the key \"pairs\"")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<K>, A::Error> {
                let mut pairs = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "pairs" if pairs.is_none() => pairs = Some(map.next_value()?),
                        "pairs" => return Err(A::Error::duplicate_field("pairs")),
                        other => return Err(A::Error::unknown_field(other, &["pairs"])),
                    }
                }
                pairs
                    .map(Top)
                    .ok_or_else(|| A::Error::missing_field("pairs"))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

impl<'de, K: DataKey> Deserialize<'de> for Entry<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<K>(PhantomData<K>);
        impl<'de, K: DataKey> Visitor<'de> for V<K> {
            type Value = Entry<K>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "an object with exactly the keys \"id\" and \"{}\"",
                    K::NAME
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry<K>, A::Error> {
                let (mut id, mut data) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    let slot = match key.as_str() {
                        "id" => &mut id,
                        k if k == K::NAME => &mut data,
                        other => return Err(A::Error::unknown_field(other, &["id", K::NAME])),
                    };
                    if slot.is_some() {
                        return Err(A::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    *slot = Some(map.next_value::<String>()?);
                }
                Ok(Entry {
                    id: id.ok_or_else(|| A::Error::missing_field("id"))?,
                    data: data.ok_or_else(|| {
                        A::Error::custom(format_args!("missing field `{}`", K::NAME))
                    })?,
                    _key: PhantomData,
                })
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// Parses the body strictly, checks 1..=max entries, ids, and no duplicate ids.
fn parse_entries<K: DataKey>(
    body: &[u8],
    max: usize,
) -> Result<Vec<(PairId, String)>, PairingError> {
    if body.len() > MAX_PAIRING_BODY {
        return Err(PairingError::TooLarge);
    }
    let top: Top<K> =
        serde_json::from_slice(body).map_err(|e| PairingError::Json(e.to_string()))?;
    if top.0.is_empty() || top.0.len() > max {
        return Err(PairingError::PairCount);
    }
    let mut out: Vec<(PairId, String)> = Vec::with_capacity(top.0.len());
    for entry in top.0 {
        let id = PairId::from_b64(&entry.id).ok_or(PairingError::BadId)?;
        if out.iter().any(|(seen, _)| *seen == id) {
            return Err(PairingError::DuplicateId);
        }
        out.push((id, entry.data));
    }
    Ok(out)
}

fn encode_entries<'a>(
    data_key: &str,
    pairs: impl Iterator<Item = (&'a PairId, &'a [u8])>,
) -> Vec<u8> {
    let mut out = String::from("{\"pairs\":[");
    for (i, (id, data)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"id\":\"{}\",\"{data_key}\":\"{}\"}}",
            id.to_b64(),
            b64_encode(data)
        ));
    }
    out.push_str("]}");
    out.into_bytes()
}

impl PairingRequest {
    /// Parses a request body (relay side): at most [`MAX_PAIRING_BODY`] bytes, 1..=`max_pairs`
    /// pairs, unique ids, every `ek` valid ([`EncapsulationKey::from_bytes`]).
    pub fn parse(body: &[u8], max_pairs: usize) -> Result<Self, PairingError> {
        let entries = parse_entries::<Ek>(body, max_pairs)?;
        let pairs = entries
            .into_iter()
            .map(|(id, ek)| {
                let ek = b64_decode(&ek).ok_or(PairingError::BadEncapsulationKey)?;
                Ok((id, EncapsulationKey::from_bytes(&ek)?))
            })
            .collect::<Result<_, PairingError>>()?;
        Ok(Self { pairs })
    }

    /// The compact JSON body.
    pub fn encode(&self) -> Vec<u8> {
        encode_entries(
            "ek",
            self.pairs.iter().map(|(id, ek)| (id, &ek.as_bytes()[..])),
        )
    }
}

impl PairingResponse {
    /// Parses a response body (client side) and checks that it answers `request_ids` exactly,
    /// in order.
    pub fn parse(body: &[u8], request_ids: &[PairId]) -> Result<Self, PairingError> {
        let entries = parse_entries::<Ct>(body, request_ids.len().max(1))?;
        if entries.len() != request_ids.len()
            || entries
                .iter()
                .zip(request_ids)
                .any(|((got, _), want)| got != want)
        {
            return Err(PairingError::ResponseMismatch);
        }
        let pairs = entries
            .into_iter()
            .map(|(id, ct)| {
                let ct = b64_decode(&ct).ok_or(PairingError::BadCiphertext)?;
                Ok((id, KemCiphertext::from_bytes(&ct)?))
            })
            .collect::<Result<_, PairingError>>()?;
        Ok(Self { pairs })
    }

    /// The compact JSON body.
    pub fn encode(&self) -> Vec<u8> {
        encode_entries(
            "ct",
            self.pairs.iter().map(|(id, ct)| (id, &ct.as_bytes()[..])),
        )
    }
}
