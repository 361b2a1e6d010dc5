//! Sealing (§8): nonces, the fixed-layout AAD, and the single-record items of an exchange (the
//! sealed URL and the sealed header block). Bodies are in [`crate::stream`].

use std::borrow::Cow;

use aes_gcm::aead::Tag;
use aes_gcm::aead::{AeadInOut as _, KeyInit as _};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::codec::{b64_append, b64_decode, b64_encode, b64_len};
use crate::error::{Error, HeaderError};
use crate::flags::Flags;
use crate::ids::{ClientId, PairId};
use crate::labels;
use crate::msgs::headers::{decode_headers, MAX_SEALED_HEADERS_LEN};
use crate::msgs::target::validate_origin_form;
use crate::ratchet::AeadKey;

/// AES-256-GCM tag size.
pub const TAG_SIZE: usize = 16;
/// AES-256-GCM nonce size.
pub const NONCE_SIZE: usize = 12;
/// Offset of the `index` field in the AAD (label, dir, part, flags, id, pid, counter).
pub(crate) const AAD_INDEX_OFFSET: usize = 9 + 3 + 16 + 16 + 8;
/// Offset of the `final` field in the AAD.
pub(crate) const AAD_FINAL_OFFSET: usize = AAD_INDEX_OFFSET + 8;

/// Which way a message goes; a response carries its HTTP status (bound into the AAD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client → relay (`dir = 1`, `status = 0`).
    Request,
    /// Relay → client (`dir = 2`).
    Response {
        /// The HTTP status code.
        status: u16,
    },
}

impl Direction {
    fn byte(self) -> u8 {
        match self {
            Direction::Request => 1,
            Direction::Response { .. } => 2,
        }
    }

    fn status(self) -> u16 {
        match self {
            Direction::Request => 0,
            Direction::Response { status } => status,
        }
    }
}

/// Which part of a message a sealed item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Part {
    /// The sealed request-target.
    Url = 1,
    /// The sealed header block.
    Headers = 2,
    /// A body record.
    Body = 3,
}

/// The 12-byte nonce `part || final || 0x00 0x00 || index` (§8).
pub fn nonce(part: Part, is_final: bool, index: u64) -> [u8; NONCE_SIZE] {
    let mut n = [0u8; NONCE_SIZE];
    n[0] = part as u8;
    n[1] = u8::from(is_final);
    n[4..].copy_from_slice(&index.to_be_bytes());
    n
}

/// Everything one message's sealed items are bound to (§8), except the per-item `part`,
/// `index` and `final`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageContext {
    direction: Direction,
    flags: Flags,
    client_id: ClientId,
    pair_id: PairId,
    counter: u64,
    method: Cow<'static, str>,
    target: String,
}

/// `method` as held by a [`MessageContext`]: the methods of RFC 9110 and PATCH without a copy.
fn method_name(method: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    match KNOWN.iter().find(|m| **m == method) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(method.to_owned()),
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl MessageContext {
    /// The context of a request. `method` is the method as sent (a token of 1..=255 bytes);
    /// `target` is the request-target exactly as sent, bound into the header block only when
    /// `flags` lacks [`Flags::URL`] (pass anything, e.g. `""`, when the URL is sealed).
    pub fn request(
        client_id: ClientId,
        pair_id: PairId,
        counter: u64,
        flags: Flags,
        method: &str,
        target: &str,
    ) -> Result<Self, Error> {
        if method.is_empty() || method.len() > 255 || !method.bytes().all(is_tchar) {
            return Err(Error::InvalidMethod);
        }
        let target = if flags.contains(Flags::URL) {
            ""
        } else {
            target
        };
        if target.len() > usize::from(u16::MAX) {
            return Err(crate::error::UrlError::TooLong.into());
        }
        Ok(Self {
            direction: Direction::Request,
            flags,
            client_id,
            pair_id,
            counter,
            method: method_name(method),
            target: target.to_owned(),
        })
    }

    /// The context of the response to this request, with its status and its own flags.
    #[must_use]
    pub fn response(&self, status: u16, flags: Flags) -> Self {
        Self {
            direction: Direction::Response { status },
            flags,
            client_id: self.client_id,
            pair_id: self.pair_id,
            counter: self.counter,
            method: self.method.clone(),
            target: String::new(),
        }
    }

    /// The direction (and status) of this message.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The flags of this message.
    pub fn flags(&self) -> Flags {
        self.flags
    }

    /// The exchange counter.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The AAD bytes of one item (§8). `target` is included only for the request's header block
    /// when the URL is not sealed.
    pub fn aad(&self, part: Part, index: u64, is_final: bool) -> Aad {
        let target = match (self.direction, part) {
            (Direction::Request, Part::Headers) => self.target.as_bytes(),
            _ => b"",
        };
        let method = self.method.as_bytes();
        let mut aad = Aad::zeroed(AAD_FINAL_OFFSET + 6 + method.len() + target.len());
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            if let Some(dst) = aad.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
            at += bytes.len();
        };
        put(labels::AAD);
        put(&[self.direction.byte(), part as u8, self.flags.bits()]);
        put(self.client_id.as_bytes());
        put(self.pair_id.as_bytes());
        put(&self.counter.to_be_bytes());
        put(&index.to_be_bytes());
        put(&[u8::from(is_final)]);
        put(&self.direction.status().to_be_bytes());
        // Lengths were bounded in `request`.
        put(&[method.len() as u8]);
        put(method);
        put(&(target.len() as u16).to_be_bytes());
        put(target);
        debug_assert_eq!(at, aad.len());
        aad
    }
}

/// AAD bytes held inline: the fixed fields and a method of up to 255 bytes, so every item's
/// AAD but that of a request header block binding a request-target (the URL not sealed).
const AAD_INLINE: usize = AAD_FINAL_OFFSET + 6 + 255;

/// One item's AAD (§8): on the stack, or on the heap when it binds a request-target that
/// does not fit in [`AAD_INLINE`] bytes with the rest.
pub struct Aad {
    inline: [u8; AAD_INLINE],
    len: usize,
    /// The bytes when they do not fit inline; empty (not allocated) otherwise.
    heap: Vec<u8>,
}

impl Aad {
    fn zeroed(len: usize) -> Aad {
        Aad {
            inline: [0; AAD_INLINE],
            len,
            heap: if len > AAD_INLINE {
                vec![0; len]
            } else {
                Vec::new()
            },
        }
    }
}

impl core::ops::Deref for Aad {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self.inline.get(..self.len) {
            Some(inline) if self.heap.is_empty() => inline,
            _ => &self.heap,
        }
    }
}

impl core::ops::DerefMut for Aad {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self.inline.get_mut(..self.len) {
            Some(inline) if self.heap.is_empty() => inline,
            _ => &mut self.heap,
        }
    }
}

impl AsRef<[u8]> for Aad {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl core::fmt::Debug for Aad {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Aad").field(&&**self).finish()
    }
}

pub(crate) fn cipher(key: &AeadKey) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key.as_bytes()).expect("AES-256-GCM takes a 32-byte key")
}

/// Encrypts `buf` in place and appends the tag.
pub(crate) fn seal_in_place(
    c: &Aes256Gcm,
    nonce: &[u8; NONCE_SIZE],
    aad: &[u8],
    buf: &mut Vec<u8>,
    start: usize,
) {
    let tag = c
        .encrypt_inout_detached(&Nonce::from(*nonce), aad, (&mut buf[start..]).into())
        .expect("record sizes are far below the AES-GCM limit");
    buf.extend_from_slice(&tag);
}

/// Decrypts `ct || tag` from `input` into `out` (same length as the plaintext).
pub(crate) fn open_into(
    c: &Aes256Gcm,
    nonce: &[u8; NONCE_SIZE],
    aad: &[u8],
    input: &[u8],
    out: &mut [u8],
) -> bool {
    let Some(split) = input.len().checked_sub(TAG_SIZE) else {
        return false;
    };
    let (ct, tag) = input.split_at(split);
    let Ok(tag) = Tag::<Aes256Gcm>::try_from(tag) else {
        return false;
    };
    let Ok(buf) = aes_gcm::aead::inout::InOutBuf::new(ct, out) else {
        return false;
    };
    c.decrypt_inout_detached(&Nonce::from(*nonce), aad, buf, &tag)
        .is_ok()
}

/// Seals one single-record item (`index = 0`, `final = 1`): `ciphertext || tag`.
pub fn seal_item(key: &AeadKey, ctx: &MessageContext, part: Part, plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + TAG_SIZE);
    out.extend_from_slice(plaintext);
    seal_item_owned(key, ctx, part, out)
}

/// [`seal_item`] of a buffer the caller owns: sealed in place, the tag appended.
fn seal_item_owned(key: &AeadKey, ctx: &MessageContext, part: Part, mut buf: Vec<u8>) -> Vec<u8> {
    buf.reserve_exact(TAG_SIZE);
    seal_in_place(
        &cipher(key),
        &nonce(part, true, 0),
        &ctx.aad(part, 0, true),
        &mut buf,
        0,
    );
    buf
}

/// Opens one single-record item; any failure is [`Error::DecodeFailed`].
pub fn open_item(
    key: &AeadKey,
    ctx: &MessageContext,
    part: Part,
    sealed: &[u8],
) -> Result<Vec<u8>, Error> {
    open_item_owned(key, ctx, part, sealed.to_vec())
}

/// [`open_item`] of a buffer the caller owns: opened in place, the tag cut off.
fn open_item_owned(
    key: &AeadKey,
    ctx: &MessageContext,
    part: Part,
    mut sealed: Vec<u8>,
) -> Result<Vec<u8>, Error> {
    let split = sealed
        .len()
        .checked_sub(TAG_SIZE)
        .ok_or(Error::DecodeFailed)?;
    let tag = sealed
        .get(split..)
        .and_then(|t| Tag::<Aes256Gcm>::try_from(t).ok())
        .ok_or(Error::DecodeFailed)?;
    sealed.truncate(split);
    let buf = aes_gcm::aead::inout::InOutBuf::from(sealed.as_mut_slice());
    let nonce = Nonce::from(nonce(part, true, 0));
    cipher(key)
        .decrypt_inout_detached(&nonce, &ctx.aad(part, 0, true), buf, &tag)
        .map_err(|_| Error::DecodeFailed)?;
    Ok(sealed)
}

/// Seals an origin-form `path_and_query` (checked with [`validate_origin_form`]) into the wire
/// target `"/" || b64(sealed)`. `ctx` must carry [`Flags::URL`].
pub fn seal_url(
    key: &AeadKey,
    ctx: &MessageContext,
    path_and_query: &str,
) -> Result<String, Error> {
    validate_origin_form(path_and_query)?;
    let sealed = seal_item(key, ctx, Part::Url, path_and_query.as_bytes());
    let mut target = String::with_capacity(1 + b64_len(sealed.len()));
    target.push('/');
    b64_append(&sealed, &mut target);
    Ok(target)
}

/// Opens a sealed wire target and checks the URL is origin-form. A target that is not
/// `"/" || b64(..)` or does not open is [`Error::DecodeFailed`]; a bad URL is [`Error::Url`].
pub fn open_url(key: &AeadKey, ctx: &MessageContext, target: &str) -> Result<String, Error> {
    let sealed = target
        .strip_prefix('/')
        .filter(|s| s.len() <= 2 * crate::msgs::target::MAX_URL_LEN)
        .and_then(b64_decode)
        .ok_or(Error::DecodeFailed)?;
    let url = open_item_owned(key, ctx, Part::Url, sealed)?;
    let url = String::from_utf8(url).map_err(|_| Error::DecodeFailed)?;
    validate_origin_form(&url)?;
    Ok(url)
}

/// Seals a header block given as its JSON plaintext; returns the `x-mte-relay-eh` value.
pub fn seal_headers_json(key: &AeadKey, ctx: &MessageContext, json: &[u8]) -> String {
    b64_encode(&seal_item(key, ctx, Part::Headers, json))
}

/// Seals a header list (serialised by [`encode_headers`](crate::msgs::headers::encode_headers));
/// returns the `x-mte-relay-eh` value.
pub fn seal_headers<'a, I>(key: &AeadKey, ctx: &MessageContext, headers: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let json = crate::msgs::headers::encode_headers(headers);
    b64_encode(&seal_item_owned(key, ctx, Part::Headers, json))
}

/// Opens an `x-mte-relay-eh` value and validates the list (for a request, forbidden names are
/// rejected too).
pub fn open_headers(
    key: &AeadKey,
    ctx: &MessageContext,
    value: &str,
) -> Result<Vec<(String, String)>, Error> {
    if value.len() > MAX_SEALED_HEADERS_LEN {
        return Err(HeaderError::TooLarge.into());
    }
    let sealed = b64_decode(value).ok_or(Error::DecodeFailed)?;
    let json = open_item_owned(key, ctx, Part::Headers, sealed)?;
    decode_headers(&json, ctx.direction == Direction::Request)
}
