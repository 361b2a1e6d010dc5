//! The `x-mte-relay` header (§4, §8.1).

use core::fmt;

use crate::codec::parse_decimal;
use crate::error::RelayHeaderError;
use crate::ids::{ClientIdToken, PairId};

/// The protocol version of this crate.
pub const VERSION: u64 = 1;

/// The flags field of an exchange's `x-mte-relay` header (§8.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// The request path is sealed.
    pub const URL: Flags = Flags(0x01);
    /// An `x-mte-relay-eh` header is present (MUST be set in v1).
    pub const HEADERS: Flags = Flags(0x02);
    /// The message has a STREAM body.
    pub const BODY: Flags = Flags(0x04);
    /// The body's plain length was not known in advance (chunked).
    pub const STREAMING: Flags = Flags(0x08);
    /// Every defined bit.
    pub const ALL: Flags = Flags(0x0f);

    /// No flags.
    pub const fn empty() -> Self {
        Flags(0)
    }

    /// Flags from bits; `None` if an unknown bit is set.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !Self::ALL.0 == 0 {
            Some(Flags(bits))
        } else {
            None
        }
    }

    /// The bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True if every bit of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union.
    #[must_use]
    pub const fn union(self, other: Flags) -> Self {
        Flags(self.0 | other.0)
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({:#04x})", self.0)
    }
}

/// A parsed `x-mte-relay` header value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayHeader {
    /// `1.<token>`: discovery and pairing.
    Discovery {
        /// The client id token (signature not checked).
        token: ClientIdToken,
    },
    /// `1.<token>.<pid>.<counter>.<flags>`: an exchange message.
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
    /// Parses a header value strictly: version `1`, a 64-character token, and for the exchange
    /// form a 22-character pid, a §2 decimal counter and decimal flags without unknown bits and
    /// with [`Flags::HEADERS`] set. A well-formed version other than 1 is
    /// [`RelayHeaderError::VersionUnsupported`].
    pub fn parse(value: &str) -> Result<Self, RelayHeaderError> {
        use RelayHeaderError::Malformed;
        // Longest valid value: 1 + 1 + 64 + 1 + 22 + 1 + 20 + 1 + 3.
        if value.len() > 128 {
            return Err(Malformed("header (too long)"));
        }
        let mut fields = value.split('.');
        let version = fields.next().unwrap_or_default();
        match parse_decimal(version) {
            Some(VERSION) => {}
            Some(_) => return Err(RelayHeaderError::VersionUnsupported),
            None => return Err(Malformed("version")),
        }
        let token = fields.next().ok_or(Malformed("header (no token)"))?;
        let token = ClientIdToken::parse(token).map_err(|_| Malformed("token"))?;
        let Some(pid) = fields.next() else {
            return Ok(RelayHeader::Discovery { token });
        };
        let (Some(counter), Some(flags), None) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(Malformed("header (wrong number of fields)"));
        };
        let pair_id = PairId::from_b64(pid).ok_or(Malformed("pair id"))?;
        let counter = parse_decimal(counter).ok_or(Malformed("counter"))?;
        let flags = parse_decimal(flags)
            .and_then(|f| u8::try_from(f).ok())
            .and_then(Flags::from_bits)
            .ok_or(Malformed("flags"))?;
        if !flags.contains(Flags::HEADERS) {
            return Err(Malformed("flags (headers bit missing)"));
        }
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
}

impl ExchangeHeader {
    /// The header value `1.<token>.<pid>.<counter>.<flags>`.
    pub fn encode(&self) -> String {
        format!(
            "{VERSION}.{}.{}.{}.{}",
            self.token,
            self.pair_id,
            self.counter,
            self.flags.bits()
        )
    }
}

/// The `x-mte-relay-info` header of discovery (§4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayInfo {
    /// Supported protocol versions.
    pub versions: Vec<u64>,
    /// Most pairs per pairing request.
    pub max_pairs: u64,
    /// Body chunk size.
    pub chunk_size: u64,
    /// Counter forward window.
    pub max_skip: u64,
}

impl RelayInfo {
    /// Parses `versions=1;max-pairs=25;chunk-size=65536;max-skip=16`, ignoring unknown keys.
    /// All four known keys are required. Returns `None` if malformed.
    pub fn parse(value: &str) -> Option<Self> {
        let (mut versions, mut max_pairs, mut chunk_size, mut max_skip) = (None, None, None, None);
        for item in value.split(';') {
            let (key, val) = item.trim().split_once('=')?;
            match key {
                "versions" => {
                    versions = Some(val.split(',').map(parse_decimal).collect::<Option<_>>()?)
                }
                "max-pairs" => max_pairs = Some(parse_decimal(val)?),
                "chunk-size" => chunk_size = Some(parse_decimal(val)?),
                "max-skip" => max_skip = Some(parse_decimal(val)?),
                _ => {}
            }
        }
        Some(Self {
            versions: versions?,
            max_pairs: max_pairs?,
            chunk_size: chunk_size?,
            max_skip: max_skip?,
        })
    }

    /// The header value.
    pub fn encode(&self) -> String {
        let versions: Vec<String> = self.versions.iter().map(u64::to_string).collect();
        format!(
            "versions={};max-pairs={};chunk-size={};max-skip={}",
            versions.join(","),
            self.max_pairs,
            self.chunk_size,
            self.max_skip
        )
    }
}
