//! Outbound client state (PROTOCOL.md §14.1): what this relay keeps as a *client* of a remote
//! relay in outbound mode, in the configured store so that every relay of a fleet shares it.
//!
//! Per remote relay (its origin hashed: `h = b64url(SHA-256(origin))[..16]`):
//!
//! - `pqrelay:2:out:{h}:session` = seal(`pool_id(8) || u8(k) || k key ids (32 each) || token`):
//!   the client id token the remote relay issued, the remote's relay keys this fleet trusts on
//!   first use (§13; with pins from `OUTBOUND_UPSTREAMS` the pins decide) and a random *pool
//!   id*. Written once with put-if-absent (two relays discovering at the same time agree on the
//!   first one stored, so the whole fleet trusts the same keys), changed only by
//!   compare-and-set: a new pool id means every pair is forgotten (re-pair all, a new client
//!   id); trust carries over.
//! - `pqrelay:2:out:{h}:pairs:<pool id>`: a list of idle pairs `(pid, counter, ck)`.
//!
//! A pair is **leased** by an atomic pop (Redis `LPOP`): from then on exactly one exchange of
//! one relay holds it, so a counter is never used twice; it is pushed back, advanced, when the
//! exchange's response has been read. An empty list means "pair new ones" (and whoever pairs
//! pushes the spare pairs for everybody). A relay that dies holding a pair loses that pair only.
//!
//! Records are sealed like the relay-side blobs: AES-256-GCM under a key derived from
//! `STATE_SECRET` (labels `pqrelay/2 outbound…`), a fresh 16-byte salt per write, the record's
//! key name as associated data (a record moved to another key does not open). A record that
//! does not open (other secret, tampering) is treated as absent.

use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine as _;
use hkdf::Hkdf;
use parking_lot::Mutex;
use pqrelay_protocol::relay_key::KEY_ID_SIZE;
use pqrelay_protocol::{ChainKey, ClientIdToken, ClientPair, KeyId, PairId};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::StoreError;

/// Prefix of every outbound key.
pub const OUT_KEY_PREFIX: &str = "pqrelay:2:out:";
/// Lifetime of an outbound record after its last write (pair lists are refreshed on every
/// push; a remote relay that forgot a pair earlier answers 563 and the pair is re-paired).
pub const RECORD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Size of the random salt of a sealed record.
const SALT_SIZE: usize = 16;
/// Size of a pool id.
const POOL_ID_SIZE: usize = 8;
/// A pair record: `pid(16) || counter(8) || ck(32)`.
const PAIR_SIZE: usize = 16 + 8 + 32;
/// Most trusted key ids a session record holds (`u8(k)`).
const MAX_TRUSTED: usize = u8::MAX as usize;
/// HKDF-Extract salt of the outbound key (§14.1).
const LABEL_SALT: &[u8] = b"pqrelay/2 outbound";
/// HKDF-Expand info of the outbound key.
const LABEL_KEY: &[u8] = b"pqrelay/2 outbound key";
/// HKDF-Expand info prefix of a record's key (followed by its salt).
const LABEL_RECORD: &[u8] = b"pqrelay/2 outbound record";

/// The raw operations outbound state needs; memory and Redis implement them.
#[async_trait]
pub trait OutboundBackend: Send + Sync {
    /// Reads a value.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes `value` only if `key` holds nothing; `Ok(false)` when it already did.
    async fn put_if_absent(&self, key: &str, value: &[u8]) -> Result<bool, StoreError>;
    /// Replaces `expected` by `next`; `Ok(false)` when `key` no longer holds `expected`.
    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        next: &[u8],
    ) -> Result<bool, StoreError>;
    /// Removes and returns the first item of a list (atomic: one caller gets it).
    async fn pop(&self, list: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Appends items to a list and refreshes its lifetime.
    async fn push(&self, list: &str, items: Vec<Vec<u8>>) -> Result<(), StoreError>;
    /// Deletes a key.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}

/// Seals and opens outbound records. Zeroized on drop.
struct Sealer {
    key: Zeroizing<[u8; 32]>,
}

impl Sealer {
    fn new(state_secret: &[u8]) -> Sealer {
        let hk = Hkdf::<Sha256>::new(Some(LABEL_SALT), state_secret);
        let mut key = Zeroizing::new([0u8; 32]);
        hk.expand(LABEL_KEY, key.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Sealer { key }
    }

    fn cipher(&self, salt: &[u8]) -> Aes256Gcm {
        let hk = Hkdf::<Sha256>::from_prk(self.key.as_slice()).expect("a 32-byte PRK");
        let mut k = Zeroizing::new([0u8; 32]);
        hk.expand_multi_info(&[LABEL_RECORD, salt], k.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Aes256Gcm::new_from_slice(k.as_slice()).expect("a 32-byte key")
    }

    /// `salt || AES-256-GCM(k_salt, 0^12, plain, key_name)`.
    fn seal(&self, key_name: &str, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut salt = [0u8; SALT_SIZE];
        getrandom::getrandom(&mut salt)
            .map_err(|_| StoreError::Unavailable("no randomness for a record salt".into()))?;
        let payload = Payload {
            msg: plain,
            aad: key_name.as_bytes(),
        };
        let ct = self
            .cipher(&salt)
            .encrypt(&Nonce::from([0u8; 12]), payload)
            .map_err(|_| StoreError::Unavailable("sealing an outbound record failed".into()))?;
        let mut out = salt.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn open(&self, key_name: &str, blob: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (salt, ct) = blob.split_at_checked(SALT_SIZE)?;
        let payload = Payload {
            msg: ct,
            aad: key_name.as_bytes(),
        };
        self.cipher(salt)
            .decrypt(&Nonce::from([0u8; 12]), payload)
            .ok()
            .map(Zeroizing::new)
    }
}

/// The shared session with a remote relay: its client id token, the relay keys trusted on first
/// use, and the current pool id.
pub struct OutboundSession {
    /// The client id token the remote relay issued.
    pub token: ClientIdToken,
    /// The remote relay's keys this fleet trusts on first use (§13), newest first.
    pub trusted: Vec<KeyId>,
    pool: [u8; POOL_ID_SIZE],
    /// The stored blob (what a compare-and-set expects).
    blob: Vec<u8>,
}

impl std::fmt::Debug for OutboundSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutboundSession(..)")
    }
}

impl OutboundSession {
    /// Whether both are the same session: the same token and pool (the trusted keys may
    /// differ).
    pub fn same(&self, other: &OutboundSession) -> bool {
        self.pool == other.pool && self.token == other.token
    }

    /// The plain record: `pool_id(8) || u8(k) || key ids || token`.
    fn encode(
        pool: &[u8; POOL_ID_SIZE],
        trusted: &[KeyId],
        token: &ClientIdToken,
    ) -> Zeroizing<Vec<u8>> {
        let trusted = &trusted[..trusted.len().min(MAX_TRUSTED)];
        let mut plain = Zeroizing::new(Vec::with_capacity(
            POOL_ID_SIZE + 1 + KEY_ID_SIZE * trusted.len() + 64,
        ));
        plain.extend_from_slice(pool);
        plain.push(u8::try_from(trusted.len()).unwrap_or(u8::MAX));
        for k in trusted {
            plain.extend_from_slice(k.as_bytes());
        }
        plain.extend_from_slice(token.encode().as_bytes());
        plain
    }

    /// Whether both use the same pool of pairs (same client id and pool id; the token may
    /// have been re-signed).
    pub fn same_pool(&self, other: &OutboundSession) -> bool {
        self.pool == other.pool && self.token.id() == other.token.id()
    }
}

/// What [`OutboundPairs::install`] does to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Install {
    /// Keep the pairs (the same client id, e.g. a re-signed token).
    Keep,
    /// Forget every pair (re-pair all).
    Reset,
}

/// The outbound state of one remote relay in a shared store. See the [module docs](self).
pub struct OutboundPairs {
    backend: Arc<dyn OutboundBackend>,
    sealer: Sealer,
    namespace: String,
    cached: Mutex<Option<Arc<OutboundSession>>>,
}

impl std::fmt::Debug for OutboundPairs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundPairs")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl OutboundPairs {
    /// The state of the remote relay at `origin`, sealed with `state_secret`.
    pub fn new(
        backend: Arc<dyn OutboundBackend>,
        state_secret: &[u8],
        origin: &str,
    ) -> OutboundPairs {
        OutboundPairs {
            backend,
            sealer: Sealer::new(state_secret),
            namespace: namespace(origin),
            cached: Mutex::new(None),
        }
    }

    fn session_key(&self) -> String {
        format!("{}session", self.namespace)
    }

    fn list_key(&self, s: &OutboundSession) -> String {
        let pool = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s.pool);
        format!("{}pairs:{pool}", self.namespace)
    }

    fn remember(&self, s: Option<Arc<OutboundSession>>) -> Option<Arc<OutboundSession>> {
        self.cached.lock().clone_from(&s);
        s
    }

    /// The session, from this relay's cache or else the store.
    pub async fn session(&self) -> Result<Option<Arc<OutboundSession>>, StoreError> {
        if let Some(s) = self.cached.lock().clone() {
            return Ok(Some(s));
        }
        self.reload().await
    }

    /// The session as stored now (another relay may have changed it).
    pub async fn reload(&self) -> Result<Option<Arc<OutboundSession>>, StoreError> {
        let key = self.session_key();
        let blob = self.backend.get(&key).await?;
        let session = blob.and_then(|b| self.open_session(&key, b));
        Ok(self.remember(session.map(Arc::new)))
    }

    fn open_session(&self, key: &str, blob: Vec<u8>) -> Option<OutboundSession> {
        let plain = self.sealer.open(key, &blob)?;
        let (pool, rest) = plain.split_at_checked(POOL_ID_SIZE)?;
        let (&k, mut rest) = rest.split_first()?;
        let mut trusted = Vec::with_capacity(usize::from(k));
        for _ in 0..k {
            let (id, tail) = rest.split_first_chunk::<KEY_ID_SIZE>()?;
            trusted.push(KeyId(*id));
            rest = tail;
        }
        let token = ClientIdToken::parse(std::str::from_utf8(rest).ok()?).ok()?;
        Some(OutboundSession {
            token,
            trusted,
            pool: pool.try_into().ok()?,
            blob,
        })
    }

    /// Stores `token` as the session, replacing `previous` (the session it was derived from,
    /// `None` for a first discovery); the trusted keys carry over (trust belongs to the remote
    /// relay, not to a client id). The pool is reset when asked or when the client id changed.
    /// If another relay changed the session first, its session wins and is returned.
    pub async fn install(
        &self,
        token: ClientIdToken,
        previous: Option<&OutboundSession>,
        install: Install,
    ) -> Result<Arc<OutboundSession>, StoreError> {
        let keep = previous
            .filter(|p| install == Install::Keep && p.token.id() == token.id())
            .map(|p| p.pool);
        let pool = match keep {
            Some(pool) => pool,
            None => random_pool_id()?,
        };
        let trusted = previous.map(|p| p.trusted.clone()).unwrap_or_default();
        let session = self.store(previous, pool, trusted, token).await?;
        if let (Some(p), None, true) = (previous, keep, session.pool == pool) {
            // The old pool is forgotten: drop its idle pairs now (stragglers expire).
            self.backend.delete(&self.list_key(p)).await?;
        }
        Ok(session)
    }

    /// Stores `trusted` as the keys trusted on first use (§13) of `session` (same token and
    /// pool). If another relay changed the session first, its session is returned.
    pub async fn trust(
        &self,
        session: &OutboundSession,
        trusted: Vec<KeyId>,
    ) -> Result<Arc<OutboundSession>, StoreError> {
        self.store(Some(session), session.pool, trusted, session.token.clone())
            .await
    }

    /// Writes a session record, put-if-absent without `previous`, else compare-and-set
    /// against it; the loser gets the record stored.
    async fn store(
        &self,
        previous: Option<&OutboundSession>,
        pool: [u8; POOL_ID_SIZE],
        mut trusted: Vec<KeyId>,
        token: ClientIdToken,
    ) -> Result<Arc<OutboundSession>, StoreError> {
        let key = self.session_key();
        trusted.truncate(MAX_TRUSTED);
        let plain = OutboundSession::encode(&pool, &trusted, &token);
        let blob = self.sealer.seal(&key, &plain)?;
        let won = match previous {
            None => self.backend.put_if_absent(&key, &blob).await?,
            Some(p) => self.backend.compare_and_set(&key, &p.blob, &blob).await?,
        };
        if !won {
            return match self.reload().await? {
                Some(s) => Ok(s),
                None => Err(StoreError::Unavailable(
                    "the outbound session vanished while being replaced".into(),
                )),
            };
        }
        let session = Arc::new(OutboundSession {
            token,
            trusted,
            pool,
            blob,
        });
        self.remember(Some(session.clone()));
        Ok(session)
    }

    /// Leases an idle pair of the session's pool; `Ok(None)` when there is none.
    pub async fn take(&self, s: &OutboundSession) -> Result<Option<ClientPair>, StoreError> {
        let key = self.list_key(s);
        loop {
            let Some(blob) = self.backend.pop(&key).await? else {
                return Ok(None);
            };
            // A record that does not open is dropped (another secret, tampering).
            if let Some(pair) = self.open_pair(&key, &blob) {
                return Ok(Some(pair));
            }
        }
    }

    fn open_pair(&self, key: &str, blob: &[u8]) -> Option<ClientPair> {
        let plain = self.sealer.open(key, blob)?;
        if plain.len() != PAIR_SIZE {
            return None;
        }
        let (pid, rest) = plain.split_at(16);
        let (counter, ck) = rest.split_at(8);
        Some(ClientPair::from_parts(
            PairId(pid.try_into().ok()?),
            u64::from_be_bytes(counter.try_into().ok()?),
            ChainKey::from_bytes(ck.try_into().ok()?),
        ))
    }

    /// Returns pairs (advanced past their last exchange) to the session's pool.
    pub async fn give_back(
        &self,
        s: &OutboundSession,
        pairs: Vec<ClientPair>,
    ) -> Result<(), StoreError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let key = self.list_key(s);
        let mut items = Vec::with_capacity(pairs.len());
        for p in &pairs {
            let mut plain = Zeroizing::new(Vec::with_capacity(PAIR_SIZE));
            plain.extend_from_slice(p.pair_id().as_bytes());
            plain.extend_from_slice(&p.counter().to_be_bytes());
            plain.extend_from_slice(p.chain_key().as_bytes());
            items.push(self.sealer.seal(&key, &plain)?);
        }
        self.backend.push(&key, items).await
    }
}

/// `pqrelay:2:out:{<16 chars of b64url(SHA-256(origin))>}:` (a Redis Cluster hash tag: one
/// remote relay's keys share a slot).
fn namespace(origin: &str) -> String {
    let digest = Sha256::digest(origin.as_bytes());
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    format!("{OUT_KEY_PREFIX}{{{}}}:", &b64[..16])
}

fn random_pool_id() -> Result<[u8; POOL_ID_SIZE], StoreError> {
    let mut pool = [0u8; POOL_ID_SIZE];
    getrandom::getrandom(&mut pool)
        .map_err(|_| StoreError::Unavailable("no randomness for a pool id".into()))?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::outbound_memory::OutboundMemory;

    fn token(n: u8) -> ClientIdToken {
        pqrelay_protocol::client_id::issue(b"secret", pqrelay_protocol::ClientId([n; 16]))
    }

    fn pair(n: u8) -> ClientPair {
        ClientPair::from_parts(PairId([n; 16]), 7, ChainKey::from_bytes([n; 32]))
    }

    #[tokio::test]
    async fn two_relays_share_the_session_and_lease_each_pair_once() {
        let backend: Arc<dyn OutboundBackend> = Arc::new(OutboundMemory::default());
        let a = OutboundPairs::new(backend.clone(), b"s", "http://b:1");
        let b = OutboundPairs::new(backend.clone(), b"s", "http://b:1");
        let sa = a.install(token(1), None, Install::Keep).await.unwrap();
        // B discovered too (another client id) but A stored first: B adopts A's session.
        let sb = b.install(token(2), None, Install::Keep).await.unwrap();
        assert!(sa.same(&sb));
        assert_eq!(sb.token, token(1));
        a.give_back(&sa, vec![pair(1), pair(2)]).await.unwrap();
        let one = b.take(&sb).await.unwrap().unwrap();
        let two = a.take(&sa).await.unwrap().unwrap();
        assert_eq!(one, pair(1));
        assert_eq!(two, pair(2));
        assert!(a.take(&sa).await.unwrap().is_none());
        // A reset (new pool) forgets the pairs, and a stale session loses the compare-and-set.
        b.give_back(&sb, vec![one]).await.unwrap();
        let reset = a
            .install(token(1), Some(&sa), Install::Reset)
            .await
            .unwrap();
        assert!(!reset.same(&sa));
        assert!(a.take(&reset).await.unwrap().is_none());
        let lost = b
            .install(token(1), Some(&sb), Install::Reset)
            .await
            .unwrap();
        assert!(lost.same(&reset), "the first reset wins");
    }

    #[tokio::test]
    async fn trust_is_shared_and_outlives_a_new_client_id() {
        let backend: Arc<dyn OutboundBackend> = Arc::new(OutboundMemory::default());
        let a = OutboundPairs::new(backend.clone(), b"s", "http://b:1");
        let b = OutboundPairs::new(backend.clone(), b"s", "http://b:1");
        let s = a.install(token(1), None, Install::Keep).await.unwrap();
        assert!(s.trusted.is_empty(), "first contact");
        a.give_back(&s, vec![pair(1)]).await.unwrap();
        let keys = vec![KeyId([7; 32]), KeyId([8; 32])];
        let trusted = a.trust(&s, keys.clone()).await.unwrap();
        assert!(
            trusted.same(&s) && trusted.same_pool(&s),
            "same session and pool"
        );
        assert_eq!(a.take(&trusted).await.unwrap(), Some(pair(1)), "pairs kept");
        // Another relay of the fleet reads the same trust.
        let seen = b.reload().await.unwrap().unwrap();
        assert_eq!(seen.trusted, keys);
        // A new client id (re-discovery after 566) keeps the trust, not the pool.
        let renewed = b
            .install(token(2), Some(&seen), Install::Reset)
            .await
            .unwrap();
        assert_eq!(
            (renewed.token.clone(), renewed.trusted.clone()),
            (token(2), keys)
        );
        assert!(!renewed.same_pool(&seen));
        // A stale session loses the compare-and-set: the stored one is returned.
        let lost = a.trust(&trusted, vec![KeyId([9; 32])]).await.unwrap();
        assert!(lost.same(&renewed));
    }

    #[tokio::test]
    async fn records_open_only_under_their_secret_and_key() {
        let backend: Arc<dyn OutboundBackend> = Arc::new(OutboundMemory::default());
        let a = OutboundPairs::new(backend.clone(), b"s", "http://b:1");
        let s = a.install(token(1), None, Install::Keep).await.unwrap();
        a.give_back(&s, vec![pair(3)]).await.unwrap();
        let other = OutboundPairs::new(backend.clone(), b"other secret", "http://b:1");
        assert!(other.reload().await.unwrap().is_none());
        assert!(
            other.take(&s).await.unwrap().is_none(),
            "dropped, not opened"
        );
        let blob = backend.get(&a.session_key()).await.unwrap().unwrap();
        let plain = token(1).encode();
        assert!(!blob.windows(plain.len()).any(|w| w == plain.as_bytes()));
    }
}
