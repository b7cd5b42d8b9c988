//! Route rules from the configuration file (`[[route]]`): per-path ttl, stale windows, bypass
//! and extra tags, first match wins. Patterns use the revalidation syntax
//! ([`crate::cache::pattern::Pattern`]: `/products/[slug]`, `/docs/**`, exact paths) and match
//! the canonical page path, so `/products/a`, `/products/a.rsc` and `/_next/data/…/a.json` all
//! follow the rule for `/products/[slug]`.
//!
//! Precedence: a rule's `ttl`, `stale_while_revalidate` and `stale_if_error` win over what the
//! origin's `Cache-Control`/`Expires` say (the operator's rule is the point of writing one),
//! and a rule ttl makes responses without any caching headers storable. Storability itself is
//! never overridden: `private`, `no-store`, `no-cache`, `Set-Cookie`, `Authorization`, 5xx and
//! `Vary: *` still keep a response out of the cache.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, StatusCode};

use crate::cache::pattern::Pattern;
use crate::cache::policy::{self, FreshnessRules, Lifetime, NotStorable};

/// One `[[route]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    pub pattern: Pattern,
    /// Freshness for responses on this route (wins over the origin's headers).
    pub ttl: Option<Duration>,
    pub stale_while_revalidate: Option<Duration>,
    pub stale_if_error: Option<Duration>,
    /// Never use the cache for this route (`X-Cache: BYPASS`, `detail=route`).
    pub bypass: bool,
    /// Tags added to what is stored here (purgeable with `{"tags": [...]}`).
    pub tags: Vec<Box<str>>,
}

/// The ordered rules; the first whose pattern matches a page applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    rules: Vec<RouteRule>,
}

impl Routes {
    pub fn new(rules: Vec<RouteRule>) -> Routes {
        Routes { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[RouteRule] {
        &self.rules
    }

    /// The rule for a canonical page path (`cache::key::page_path`), if any.
    pub fn find(&self, page: &str) -> Option<&RouteRule> {
        self.rules.iter().find(|r| r.pattern.matches(page, false))
    }
}

impl RouteRule {
    /// Whether and how long a response on this route is stored: the origin's storability, the
    /// rule's freshness (see the module doc for the precedence).
    pub fn lifetime(
        &self,
        request_has_authorization: bool,
        status: StatusCode,
        headers: &HeaderMap,
        rules: &FreshnessRules,
        now: SystemTime,
    ) -> Result<Lifetime, NotStorable> {
        let method = Method::GET;
        let from_origin = policy::storable_lifetime(
            &method,
            request_has_authorization,
            status,
            headers,
            rules,
            now,
        );
        let Some(ttl) = self.ttl else {
            return from_origin.map(|origin| self.apply(origin));
        };
        policy::check_storable(&method, request_has_authorization, status, headers)?;
        let origin = from_origin.unwrap_or(Lifetime {
            fresh_for: ttl,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: rules.default_stale_if_error,
            must_revalidate: false,
        });
        let lifetime = self.apply(Lifetime {
            fresh_for: ttl,
            ..origin
        });
        if lifetime.keep_for().is_zero() {
            return Err(NotStorable::NoFreshness);
        }
        Ok(lifetime)
    }

    fn apply(&self, origin: Lifetime) -> Lifetime {
        Lifetime {
            fresh_for: self.ttl.unwrap_or(origin.fresh_for),
            stale_while_revalidate: self
                .stale_while_revalidate
                .unwrap_or(origin.stale_while_revalidate),
            stale_if_error: self.stale_if_error.unwrap_or(origin.stale_if_error),
            // The rule's own stale window is the operator's word over the origin's.
            must_revalidate: origin.must_revalidate && self.stale_while_revalidate.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderValue, CACHE_CONTROL, SET_COOKIE};

    fn rule(pattern: &str) -> RouteRule {
        RouteRule {
            pattern: Pattern::parse(pattern),
            ttl: None,
            stale_while_revalidate: None,
            stale_if_error: None,
            bypass: false,
            tags: vec![],
        }
    }

    fn headers(cc: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(cc) = cc {
            h.insert(CACHE_CONTROL, HeaderValue::from_static(cc));
        }
        h
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn lifetime(rule: &RouteRule, h: &HeaderMap) -> Result<Lifetime, NotStorable> {
        rule.lifetime(
            false,
            StatusCode::OK,
            h,
            &FreshnessRules::default(),
            SystemTime::now(),
        )
    }

    #[test]
    fn first_match_wins() {
        let mut special = rule("/products/sale");
        special.bypass = true;
        let mut products = rule("/products/[slug]");
        products.ttl = Some(secs(10));
        let mut docs = rule("/docs/**");
        docs.ttl = Some(secs(99));
        let routes = Routes::new(vec![special, products, docs]);
        assert!(routes.find("/products/sale").is_some_and(|r| r.bypass));
        assert_eq!(
            routes.find("/products/a").and_then(|r| r.ttl),
            Some(secs(10))
        );
        assert!(routes.find("/products").is_none());
        assert_eq!(routes.find("/docs").and_then(|r| r.ttl), Some(secs(99)));
        assert_eq!(routes.find("/docs/a/b").and_then(|r| r.ttl), Some(secs(99)));
        assert!(routes.find("/").is_none());
        assert!(Routes::new(vec![rule("/")]).find("/").is_some());
    }

    #[test]
    fn ttl_makes_headerless_responses_storable() {
        let mut r = rule("/p");
        r.ttl = Some(secs(10));
        let l = lifetime(&r, &headers(None)).expect("stored");
        assert_eq!(l.fresh_for, secs(10));
        assert_eq!(l.stale_while_revalidate, Duration::ZERO);
        assert_eq!(
            l.stale_if_error,
            FreshnessRules::default().default_stale_if_error
        );
        assert_eq!(
            lifetime(&rule("/p"), &headers(None)),
            Err(NotStorable::NoFreshness)
        );
    }

    #[test]
    fn rule_wins_for_freshness_not_storability() {
        let mut r = rule("/p");
        r.ttl = Some(secs(10));
        r.stale_while_revalidate = Some(secs(5));
        let l = lifetime(&r, &headers(Some("s-maxage=3600, stale-if-error=7"))).expect("stored");
        assert_eq!(
            (l.fresh_for, l.stale_while_revalidate, l.stale_if_error),
            (secs(10), secs(5), secs(7))
        );
        let l = lifetime(&r, &headers(Some("max-age=0, must-revalidate"))).expect("stored");
        assert_eq!(l.fresh_for, secs(10));
        assert!(
            !l.must_revalidate,
            "the rule's stale window is the operator's word"
        );
        let strict = lifetime(&rule("/p"), &headers(Some("s-maxage=60, must-revalidate")));
        assert!(strict.expect("stored").must_revalidate);
        for (cc, why) in [
            ("private", NotStorable::Private),
            ("no-store", NotStorable::NoStore),
            ("no-cache", NotStorable::NoCache),
        ] {
            assert_eq!(lifetime(&r, &headers(Some(cc))), Err(why), "{cc}");
        }
        let mut h = headers(None);
        h.insert(SET_COOKIE, HeaderValue::from_static("session=1"));
        assert_eq!(lifetime(&r, &h), Err(NotStorable::SetCookie));
        let status = r.lifetime(
            false,
            StatusCode::INTERNAL_SERVER_ERROR,
            &headers(None),
            &FreshnessRules::default(),
            SystemTime::now(),
        );
        assert_eq!(status, Err(NotStorable::Status));
    }

    #[test]
    fn stale_windows_without_ttl_adjust_the_origin() {
        let mut r = rule("/p");
        r.stale_while_revalidate = Some(secs(30));
        let l = lifetime(&r, &headers(Some("s-maxage=60"))).expect("stored");
        assert_eq!(
            (l.fresh_for, l.stale_while_revalidate),
            (secs(60), secs(30))
        );
        assert_eq!(lifetime(&r, &headers(None)), Err(NotStorable::NoFreshness));
    }
}
