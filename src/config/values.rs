//! Configuration values: the parsed forms of what a setting holds (route patterns, upstreams,
//! origins, host names, secrets). Plain data and pure parsers, no I/O.

use std::fmt;

use pqrelay_protocol::KeyId;

/// A secret string: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The secret itself. Use only to compute with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A masked description such as `******** (32 chars)`.
    pub fn masked(&self) -> String {
        format!("******** ({} chars)", self.0.chars().count())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (CloudWatch Logs Insights friendly).
    Json,
}

impl LogFormat {
    /// The configuration spelling (`text`, `json`).
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// A route pattern from `PASS_THROUGH_ROUTES` or `MTE_ROUTES`.
///
/// Matched against the path without the query. A trailing `*` matches any rest of the path
/// (`/api/v1/*` matches `/api/v1/x/y`, and `/api/v1` itself); a `*` elsewhere matches exactly
/// one segment (`/users/*/profile`); anything else must match exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    raw: String,
    segments: Vec<String>,
    prefix: bool,
}

impl RoutePattern {
    /// Parses a pattern; it must start with `/`.
    pub fn parse(s: &str) -> Result<RoutePattern, &'static str> {
        let Some(rest) = s.strip_prefix('/') else {
            return Err("a route must start with /");
        };
        if s.contains('?') || s.contains('#') {
            return Err("a route must not contain a query or fragment");
        }
        let mut segments: Vec<String> = rest.split('/').map(str::to_owned).collect();
        let prefix = segments.last().is_some_and(|l| l == "*");
        if prefix {
            segments.pop();
        }
        if segments.iter().any(|seg| seg.contains('*') && seg != "*") {
            return Err("`*` must stand for a whole segment (e.g. /api/*/items or /api/*)");
        }
        Ok(RoutePattern {
            raw: s.to_owned(),
            segments,
            prefix,
        })
    }

    /// Whether `path` (without query) matches.
    pub fn matches(&self, path: &str) -> bool {
        let rest = path.strip_prefix('/').unwrap_or(path);
        let mut parts: Vec<&str> = rest.split('/').collect();
        if self.prefix {
            // "/api/v1/*" matches "/api/v1", "/api/v1/" and anything below.
            if parts.last() == Some(&"") && parts.len() > self.segments.len() {
                parts.pop();
            }
            parts.len() >= self.segments.len() && segments_match(&self.segments, &parts)
        } else {
            parts.len() == self.segments.len() && segments_match(&self.segments, &parts)
        }
    }
}

fn segments_match(pattern: &[String], parts: &[&str]) -> bool {
    pattern
        .iter()
        .zip(parts)
        .all(|(p, s)| (p == "*" && !s.is_empty()) || p == s)
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Whether any pattern matches `path`.
pub fn matches_any(patterns: &[RoutePattern], path: &str) -> bool {
    patterns.iter().any(|p| p.matches(path))
}

/// One upstream as written in `UPSTREAM` (or a remote relay of `OUTBOUND_UPSTREAMS`).
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
        let host = Bracketed(&self.host);
        if self.port == default {
            host.to_string()
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// A host as a URL or `Host` header spells it: an IPv6 literal in brackets.
struct Bracketed<'a>(&'a str);

impl fmt::Display for Bracketed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.contains(':') {
            write!(f, "[{}]", self.0)
        } else {
            f.write_str(self.0)
        }
    }
}

impl fmt::Display for UpstreamSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", Bracketed(&self.host), self.port)
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
    items.into_iter().map(parse_upstream).collect()
}

fn parse_upstream(item: &str) -> Result<UpstreamSpec, String> {
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

/// A remote relay of `OUTBOUND_UPSTREAMS`: its origin and the relay keys it is pinned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRelay {
    /// The remote relay's origin.
    pub spec: UpstreamSpec,
    /// Fingerprints it must present (none: trust on first use, PROTOCOL.md §13).
    pub pins: Vec<KeyId>,
}

/// Parses `OUTBOUND_UPSTREAMS` entries: `origin` or `origin;pin=sha256:…` (pins repeatable).
pub fn parse_remote_relays(items: &[String]) -> Result<Vec<RemoteRelay>, String> {
    items
        .iter()
        .map(|item| {
            let mut parts = item.split(';').map(str::trim);
            let origin = parts.next().unwrap_or_default();
            let spec = match parse_upstreams(origin)?.as_slice() {
                [one] => one.clone(),
                _ => return Err(format!("{item:?} must name one remote relay")),
            };
            let pins = parts
                .map(|p| {
                    let fp = p.strip_prefix("pin=").ok_or_else(|| {
                        format!("{item:?}: after the origin only pin=sha256:… may follow")
                    })?;
                    KeyId::parse_fingerprint(fp).map_err(|_| {
                        format!("{fp:?} is not a fingerprint (sha256: and 43 characters)")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RemoteRelay { spec, pins })
        })
        .collect()
}

/// `scheme://host[:port]`, lower-cased, without a trailing slash.
pub fn normalize_origin(s: &str) -> Result<String, &'static str> {
    if s == "*" {
        return Err("wildcard origins are not allowed; list each origin");
    }
    let s = s.strip_suffix('/').unwrap_or(s);
    let uri: http::Uri = s
        .parse()
        .map_err(|_| "is not an origin such as https://www.example.com")?;
    let scheme = uri.scheme_str().map(str::to_ascii_lowercase);
    if !matches!(scheme.as_deref(), Some("http") | Some("https")) {
        return Err("must start with http:// or https://");
    }
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        return Err("must be an origin (scheme://host[:port]) without a path");
    }
    let authority = uri
        .authority()
        .ok_or("is not an origin such as https://www.example.com")?;
    if authority.as_str().contains('@') {
        return Err("must not contain user info");
    }
    Ok(format!(
        "{}://{}",
        scheme.unwrap_or_default(),
        authority.as_str().to_ascii_lowercase()
    ))
}

/// A host name as matched against `DOMAIN_MAP`: lowercase, no port, no trailing dot. `None`
/// when it is not one.
pub fn normalize_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let host = if raw.starts_with('[') {
        // An IPv6 literal, with or without port.
        &raw[..raw.find(']')? + 1]
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    ok.then_some(host)
}

/// `TRUSTED_PROXIES`: the networks of the load balancers and proxies in front of the relay,
/// whose forwarding headers are believed. Empty: none is (the TCP peer is the client).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/16`, `2001:db8::/32`) or single addresses (a /32 or /128).
    pub fn parse(items: &[String]) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for item in items {
            let net = match item.parse::<ipnet::IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match item.parse::<std::net::IpAddr>() {
                    Ok(ip) => ipnet::IpNet::from(ip.to_canonical()),
                    Err(_) => {
                        return Err(format!(
                            "{item:?} is not a CIDR (for example 10.0.0.0/16) or an IP address"
                        ))
                    }
                },
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    /// The networks, as CIDRs.
    pub fn cidrs(&self) -> Vec<String> {
        self.0.iter().map(|n| n.to_string()).collect()
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` (an IPv4-mapped IPv6 address counts as its IPv4 address) is trusted.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cidrs().join(","))
    }
}

/// Whether `s` looks like an AWS region name (`us-east-1`, `ap-southeast-2`).
pub fn is_aws_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let Some((last, words)) = parts.split_last() else {
        return false;
    };
    parts.len() >= 3
        && words
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && !last.is_empty()
        && last.bytes().all(|b| b.is_ascii_digit())
}

/// Hides the password of a URL such as `redis://user:pass@host:6379`.
pub fn mask_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***@{}", &url[..s + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RoutePattern {
        RoutePattern::parse(s).unwrap()
    }

    #[test]
    fn exact_routes_match_exactly() {
        assert!(p("/health").matches("/health"));
        assert!(!p("/health").matches("/health/x"));
        assert!(!p("/health").matches("/healthz"));
    }

    #[test]
    fn trailing_star_is_a_prefix() {
        let r = p("/api/v1/*");
        assert!(r.matches("/api/v1/x"));
        assert!(r.matches("/api/v1/x/y"));
        assert!(r.matches("/api/v1"));
        assert!(r.matches("/api/v1/"));
        assert!(!r.matches("/api/v2/x"));
        assert!(!r.matches("/api/v10/x"));
        assert!(p("/*").matches("/anything/at/all"));
    }

    #[test]
    fn inner_star_is_one_segment() {
        let r = p("/users/*/profile");
        assert!(r.matches("/users/42/profile"));
        assert!(!r.matches("/users/profile"));
        assert!(!r.matches("/users/4/2/profile"));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert!(RoutePattern::parse("health").is_err());
        assert!(RoutePattern::parse("/api/v*").is_err());
        assert!(RoutePattern::parse("/a?b").is_err());
    }

    #[test]
    fn upstreams_parse_hosts_ips_and_urls() {
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
    fn upstreams_refuse_paths_schemes_and_empty() {
        assert!(parse_upstreams("").is_err());
        assert!(parse_upstreams("ftp://x").is_err());
        assert!(parse_upstreams("http://x/api").is_err());
        assert!(parse_upstreams("http://u:p@x").is_err());
    }

    #[test]
    fn upstreams_take_ipv6_literals() {
        let v = parse_upstreams("http://[::1]:8081").unwrap();
        assert_eq!(v[0].host, "::1");
        assert_eq!(v[0].host_header(), "[::1]:8081");
    }

    #[test]
    fn remote_relays_take_pins() {
        let fp = "sha256:47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU";
        let items = [
            format!("https://b.example;pin={fp};pin={fp}"),
            "http://c:81".into(),
        ];
        let remotes = parse_remote_relays(&items).unwrap();
        assert_eq!(remotes[0].pins.len(), 2);
        assert_eq!(remotes[0].pins[0].fingerprint(), fp);
        assert!(remotes[1].pins.is_empty());
        assert!(parse_remote_relays(&["https://b.example;pin=md5:x".into()]).is_err());
        assert!(parse_remote_relays(&["https://b.example;other".into()]).is_err());
    }

    #[test]
    fn origins_are_normalised_and_wildcards_rejected() {
        assert_eq!(
            normalize_origin("https://WWW.Example.com/").unwrap(),
            "https://www.example.com"
        );
        assert!(normalize_origin("*").is_err());
        assert!(normalize_origin("https://x.com/path").is_err());
        assert!(normalize_origin("ftp://x.com").is_err());
    }

    #[test]
    fn hosts_lose_port_case_and_trailing_dot() {
        assert_eq!(
            normalize_host("A.Example.COM:8443").unwrap(),
            "a.example.com"
        );
        assert_eq!(normalize_host("a.example.com.").unwrap(), "a.example.com");
        assert_eq!(normalize_host("[::1]:80").unwrap(), "[::1]");
        assert!(normalize_host("").is_none());
        assert!(normalize_host("a/b").is_none());
    }

    #[test]
    fn trusted_proxies_take_cidrs_and_addresses() {
        let items = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let t =
            TrustedProxies::parse(&items(&["10.0.0.0/16", "192.0.2.7", "2001:db8::/32"])).unwrap();
        for ip in ["10.0.255.1", "192.0.2.7", "::ffff:10.0.0.1", "2001:db8::1"] {
            assert!(t.contains(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.1.0.1", "192.0.2.8", "2001:db9::1"] {
            assert!(!t.contains(ip.parse().unwrap()), "{ip}");
        }
        assert_eq!(t.to_string(), "10.0.0.0/16,192.0.2.7/32,2001:db8::/32");
        for bad in ["10.0.0.0/33", "10.0.0", "example.com", "10.0.0.0/"] {
            assert!(TrustedProxies::parse(&items(&[bad])).is_err(), "{bad}");
        }
        assert!(TrustedProxies::default().is_empty());
    }

    #[test]
    fn regions_and_masking() {
        assert!(is_aws_region("us-east-1"));
        assert!(is_aws_region("ap-southeast-2"));
        assert!(!is_aws_region("useast1"));
        assert_eq!(mask_url("redis://u:p@h:6379"), "redis://***@h:6379");
        assert_eq!(mask_url("redis://h:6379"), "redis://h:6379");
    }
}
