//! The flags of an exchange's `x-mte-relay` header (§9.1): which parts of a message are sealed,
//! how its body is framed, and whether a request repeats an earlier one. A leaf: the ratchet,
//! the sealing and the header codec all read flags.

use core::fmt;

/// The flags field of an exchange's `x-mte-relay` header (§9.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// The request path is sealed (requests; responses echo it).
    pub const URL: Flags = Flags(0x01);
    /// An `x-mte-relay-eh` header is present (MUST be set).
    pub const HEADERS: Flags = Flags(0x02);
    /// The message has a STREAM body.
    pub const BODY: Flags = Flags(0x04);
    /// The body's plain length was not known in advance.
    pub const STREAMING: Flags = Flags(0x08);
    /// Requests only: this request repeats the one sent with counter `n - 1` (§7, §12).
    pub const RETRY: Flags = Flags(0x10);
    /// Every defined bit.
    pub const ALL: Flags = Flags(0x1f);

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

    /// These flags without the bits of `other`.
    #[must_use]
    pub const fn without(self, other: Flags) -> Self {
        Flags(self.0 & !other.0)
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
