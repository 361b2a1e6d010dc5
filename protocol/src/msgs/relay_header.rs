//! The `x-mte-relay` header (§5, §9.1) and `x-mte-relay-info` (§5).

pub use crate::flags::Flags;

use crate::codec::parse_decimal;
use crate::error::{RelayHeaderError, RelayInfoError};
use crate::ids::{ClientIdToken, PairId, TOKEN_LEN};
use crate::msgs::pairing::MAX_PAIRS_PER_REQUEST;
use crate::names::VERSION;
use crate::ratchet::MAX_SKIP;
use crate::stream::CHUNK_SIZE;

/// A parsed `x-mte-relay` header value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayHeader {
    /// `2.<token>`: discovery and pairing.
    Discovery {
        /// The client id token (signature not checked).
        token: ClientIdToken,
    },
    /// `2.<token>.<pid>.<counter>.<flags>`: an exchange message.
    Exchange(ExchangeHeader),
}

/// The fields of an exchange's `x-mte-relay` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeHeader {
    /// The client id token (signature not checked).
    pub token: ClientIdToken,
    /// The pair id.
    pub pair_id: PairId,
    /// The exchange counter.
    pub counter: u64,
    /// The flags; [`Flags::HEADERS`] is always set.
    pub flags: Flags,
}

impl RelayHeader {
    /// Parses a request's header value (§9.1): version `2` (another well-formed version is
    /// [`RelayHeaderError::VersionUnsupported`], 568); `2` alone or an empty token is
    /// [`RelayHeaderError::ClientIdMissing`] (560); a wrong field count, a pid that is not 22
    /// characters of strict b64, a non-canonical counter or flags, unknown flag bits or a
    /// missing `headers` bit are [`RelayHeaderError::Malformed`] (561); then a token that is not
    /// 64 characters of strict b64 is [`RelayHeaderError::Token`] (566).
    pub fn parse(value: &str) -> Result<Self, RelayHeaderError> {
        Self::parse_as(value, true)
    }

    /// Parses a response's header value: as [`parse`](Self::parse), and flag `retry` is
    /// malformed.
    pub fn parse_response(value: &str) -> Result<Self, RelayHeaderError> {
        Self::parse_as(value, false)
    }

    /// Parses the fields of one message: exactly one `x-mte-relay` field must be present
    /// (none is [`RelayHeaderError::ClientIdMissing`], two or a value that is not ASCII are
    /// [`RelayHeaderError::Malformed`]), then [`parse`](Self::parse) (`request`) or
    /// [`parse_response`](Self::parse_response).
    pub fn from_fields<'a>(
        fields: impl IntoIterator<Item = &'a [u8]>,
        request: bool,
    ) -> Result<Self, RelayHeaderError> {
        let value = single_field(fields)?.ok_or(RelayHeaderError::ClientIdMissing)?;
        Self::parse_as(value, request)
    }

    fn parse_as(value: &str, request: bool) -> Result<Self, RelayHeaderError> {
        use RelayHeaderError::{ClientIdMissing, Malformed};
        let mut fields = value.split('.');
        match fields.next().and_then(parse_decimal) {
            Some(VERSION) => {}
            Some(_) => return Err(RelayHeaderError::VersionUnsupported),
            None => return Err(Malformed("version")),
        }
        let all = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        );
        let (token, exchange) = match all {
            (None | Some(""), None, ..) => return Err(ClientIdMissing),
            (Some(token), None, ..) => (token, None),
            (Some(token), Some(pid), Some(counter), Some(flags), None) => {
                (token, Some((pid, counter, flags)))
            }
            _ => return Err(Malformed("header (wrong number of fields)")),
        };
        let Some((pid, counter, flags)) = exchange else {
            let token = ClientIdToken::parse(token).map_err(RelayHeaderError::Token)?;
            return Ok(RelayHeader::Discovery { token });
        };
        if token.is_empty() {
            return Err(ClientIdMissing);
        }
        let pair_id = PairId::from_b64(pid).ok_or(Malformed("pair id"))?;
        let counter = parse_decimal(counter).ok_or(Malformed("counter"))?;
        let flags = parse_decimal(flags)
            .and_then(|f| u8::try_from(f).ok())
            .and_then(Flags::from_bits)
            .ok_or(Malformed("flags"))?;
        if !flags.contains(Flags::HEADERS) {
            return Err(Malformed("flags (headers bit missing)"));
        }
        if !request && flags.contains(Flags::RETRY) {
            return Err(Malformed("flags (retry on a response)"));
        }
        let token = ClientIdToken::parse(token).map_err(RelayHeaderError::Token)?;
        Ok(RelayHeader::Exchange(ExchangeHeader {
            token,
            pair_id,
            counter,
            flags,
        }))
    }

    /// The header value.
    pub fn encode(&self) -> String {
        match self {
            RelayHeader::Discovery { token } => format!("{VERSION}.{token}"),
            RelayHeader::Exchange(h) => h.encode(),
        }
    }

    /// The token of a discovery or pairing header (`2.<token>`); exchange fields there are
    /// [`RelayHeaderError::Malformed`] (561, §6 step 1).
    pub fn into_discovery(self) -> Result<ClientIdToken, RelayHeaderError> {
        match self {
            RelayHeader::Discovery { token } => Ok(token),
            RelayHeader::Exchange(_) => Err(RelayHeaderError::Malformed(
                "header (exchange fields on discovery or pairing)",
            )),
        }
    }

    /// The fields of an exchange header; `2.<token>` alone on an exchange is
    /// [`RelayHeaderError::Malformed`] (561, §9.1: exactly five fields).
    pub fn into_exchange(self) -> Result<ExchangeHeader, RelayHeaderError> {
        match self {
            RelayHeader::Exchange(h) => Ok(h),
            RelayHeader::Discovery { .. } => Err(RelayHeaderError::Malformed(
                "header (wrong number of fields)",
            )),
        }
    }

    /// The client id token.
    pub fn token(&self) -> &ClientIdToken {
        match self {
            RelayHeader::Discovery { token } => token,
            RelayHeader::Exchange(h) => &h.token,
        }
    }
}

impl ExchangeHeader {
    /// The header value `2.<token>.<pid>.<counter>.<flags>`.
    pub fn encode(&self) -> String {
        use core::fmt::Write as _;
        // version, token, pair id, counter (at most 20 digits), flags (at most 3), 4 dots.
        let mut out = String::with_capacity(1 + TOKEN_LEN + 22 + 20 + 3 + 4);
        let _ = write!(
            out,
            "{VERSION}.{}.{}.{}.{}",
            self.token,
            self.pair_id,
            self.counter,
            self.flags.bits()
        );
        out
    }
}

/// The one value of a header that must appear at most once on a message (`x-mte-relay`,
/// `x-mte-relay-eh`, §9.1): `None` when absent; two fields, or a value that is not visible
/// ASCII, are [`RelayHeaderError::Malformed`] (561).
pub fn single_field<'a>(
    fields: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Option<&'a str>, RelayHeaderError> {
    let mut fields = fields.into_iter();
    let first = fields.next();
    if fields.next().is_some() {
        return Err(RelayHeaderError::Malformed("header (given twice)"));
    }
    first
        .map(|v| {
            core::str::from_utf8(v)
                .ok()
                .filter(|s| s.is_ascii())
                .ok_or(RelayHeaderError::Malformed("header (not ASCII)"))
        })
        .transpose()
}

/// The `x-mte-relay-eh` value of an exchange request: exactly one field (§9.1); none or two
/// are [`RelayHeaderError::Malformed`] (561).
pub fn sealed_headers_field<'a>(
    fields: impl IntoIterator<Item = &'a [u8]>,
) -> Result<&'a str, RelayHeaderError> {
    single_field(fields)?.ok_or(RelayHeaderError::Malformed("x-mte-relay-eh (missing)"))
}

/// Largest `max-pairs` a relay may announce (§5).
pub const MAX_MAX_PAIRS: u64 = 255;

/// The `x-mte-relay-info` header of discovery (§5). `chunk-size` and `max-skip` are fixed by
/// version 2 (65536 and 16) and checked by [`parse`](Self::parse).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayInfo {
    /// Supported protocol versions (include 2).
    pub versions: Vec<u64>,
    /// Most pairs per pairing request (1 to 10000).
    pub max_pairs: u64,
}

impl RelayInfo {
    /// The info of a version-2 relay with `max-pairs` = `max_pairs`.
    pub fn new(max_pairs: u64) -> Self {
        Self {
            versions: vec![VERSION],
            max_pairs,
        }
    }

    /// Parses `versions=2;max-pairs=25;chunk-size=65536;max-skip=16` (client side, §5): items
    /// separated by `;` (spaces around them ignored), each `key=value`; the four keys required,
    /// each once; unknown keys ignored. A malformed value is [`RelayInfoError::Malformed`]; a
    /// relay without version 2, or with another `chunk-size` or `max-skip`, is
    /// [`RelayInfoError::Unsupported`].
    pub fn parse(value: &str) -> Result<Self, RelayInfoError> {
        use RelayInfoError::{Malformed, Unsupported};
        let (mut versions, mut max_pairs, mut chunk_size, mut max_skip) = (None, None, None, None);
        for item in value.split(';') {
            let (key, val) = item
                .trim_matches([' ', '\t'])
                .split_once('=')
                .ok_or(Malformed("an item is not key=value"))?;
            let (slot, parsed) = match key {
                "versions" => {
                    let list = val
                        .split(',')
                        .map(parse_decimal)
                        .collect::<Option<Vec<_>>>()
                        .ok_or(Malformed("versions"))?;
                    if versions.replace(list).is_some() {
                        return Err(Malformed("versions given twice"));
                    }
                    continue;
                }
                "max-pairs" => (
                    &mut max_pairs,
                    parse_decimal(val).ok_or(Malformed("max-pairs"))?,
                ),
                "chunk-size" => (
                    &mut chunk_size,
                    parse_decimal(val).ok_or(Malformed("chunk-size"))?,
                ),
                "max-skip" => (
                    &mut max_skip,
                    parse_decimal(val).ok_or(Malformed("max-skip"))?,
                ),
                _ => continue,
            };
            if slot.replace(parsed).is_some() {
                return Err(Malformed("a key given twice"));
            }
        }
        let versions = versions.ok_or(Malformed("versions missing"))?;
        let max_pairs = max_pairs.ok_or(Malformed("max-pairs missing"))?;
        let chunk_size = chunk_size.ok_or(Malformed("chunk-size missing"))?;
        let max_skip = max_skip.ok_or(Malformed("max-skip missing"))?;
        if !(1..=MAX_MAX_PAIRS).contains(&max_pairs) {
            return Err(Malformed("max-pairs out of 1..=10000"));
        }
        if !versions.contains(&VERSION) {
            return Err(Unsupported("versions lacks 2"));
        }
        if chunk_size != CHUNK_SIZE as u64 {
            return Err(Unsupported("chunk-size is not 65536"));
        }
        if max_skip != MAX_SKIP {
            return Err(Unsupported("max-skip is not 16"));
        }
        Ok(Self {
            versions,
            max_pairs,
        })
    }

    /// The header value: `versions=…;max-pairs=N;chunk-size=65536;max-skip=16`.
    pub fn encode(&self) -> String {
        let versions: Vec<String> = self.versions.iter().map(u64::to_string).collect();
        format!(
            "versions={};max-pairs={};chunk-size={CHUNK_SIZE};max-skip={MAX_SKIP}",
            versions.join(","),
            self.max_pairs,
        )
    }

    /// How many pairs one pairing request may hold: `max-pairs`, at most 255 (§6 encodes the
    /// count in one byte).
    pub fn pairs_per_request(&self) -> usize {
        usize::try_from(self.max_pairs)
            .unwrap_or(usize::MAX)
            .min(MAX_PAIRS_PER_REQUEST)
    }
}
