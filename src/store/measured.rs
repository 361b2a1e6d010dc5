//! [`MeasuredStore`]: a [`PairStore`] that records the one it wraps in the metrics
//! (operation durations and errors, pairings and pairs created).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pqrelay_protocol::{ClientId, PairId, ServerPair};

use super::{PairStore, StoreError, Stored, Version};
use crate::metrics;

/// Wraps a store and records every operation ([`crate::metrics::store_operation`]); every
/// successful [`PairStore::insert`] is one pairing ([`crate::metrics::paired`]).
pub struct MeasuredStore<S: ?Sized> {
    inner: Arc<S>,
}

impl<S: PairStore + ?Sized> MeasuredStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<S>) -> MeasuredStore<S> {
        MeasuredStore { inner }
    }
}

/// Runs one store operation and records it.
async fn measure<T>(
    op: &'static str,
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = work.await;
    let failed = matches!(result, Err(StoreError::Unavailable(_) | StoreError::Full));
    metrics::store_operation(op, started.elapsed(), failed);
    result
}

#[async_trait]
impl<S: PairStore + ?Sized> PairStore for MeasuredStore<S> {
    async fn insert(
        &self,
        client: &ClientId,
        pairs: &[(PairId, ServerPair)],
    ) -> Result<(), StoreError> {
        measure("insert", self.inner.insert(client, pairs)).await?;
        metrics::paired(pairs.len());
        Ok(())
    }

    async fn load(&self, client: &ClientId, pair: &PairId) -> Result<Option<Stored>, StoreError> {
        measure("load", self.inner.load(client, pair)).await
    }

    async fn load_recent(
        &self,
        client: &ClientId,
        pair: &PairId,
    ) -> Result<Option<Stored>, StoreError> {
        measure("load", self.inner.load_recent(client, pair)).await
    }

    async fn compare_and_set(
        &self,
        client: &ClientId,
        pair: &PairId,
        expected: &Version,
        next: &ServerPair,
    ) -> Result<bool, StoreError> {
        let work = self.inner.compare_and_set(client, pair, expected, next);
        measure("compare_and_set", work).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        measure("ping", self.inner.ping()).await
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

    fn pairs(&self) -> Option<usize> {
        self.inner.pairs()
    }
}
