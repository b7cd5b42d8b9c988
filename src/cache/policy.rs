//! Pure caching rules: parsing `Cache-Control`-style headers, deciding whether a response may be
//! stored, and how long it stays fresh, stale-while-revalidate and stale-if-error.
//!
//! Nothing here reads a clock or touches the cache: callers pass `now`/`age`, so every rule is
//! table-tested below without a server.

use std::time::{Duration, SystemTime};

use http::{header, HeaderMap, HeaderName, Method, StatusCode};

/// The directives of one or more `Cache-Control` (or `CDN-Cache-Control`, `Surrogate-Control`)
/// header lines. Unknown directives are ignored, as RFC 9111 section 5.2 asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub immutable: bool,
    /// `Some(None)` is the bare `stale-while-revalidate` that Next.js 13/14 send.
    pub stale_while_revalidate: Option<Option<u64>>,
    pub stale_if_error: Option<u64>,
}

impl CacheControl {
    /// Parses every value of `name` in `headers`; `None` when the header is absent.
    pub fn from_headers(headers: &HeaderMap, name: &str) -> Option<Self> {
        let mut values = headers.get_all(name).iter().peekable();
        values.peek()?;
        let mut cc = CacheControl::default();
        for value in values {
            // Not `to_str`, which refuses any byte past ASCII: a line whose extension quotes
            // UTF-8 text would be skipped whole, with the `private` or `no-store` beside it.
            cc.merge_str(&String::from_utf8_lossy(value.as_bytes()));
        }
        Some(cc)
    }

    pub fn parse(text: &str) -> Self {
        let mut cc = CacheControl::default();
        cc.merge_str(text);
        cc
    }

    fn merge_str(&mut self, text: &str) {
        for directive in directives(text) {
            self.merge_malformed(directive.text);
            let seconds = directive.value.and_then(parse_delta_seconds);
            // Compared in place: lowercasing each name allocated once per directive, on every
            // request that carries `Cache-Control` as well as every origin answer.
            let is = |name: &str| directive.is(name);
            // A value given twice keeps its first (RFC 9111 section 4.2.1): an app's
            // `max-age=0` must not become a middleware's `max-age=60` appended after it.
            if is("max-age") {
                self.max_age = self.max_age.or(seconds);
            } else if is("s-maxage") {
                self.s_maxage = self.s_maxage.or(seconds);
            } else if is("no-store") {
                self.no_store = true;
            } else if is("no-cache") {
                // `no-cache="Set-Cookie"` (field-qualified) still forbids reuse without
                // revalidation for us: treat it like the plain form.
                self.no_cache = true;
            } else if is("private") {
                self.private = true;
            } else if is("public") {
                self.public = true;
            } else if is("must-revalidate") || is("proxy-revalidate") {
                self.must_revalidate = true;
            } else if is("immutable") {
                self.immutable = true;
            } else if is("stale-while-revalidate") {
                self.stale_while_revalidate.get_or_insert(seconds);
            } else if is("stale-if-error") {
                self.stale_if_error = self.stale_if_error.or(seconds);
            }
        }
    }

    /// Directives run together with `;` or spaces (`private;max-age=0`, `no-store no-cache`,
    /// `max-age=0; private`) are no directive RFC 9111 knows, but the origin meant the page
    /// for one visitor: their `private`, `no-store` and `no-cache` count, as they do for nginx
    /// and Varnish, which look for the words. Quoted text is left alone (`x="not private"`).
    fn merge_malformed(&mut self, item: &str) {
        let separated = |c: char| c == ';' || c.is_ascii_whitespace();
        if item.contains('"') || !item.contains(separated) {
            return;
        }
        for word in item.split(|c: char| separated(c) || c == '=') {
            if word.eq_ignore_ascii_case("no-store") {
                self.no_store = true;
            } else if word.eq_ignore_ascii_case("private") {
                self.private = true;
            } else if word.eq_ignore_ascii_case("no-cache") {
                self.no_cache = true;
            }
        }
    }
}

/// One directive of a `Cache-Control`-style field (RFC 9111 section 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Directive<'a> {
    /// As sent: compare it with [`Directive::is`].
    pub name: &'a str,
    /// Without its quotes.
    pub value: Option<&'a str>,
    /// The whole directive as sent, for passing it on unchanged.
    pub text: &'a str,
}

impl Directive<'_> {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// The directives of one field value, the one splitter every reader of these fields uses. A
/// quoted value may hold commas (`no-cache="Set-Cookie, X-Id"` is one directive); empty list
/// items are skipped.
pub fn directives(text: &str) -> impl Iterator<Item = Directive<'_>> {
    let mut rest = text;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let end = list_item_end(rest);
        let item = rest[..end].trim();
        rest = rest[end..].strip_prefix(',').unwrap_or("");
        if item.is_empty() {
            continue;
        }
        let (name, value) = match item.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (item, None),
        };
        return Some(Directive {
            name,
            value,
            text: item,
        });
    })
}

/// Where the first directive of `text` ends: its first comma outside a quoted value. A quoted
/// string opens only where a value starts (right after `=`), and one left open does not
/// swallow the rest of the field: the directive then ends at the first comma after its `=`,
/// as if unquoted. A malformed value (`x=a"b`, an unterminated `"...`) never hides a `private`
/// or `no-store` after it.
fn list_item_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    let comma_from = |from: usize| {
        bytes[from..]
            .iter()
            .position(|&b| b == b',')
            .map_or(text.len(), |i| from + i)
    };
    let Some(equals) = bytes.iter().position(|&b| b == b'=' || b == b',') else {
        return text.len();
    };
    if bytes[equals] == b',' {
        return equals;
    }
    let value = equals
        + 1
        + bytes[equals + 1..]
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
    if bytes.get(value) != Some(&b'"') {
        return comma_from(value);
    }
    let mut escaped = false;
    for (i, &byte) in bytes.iter().enumerate().skip(value + 1) {
        match byte {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return comma_from(i + 1),
            _ => {}
        }
    }
    comma_from(value)
}

/// The directives of every `name` line in `headers` (lines that are not text are skipped).
pub fn header_directives<'a>(
    headers: &'a HeaderMap,
    name: impl http::header::AsHeaderName,
) -> impl Iterator<Item = Directive<'a>> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(directives)
}

/// RFC 9111 section 1.2.2: a non-negative integer; values too large saturate rather than fail.
fn parse_delta_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().unwrap_or(u64::MAX))
}

/// Knobs that shape freshness beyond what the origin says. Defaults are in [`crate::config`].
#[derive(Debug, Clone)]
pub struct FreshnessRules {
    /// Freshness for storable responses that carry no freshness information (0 = not stored).
    pub default_ttl: Duration,
    /// Window used for a bare `stale-while-revalidate` with no value (Next.js 13/14).
    pub default_swr: Duration,
    /// Cap for any stale-while-revalidate window (Next.js 15 sends one year).
    pub max_stale: Duration,
    /// stale-if-error window when the origin names none.
    pub default_stale_if_error: Duration,
}

impl Default for FreshnessRules {
    fn default() -> Self {
        FreshnessRules {
            default_ttl: Duration::ZERO,
            default_swr: Duration::from_secs(60),
            max_stale: Duration::from_secs(24 * 3600),
            default_stale_if_error: Duration::from_secs(24 * 3600),
        }
    }
}

/// How long a stored response may be used, computed once when it is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub fresh_for: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    /// The origin forbade serving the copy stale (`must-revalidate`, `proxy-revalidate`), and
    /// no route rule gave it a stale window of its own: a soft purge then makes it wait for the
    /// origin (revalidated with its validators) instead of serving it stale.
    pub must_revalidate: bool,
}

impl Lifetime {
    /// How long the entry is worth keeping at all, counted from when it was generated.
    pub fn keep_for(&self) -> Duration {
        // Bounded: route rules and `--max-stale` allow durations whose sum overflows, and
        // callers add this to an `Instant`.
        const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        self.fresh_for
            .saturating_add(self.stale_while_revalidate.max(self.stale_if_error))
            .min(CENTURY)
    }
}

/// Why a response was not stored; shown in `Cache-Status` as `detail=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    Method,
    Status,
    NoStore,
    Private,
    SetCookie,
    Authorization,
    NoCache,
    VaryStar,
    /// A `Vary` member that is no field name (`Accept-Encoding Cookie`).
    VaryInvalid,
    NoFreshness,
}

impl NotStorable {
    pub fn as_str(self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::Status => "status",
            NotStorable::NoStore => "no-store",
            NotStorable::Private => "private",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::Authorization => "authorization",
            NotStorable::NoCache => "no-cache",
            NotStorable::VaryStar => "vary-star",
            NotStorable::VaryInvalid => "vary-invalid",
            NotStorable::NoFreshness => "no-freshness",
        }
    }
}

/// Statuses RFC 9110 section 15.1 calls heuristically cacheable, minus the ones a cache in
/// front of Next.js must never keep (204 and 5xx, 501 included: CVE-2025-49826; an origin's
/// 5xx is its error page, shared with waiters but never stored).
pub fn status_storable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 300 | 301 | 308 | 404 | 405 | 410 | 414
    )
}

/// The fields that may carry this cache's directives, strongest first: `CDN-Cache-Control`
/// (RFC 9213) wins over `Surrogate-Control`, which wins over `Cache-Control`. The one present
/// governs alone; the others are ignored, not merged.
const DIRECTIVE_FIELDS: [(FreshnessField, &str); 3] = [
    (FreshnessField::CdnCacheControl, "cdn-cache-control"),
    (FreshnessField::SurrogateControl, "surrogate-control"),
    (FreshnessField::CacheControl, "cache-control"),
];

/// The directives that govern this cache (see [`DIRECTIVE_FIELDS`]).
pub fn effective_cache_control(headers: &HeaderMap) -> CacheControl {
    DIRECTIVE_FIELDS
        .iter()
        .find_map(|(_, name)| CacheControl::from_headers(headers, name))
        .unwrap_or_default()
}

/// The kind of response field that sets a page's freshness, lowest first: a later one wins
/// over an earlier one ([`DIRECTIVE_FIELDS`], then `Expires`). A `304` renews a stored
/// lifetime only with a field at least as strong as the one that set it: a `Cache-Control`
/// alone must not override `CDN-Cache-Control` (RFC 9213), which the 304 need not repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum FreshnessField {
    #[default]
    None,
    Expires,
    CacheControl,
    SurrogateControl,
    CdnCacheControl,
}

impl FreshnessField {
    pub fn of(headers: &HeaderMap) -> FreshnessField {
        let directives = DIRECTIVE_FIELDS
            .iter()
            .find(|(_, name)| headers.contains_key(*name))
            .map(|(field, _)| *field);
        match directives {
            Some(field) => field,
            None if headers.contains_key(header::EXPIRES) => FreshnessField::Expires,
            None => FreshnessField::None,
        }
    }
}

/// Decides whether a response to a GET may be stored and for how long.
///
/// `request_has_authorization` follows RFC 9111 section 3.5: such responses are stored only
/// when `public` or `s-maxage` allows it. `now` is used for `Expires` arithmetic.
pub fn storable_lifetime(
    method: &Method,
    request_has_authorization: bool,
    status: StatusCode,
    headers: &HeaderMap,
    rules: &FreshnessRules,
    now: SystemTime,
) -> Result<Lifetime, NotStorable> {
    let cc = check_storable(method, request_has_authorization, status, headers)?;
    freshness_lifetime(&cc, headers, rules, now)
}

/// The storability half of [`storable_lifetime`]: everything except freshness. Route rules
/// (`crate::routes`) that set their own ttl still go through it, so `private`, `no-store` and
/// `Set-Cookie` are never overridden by configuration.
pub fn check_storable(
    method: &Method,
    request_has_authorization: bool,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<CacheControl, NotStorable> {
    if method != Method::GET && method != Method::HEAD {
        return Err(NotStorable::Method);
    }
    if !status_storable(status) {
        return Err(NotStorable::Status);
    }
    let cc = effective_cache_control(headers);
    if cc.no_store {
        return Err(NotStorable::NoStore);
    }
    if cc.private {
        return Err(NotStorable::Private);
    }
    if headers.contains_key(header::SET_COOKIE) {
        return Err(NotStorable::SetCookie);
    }
    if request_has_authorization && !(cc.public || cc.s_maxage.is_some()) {
        return Err(NotStorable::Authorization);
    }
    if cc.no_cache {
        return Err(NotStorable::NoCache);
    }
    if headers
        .get_all(header::VARY)
        .iter()
        .any(|v| v.to_str().map(|s| s.contains('*')).unwrap_or(true))
    {
        return Err(NotStorable::VaryStar);
    }
    if !vary_names_only_fields(headers) {
        return Err(NotStorable::VaryInvalid);
    }
    Ok(cc)
}

/// Whether every member of the answer's `Vary` is a field name (`*` and text that is not
/// UTF-8 are [`NotStorable::VaryStar`]'s). Lookups can only compare the fields a `Vary` names:
/// a member that names none (`Accept-Encoding Cookie`, a space for a comma), left out, would
/// share the answer made for one request's headers (one visitor's cookie) with every other.
pub fn vary_names_only_fields(headers: &HeaderMap) -> bool {
    !headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|name| !name.is_empty() && HeaderName::from_bytes(name.as_bytes()).is_err())
}

/// The freshness half of [`storable_lifetime`], for a response already found storable.
fn freshness_lifetime(
    cc: &CacheControl,
    headers: &HeaderMap,
    rules: &FreshnessRules,
    now: SystemTime,
) -> Result<Lifetime, NotStorable> {
    let fresh_for = match cc.s_maxage.or(cc.max_age) {
        Some(seconds) => Some(Duration::from_secs(seconds)),
        None => expires_lifetime(headers, now),
    };
    let fresh_for = match fresh_for {
        Some(d) => d,
        None if !rules.default_ttl.is_zero() => rules.default_ttl,
        None => return Err(NotStorable::NoFreshness),
    };
    let swr = match cc.stale_while_revalidate {
        None => Duration::ZERO,
        Some(None) => rules.default_swr,
        Some(Some(seconds)) => Duration::from_secs(seconds),
    };
    // must-revalidate forbids serving stale in any form (RFC 9111 section 5.2.2.2).
    let (swr, sie) = if cc.must_revalidate {
        (Duration::ZERO, Duration::ZERO)
    } else {
        let sie = cc
            .stale_if_error
            .map(Duration::from_secs)
            .unwrap_or(rules.default_stale_if_error);
        (swr.min(rules.max_stale), sie.min(rules.max_stale))
    };
    if fresh_for.is_zero() && swr.is_zero() && sie.is_zero() {
        return Err(NotStorable::NoFreshness);
    }
    Ok(Lifetime {
        fresh_for: fresh_for.min(Duration::from_secs(10 * 365 * 24 * 3600)),
        stale_while_revalidate: swr,
        stale_if_error: sie,
        must_revalidate: cc.must_revalidate,
    })
}

fn expires_lifetime(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let expires = headers.get(header::EXPIRES)?.to_str().ok()?;
    // An invalid Expires (e.g. "0") means "already expired" (RFC 9111 section 5.3).
    let Ok(expires) = httpdate::parse_http_date(expires) else {
        return Some(Duration::ZERO);
    };
    let date = headers
        .get(header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or(now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

/// Where an entry of a given age stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Past its freshness but inside stale-while-revalidate: serve and refresh in background.
    Stale,
    /// Past stale-while-revalidate: the request waits for the origin; the copy is kept only as
    /// a stale-if-error fallback.
    Expired,
}

pub fn freshness(lifetime: &Lifetime, age: Duration, soft_purged: bool) -> Freshness {
    if age < lifetime.fresh_for {
        // A soft purge marks a fresh copy stale: served once more while one refresh runs. A copy
        // already past its stale window stays expired (a purge never extends a lifetime), and
        // one the origin said must be revalidated once stale is not served stale at all (RFC
        // 9111 section 5.2.2.2): its next request waits for the origin.
        if soft_purged && lifetime.must_revalidate {
            Freshness::Expired
        } else if soft_purged {
            Freshness::Stale
        } else {
            Freshness::Fresh
        }
    } else if age < lifetime.fresh_for + lifetime.stale_while_revalidate {
        Freshness::Stale
    } else {
        Freshness::Expired
    }
}

/// Whether the copy may still stand in for a failed origin request.
pub fn usable_on_error(lifetime: &Lifetime, age: Duration) -> bool {
    age < lifetime.fresh_for + lifetime.stale_if_error.max(lifetime.stale_while_revalidate)
}

/// `Cache-Control` directives meant for shared caches (this one), not for browsers.
pub const SHARED_CACHE_DIRECTIVES: [&str; 4] = [
    "s-maxage",
    "stale-while-revalidate",
    "stale-if-error",
    "proxy-revalidate",
];

/// The `Cache-Control` a browser sees for a stored page: the shared-cache directives are removed
/// (browsers honour Next.js 15's one-year `stale-while-revalidate`, which is why users needed
/// Ctrl+F5); the origin's own `max-age` is kept; without one the browser must revalidate, which
/// costs a 304 thanks to the ETag.
pub fn browser_cache_control(origin: Option<&str>) -> String {
    let Some(origin) = origin else {
        return "public, max-age=0, must-revalidate".to_string();
    };
    let kept: Vec<Directive<'_>> = directives(origin)
        .filter(|d| !SHARED_CACHE_DIRECTIVES.iter().any(|shared| d.is(shared)))
        .collect();
    let has = |name: &str| kept.iter().any(|d| d.is(name));
    // What the origin said of browsers and other caches stands when it forbids storing or
    // sharing: a page stored here under `CDN-Cache-Control` may still be `private` or
    // `no-store` for everyone downstream.
    if has("no-store") || has("max-age") {
        let kept: Vec<&str> = kept.iter().map(|d| d.text).collect();
        kept.join(", ")
    } else if has("private") {
        "private, max-age=0, must-revalidate".to_string()
    } else {
        "public, max-age=0, must-revalidate".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn keep_for_saturates() {
        let huge = Lifetime {
            fresh_for: Duration::MAX,
            stale_while_revalidate: Duration::from_secs(60),
            stale_if_error: Duration::ZERO,
            must_revalidate: false,
        };
        assert!(huge.keep_for() < Duration::MAX);
        let _ = std::time::Instant::now() + huge.keep_for();
    }

    #[test]
    fn browsers_keep_private_and_no_store() {
        assert_eq!(browser_cache_control(Some("no-store")), "no-store");
        assert_eq!(
            browser_cache_control(Some("private, s-maxage=60")),
            "private, max-age=0, must-revalidate"
        );
        assert_eq!(
            browser_cache_control(Some("Private")),
            "private, max-age=0, must-revalidate"
        );
        assert_eq!(
            browser_cache_control(Some("s-maxage=60, stale-while-revalidate=30")),
            "public, max-age=0, must-revalidate"
        );
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("test header"));
        }
        h
    }

    fn lifetime(pairs: &[(&'static str, &str)]) -> Result<Lifetime, NotStorable> {
        storable_lifetime(
            &Method::GET,
            false,
            StatusCode::OK,
            &headers(pairs),
            &FreshnessRules::default(),
            SystemTime::now(),
        )
    }

    #[test]
    fn a_quoted_value_keeps_its_commas() {
        let split: Vec<_> = directives(r#" no-cache="Set-Cookie, X-Id", ,max-age=5,x="a\",b""#)
            .map(|d| (d.name, d.value))
            .collect();
        assert_eq!(
            split,
            [
                ("no-cache", Some("Set-Cookie, X-Id")),
                ("max-age", Some("5")),
                ("x", Some(r#"a\",b"#)),
            ]
        );
        let cc = CacheControl::parse(r#"private="Set-Cookie, max-age=9", s-maxage=3"#);
        assert_eq!((cc.private, cc.max_age, cc.s_maxage), (true, None, Some(3)));
        // A quote that is not a value's, or one never closed, hides nothing after it.
        for malformed in [
            r#"public, s-maxage=60, x=a"b, private"#,
            r#"public, s-maxage=60, x="unterminated, private"#,
            r#"s-maxage=60, no-cache="a\", private"#,
            r#"s-maxage=60, "x, private"#,
        ] {
            assert!(CacheControl::parse(malformed).private, "{malformed}");
        }
        assert!(CacheControl::parse(r#"s-maxage=60, x="a, no-store"#).no_store);
        assert_eq!(
            browser_cache_control(Some(r#"no-cache="a, b", s-maxage=9, max-age=5"#)),
            r#"no-cache="a, b", max-age=5"#
        );
    }

    #[test]
    fn parses_directives() {
        let cc = CacheControl::parse(
            "public, S-MAXAGE=10, max-age=\"5\", stale-while-revalidate, stale-if-error=30",
        );
        assert_eq!(cc.s_maxage, Some(10));
        assert_eq!(cc.max_age, Some(5));
        assert!(cc.public);
        assert_eq!(cc.stale_while_revalidate, Some(None));
        assert_eq!(cc.stale_if_error, Some(30));
        assert_eq!(CacheControl::parse("max-age=abc").max_age, None);
        assert_eq!(
            CacheControl::parse("max-age=99999999999999999999999").max_age,
            Some(u64::MAX)
        );
        for malformed in [
            "private;max-age=0",
            "max-age=0; private",
            "s-maxage=9 private",
        ] {
            assert!(CacheControl::parse(malformed).private, "{malformed}");
        }
        assert!(!CacheControl::parse("x-note=\"not private\"").private);
        assert!(!CacheControl::parse("max-age = 60").private);
        let twice = CacheControl::parse("max-age=0, s-maxage=1, max-age=60, s-maxage=2");
        assert_eq!((twice.max_age, twice.s_maxage), (Some(0), Some(1)));
    }

    #[test]
    fn s_maxage_wins_over_max_age() {
        let l = lifetime(&[("cache-control", "max-age=5, s-maxage=60")]).expect("storable");
        assert_eq!(l.fresh_for, Duration::from_secs(60));
    }

    #[test]
    fn cdn_cache_control_wins() {
        let l = lifetime(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=30"),
        ])
        .expect("storable");
        assert_eq!(l.fresh_for, Duration::from_secs(30));
        let l = lifetime(&[
            ("cache-control", "s-maxage=5"),
            ("surrogate-control", "max-age=7"),
        ])
        .expect("storable");
        assert_eq!(l.fresh_for, Duration::from_secs(7));
    }

    #[test]
    fn refusals() {
        let table: &[(&[(&'static str, &str)], NotStorable)] = &[
            (
                &[("cache-control", "no-store, s-maxage=10")],
                NotStorable::NoStore,
            ),
            (
                &[("cache-control", "private, max-age=10")],
                NotStorable::Private,
            ),
            (
                &[("cache-control", "s-maxage=10"), ("set-cookie", "a=b")],
                NotStorable::SetCookie,
            ),
            (
                &[("cache-control", "no-cache, s-maxage=10")],
                NotStorable::NoCache,
            ),
            (
                &[("cache-control", "s-maxage=10"), ("vary", "*")],
                NotStorable::VaryStar,
            ),
            (
                &[
                    ("cache-control", "s-maxage=10"),
                    ("vary", "Accept-Encoding Cookie"),
                ],
                NotStorable::VaryInvalid,
            ),
            (&[], NotStorable::NoFreshness),
        ];
        for (pairs, why) in table {
            assert_eq!(lifetime(pairs), Err(*why), "{pairs:?}");
        }
    }

    #[test]
    fn zero_freshness_is_kept_only_as_an_error_fallback() {
        let l = lifetime(&[("cache-control", "s-maxage=0")]).expect("kept for stale-if-error");
        assert_eq!(l.fresh_for, Duration::ZERO);
        assert_eq!(
            l.stale_if_error,
            FreshnessRules::default().default_stale_if_error
        );
        assert_eq!(
            lifetime(&[("cache-control", "s-maxage=0, must-revalidate")]),
            Err(NotStorable::NoFreshness)
        );
    }

    #[test]
    fn authorization_needs_public_or_s_maxage() {
        let run = |cc: &str| {
            storable_lifetime(
                &Method::GET,
                true,
                StatusCode::OK,
                &headers(&[("cache-control", cc)]),
                &FreshnessRules::default(),
                SystemTime::now(),
            )
        };
        assert_eq!(run("max-age=10"), Err(NotStorable::Authorization));
        assert!(run("public, max-age=10").is_ok());
        assert!(run("s-maxage=10").is_ok());
    }

    #[test]
    fn status_rules() {
        for code in [204u16, 206, 500, 501, 502, 503, 302] {
            let status = StatusCode::from_u16(code).expect("valid");
            assert!(!status_storable(status), "{code}");
        }
        for code in [200u16, 301, 404, 410] {
            let status = StatusCode::from_u16(code).expect("valid");
            assert!(status_storable(status), "{code}");
        }
    }

    #[test]
    fn expires_against_date() {
        let l = lifetime(&[
            ("date", "Sat, 21 Nov 2026 10:00:00 GMT"),
            ("expires", "Sat, 21 Nov 2026 10:01:40 GMT"),
        ])
        .expect("storable");
        assert_eq!(l.fresh_for, Duration::from_secs(100));
        // Invalid Expires is already expired; only stale-if-error keeps it around.
        let l = lifetime(&[("expires", "0")]).expect("kept for stale-if-error");
        assert_eq!(l.fresh_for, Duration::ZERO);
    }

    #[test]
    fn swr_windows() {
        let rules = FreshnessRules::default();
        let bare = lifetime(&[("cache-control", "s-maxage=10, stale-while-revalidate")])
            .expect("storable");
        assert_eq!(bare.stale_while_revalidate, rules.default_swr);
        let year = lifetime(&[(
            "cache-control",
            "s-maxage=10, stale-while-revalidate=31536000",
        )])
        .expect("storable");
        assert_eq!(year.stale_while_revalidate, rules.max_stale);
        let strict = lifetime(&[(
            "cache-control",
            "s-maxage=10, stale-while-revalidate=60, must-revalidate",
        )])
        .expect("storable");
        assert_eq!(strict.stale_while_revalidate, Duration::ZERO);
        assert_eq!(strict.stale_if_error, Duration::ZERO);
    }

    #[test]
    fn freshness_states() {
        let l = Lifetime {
            fresh_for: Duration::from_secs(10),
            stale_while_revalidate: Duration::from_secs(5),
            stale_if_error: Duration::from_secs(100),
            must_revalidate: false,
        };
        assert_eq!(
            freshness(&l, Duration::from_secs(9), false),
            Freshness::Fresh
        );
        assert_eq!(
            freshness(&l, Duration::from_secs(10), false),
            Freshness::Stale
        );
        assert_eq!(
            freshness(&l, Duration::from_secs(15), false),
            Freshness::Expired
        );
        assert_eq!(
            freshness(&l, Duration::from_secs(1), true),
            Freshness::Stale
        );
        assert_eq!(
            freshness(&l, Duration::from_secs(20), true),
            Freshness::Expired,
            "a soft purge does not revive an expired copy"
        );
        assert!(usable_on_error(&l, Duration::from_secs(109)));
        assert!(!usable_on_error(&l, Duration::from_secs(110)));
        let strict = Lifetime {
            must_revalidate: true,
            ..l
        };
        assert_eq!(
            freshness(&strict, Duration::from_secs(1), true),
            Freshness::Expired,
            "a soft purge does not serve stale what the origin said must be revalidated"
        );
        assert_eq!(
            freshness(&strict, Duration::from_secs(1), false),
            Freshness::Fresh
        );
    }

    #[test]
    fn browser_directives() {
        assert_eq!(
            browser_cache_control(Some("s-maxage=10, stale-while-revalidate=31535990")),
            "public, max-age=0, must-revalidate"
        );
        assert_eq!(
            browser_cache_control(Some("public, max-age=31536000, immutable")),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            browser_cache_control(Some("max-age=60, s-maxage=600, stale-if-error=10")),
            "max-age=60"
        );
        assert_eq!(
            browser_cache_control(None),
            "public, max-age=0, must-revalidate"
        );
    }
}
