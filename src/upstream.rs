//! Upstreams: parsing `UPSTREAM`, round-robin selection with health checks, and the upstream
//! request's `Host` header.
//!
//! `UPSTREAM` is a host, IP or URL (`http://` or `https://`), or a comma-separated list of them.
//! Each name is resolved once at startup; every address becomes a backend of one
//! `pingora-load-balancing` round-robin balancer. With more than one backend a TCP health check
//! runs every second and unhealthy backends are skipped (if all are down, they are tried anyway).
//! Connections to upstreams are pooled and reused by Pingora.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use http::header;
use pingora_http::RequestHeader;
use pingora_proxy::Session;

use pingora_core::upstreams::peer::HttpPeer;
use pingora_load_balancing::health_check::TcpHealthCheck;
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::{Backend, Backends, LoadBalancer};

use crate::config::Config;
use crate::ctx::RequestCtx;

/// How often backends are health-checked when there is more than one.
pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Upstream connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One upstream as written in `UPSTREAM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    /// `true` for https.
    pub tls: bool,
    /// Host name or IP literal (without brackets), used for SNI and certificate checks.
    pub host: String,
    /// Port (80 / 443 when not written).
    pub port: u16,
}

impl UpstreamSpec {
    /// The value of the `Host` header sent upstream.
    pub fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for UpstreamSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{host}:{}", self.port)
    }
}

/// Parses `UPSTREAM`: one or more comma-separated hosts, IPs or URLs.
pub fn parse_upstreams(s: &str) -> Result<Vec<UpstreamSpec>, String> {
    let items: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return Err("must name at least one upstream".into());
    }
    items.into_iter().map(parse_one).collect()
}

fn parse_one(item: &str) -> Result<UpstreamSpec, String> {
    let with_scheme = if item.contains("://") {
        item.to_owned()
    } else {
        format!("http://{item}")
    };
    let uri: http::Uri = with_scheme
        .parse()
        .map_err(|_| format!("{item:?} is not a host, IP address or URL"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("{item:?}: the scheme must be http or https")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{item:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("{item:?}: user info is not supported"));
    }
    if !(uri.path().is_empty() || uri.path() == "/") || uri.query().is_some() {
        return Err(format!(
            "{item:?}: a path is not supported; give the upstream's origin (scheme://host[:port])"
        ));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{item:?} has no host"));
    }
    Ok(UpstreamSpec {
        tls,
        host: host.to_ascii_lowercase(),
        port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
    })
}

/// The upstream set: a round-robin balancer over every resolved address.
pub struct Upstreams {
    lb: Arc<LoadBalancer<RoundRobin>>,
    /// Number of backends (addresses).
    pub len: usize,
}

/// Annotation of a backend: which spec it came from.
#[derive(Debug, Clone)]
struct Target(Arc<UpstreamSpec>);

impl Upstreams {
    /// Resolves every spec (blocking DNS, once) and builds the balancer.
    pub fn resolve(specs: &[UpstreamSpec]) -> Result<Upstreams, String> {
        let mut backends = std::collections::BTreeSet::new();
        for spec in specs {
            let addrs: Vec<SocketAddr> = (spec.host.as_str(), spec.port)
                .to_socket_addrs()
                .map_err(|e| format!("upstream {spec}: cannot resolve {}: {e}", spec.host))?
                .collect();
            if addrs.is_empty() {
                return Err(format!("upstream {spec}: {} has no address", spec.host));
            }
            let spec = Arc::new(spec.clone());
            for addr in addrs {
                let mut b = Backend {
                    addr: pingora_core::protocols::l4::socket::SocketAddr::Inet(addr),
                    weight: 1,
                    ext: Default::default(),
                };
                b.ext.insert(Target(spec.clone()));
                backends.insert(b);
            }
        }
        let len = backends.len();
        let discovery = pingora_load_balancing::discovery::Static::new(backends);
        let mut lb = LoadBalancer::<RoundRobin>::from_backends(Backends::new(discovery));
        if len > 1 {
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
            len,
        })
    }

    /// The balancer, to run as a Pingora background service (discovery and health checks).
    pub fn balancer(&self) -> Arc<LoadBalancer<RoundRobin>> {
        self.lb.clone()
    }

    /// Picks the next healthy backend (any backend if none is healthy) and builds its peer.
    pub fn select(&self) -> Option<(Box<HttpPeer>, Arc<UpstreamSpec>)> {
        let backend = self
            .lb
            .select(b"", 256)
            .or_else(|| self.lb.select_with(b"", 256, |_, _| true))?;
        let spec = backend.ext.get::<Target>()?.0.clone();
        let mut peer = HttpPeer::new(backend.addr.clone(), spec.tls, spec.host.clone());
        peer.options.connection_timeout = Some(CONNECT_TIMEOUT);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        peer.group_key = thread_pool_group();
        Some((Box::new(peer), spec))
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

/// Rewrites the upstream request: `Host` names the chosen upstream, `X-Forwarded-For`,
/// `X-Forwarded-Proto` and `X-Forwarded-Host` describe the client's request, and `HEADERS` are
/// added.
pub fn prepare_request(
    config: &Config,
    session: &Session,
    req: &mut RequestHeader,
    ctx: &RequestCtx,
) -> pingora_error::Result<()> {
    if let Some(spec) = &ctx.upstream {
        if let Some(host) = req.headers.get(header::HOST).cloned() {
            req.insert_header("x-forwarded-host", host)?;
        }
        req.insert_header(header::HOST, spec.host_header())?;
    }
    if let Some(addr) = session.client_addr().and_then(|a| a.as_inet()) {
        let ip = addr.ip().to_string();
        let xff = match req
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
            _ => ip,
        };
        req.insert_header("x-forwarded-for", xff)?;
    }
    if !req.headers.contains_key("x-forwarded-proto") {
        req.insert_header("x-forwarded-proto", "http")?;
    }
    for (k, v) in &config.headers {
        req.insert_header(k.clone(), v.clone())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ips_and_urls() {
        let v = parse_upstreams("https://api.my-company.com, 10.0.0.2:3000,localhost").unwrap();
        assert_eq!(
            v[0],
            UpstreamSpec {
                tls: true,
                host: "api.my-company.com".into(),
                port: 443
            }
        );
        assert_eq!(v[1].port, 3000);
        assert!(!v[1].tls);
        assert_eq!(v[2].port, 80);
        assert_eq!(v[1].host_header(), "10.0.0.2:3000");
        assert_eq!(v[0].host_header(), "api.my-company.com");
    }

    #[test]
    fn rejects_paths_schemes_and_empty() {
        assert!(parse_upstreams("").is_err());
        assert!(parse_upstreams("ftp://x").is_err());
        assert!(parse_upstreams("http://x/api").is_err());
        assert!(parse_upstreams("http://u:p@x").is_err());
    }

    #[test]
    fn ipv6_literal() {
        let v = parse_upstreams("http://[::1]:8081").unwrap();
        assert_eq!(v[0].host, "::1");
        assert_eq!(v[0].host_header(), "[::1]:8081");
    }
}
