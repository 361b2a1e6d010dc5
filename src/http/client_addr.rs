//! The client's address (docs/SECURITY.md "Client addresses"): what the per-IP limits count,
//! the access log names and the upstream's `X-Forwarded-For` reports.
//!
//! - The peer is the TCP peer, or with `PROXY_PROTOCOL` the source address of the connection's
//!   PROXY header ([`super::deadline`] reads it and makes it the peer).
//! - An untrusted peer is the client; its `X-Forwarded-For` and `X-Forwarded-Proto` are
//!   ignored (anyone can write them).
//! - A peer in `TRUSTED_PROXIES` reported the address that connected to it as the rightmost
//!   `X-Forwarded-For` entry; while that address is trusted too, the walk goes on leftwards.
//!   The client is the first untrusted address (the leftmost when all are trusted, or the
//!   last good one before an entry that is not an address). Everything left of it was written
//!   by the client and is dropped.
//! - The upstream gets `X-Forwarded-For: <client>, <trusted hops…>, <peer>` (only the peer for
//!   an untrusted one) and `X-Forwarded-Proto` from a trusted peer, else the relay's own
//!   scheme.
//!
//! [`LoadBalancerHint`] watches the first requests: per-IP limits on, no `TRUSTED_PROXIES` nor
//! `PROXY_PROTOCOL`, and at most a handful of addresses among the first 1000 requests: the limits probably
//! count a load balancer, and one warning says so.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use pingora_http::RequestHeader;
use pingora_proxy::Session;

use crate::config::{Config, TrustedProxies};

/// How many requests [`LoadBalancerHint`] looks at.
pub(crate) const HINT_REQUESTS: u32 = 1000;
/// At most this many distinct addresses among [`HINT_REQUESTS`] requests look like a
/// load balancer's.
pub(crate) const HINT_MAX_ADDRESSES: usize = 4;

/// Where a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientAddr {
    /// The client: the peer, or the first untrusted address behind trusted proxies.
    pub ip: IpAddr,
    /// The connection's peer.
    pub peer: IpAddr,
    /// The addresses from the client to the peer (the client first, the peer last).
    chain: Vec<IpAddr>,
    /// `X-Forwarded-Proto` as a trusted peer reported it.
    proto: Option<&'static str>,
}

impl ClientAddr {
    /// The client of a request from `peer` carrying these `X-Forwarded-For` values (in header
    /// order) and this `X-Forwarded-Proto`.
    pub(crate) fn resolve<'a>(
        trusted: &TrustedProxies,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
        forwarded_proto: Option<&str>,
    ) -> ClientAddr {
        let peer = peer.to_canonical();
        let mut chain = vec![peer];
        let mut proto = None;
        if trusted.contains(peer) {
            let entries: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
            for entry in entries.iter().rev() {
                let Some(ip) = parse_entry(entry) else {
                    break;
                };
                chain.push(ip);
                if !trusted.contains(ip) {
                    break;
                }
            }
            chain.reverse();
            proto = forwarded_proto.and_then(parse_proto);
        }
        ClientAddr {
            ip: chain.first().copied().unwrap_or(peer),
            peer,
            chain,
            proto,
        }
    }

    /// The upstream's `X-Forwarded-For`: the client, the trusted hops, the peer.
    pub(crate) fn forwarded_for(&self) -> String {
        use std::fmt::Write as _;
        let mut value = String::with_capacity(self.chain.len() * 17);
        for (i, hop) in self.chain.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(value, "{sep}{hop}");
        }
        value
    }

    /// The upstream's `X-Forwarded-Proto`: a trusted peer's, else `own` (the listener's).
    pub(crate) fn forwarded_proto(&self, own: &'static str) -> &'static str {
        self.proto.unwrap_or(own)
    }

    /// Whether the client is not the peer (it was named by trusted proxies).
    pub(crate) fn is_forwarded(&self) -> bool {
        self.chain.len() > 1
    }
}

/// One `X-Forwarded-For` entry: an address, optionally `[v6]:port` or `v4:port`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<IpAddr>().ok()
        })?;
    Some(ip.to_canonical())
}

/// The first `X-Forwarded-Proto` value, when it is `http` or `https`.
fn parse_proto(value: &str) -> Option<&'static str> {
    let first = value.split(',').next()?.trim();
    if first.eq_ignore_ascii_case("https") {
        Some("https")
    } else if first.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// The client of the session's request; `None` when the connection has no IP peer.
pub(crate) fn of_session(trusted: &TrustedProxies, session: &Session) -> Option<ClientAddr> {
    let peer = session.client_addr()?.as_inet()?.ip();
    Some(of_request(trusted, peer, session.req_header()))
}

/// The client of `req`, received from `peer`.
pub(crate) fn of_request(
    trusted: &TrustedProxies,
    peer: IpAddr,
    req: &RequestHeader,
) -> ClientAddr {
    let xff = req
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>();
    let xfp = req
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok());
    ClientAddr::resolve(trusted, peer, xff.into_iter(), xfp)
}

/// The relay's own scheme for `X-Forwarded-Proto`: `https` on a TLS connection.
pub(crate) fn own_scheme(session: &Session) -> &'static str {
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    if tls {
        "https"
    } else {
        "http"
    }
}

/// Counts the distinct client addresses of the first [`HINT_REQUESTS`] requests.
#[derive(Debug, Default)]
pub(crate) struct LoadBalancerHint {
    requests: u32,
    seen: Vec<IpAddr>,
}

impl LoadBalancerHint {
    /// Counts a request from `ip`; `Some(distinct addresses)` once, at the last request
    /// looked at, when there were at most [`HINT_MAX_ADDRESSES`].
    pub(crate) fn observe(&mut self, ip: IpAddr) -> Option<usize> {
        if self.requests >= HINT_REQUESTS {
            return None;
        }
        self.requests += 1;
        if self.seen.len() <= HINT_MAX_ADDRESSES && !self.seen.contains(&ip) {
            self.seen.push(ip);
        }
        (self.requests == HINT_REQUESTS && self.seen.len() <= HINT_MAX_ADDRESSES)
            .then_some(self.seen.len())
    }

    /// Whether it has seen all it looks at.
    fn done(&self) -> bool {
        self.requests >= HINT_REQUESTS
    }
}

static HINT: Mutex<LoadBalancerHint> = Mutex::new(LoadBalancerHint {
    requests: 0,
    seen: Vec::new(),
});
static HINT_DONE: AtomicBool = AtomicBool::new(false);

/// Counts a request's client for the load-balancer warning (only while per-IP limits are on
/// and neither `TRUSTED_PROXIES` nor `PROXY_PROTOCOL` is set; cheap once the first
/// [`HINT_REQUESTS`] requests are seen).
pub(crate) fn observe(config: &Config, client: &ClientAddr) {
    if HINT_DONE.load(Ordering::Relaxed)
        || config.limits.pair_rate_per_ip == 0
        || !config.trusted_proxies.is_empty()
        || config.proxy_protocol
    {
        return;
    }
    let mut hint = HINT.lock();
    if let Some(n) = hint.observe(client.ip) {
        log::warn!(
            "the first {HINT_REQUESTS} requests came from only {n} address(es): per-IP limits \
             (PAIR_RATE_PER_IP) probably count a load balancer, not clients; set \
             TRUSTED_PROXIES to the load balancer's addresses (or PROXY_PROTOCOL=true behind \
             an NLB)"
        );
    }
    if hint.done() {
        HINT_DONE.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(cidrs: &[&str]) -> TrustedProxies {
        let items: Vec<String> = cidrs.iter().map(|s| s.to_string()).collect();
        TrustedProxies::parse(&items).unwrap()
    }

    fn resolve(t: &TrustedProxies, peer: &str, xff: &[&str], xfp: Option<&str>) -> ClientAddr {
        ClientAddr::resolve(t, peer.parse().unwrap(), xff.iter().copied(), xfp)
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let t = trusted(&["10.0.0.0/8"]);
        let c = resolve(&t, "203.0.113.9", &["1.2.3.4"], Some("https"));
        assert_eq!(c.ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(c.forwarded_for(), "203.0.113.9");
        assert_eq!(c.forwarded_proto("http"), "http");
        assert!(!c.is_forwarded());
        let none = resolve(&TrustedProxies::default(), "10.0.0.1", &["1.2.3.4"], None);
        assert_eq!(none.forwarded_for(), "10.0.0.1");
    }

    #[test]
    fn trusted_hops_are_walked_right_to_left_to_the_first_untrusted_address() {
        let t = trusted(&["10.0.0.0/8"]);
        let c = resolve(
            &t,
            "10.0.0.1",
            &["6.6.6.6, 198.51.100.7", "10.1.1.1"],
            Some("https, http"),
        );
        assert_eq!(c.ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(c.forwarded_for(), "198.51.100.7, 10.1.1.1, 10.0.0.1");
        assert_eq!(c.forwarded_proto("http"), "https");
        assert!(c.is_forwarded());
        // All trusted: the leftmost.
        let c = resolve(&t, "10.0.0.1", &["10.9.9.9, 10.1.1.1"], None);
        assert_eq!(c.ip, "10.9.9.9".parse::<IpAddr>().unwrap());
        assert_eq!(c.forwarded_for(), "10.9.9.9, 10.1.1.1, 10.0.0.1");
        // No header: the peer itself.
        let c = resolve(&t, "10.0.0.1", &[], Some("gopher"));
        assert_eq!(c.forwarded_for(), "10.0.0.1");
        assert_eq!(c.forwarded_proto("http"), "http", "only http or https");
    }

    #[test]
    fn garbage_entries_stop_the_walk_and_ports_and_mapped_addresses_are_understood() {
        let t = trusted(&["10.0.0.0/8"]);
        let c = resolve(&t, "10.0.0.1", &["1.1.1.1, unknown, 10.2.2.2"], None);
        assert_eq!(c.ip, "10.2.2.2".parse::<IpAddr>().unwrap());
        assert_eq!(c.forwarded_for(), "10.2.2.2, 10.0.0.1");
        let c = resolve(&t, "::ffff:10.0.0.1", &["[2001:db8::5]:443"], None);
        assert_eq!(c.forwarded_for(), "2001:db8::5, 10.0.0.1");
        let c = resolve(&t, "10.0.0.1", &["192.0.2.1:5678"], None);
        assert_eq!(c.ip, "192.0.2.1".parse::<IpAddr>().unwrap());
        for junk in ["", ",,,", " , x", "\u{7f}", "[", "[::1", "1.2.3.4:99999"] {
            let c = resolve(&t, "10.0.0.1", &[junk], None);
            assert_eq!(c.forwarded_for(), "10.0.0.1", "{junk:?}");
        }
    }

    #[test]
    fn the_load_balancer_hint_fires_once_for_few_addresses() {
        let mut h = LoadBalancerHint::default();
        let ips: Vec<IpAddr> = (1..=4).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        let fired: Vec<usize> = (0..HINT_REQUESTS + 50)
            .filter_map(|i| h.observe(ips[i as usize % 4]))
            .collect();
        assert_eq!(fired, [4]);
        let mut h = LoadBalancerHint::default();
        let fired = (0..HINT_REQUESTS + 50)
            .filter_map(|i| h.observe(IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8])))
            .count();
        assert_eq!(fired, 0, "many addresses: no warning");
    }
}
