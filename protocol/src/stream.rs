//! Body framing (§10): STREAM of AES-256-GCM records.
//!
//! ```text
//! record = header(u32) || AES-256-GCM(key, nonce(part=3, final, i), chunk, aad(part=3, i, final))
//! header = (final << 31) | len(chunk)
//! ```
//!
//! [`StreamEncoder`] seals a body incrementally, [`StreamDecoder`] opens one whatever way the
//! transport splits it, buffering at most one record. Both know nothing about HTTP.
//!
//! **Always call `finish`.** An encoder that is dropped without [`StreamEncoder::finish`] never
//! writes its final record, and the peer rejects the body as truncated. A decoder that is
//! dropped without [`StreamDecoder::finish`] cannot tell a complete body from a truncated one:
//! plaintext it produced must not be treated as the whole body until `finish` returned `Ok`.

use aes_gcm::Aes256Gcm;

use crate::error::{Error, StreamError};
use crate::ratchet::AeadKey;
use crate::seal::{
    cipher, nonce, open_into, seal_in_place, Aad, MessageContext, Part, AAD_FINAL_OFFSET,
    AAD_INDEX_OFFSET, TAG_SIZE,
};

/// Largest plaintext of one record.
pub const CHUNK_SIZE: usize = 65536;
/// Size of a record header.
pub const RECORD_HEADER_SIZE: usize = 4;
/// Bytes a record adds to its chunk (header and tag).
pub const RECORD_OVERHEAD: usize = RECORD_HEADER_SIZE + TAG_SIZE;
/// Largest record.
pub const MAX_RECORD_SIZE: usize = CHUNK_SIZE + RECORD_OVERHEAD;

const FINAL_BIT: u32 = 1 << 31;
/// Bits 17..=30 of the record header must be zero.
const RESERVED_BITS: u32 = !FINAL_BIT & !((1 << 17) - 1);

/// Number of records of a sized body of `plain_len` bytes: `max(1, ceil(L / 65536))`.
pub fn records(plain_len: u64) -> u64 {
    plain_len.div_ceil(CHUNK_SIZE as u64).max(1)
}

/// `encoded_len(L) = L + 20 * records(L)` of a sized body (§10); `None` on overflow.
pub fn encoded_len(plain_len: u64) -> Option<u64> {
    plain_len.checked_add(records(plain_len).checked_mul(RECORD_OVERHEAD as u64)?)
}

/// The plain length `L` of a sized body of encoded length `E`, or `None` if no `L` has
/// `encoded_len(L) == E` (§10).
pub fn plain_len(encoded: u64) -> Option<u64> {
    let r = encoded.div_ceil(MAX_RECORD_SIZE as u64).max(1);
    let l = encoded.checked_sub(r * RECORD_OVERHEAD as u64)?;
    (encoded_len(l) == Some(encoded)).then_some(l)
}

/// [`plain_len`] as the relay's `content-length` check: [`Error::InvalidLength`] when invalid.
pub fn check_encoded_len(encoded: u64) -> Result<u64, Error> {
    plain_len(encoded).ok_or(Error::InvalidLength)
}

/// Shared per-stream crypto state: the cipher, the AAD (index and final patched per record)
/// and the record index.
struct RecordCipher {
    cipher: Aes256Gcm,
    aad: Aad,
    index: u64,
}

impl RecordCipher {
    fn new(key: &AeadKey, ctx: &MessageContext) -> Self {
        Self {
            cipher: cipher(key),
            aad: ctx.aad(Part::Body, 0, false),
            index: 0,
        }
    }

    fn nonce_and_aad(&mut self, is_final: bool) -> [u8; 12] {
        self.aad[AAD_INDEX_OFFSET..AAD_FINAL_OFFSET].copy_from_slice(&self.index.to_be_bytes());
        self.aad[AAD_FINAL_OFFSET] = u8::from(is_final);
        nonce(Part::Body, is_final, self.index)
    }

    fn seal(&mut self, chunk: &[u8], is_final: bool, out: &mut Vec<u8>) {
        debug_assert!(chunk.len() <= CHUNK_SIZE);
        let header = (if is_final { FINAL_BIT } else { 0 }) | chunk.len() as u32;
        out.reserve(chunk.len() + RECORD_OVERHEAD);
        out.extend_from_slice(&header.to_be_bytes());
        let start = out.len();
        out.extend_from_slice(chunk);
        let n = self.nonce_and_aad(is_final);
        seal_in_place(&self.cipher, &n, &self.aad, out, start);
        self.index += 1;
    }

    fn open(&mut self, record: &[u8], is_final: bool, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        out.resize(start + record.len().saturating_sub(TAG_SIZE), 0);
        let n = self.nonce_and_aad(is_final);
        let ok = open_into(&self.cipher, &n, &self.aad, record, &mut out[start..]);
        if !ok {
            out.truncate(start);
        }
        self.index += 1;
        ok
    }
}

/// Seals a body into records. Construct with the message's key and context (which must carry
/// [`Flags::BODY`](crate::Flags::BODY), and [`Flags::STREAMING`](crate::Flags::STREAMING) when
/// `plain_len` is `None`), feed it with [`push`](Self::push) and **always** end with
/// [`finish`](Self::finish).
pub struct StreamEncoder {
    rc: RecordCipher,
    /// Plain bytes still expected in sized mode; `None` in streaming mode.
    remaining: Option<u64>,
    pending: Vec<u8>,
    done: bool,
}

impl core::fmt::Debug for StreamEncoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamEncoder")
            .field("index", &self.rc.index)
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl StreamEncoder {
    /// A new encoder: sized mode (full records, exact [`encoded_len`]) when `plain_len` is
    /// known, streaming mode otherwise.
    pub fn new(key: &AeadKey, ctx: &MessageContext, plain_len: Option<u64>) -> Self {
        Self {
            rc: RecordCipher::new(key, ctx),
            remaining: plain_len,
            pending: Vec::new(),
            done: false,
        }
    }

    /// Seals as much of `data` as can be sealed now, appending records to `out`. In sized mode
    /// every record but the last is full, and the last is written as soon as the announced
    /// length is reached. Giving more data than announced is [`StreamError::LengthMismatch`].
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        if self.done {
            // Sized mode already wrote its final record: only empty input is acceptable.
            return if data.is_empty() {
                Ok(())
            } else {
                Err(StreamError::LengthMismatch)
            };
        }
        if let Some(rem) = self.remaining.as_mut() {
            *rem = rem
                .checked_sub(data.len() as u64)
                .ok_or(StreamError::LengthMismatch)?;
        }
        let sized_end = self.remaining == Some(0);
        // Emit full chunks while more data follows them (or, in sized mode, they end the body).
        loop {
            let avail = self.pending.len() + data.len();
            let more_follows = avail > CHUNK_SIZE
                || (avail == CHUNK_SIZE && self.remaining.is_some_and(|r| r > 0));
            let ends_sized = sized_end && avail == CHUNK_SIZE;
            if !(more_follows || ends_sized) {
                break;
            }
            if self.pending.is_empty() {
                let (chunk, rest) = data.split_at(CHUNK_SIZE);
                self.rc.seal(chunk, ends_sized, out);
                data = rest;
            } else {
                let take = CHUNK_SIZE - self.pending.len();
                let (head, rest) = data.split_at(take);
                self.pending.extend_from_slice(head);
                data = rest;
                self.rc.seal(&self.pending, ends_sized, out);
                self.pending.clear();
            }
            if ends_sized {
                self.done = true;
                return Ok(());
            }
        }
        self.pending.extend_from_slice(data);
        if sized_end && !self.pending.is_empty() {
            self.rc.seal(&self.pending, true, out);
            self.pending.clear();
            self.done = true;
        }
        Ok(())
    }

    /// Streaming mode: seals buffered data now as a (short, non-final) record, so that e.g. a
    /// Server-Sent Event reaches the peer at once. Does nothing when nothing is buffered, and
    /// nothing in sized mode (whose records must be full).
    pub fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), StreamError> {
        if self.done {
            return Err(StreamError::Finished);
        }
        if self.remaining.is_none() && !self.pending.is_empty() {
            self.rc.seal(&self.pending, false, out);
            self.pending.clear();
        }
        Ok(())
    }

    /// Writes the final record. **Must be called**: without it the body is truncated. In sized
    /// mode, fails with [`StreamError::LengthMismatch`] if fewer bytes than announced were
    /// pushed.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), StreamError> {
        match self.remaining {
            Some(0) if self.done => Ok(()),
            // Sized mode of length 0: one empty final record.
            Some(0) | None => {
                self.rc.seal(&self.pending, true, out);
                Ok(())
            }
            Some(_) => Err(StreamError::LengthMismatch),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct RecordHeader {
    len: usize,
    is_final: bool,
}

/// Opens a body. Feed it with [`push`](Self::push) as bytes arrive, in any split; **always**
/// end with [`finish`](Self::finish). After the first error every call fails.
pub struct StreamDecoder {
    rc: RecordCipher,
    expected: Option<u64>,
    total: u64,
    header_buf: [u8; RECORD_HEADER_SIZE],
    header_len: usize,
    header: Option<RecordHeader>,
    record: Vec<u8>,
    final_seen: bool,
    failed: Option<StreamError>,
}

impl core::fmt::Debug for StreamDecoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamDecoder")
            .field("index", &self.rc.index)
            .field("total", &self.total)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl StreamDecoder {
    /// A new decoder. With `expected_plain_len` (sized mode, from [`plain_len`] of the
    /// `content-length`) the decoded total must equal it.
    pub fn new(key: &AeadKey, ctx: &MessageContext, expected_plain_len: Option<u64>) -> Self {
        Self {
            rc: RecordCipher::new(key, ctx),
            expected: expected_plain_len,
            total: 0,
            header_buf: [0; RECORD_HEADER_SIZE],
            header_len: 0,
            header: None,
            record: Vec::new(),
            final_seen: false,
            failed: None,
        }
    }

    fn fail(&mut self, e: StreamError) -> Result<(), StreamError> {
        self.failed = Some(e);
        self.record = Vec::new();
        Err(e)
    }

    /// Plain bytes produced so far.
    pub fn plain_len_so_far(&self) -> u64 {
        self.total
    }

    /// True once the final record opened.
    pub fn is_complete(&self) -> bool {
        self.final_seen && self.failed.is_none()
    }

    /// Consumes `data`, appending the plaintext of every record it completes to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        while !data.is_empty() {
            if self.final_seen {
                return self.fail(StreamError::TrailingBytes);
            }
            let header = match self.header {
                Some(h) => h,
                None => {
                    let take = (RECORD_HEADER_SIZE - self.header_len).min(data.len());
                    let (head, rest) = data.split_at(take);
                    self.header_buf[self.header_len..self.header_len + take].copy_from_slice(head);
                    self.header_len += take;
                    data = rest;
                    if self.header_len < RECORD_HEADER_SIZE {
                        return Ok(());
                    }
                    self.header_len = 0;
                    let raw = u32::from_be_bytes(self.header_buf);
                    let len = (raw & !FINAL_BIT) as usize;
                    let is_final = raw & FINAL_BIT != 0;
                    if raw & RESERVED_BITS != 0 || len > CHUNK_SIZE || (len == 0 && !is_final) {
                        return self.fail(StreamError::BadRecordHeader);
                    }
                    let h = RecordHeader { len, is_final };
                    self.header = Some(h);
                    h
                }
            };
            let record_len = header.len + TAG_SIZE;
            if self.record.is_empty() && data.len() >= record_len {
                // Fast path: the whole record is in `data`; open it without copying.
                let (record, rest) = data.split_at(record_len);
                data = rest;
                self.open_record(record, header, out)?;
            } else {
                let take = (record_len - self.record.len()).min(data.len());
                let (head, rest) = data.split_at(take);
                self.record.extend_from_slice(head);
                data = rest;
                if self.record.len() == record_len {
                    let record = core::mem::take(&mut self.record);
                    self.open_record(&record, header, out)?;
                    self.record = record;
                    self.record.clear();
                }
            }
        }
        Ok(())
    }

    fn open_record(
        &mut self,
        record: &[u8],
        header: RecordHeader,
        out: &mut Vec<u8>,
    ) -> Result<(), StreamError> {
        self.header = None;
        let total = self.total + header.len as u64;
        if self.expected.is_some_and(|e| total > e) {
            return self.fail(StreamError::LengthMismatch);
        }
        if !self.rc.open(record, header.is_final, out) {
            return self.fail(StreamError::Decrypt);
        }
        self.total = total;
        if header.is_final {
            self.final_seen = true;
            if self.expected.is_some_and(|e| e != total) {
                return self.fail(StreamError::LengthMismatch);
            }
        }
        Ok(())
    }

    /// Ends the body: fails if the final record was not received (truncation) or an earlier
    /// call failed. **Must be called** before the plaintext is trusted as the whole body.
    pub fn finish(self) -> Result<(), StreamError> {
        match self.failed {
            Some(e) => Err(e),
            None if self.final_seen => Ok(()),
            None => Err(StreamError::Truncated),
        }
    }
}
