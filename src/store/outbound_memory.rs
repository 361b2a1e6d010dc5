//! The memory backend of outbound state ([`OutboundBackend`]): one process, the default
//! without `REDIS_URL`. Keys expire [`RECORD_TTL`] after their last write.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::outbound::{OutboundBackend, RECORD_TTL};
use super::StoreError;

enum Value {
    Bytes(Vec<u8>),
    List(VecDeque<Vec<u8>>),
}

struct Entry {
    value: Value,
    expires: Instant,
}

/// Outbound state in this process's memory.
#[derive(Default)]
pub struct OutboundMemory {
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for OutboundMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutboundMemory(..)")
    }
}

impl OutboundMemory {
    /// Runs `f` on the live entry of `key` (an expired one is removed first).
    fn with<T>(&self, key: &str, f: impl FnOnce(&mut HashMap<String, Entry>) -> T) -> T {
        let mut entries = self.entries.lock();
        if entries
            .get(key)
            .is_some_and(|e| e.expires <= Instant::now())
        {
            entries.remove(key);
        }
        f(&mut entries)
    }

    fn bytes(value: &[u8]) -> Entry {
        Entry {
            value: Value::Bytes(value.to_vec()),
            expires: Instant::now() + RECORD_TTL,
        }
    }
}

#[async_trait]
impl OutboundBackend for OutboundMemory {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(key, |m| match m.get(key).map(|e| &e.value) {
            Some(Value::Bytes(b)) => Some(b.clone()),
            _ => None,
        }))
    }

    async fn put_if_absent(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        Ok(self.with(key, |m| {
            if m.contains_key(key) {
                return false;
            }
            m.insert(key.to_owned(), Self::bytes(value));
            true
        }))
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        next: &[u8],
    ) -> Result<bool, StoreError> {
        Ok(self.with(key, |m| match m.get(key).map(|e| &e.value) {
            Some(Value::Bytes(b)) if b.as_slice() == expected => {
                m.insert(key.to_owned(), Self::bytes(next));
                true
            }
            _ => false,
        }))
    }

    async fn pop(&self, list: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            self.with(list, |m| match m.get_mut(list).map(|e| &mut e.value) {
                Some(Value::List(items)) => items.pop_front(),
                _ => None,
            }),
        )
    }

    async fn push(&self, list: &str, items: Vec<Vec<u8>>) -> Result<(), StoreError> {
        self.with(list, |m| {
            let entry = m.entry(list.to_owned()).or_insert_with(|| Entry {
                value: Value::List(VecDeque::new()),
                expires: Instant::now(),
            });
            entry.expires = Instant::now() + RECORD_TTL;
            match &mut entry.value {
                Value::List(l) => l.extend(items),
                other => *other = Value::List(items.into()),
            }
        });
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.entries.lock().remove(key);
        Ok(())
    }
}
