//! [`NamespacedStore`]: a pair store seen through one `DOMAIN_MAP` site, so that sites sharing
//! one memory store or one Redis never see each other's pairs, even with equal raw client ids.
//! The store key of a client id is `HMAC-SHA256(key = "pqrelay/1 domain" || host, msg = id)[..16]`.

use std::sync::Arc;

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use pqrelay_protocol::{ClientId, PairId, ServerPair};
use sha2::Sha256;

use super::{PairStore, StoreError, Stored, Version};

/// A pair store seen through one site: every client id is replaced by a keyed hash of it
/// with the site's host, so sites sharing a store never share (or collide on) a key.
pub struct NamespacedStore {
    inner: Arc<dyn PairStore>,
    key: Hmac<Sha256>,
}

impl NamespacedStore {
    /// `inner` seen through the site `host`.
    pub fn new(inner: Arc<dyn PairStore>, host: &str) -> NamespacedStore {
        let mut k = b"pqrelay/1 domain".to_vec();
        k.extend_from_slice(host.as_bytes());
        // HMAC takes keys of any length.
        let key = <Hmac<Sha256> as KeyInit>::new_from_slice(&k)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        NamespacedStore { inner, key }
    }

    /// The store key of a client id.
    fn map(&self, client: &ClientId) -> ClientId {
        let mut mac = self.key.clone();
        mac.update(&client.0);
        let out = mac.finalize().into_bytes();
        let mut id = [0u8; 16];
        id.copy_from_slice(&out[..16]);
        ClientId(id)
    }
}

#[async_trait]
impl PairStore for NamespacedStore {
    async fn insert(
        &self,
        client: &ClientId,
        pairs: &[(PairId, ServerPair)],
    ) -> Result<(), StoreError> {
        self.inner.insert(&self.map(client), pairs).await
    }

    async fn load(&self, client: &ClientId, pair: &PairId) -> Result<Option<Stored>, StoreError> {
        self.inner.load(&self.map(client), pair).await
    }

    async fn load_recent(
        &self,
        client: &ClientId,
        pair: &PairId,
    ) -> Result<Option<Stored>, StoreError> {
        self.inner.load_recent(&self.map(client), pair).await
    }

    async fn compare_and_set(
        &self,
        client: &ClientId,
        pair: &PairId,
        expected: &Version,
        next: &ServerPair,
    ) -> Result<bool, StoreError> {
        self.inner
            .compare_and_set(&self.map(client), pair, expected, next)
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn relay_keys(
        &self,
        site: &str,
        ours: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        self.inner.relay_keys(site, ours).await
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn namespaced_stores_do_not_share_pairs() {
        let inner = super::super::from_config(&super::super::StoreConfig::new(4)).unwrap();
        let a = NamespacedStore::new(inner.clone(), "a.example");
        let b = NamespacedStore::new(inner, "b.example");
        let id = ClientId([7; 16]);
        let pid = PairId([9; 16]);
        let pair = ServerPair::from_parts(
            0,
            pqrelay_protocol::ChainKey::from_bytes([1; 32]),
            pqrelay_protocol::Kid([0; 8]),
        );
        a.insert(&id, &[(pid, pair)]).await.unwrap();
        assert!(a.load(&id, &pid).await.unwrap().is_some());
        assert!(b.load(&id, &pid).await.unwrap().is_none());
    }
}
