//! The Redis backend of outbound state ([`OutboundBackend`]): the same Redis (or Redis
//! Cluster) as the relay-side pairs, its own connection. Every operation is one command:
//! `GET`, `SET NX PX`, the compare-and-set script [`CAS_SCRIPT`], `LPOP`, `DEL`, and a
//! `MULTI` of `RPUSH` + `PEXPIRE`. All keys of one remote relay share a hash tag.

use async_trait::async_trait;
use redis::{Script, Value};

use super::outbound::{OutboundBackend, RECORD_TTL};
use super::redis::RedisStore;
use super::{RedisConfig, StoreConfigError, StoreError};

/// Replaces `KEYS[1]` with `ARGV[2]` (TTL `ARGV[3]` ms) only if it still holds `ARGV[1]`.
/// (The relay-side pair script of [`super::redis`] also maintains a client's index; outbound
/// records have none.)
const CAS_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 else return 0 end";

/// Outbound state in Redis.
#[derive(Debug)]
pub struct OutboundRedis {
    store: RedisStore,
    cas: Script,
}

impl OutboundRedis {
    /// Builds the backend without connecting (see [`RedisStore::new`]).
    pub fn new(config: &RedisConfig) -> Result<OutboundRedis, StoreConfigError> {
        Ok(OutboundRedis {
            store: RedisStore::new(config)?,
            cas: Script::new(CAS_SCRIPT),
        })
    }
}

fn ttl_ms() -> u64 {
    u64::try_from(RECORD_TTL.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl OutboundBackend for OutboundRedis {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let cmd = redis::cmd("GET").arg(key).clone();
        self.store
            .run(|mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    async fn put_if_absent(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        let cmd = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms())
            .clone();
        let answer: Value = self
            .store
            .run(|mut c| async move { cmd.query_async(&mut c).await })
            .await?;
        Ok(!matches!(answer, Value::Nil))
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        next: &[u8],
    ) -> Result<bool, StoreError> {
        let script = self.cas.clone();
        let (key, expected, next) = (key.to_owned(), expected.to_vec(), next.to_vec());
        let set: i64 = self
            .store
            .run(|mut c| async move {
                script
                    .key(key)
                    .arg(expected)
                    .arg(next)
                    .arg(ttl_ms())
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(set == 1)
    }

    async fn pop(&self, list: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let cmd = redis::cmd("LPOP").arg(list).clone();
        self.store
            .run(|mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    async fn push(&self, list: &str, items: Vec<Vec<u8>>) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("RPUSH")
            .arg(list)
            .arg(items)
            .ignore()
            .cmd("PEXPIRE")
            .arg(list)
            .arg(ttl_ms())
            .ignore();
        self.store
            .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let cmd = redis::cmd("DEL").arg(key).clone();
        self.store
            .run(|mut c| async move { cmd.query_async::<()>(&mut c).await })
            .await
    }
}
