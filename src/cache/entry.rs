//! A stored response: status, client-facing headers, body, the Vary values it was made for, its
//! tags and lifetime; how it is rendered as a HIT/STALE response or a 304.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use tokio::time::Instant;

use super::key::vary_value;
use super::policy::{self, Freshness, Lifetime};
use crate::body::{self, Body};

/// How a response relates to the cache; rendered as `X-Cache` and RFC 9211 `Cache-Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Fresh copy.
    Hit,
    /// Stale copy served while one background request refreshes it.
    Stale,
    /// Stale copy served because the origin failed.
    StaleIfError,
    /// Fetched from the origin; `stored` says whether it was kept; `expired` that a copy existed.
    Miss { stored: bool, expired: bool },
    /// Never considered for caching (method, bypass rule).
    Bypass,
}

impl CacheStatus {
    pub fn x_cache(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Stale | CacheStatus::StaleIfError => "STALE",
            CacheStatus::Miss { .. } => "MISS",
            CacheStatus::Bypass => "BYPASS",
        }
    }
}

/// The RFC 9211 `Cache-Status` member for this cache.
pub fn cache_status_header(status: CacheStatus, ttl: Option<i64>, detail: Option<&str>) -> String {
    let mut out = String::from("isr-edge; ");
    out.push_str(match status {
        CacheStatus::Hit => "hit",
        CacheStatus::Stale => "hit; fwd=stale; detail=background-refresh",
        CacheStatus::StaleIfError => "fwd=stale; detail=stale-if-error",
        CacheStatus::Miss { expired: true, .. } => "fwd=stale",
        CacheStatus::Miss { expired: false, .. } => "fwd=miss",
        CacheStatus::Bypass => "fwd=bypass",
    });
    if let CacheStatus::Miss { stored: true, .. } = status {
        out.push_str("; stored");
    }
    if let Some(ttl) = ttl {
        out.push_str("; ttl=");
        out.push_str(&ttl.to_string());
    }
    if let Some(detail) = detail {
        out.push_str("; detail=");
        out.push_str(detail);
    }
    out
}

const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

#[derive(Debug)]
pub struct Entry {
    /// Unique per admission, so index bookkeeping can tell an old copy from its replacement.
    pub id: u64,
    pub status: StatusCode,
    /// Headers as clients get them (hop-by-hop, tag and surrogate headers removed, browser
    /// `Cache-Control` applied, an ETag present).
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The request header values this variant was made for, by the names in its `Vary`.
    pub vary: Vec<(HeaderName, Option<String>)>,
    pub tags: Vec<Box<str>>,
    pub lifetime: Lifetime,
    pub stored_at: Instant,
    /// Age the response already had when it arrived (origin `Age`, or `fresh_for` when the origin
    /// said it served a stale copy).
    pub initial_age: Duration,
    pub etag: Option<HeaderValue>,
    pub last_modified: Option<SystemTime>,
    /// `text/x-component`: an RSC payload, only ever served to `RSC: 1` requests.
    pub is_rsc: bool,
    soft_purged: AtomicBool,
}

/// What the admission step knows about a response it is about to store.
pub struct NewEntry {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub vary: Vec<(HeaderName, Option<String>)>,
    pub tags: Vec<Box<str>>,
    pub lifetime: Lifetime,
    pub initial_age: Duration,
}

impl Entry {
    pub fn new(id: u64, new: NewEntry, now: Instant) -> Entry {
        let mut headers = detached(new.headers);
        let etag = match headers.get(header::ETAG) {
            Some(etag) => Some(etag.clone()),
            None => {
                let etag = strong_etag(&new.body);
                headers.insert(header::ETAG, etag.clone());
                Some(etag)
            }
        };
        let last_modified = headers
            .get(header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let is_rsc = is_rsc_content(&headers);
        // Placeholders for the per-response headers, so a hit clones this map and overwrites
        // them in place: no rehashing of every header, no growth of the cloned map.
        headers.insert(header::AGE, HeaderValue::from_static("0"));
        headers.insert(X_CACHE, HeaderValue::from_static("HIT"));
        headers.insert(CACHE_STATUS, HeaderValue::from_static("isr-edge"));
        Entry {
            id,
            status: new.status,
            headers,
            body: new.body,
            vary: new.vary,
            tags: new.tags,
            lifetime: new.lifetime,
            stored_at: now,
            initial_age: new.initial_age,
            etag,
            last_modified,
            is_rsc,
            soft_purged: AtomicBool::new(false),
        }
    }

    pub fn age(&self, now: Instant) -> Duration {
        self.initial_age + now.saturating_duration_since(self.stored_at)
    }

    pub fn freshness(&self, now: Instant) -> Freshness {
        policy::freshness(&self.lifetime, self.age(now), self.is_soft_purged())
    }

    pub fn usable_on_error(&self, now: Instant) -> bool {
        policy::usable_on_error(&self.lifetime, self.age(now))
    }

    /// Remaining freshness in whole seconds; negative once stale (the `ttl` of Cache-Status).
    pub fn ttl(&self, now: Instant) -> i64 {
        if self.is_soft_purged() {
            return 0;
        }
        let fresh = self.lifetime.fresh_for.as_secs() as i64;
        fresh - self.age(now).as_secs() as i64
    }

    pub fn soft_purge(&self) {
        self.soft_purged.store(true, Ordering::Relaxed);
    }

    pub fn is_soft_purged(&self) -> bool {
        self.soft_purged.load(Ordering::Relaxed)
    }

    /// Whether this variant answers `request`: every header its `Vary` names has the value it
    /// was made for, and an RSC payload never goes to an HTML request or the reverse.
    pub fn matches(&self, request: &HeaderMap) -> bool {
        if self.is_rsc != is_rsc_request(request) {
            return false;
        }
        self.vary
            .iter()
            .all(|(name, stored)| vary_value(request, name).as_deref() == stored.as_deref())
    }

    /// Bytes this entry costs the cache: body, headers, vary values, tags, bookkeeping.
    pub fn weight(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        let vary: usize = self
            .vary
            .iter()
            .map(|(k, v)| k.as_str().len() + v.as_ref().map_or(0, String::len) + 32)
            .sum();
        let tags: usize = self.tags.iter().map(|t| t.len() + 16).sum();
        self.body.len() + headers + vary + tags + std::mem::size_of::<Entry>()
    }

    /// RFC 9110 section 13.1: `If-None-Match` (weak comparison) wins over `If-Modified-Since`.
    pub fn not_modified(&self, request: &HeaderMap) -> bool {
        if self.status != StatusCode::OK {
            return false;
        }
        if let Some(inm) = request.get(header::IF_NONE_MATCH) {
            let Some(etag) = &self.etag else { return false };
            let Ok(inm) = inm.to_str() else { return false };
            let ours = opaque_tag(etag.to_str().unwrap_or(""));
            return inm
                .split(',')
                .map(str::trim)
                .any(|candidate| candidate == "*" || opaque_tag(candidate) == ours);
        }
        if let (Some(ims), Some(last_modified)) =
            (request.get(header::IF_MODIFIED_SINCE), self.last_modified)
        {
            if let Some(ims) = ims
                .to_str()
                .ok()
                .and_then(|v| httpdate::parse_http_date(v).ok())
            {
                return last_modified <= ims;
            }
        }
        false
    }

    /// Renders the stored response for one request.
    pub fn to_response(
        &self,
        method: &Method,
        request: &HeaderMap,
        status: CacheStatus,
        now: Instant,
    ) -> Response<Body> {
        let not_modified = self.not_modified(request);
        let body = if not_modified || method == Method::HEAD {
            body::empty()
        } else {
            body::full(self.body.clone())
        };
        let mut response = Response::new(body);
        *response.status_mut() = if not_modified {
            StatusCode::NOT_MODIFIED
        } else {
            self.status
        };
        let headers = response.headers_mut();
        if not_modified {
            headers.reserve(self.headers.len());
            for (name, value) in &self.headers {
                // RFC 9110 section 15.4.5: a 304 carries validators and caching headers, no
                // representation metadata.
                if name == header::CONTENT_LENGTH || name == header::CONTENT_TYPE {
                    continue;
                }
                headers.append(name.clone(), value.clone());
            }
        } else {
            *headers = self.headers.clone();
        }
        headers.insert(header::AGE, HeaderValue::from(self.age(now).as_secs()));
        headers.insert(X_CACHE, HeaderValue::from_static(status.x_cache()));
        let cache_status = cache_status_header(status, Some(self.ttl(now)), None);
        match HeaderValue::from_maybe_shared(Bytes::from(cache_status)) {
            Ok(value) => headers.insert(CACHE_STATUS, value),
            Err(_) => headers.remove(CACHE_STATUS),
        };
        response
    }
}

/// The same headers with values that own their bytes. Values parsed by hyper are slices of
/// the connection's read buffer; a stored copy must not keep that buffer alive.
fn detached(headers: HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len() + 3);
    let mut last: Option<HeaderName> = None;
    for (name, value) in headers {
        let name = match name {
            Some(name) => {
                last = Some(name.clone());
                name
            }
            None => match &last {
                Some(name) => name.clone(),
                None => continue,
            },
        };
        let sensitive = value.is_sensitive();
        let mut owned = HeaderValue::from_bytes(value.as_bytes()).unwrap_or(value);
        owned.set_sensitive(sensitive);
        out.append(name, owned);
    }
    out
}

fn opaque_tag(tag: &str) -> &str {
    tag.trim().trim_start_matches("W/")
}

pub fn is_rsc_request(headers: &HeaderMap) -> bool {
    headers.get("rsc").is_some_and(|v| v.as_bytes() == b"1")
}

pub fn is_rsc_content(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/x-component"))
}

/// A strong validator for origins that send none: FNV-1a over the body, plus its length.
fn strong_etag(body: &[u8]) -> HeaderValue {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in body {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let text = format!("\"ie-{hash:016x}-{:x}\"", body.len());
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("\"ie\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(headers: &[(&'static str, &str)]) -> Entry {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_str(v).expect("valid"));
        }
        Entry::new(
            1,
            NewEntry {
                status: StatusCode::OK,
                headers: map,
                body: Bytes::from_static(b"hello"),
                vary: vec![],
                tags: vec![],
                lifetime: Lifetime {
                    fresh_for: Duration::from_secs(10),
                    stale_while_revalidate: Duration::ZERO,
                    stale_if_error: Duration::ZERO,
                },
                initial_age: Duration::ZERO,
            },
            Instant::now(),
        )
    }

    fn request(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).expect("valid"));
        }
        map
    }

    #[test]
    fn makes_a_strong_etag_and_answers_304() {
        let e = entry(&[]);
        let etag = e.etag.clone().expect("etag made");
        let etag = etag.to_str().expect("ascii");
        assert!(etag.starts_with("\"ie-"));
        assert!(e.not_modified(&request(&[("if-none-match", etag)])));
        assert!(e.not_modified(&request(&[("if-none-match", &format!("\"x\", W/{etag}"))])));
        assert!(!e.not_modified(&request(&[("if-none-match", "\"other\"")])));
    }

    #[test]
    fn if_modified_since() {
        let e = entry(&[("last-modified", "Sat, 21 Nov 2026 10:00:00 GMT")]);
        assert!(e.not_modified(&request(&[(
            "if-modified-since",
            "Sat, 21 Nov 2026 10:00:00 GMT"
        )])));
        assert!(!e.not_modified(&request(&[(
            "if-modified-since",
            "Sat, 21 Nov 2026 09:00:00 GMT"
        )])));
    }

    #[test]
    fn rsc_guard() {
        let html = entry(&[("content-type", "text/html")]);
        let rsc = entry(&[("content-type", "text/x-component")]);
        assert!(html.matches(&request(&[])));
        assert!(!html.matches(&request(&[("rsc", "1")])));
        assert!(rsc.matches(&request(&[("rsc", "1")])));
        assert!(!rsc.matches(&request(&[])));
    }

    #[test]
    fn cache_status_strings() {
        assert_eq!(
            cache_status_header(CacheStatus::Hit, Some(5), None),
            "isr-edge; hit; ttl=5"
        );
        assert_eq!(
            cache_status_header(
                CacheStatus::Miss {
                    stored: true,
                    expired: false
                },
                None,
                None
            ),
            "isr-edge; fwd=miss; stored"
        );
        assert_eq!(
            cache_status_header(CacheStatus::Bypass, None, Some("method")),
            "isr-edge; fwd=bypass; detail=method"
        );
    }
}
