//! The `x-mte-relay-verdict` header of an authenticated error (§11.2).

use core::fmt;

use crate::error::ErrorTagError;

/// What became of the request an authenticated error answers (§11.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// It did not reach the upstream and never can: its counter is spent.
    Dead = 0,
    /// It did not reach the upstream yet, but the relay could not spend its counter.
    Unknown = 1,
    /// The upstream received its head and possibly part of its body.
    Partial = 2,
    /// The upstream received all of it; its answer could not be relayed.
    Complete = 3,
}

impl Verdict {
    /// Every verdict, by byte value.
    pub const ALL: [Verdict; 4] = [
        Verdict::Dead,
        Verdict::Unknown,
        Verdict::Partial,
        Verdict::Complete,
    ];

    /// The byte bound into the tag.
    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// The verdict of a byte.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.to_byte() == byte)
    }

    /// The header value (and the JSON body's `"verdict"`): `dead`, `unknown`, `partial`,
    /// `complete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Dead => "dead",
            Verdict::Unknown => "unknown",
            Verdict::Partial => "partial",
            Verdict::Complete => "complete",
        }
    }

    /// Parses the header value, exactly one of the four lowercase names.
    pub fn parse(value: &str) -> Result<Self, ErrorTagError> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == value)
            .ok_or(ErrorTagError::BadVerdict)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
