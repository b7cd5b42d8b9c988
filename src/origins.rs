//! Which origin serves a request: one upstream client per `[[origin]]` host from the
//! configuration file, and the default `--origin` for every other host. Without a default, a
//! request for a host nobody configured gets `421 Misdirected Request` (RFC 9110 section
//! 15.5.20: this server does not answer for that authority), never another site's pages.

use http::{StatusCode, Uri};

use crate::body::{self, Body};
use crate::revalidate::sites::SiteForwarding;
use crate::upstream::Upstream;

/// One `[[origin]]`: requests whose `Host` is `host` go to `url`; its revalidations are told
/// to `forwarding` when that is enabled.
#[derive(Debug, Clone)]
pub struct HostOrigin {
    /// Lowercase; with a port it matches only that port, without one it matches any port.
    pub host: String,
    pub url: Uri,
    pub forwarding: SiteForwarding,
}

/// The upstream clients, by host.
#[derive(Clone)]
pub struct Origins {
    default: Option<Upstream>,
    by_host: Vec<(String, Upstream)>,
}

impl Origins {
    pub fn single(upstream: Upstream) -> Origins {
        Origins {
            default: Some(upstream),
            by_host: Vec::new(),
        }
    }

    /// `default` serves hosts not listed; at least one of the two must be given (the
    /// configuration guarantees it), else every request is answered 421.
    pub fn new(default: Option<Upstream>, by_host: Vec<(String, Upstream)>) -> Origins {
        Origins { default, by_host }
    }

    /// The origin for a request's `Host` (case-insensitive; a configured host without a port
    /// matches any port).
    pub fn for_host(&self, host: &str) -> Option<&Upstream> {
        if !self.by_host.is_empty() {
            let host = host.to_ascii_lowercase();
            let bare = strip_port(&host);
            let found = self
                .by_host
                .iter()
                .find(|(h, _)| *h == host)
                .or_else(|| self.by_host.iter().find(|(h, _)| h == bare));
            if let Some((_, upstream)) = found {
                return Some(upstream);
            }
        }
        self.default.as_ref()
    }

    /// The configured hosts, in configuration order (for error messages).
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.by_host.iter().map(|(host, _)| host.as_str())
    }

    /// The default origin, else the first configured host's (for readiness checks).
    pub fn primary(&self) -> Option<&Upstream> {
        self.default
            .as_ref()
            .or_else(|| self.by_host.first().map(|(_, u)| u))
    }
}

/// `host:port` -> `host` (IPv6 literals in brackets keep their colons).
pub fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

/// The answer for a host no origin is configured for.
pub fn misdirected(host: &str) -> Response {
    body::text(
        StatusCode::MISDIRECTED_REQUEST,
        &format!("421 Misdirected Request: no origin is configured for host {host:?}"),
    )
}

type Response = http::Response<Body>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn upstream(url: &str) -> Upstream {
        Upstream::new(&url.parse().expect("uri"), Duration::from_secs(1), 1)
    }

    #[test]
    fn by_host_then_default() {
        let origins = Origins::new(
            Some(upstream("http://127.0.0.1:1")),
            vec![
                ("shop.example".into(), upstream("http://127.0.0.1:2")),
                ("blog.example:8080".into(), upstream("http://127.0.0.1:3")),
            ],
        );
        let url = |h: &str| origins.for_host(h).map(|u| u.base_url());
        assert_eq!(url("shop.example").as_deref(), Some("http://127.0.0.1:2"));
        assert_eq!(
            url("SHOP.example:443").as_deref(),
            Some("http://127.0.0.1:2")
        );
        assert_eq!(
            url("blog.example:8080").as_deref(),
            Some("http://127.0.0.1:3")
        );
        assert_eq!(url("blog.example").as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(url("other").as_deref(), Some("http://127.0.0.1:1"));
        let hosts_only = Origins::new(None, vec![("a".into(), upstream("http://127.0.0.1:2"))]);
        assert!(hosts_only.for_host("b").is_none());
        assert!(hosts_only.primary().is_some());
    }

    #[test]
    fn ports() {
        assert_eq!(strip_port("a.example:80"), "a.example");
        assert_eq!(strip_port("a.example"), "a.example");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
