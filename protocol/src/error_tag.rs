//! Authenticated errors (§11.2): once the relay holds `ke_m`, every error it answers carries a
//! verdict and a tag the client verifies.
//!
//! ```text
//! tag = HMAC(ke_m, "pqrelay/2 error" || id || pid || u64(m) || u16(status)
//!                  || u8(len(code)) || code || u8(verdict))
//! x-mte-relay-verdict: dead | unknown | partial | complete
//! x-mte-relay-tag:     b64(tag)
//! ```

use subtle::ConstantTimeEq as _;

use crate::codec::{b64_decode_array, b64_encode};
use crate::error::ErrorTagError;
use crate::ids::{ClientId, PairId};
use crate::kdf::hmac32;
use crate::labels;
use crate::msgs::verdict::Verdict;
use crate::names::{TAG_HEADER, VERDICT_HEADER};
use crate::ratchet::ErrorTagKey;

/// Size of an error tag.
pub const ERROR_TAG_SIZE: usize = 32;
/// Longest error code a tag can bind (`u8(len(code))`).
pub const MAX_CODE_LEN: usize = 255;

/// Which exchange an error answers: the client id, pair id and counter `m` of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExchangeId {
    /// The client id `id`.
    pub client_id: ClientId,
    /// The pair id `pid`.
    pub pair_id: PairId,
    /// The counter `m` of the request.
    pub counter: u64,
}

/// One authenticated error reply: what the tag binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorReport<'a> {
    /// The exchange it answers.
    pub exchange: ExchangeId,
    /// The HTTP status of the reply.
    pub status: u16,
    /// The error code (`x-mte-relay-error`), at most 255 bytes.
    pub code: &'a str,
    /// What became of the request.
    pub verdict: Verdict,
}

impl ErrorReport<'_> {
    /// The exact MAC input of §11.2. A code over 255 bytes is [`ErrorTagError::CodeTooLong`].
    pub fn message(&self) -> Result<Vec<u8>, ErrorTagError> {
        let code_len = u8::try_from(self.code.len()).map_err(|_| ErrorTagError::CodeTooLong)?;
        let mut msg = Vec::with_capacity(labels::ERROR.len() + 16 + 16 + 8 + 2 + 1 + 255 + 1);
        msg.extend_from_slice(labels::ERROR);
        msg.extend_from_slice(self.exchange.client_id.as_bytes());
        msg.extend_from_slice(self.exchange.pair_id.as_bytes());
        msg.extend_from_slice(&self.exchange.counter.to_be_bytes());
        msg.extend_from_slice(&self.status.to_be_bytes());
        msg.push(code_len);
        msg.extend_from_slice(self.code.as_bytes());
        msg.push(self.verdict.to_byte());
        Ok(msg)
    }

    /// The tag under `ke_m`.
    pub fn tag(&self, key: &ErrorTagKey) -> Result<[u8; ERROR_TAG_SIZE], ErrorTagError> {
        Ok(hmac32(key.as_bytes(), &[&self.message()?]))
    }

    /// Relay side: the two headers to add to the error reply, `x-mte-relay-verdict` and
    /// `x-mte-relay-tag` (name, value).
    pub fn headers(&self, key: &ErrorTagKey) -> Result<[(&'static str, String); 2], ErrorTagError> {
        Ok([
            (VERDICT_HEADER, self.verdict.as_str().to_owned()),
            (TAG_HEADER, b64_encode(&self.tag(key)?)),
        ])
    }

    /// Checks `tag` (the 32 raw bytes) in constant time.
    pub fn verify(
        &self,
        key: &ErrorTagKey,
        tag: &[u8; ERROR_TAG_SIZE],
    ) -> Result<(), ErrorTagError> {
        if bool::from(self.tag(key)?.ct_eq(tag)) {
            Ok(())
        } else {
            Err(ErrorTagError::Mismatch)
        }
    }
}

/// Client side: verifies an error reply to the request of `exchange` sent with `key` (its
/// `ke_m`), from the reply's status and the values of `x-mte-relay-error`,
/// `x-mte-relay-verdict` and `x-mte-relay-tag` (`None` when absent). Returns the authenticated
/// verdict; any failure means the reply is **unauthenticated** and says nothing about the
/// request's fate (§11.2).
pub fn verify_error_reply(
    key: &ErrorTagKey,
    exchange: ExchangeId,
    status: u16,
    code: Option<&str>,
    verdict: Option<&str>,
    tag: Option<&str>,
) -> Result<Verdict, ErrorTagError> {
    let (Some(code), Some(verdict), Some(tag)) = (code, verdict, tag) else {
        return Err(ErrorTagError::Missing);
    };
    let verdict = Verdict::parse(verdict)?;
    let tag = b64_decode_array(tag).ok_or(ErrorTagError::BadTag)?;
    ErrorReport {
        exchange,
        status,
        code,
        verdict,
    }
    .verify(key, &tag)?;
    Ok(verdict)
}
