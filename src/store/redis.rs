//! The Redis pair store (PROTOCOL.md §10): one Redis (or Redis Cluster, e.g. ElastiCache in
//! cluster mode) shared by every relay behind a load balancer.
//!
//! # Keys, values, commands
//!
//! A pair lives at `pqrelay:1:{<b64(id)>}:<b64(pid)>`; the braces are a Redis Cluster hash tag, so
//! all pairs of one client id share a slot and one pairing request is one `MULTI`. The value is
//! the 73-byte blob of [`StateSealer::seal`] with a fresh random salt per write, so the blob read
//! is also the pair's [`Version::Sealed`]. Idle expiry is the key's `PX` TTL, set on every write.
//!
//! - [`PairStore::load`]: one `GET`; the blob is opened with the current state secret, then with
//!   each previous one; none opening it is [`StoreError::Unreadable`] (569).
//! - [`PairStore::load_recent`] (the exchange's read): no `GET` when this relay wrote the pair
//!   last: the blob and state it wrote are remembered (`written`, bounded) and handed out once,
//!   marked [`Stored::remembered`]; if another relay wrote the pair since, the compare-and-set
//!   loses and the exchange is tried again on a fresh `GET`. An exchange on a pair this relay
//!   advanced last is then one Redis round trip; otherwise a `GET` as before.
//! - [`PairStore::compare_and_set`]: one `EVALSHA` of [`CAS_SCRIPT`] (replace the blob only if it
//!   is still the blob that was read); `redis` reloads the script after a `NOSCRIPT`.
//! - [`PairStore::insert`]: one pipelined `MULTI` of `SET key blob PX ttl`, `EXEC`.
//!
//! # Connection
//!
//! A connection is a `redis` `ConnectionManager` (single node: reconnects by itself) or cluster
//! connection (follows slots and reconnects nodes); its driver task runs on the runtime it was
//! made on. Each of Pingora's threads (one current-thread runtime each, work stealing being
//! off by default) gets a connection of its own on first use, so an exchange's round trip to
//! Redis stays on the thread that serves the request: before, every operation went through a
//! runtime of the store's own and woke two threads (about 0.6 more context switches per sealed
//! request, 3–9% of relay + redis-server CPU; docs/PERFORMANCE.md). Callers on any other
//! runtime (multi-threaded, or a test's) use the store's own small runtime (one thread,
//! `pqrelay-redis`) and its connection, so a driver task never dies with a caller's runtime
//! while in use; a thread's connection is made again when its runtime was replaced. Every
//! operation has the configured timeout. Nothing connects at construction: the relay starts
//! while Redis is down, operations fail with [`StoreError::Unavailable`] within the timeout,
//! and the store recovers by itself when Redis is back.
//!
//! Nothing here logs or returns keys, blobs, or the URL (which may carry a password).

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use pqrelay_protocol::state::{BLOB_SIZE, SALT_SIZE};
use pqrelay_protocol::{ClientId, PairId, ServerPair, StateSealer};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Script, Value};

use super::written::{Entry, Written};
use super::{PairStore, StoreConfigError, StoreError, Stored, Version};

/// Default time limit of one store operation (connecting included): `REDIS_TIMEOUT_MS`'s.
pub const DEFAULT_TIMEOUT: Duration = crate::config::load::DEFAULT_REDIS_TIMEOUT;
/// Prefix of every key: `pqrelay:2:{<b64(id)>}:<b64(pid)>`.
pub const KEY_PREFIX: &str = "pqrelay:2:";
/// How long a pair that was never used lives (PROTOCOL.md §14): a client pairs a few pairs ahead
/// and uses them within seconds; a pairing flood's pairs go away after this.
pub const UNUSED_PAIR_TTL: Duration = Duration::from_secs(10 * 60);

/// Replaces `KEYS[1]` with `ARGV[2]` (TTL `ARGV[3]` ms) only if it still holds `ARGV[1]`, and
/// marks it the most recently written pair of its client in the index `KEYS[2]` (which then
/// lives as long as its longest-lived pair).
pub const CAS_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) \
     redis.call('ZADD', KEYS[2], ARGV[4], KEYS[1]) \
     redis.call('PEXPIRE', KEYS[2], ARGV[3]) return 1 else return 0 end";

/// Stores a client's new pairs `KEYS[2..]` (blobs `ARGV[4..]`, TTL `ARGV[2]` ms) all or none:
/// -1 without writing anything when one of the keys exists (a pair id is never reused). Each is
/// added to the client's index `KEYS[1]` (score: time `ARGV[1]`), and the oldest entries beyond
/// `ARGV[3]` are dropped with their pairs, in the same step. The keys of one client share a
/// Redis Cluster slot (hash tag), so the script also runs on a cluster.
pub const INSERT_SCRIPT: &str = "for i = 2, #KEYS do \
       if redis.call('EXISTS', KEYS[i]) == 1 then return -1 end end \
     for i = 2, #KEYS do \
       redis.call('SET', KEYS[i], ARGV[i + 2], 'PX', ARGV[2]) \
       redis.call('ZADD', KEYS[1], ARGV[1], KEYS[i]) end \
     local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3]) \
     if over > 0 then \
       for _, key in ipairs(redis.call('ZRANGE', KEYS[1], 0, over - 1)) do \
         redis.call('DEL', key) end \
       redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1) end \
     if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then \
       redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
     return 1";

static CAS: LazyLock<Script> = LazyLock::new(|| Script::new(CAS_SCRIPT));
static INSERT: LazyLock<Script> = LazyLock::new(|| Script::new(INSERT_SCRIPT));

/// Settings of a [`RedisStore`]. `Debug` never shows the URL or the secrets.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://`, `rediss://` (TLS), `redis+unix://` or `unix://` URL, possibly with a password.
    pub url: String,
    /// Redis Cluster mode (ElastiCache "cluster mode enabled"): the URL names one node (e.g. the
    /// configuration endpoint); the others are discovered. `redis://` or `rediss://` only.
    pub cluster: bool,
    /// PEM file of the CA certificates that sign the server's certificate (`rediss://` only);
    /// without it the system's roots and the Mozilla roots are trusted.
    pub ca_file: Option<PathBuf>,
    /// Time limit of one operation, connecting included.
    pub timeout: Duration,
    /// Idle expiry of a pair (the key's TTL, refreshed on every write).
    pub idle: Duration,
    /// Pairs kept per client id (the oldest written are dropped beyond it).
    pub max_pairs_per_client: usize,
    /// How long a pair that was never used lives.
    pub unused: Duration,
    /// `STATE_SECRET` (UTF-8 bytes): seals every write.
    pub state_secret: Vec<u8>,
    /// Older state secrets: blobs sealed under them still open (newest first).
    pub previous_secrets: Vec<Vec<u8>>,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"(hidden)")
            .field("cluster", &self.cluster)
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .field("idle", &self.idle)
            .field("previous_secrets", &self.previous_secrets.len())
            .finish_non_exhaustive()
    }
}

impl RedisConfig {
    /// A configuration with [`DEFAULT_TIMEOUT`] and the memory store's default idle expiry
    /// ([`super::memory::DEFAULT_IDLE`], 24 h), no CA file.
    pub fn new(
        url: impl Into<String>,
        cluster: bool,
        state_secret: &[u8],
        previous_secrets: &[&[u8]],
    ) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            cluster,
            ca_file: None,
            timeout: DEFAULT_TIMEOUT,
            idle: super::memory::DEFAULT_IDLE,
            max_pairs_per_client: super::memory::POOLS_PER_CLIENT
                * crate::config::load::DEFAULT_MAX_POOL_SIZE,
            unused: UNUSED_PAIR_TTL,
            state_secret: state_secret.to_vec(),
            previous_secrets: previous_secrets.iter().map(|s| s.to_vec()).collect(),
        }
    }

    /// Checks the URL's scheme against the mode. The message never repeats the URL.
    pub fn validate(&self) -> Result<(), StoreConfigError> {
        let scheme = self.url.split("://").next().unwrap_or_default();
        let ok = match scheme {
            "redis" | "rediss" => true,
            "redis+unix" | "unix" => !self.cluster,
            _ => false,
        };
        if !ok {
            return Err(StoreConfigError(if self.cluster {
                "REDIS_URL must start with redis:// or rediss:// in cluster mode (REDIS_CLUSTER)"
                    .into()
            } else {
                "REDIS_URL must start with redis://, rediss://, redis+unix:// or unix://".into()
            }));
        }
        if self.ca_file.is_some() && scheme != "rediss" {
            return Err(StoreConfigError(
                "REDIS_CA_FILE needs a rediss:// REDIS_URL".into(),
            ));
        }
        if self.timeout.is_zero() || self.idle < Duration::from_millis(1) {
            return Err(StoreConfigError(
                "the Redis timeout and idle expiry must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// How the store makes a connection (each is lazy: it connects on first use, and its driver task
/// runs on the runtime it was made on).
#[derive(Clone)]
enum Connector {
    Single(redis::Client, ConnectionManagerConfig),
    Cluster(redis::cluster::ClusterClient, redis::cluster::ClusterConfig),
}

impl Connector {
    /// A new lazy connection; must be called inside the runtime that will drive it.
    fn connect(&self) -> Result<Conn, RedisError> {
        Ok(match self {
            Connector::Single(client, config) => Conn::Single(
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?,
            ),
            Connector::Cluster(client, config) => {
                Conn::Cluster(client.get_pending_async_connection_with_config(config.clone()))
            }
        })
    }
}

/// A connection made on this thread's runtime for a store, with two tokens: the store's
/// ([`RedisStore::token`]), and one a task of that runtime holds. When either is gone (a
/// thread may run several runtimes in turn), so is the connection.
struct LocalConn {
    store: Weak<()>,
    conn: Conn,
    runtime_alive: Arc<()>,
}

impl LocalConn {
    fn usable(&self) -> bool {
        self.store.strong_count() > 0 && Arc::strong_count(&self.runtime_alive) > 1
    }
}

/// Connections made on this thread's runtime.
type LocalConns = std::cell::RefCell<Vec<LocalConn>>;

thread_local! {
    static LOCAL_CONNS: LocalConns = const { std::cell::RefCell::new(Vec::new()) };
}

/// A connection to Redis (single node or cluster).
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Milliseconds of `d`, at least 1.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The wall clock in milliseconds: the order of the per-client index.
fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The Redis [`PairStore`]. See the [module docs](self).
pub struct RedisStore {
    /// The connection of the store's runtime.
    conn: Conn,
    /// Makes the connection of each calling thread (see [`RedisStore::run`]).
    connector: Connector,
    /// Tells this store's connections among a thread's (and whether the store still exists).
    token: Arc<()>,
    /// Runs the operations of callers outside a current-thread runtime; `None` only while
    /// dropping.
    runtime: Option<tokio::runtime::Runtime>,
    sealer: StateSealer,
    previous: Vec<StateSealer>,
    /// The blobs this relay wrote last (see the module docs).
    written: Written,
    timeout: Duration,
    ttl_ms: u64,
    unused_ms: u64,
    max_per_client: usize,
    cluster: bool,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("cluster", &self.cluster)
            .field("timeout", &self.timeout)
            .field("ttl_ms", &self.ttl_ms)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime: let it go instead.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl RedisStore {
    /// Builds the store and its runtime without connecting (see the [module docs](self)).
    /// Fails only on a configuration that cannot work (bad URL, unreadable CA, no thread).
    pub fn new(config: &RedisConfig) -> Result<RedisStore, StoreConfigError> {
        config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pqrelay-redis")
            .enable_all()
            .build()
            .map_err(|e| StoreConfigError(format!("Redis store: cannot start its thread: {e}")))?;
        let ca_pem =
            match &config.ca_file {
                Some(path) => Some(std::fs::read(path).map_err(|e| {
                    StoreConfigError(format!("REDIS_CA_FILE {}: {e}", path.display()))
                })?),
                None => None,
            };
        let bad_url = |e: RedisError| {
            StoreConfigError(format!(
                "REDIS_URL is not usable: {:?} (the URL itself is not shown)",
                e.kind()
            ))
        };
        let tls = |pem: &Vec<u8>| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        };
        let connector = {
            if config.cluster {
                let mut builder = ClusterClientBuilder::new(vec![config.url.as_str()])
                    .connection_timeout(config.timeout)
                    .response_timeout(config.timeout)
                    .retries(1)
                    .min_retry_wait(10)
                    .max_retry_wait(200);
                if let Some(pem) = &ca_pem {
                    builder = builder.certs(tls(pem));
                }
                let client = builder.build().map_err(bad_url)?;
                let cluster_config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(config.timeout)
                    .set_response_timeout(config.timeout);
                Connector::Cluster(client, cluster_config)
            } else {
                let client = match &ca_pem {
                    Some(pem) => redis::Client::build_with_tls(config.url.as_str(), tls(pem)),
                    None => redis::Client::open(config.url.as_str()),
                }
                .map_err(bad_url)?;
                // One connection attempt per reconnection: while Redis is down, calls fail fast
                // instead of queueing behind a backoff, and each call retries.
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.timeout))
                    .set_response_timeout(Some(config.timeout))
                    .set_number_of_retries(0);
                Connector::Single(client, manager_config)
            }
        };
        // The store runtime's connection: its tasks must be spawned there.
        let conn = {
            let _guard = runtime.enter();
            connector.connect().map_err(bad_url)?
        };
        Ok(RedisStore {
            conn,
            connector,
            token: Arc::new(()),
            runtime: Some(runtime),
            sealer: StateSealer::new(&config.state_secret),
            previous: config
                .previous_secrets
                .iter()
                .map(|s| StateSealer::new(s))
                .collect(),
            written: Written::new(),
            timeout: config.timeout,
            ttl_ms: millis(config.idle),
            unused_ms: millis(config.unused.min(config.idle)),
            max_per_client: config.max_pairs_per_client.max(1),
            cluster: config.cluster,
        })
    }

    /// The key of a pair: `pqrelay:2:{<b64(id)>}:<b64(pid)>`.
    pub fn key(client: &ClientId, pair: &PairId) -> String {
        format!("{KEY_PREFIX}{{{}}}:{}", client.to_b64(), pair.to_b64())
    }

    /// The index of a client's pairs: `pqrelay:2:{<b64(id)>}:index`.
    pub fn index_key(client: &ClientId) -> String {
        format!("{KEY_PREFIX}{{{}}}:index", client.to_b64())
    }

    /// Runs `op` with the timeout. On a current-thread runtime (each of Pingora's threads when
    /// work stealing is off, the default) it runs in place on a connection of that thread, so an
    /// exchange's round trip wakes no other thread; elsewhere on the store's runtime.
    pub(super) async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>> + Send + 'static,
        T: Send + 'static,
    {
        let Some(runtime) = &self.runtime else {
            return Err(StoreError::Unavailable("store closed".into()));
        };
        let timeout = self.timeout;
        let timed = match self.local_conn() {
            Some(conn) => tokio::time::timeout(timeout, op(conn)).await,
            None => {
                let work = op(self.conn.clone());
                runtime
                    .spawn(async move { tokio::time::timeout(timeout, work).await })
                    .await
                    .map_err(|_| StoreError::Unavailable("store task failed".into()))?
            }
        };
        match timed {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(unavailable(&e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    /// This thread's connection, made on first use, if the caller runs on a current-thread
    /// runtime (whose driver tasks live as long as the thread's runtime).
    fn local_conn(&self) -> Option<Conn> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let handle = Handle::try_current().ok()?;
        if handle.runtime_flavor() != RuntimeFlavor::CurrentThread {
            return None;
        }
        LOCAL_CONNS.with(|conns| {
            let mut conns = conns.borrow_mut();
            conns.retain(LocalConn::usable);
            let ours = Arc::as_ptr(&self.token);
            if let Some(local) = conns.iter().find(|c| std::ptr::eq(c.store.as_ptr(), ours)) {
                return Some(local.conn.clone());
            }
            let conn = self.connector.connect().ok()?;
            let runtime_alive = Arc::new(());
            let held = runtime_alive.clone();
            handle.spawn(async move {
                let _held = held;
                std::future::pending::<()>().await
            });
            conns.push(LocalConn {
                store: Arc::downgrade(&self.token),
                conn: conn.clone(),
                runtime_alive,
            });
            Some(conn)
        })
    }

    fn seal(
        &self,
        client: &ClientId,
        pair: &PairId,
        state: &ServerPair,
    ) -> Result<[u8; BLOB_SIZE], StoreError> {
        let mut salt = [0u8; SALT_SIZE];
        getrandom::getrandom(&mut salt)
            .map_err(|_| StoreError::Unavailable("no randomness for a state salt".into()))?;
        Ok(self.sealer.seal(client, pair, state, salt))
    }

    fn open(
        &self,
        client: &ClientId,
        pair: &PairId,
        blob: &[u8],
    ) -> Result<ServerPair, StoreError> {
        std::iter::once(&self.sealer)
            .chain(&self.previous)
            .find_map(|s| s.open(client, pair, blob).ok())
            .ok_or(StoreError::Unreadable)
    }
}

/// A Redis failure as [`StoreError::Unavailable`]: the error's kind only (server messages and
/// addresses stay out of logs and responses).
fn unavailable(e: &RedisError) -> StoreError {
    let what = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connection_refusal() {
        "connection refused".to_string()
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
        format!("connection failed ({:?})", e.kind())
    } else {
        format!("{:?}", e.kind())
    };
    StoreError::Unavailable(format!("redis: {what}"))
}

#[async_trait]
impl PairStore for RedisStore {
    async fn insert(
        &self,
        client: &ClientId,
        pairs: &[(PairId, ServerPair)],
    ) -> Result<(), StoreError> {
        if pairs.is_empty() {
            return Ok(());
        }
        if pairs.len() > self.max_per_client {
            return Err(StoreError::Full);
        }
        let mut invocation = INSERT.prepare_invoke();
        invocation
            .key(Self::index_key(client))
            .arg(now_ms())
            .arg(self.unused_ms)
            .arg(self.max_per_client);
        let mut blobs = Vec::with_capacity(pairs.len());
        for (pid, state) in pairs {
            let blob = self.seal(client, pid, state)?;
            invocation.key(Self::key(client, pid)).arg(&blob[..]);
            blobs.push(blob);
        }
        let stored: i64 = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        if stored != 1 {
            return Err(StoreError::PairIdInUse);
        }
        for ((pid, pair), blob) in pairs.iter().zip(blobs) {
            let pair = pair.clone();
            self.written.put(client, pid, Entry { blob, pair });
        }
        Ok(())
    }

    async fn load_recent(
        &self,
        client: &ClientId,
        pair: &PairId,
    ) -> Result<Option<Stored>, StoreError> {
        match self.written.take(client, pair) {
            Some(Entry { blob, pair: state }) => Ok(Some(Stored {
                pair: state,
                version: Version::Sealed(blob.to_vec()),
                remembered: true,
            })),
            None => self.load(client, pair).await,
        }
    }

    async fn load(&self, client: &ClientId, pair: &PairId) -> Result<Option<Stored>, StoreError> {
        let key = Self::key(client, pair);
        let blob: Option<Vec<u8>> = self
            .run(|mut conn| async move { redis::cmd("GET").arg(key).query_async(&mut conn).await })
            .await?;
        let Some(blob) = blob else {
            return Ok(None);
        };
        let state = self.open(client, pair, &blob)?;
        Ok(Some(Stored {
            pair: state,
            version: Version::Sealed(blob),
            remembered: false,
        }))
    }

    async fn compare_and_set(
        &self,
        client: &ClientId,
        pair: &PairId,
        expected: &Version,
        next: &ServerPair,
    ) -> Result<bool, StoreError> {
        let Version::Sealed(expected) = expected else {
            return Ok(false);
        };
        let blob = self.seal(client, pair, next)?;
        let mut invocation = CAS.prepare_invoke();
        invocation
            .key(Self::key(client, pair))
            .key(Self::index_key(client))
            .arg(expected.as_slice())
            .arg(&blob[..])
            .arg(self.ttl_ms)
            .arg(now_ms());
        let won: i64 = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        if won == 1 {
            let pair_state = next.clone();
            self.written.put(
                client,
                pair,
                Entry {
                    blob,
                    pair: pair_state,
                },
            );
        }
        Ok(won == 1)
    }

    async fn relay_keys(
        &self,
        site: &str,
        ours: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let key = format!("{KEY_PREFIX}relay-keys:{site}");
        // `SET … GET` (Redis 6.2+) announces ours and returns the previous announcement.
        let cmd = match ours {
            Some(ours) => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(&key).arg(ours).arg("GET");
                cmd
            }
            None => {
                let mut cmd = redis::cmd("GET");
                cmd.arg(&key);
                cmd
            }
        };
        self.run(|mut conn| async move { cmd.query_async::<Option<String>>(&mut conn).await })
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|mut conn| async move { redis::cmd("PING").query_async::<()>(&mut conn).await })
            .await
    }

    fn kind(&self) -> &'static str {
        if self.cluster {
            "redis-cluster"
        } else {
            "redis"
        }
    }
}
