//! The upstream balancer of a site: round-robin selection with health checks.
//!
//! `UPSTREAM` ([`UpstreamSpec`]s) names hosts, IPs or URLs; each name is resolved once at
//! startup; every address becomes a backend of one
//! `pingora-load-balancing` round-robin balancer. With more than one backend a TCP health check
//! runs every second and unhealthy backends are skipped (if all are down, they are tried anyway).
//! Connections to upstreams are pooled and reused by Pingora.

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_load_balancing::health_check::TcpHealthCheck;
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::{Backend, Backends, LoadBalancer};

use crate::config::UpstreamSpec;

/// How often backends are health-checked when there is more than one.
pub(crate) const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long an idle pooled upstream connection is kept.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The upstream set: a round-robin balancer over every resolved address.
pub(crate) struct Upstreams {
    lb: Arc<LoadBalancer<RoundRobin>>,
    /// What each backend address stands for, built once (a selection clones its peer).
    targets: HashMap<SocketAddr, Target>,
}

/// A backend: the spec it came from and its peer, ready to clone.
struct Target {
    spec: Arc<UpstreamSpec>,
    peer: HttpPeer,
}

impl Upstreams {
    /// Resolves every spec (blocking DNS, once) and builds the balancer.
    pub(crate) fn resolve(specs: &[UpstreamSpec]) -> Result<Upstreams, String> {
        let mut backends = std::collections::BTreeSet::new();
        let mut targets = HashMap::new();
        for spec in specs {
            let addrs: Vec<std::net::SocketAddr> = (spec.host.as_str(), spec.port)
                .to_socket_addrs()
                .map_err(|e| format!("upstream {spec}: cannot resolve {}: {e}", spec.host))?
                .collect();
            if addrs.is_empty() {
                return Err(format!("upstream {spec}: {} has no address", spec.host));
            }
            let spec = Arc::new(spec.clone());
            for addr in addrs {
                let addr = SocketAddr::Inet(addr);
                targets.entry(addr.clone()).or_insert_with(|| {
                    let mut peer = HttpPeer::new(addr.clone(), spec.tls, spec.host.clone());
                    peer.options.idle_timeout = Some(UPSTREAM_IDLE_TIMEOUT);
                    Target {
                        spec: spec.clone(),
                        peer,
                    }
                });
                backends.insert(Backend {
                    addr,
                    weight: 1,
                    ext: Default::default(),
                });
            }
        }
        let discovery = pingora_load_balancing::discovery::Static::new(backends);
        let mut lb = LoadBalancer::<RoundRobin>::from_backends(Backends::new(discovery));
        if targets.len() > 1 {
            let mut hc = TcpHealthCheck::new();
            hc.peer_template.options.connection_timeout = Some(Duration::from_secs(1));
            lb.set_health_check(hc);
            lb.health_check_frequency = Some(HEALTH_CHECK_INTERVAL);
            lb.parallel_health_check = true;
        }
        // Static discovery never blocks: fill the selector now so requests arriving before the
        // background service's first run find the backends.
        lb.update()
            .now_or_never()
            .ok_or("upstream discovery did not complete")?
            .map_err(|e| format!("upstream discovery failed: {e}"))?;
        Ok(Upstreams {
            lb: Arc::new(lb),
            targets,
        })
    }

    /// Number of backends (addresses).
    pub(crate) fn len(&self) -> usize {
        self.targets.len()
    }

    /// The balancer, to run as a Pingora background service (discovery and health checks).
    pub(crate) fn balancer(&self) -> Arc<LoadBalancer<RoundRobin>> {
        self.lb.clone()
    }

    /// Picks the next healthy backend (any backend if none is healthy) and builds its peer
    /// (the caller sets its timeouts: `crate::http::upstream::peer`).
    pub(crate) fn select(&self) -> Option<(Box<HttpPeer>, Arc<UpstreamSpec>)> {
        // One backend: nothing to balance or health-check (the balancer's selection allocates).
        let target = if self.len() == 1 {
            self.targets.values().next()?
        } else {
            let backend = self
                .lb
                .select(b"", 256)
                .or_else(|| self.lb.select_with(b"", 256, |_, _| true))?;
            self.targets.get(&backend.addr)?
        };
        let mut peer = Box::new(target.peer.clone());
        peer.group_key = thread_pool_group();
        Some((peer, target.spec.clone()))
    }
}

/// The connection-pool group of the calling thread, so that an upstream connection is only
/// reused by the thread that opened it.
///
/// Pingora keeps one pool for the whole process, but a connection's socket stays registered
/// with the reactor of the runtime that opened it. With one runtime per thread (work stealing
/// off, the default) a connection reused from another thread makes every read and write wake
/// a task across threads (an `eventfd` write and a context switch each). Peers with different
/// `group_key`s never share connections, so keying by thread keeps each connection's I/O on one
/// runtime; connections are still reused across requests and clients of that thread.
fn thread_pool_group() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static GROUP: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    GROUP.with(|group| *group)
}
