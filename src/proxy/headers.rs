//! Header shaping at the proxy's edges: what clients may and may not see (surrogate and tag
//! headers, the browser `Cache-Control`), `X-Cache`/`Cache-Status` on responses that did not
//! come from an entry, and the request facts the flow branches on (host, cookies, `Vary`).

use super::*;
use crate::cache::key::without_root_dot;

impl Proxy {
    /// A streamed origin response as clients get it.
    pub(super) fn relay<B>(
        &self,
        response: Response<B>,
        status: CacheStatus,
        detail: Option<&str>,
    ) -> Response<Body>
    where
        B: HttpBody<Data = Bytes> + Unpin + Send + Sync + 'static,
        B::Error: Into<crate::body::BoxError>,
    {
        let mut response = self.streamed(response);
        self.client_facing(response.headers_mut(), false);
        says_it_varies_by_encoding(response.headers_mut());
        mark(response, status, detail)
    }

    /// An origin answer passed on as it arrives, each wait for its next bytes bounded by
    /// `--origin-idle-timeout` (a stalled origin must not hold a client forever).
    pub(super) fn streamed<B>(&self, response: Response<B>) -> Response<Body>
    where
        B: HttpBody<Data = Bytes> + Unpin + Send + Sync + 'static,
        B::Error: Into<crate::body::BoxError>,
    {
        let idle = self.settings.limits.origin_idle_timeout;
        response.map(|b| body::streaming(IdleTimeout::new(b, idle)))
    }

    /// Removes what only this cache may see; for stored pages, and answers whose
    /// `Cache-Control` speaks to shared caches, applies the browser `Cache-Control` (see
    /// `policy::browser_cache_control`).
    pub(super) fn client_facing(&self, headers: &mut HeaderMap, stored: bool) {
        headers.remove("cdn-cache-control");
        headers.remove("surrogate-control");
        if !self.settings.keep_tag_headers {
            for name in &self.settings.tag_headers {
                headers.remove(name);
            }
        }
        if stored {
            headers.remove(header::AGE);
            // RFC 9110 section 6.6.1: a recipient caching an answer without `Date` adds one.
            // Left out, every hit would be dated when served while its `Age` grows, and
            // `If-Modified-Since` would have no date to be checked against.
            if !headers.contains_key(header::DATE) {
                let now = httpdate::fmt_http_date(std::time::SystemTime::now());
                if let Ok(value) = HeaderValue::from_str(&now) {
                    headers.insert(header::DATE, value);
                }
            }
        }
        // An answer passed through (a bypass, too large, private now) keeps the origin's
        // `Cache-Control` unless it speaks to shared caches: Next.js 15's one-year
        // `stale-while-revalidate` would reach the browser all the same.
        if self.settings.browser_cache_control == BrowserCacheControl::Rewrite
            && (stored || names_shared_cache_directives(headers))
        {
            // Every line, as `CacheControl::from_headers` reads them: one skipped for a byte
            // past ASCII would take its `private` or `no-store` with it.
            let origin: Vec<std::borrow::Cow<str>> = headers
                .get_all(header::CACHE_CONTROL)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()))
                .collect();
            let origin = (!origin.is_empty()).then(|| origin.join(", "));
            let mut rewritten = browser_cache_control(origin.as_deref());
            // Not stored here: `public` only where the origin let shared caches store it, or a
            // downstream cache could keep an answer to credentials (RFC 9111 section 3.5).
            if !stored && rewritten.starts_with("public") {
                let said =
                    policy::CacheControl::from_headers(headers, header::CACHE_CONTROL.as_str())
                        .unwrap_or_default();
                if !said.public && said.s_maxage.is_none() {
                    rewritten = "private, max-age=0, must-revalidate".to_string();
                }
            }
            if let Ok(value) = HeaderValue::from_str(&rewritten) {
                headers.insert(header::CACHE_CONTROL, value);
            }
        }
    }

    /// Reads and removes the tag headers: `Surrogate-Key` is space-separated, `Cache-Tag` and
    /// `x-next-cache-tags` comma-separated, and their tags may contain spaces
    /// (`revalidateTag("summer sale")`); a header of the operator's own takes either.
    pub(super) fn take_tags(&self, headers: &mut HeaderMap) -> Vec<Box<str>> {
        let mut tags: Vec<Box<str>> = Vec::new();
        for name in &self.settings.tag_headers {
            let separator: &[char] = match name.as_str() {
                "surrogate-key" => &[' '],
                "cache-tag" | "x-next-cache-tags" => &[','],
                _ => &[',', ' '],
            };
            for value in headers.get_all(name) {
                let text = header_text(value);
                tags.extend(
                    text.split(separator)
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(Into::into),
                );
            }
        }
        tags.sort();
        tags.dedup();
        tags
    }
}

/// The request's host: the authority of its target when it has one (HTTP/2 `:authority`, an
/// HTTP/1.1 absolute-form target, which RFC 9112 section 3.2.2 says wins over `Host`), else
/// `Host`. `None` (a 400) when it sent two `Host` fields (an origin reading the other one
/// would render another site under this one's key) or, on HTTP/1.1, none or an empty one (RFC
/// 9112 section 3.2). An HTTP/1.0 request without one is keyed under no host.
pub(super) fn request_host(parts: &Parts) -> Option<&str> {
    let mut fields = parts.headers.get_all(header::HOST).iter();
    let first = fields.next();
    host_given(parts, first, fields.next().is_some())
}

/// [`request_host`] for a request whose `Host` fields were seen already: `first` the first,
/// `more` whether there was another.
pub(super) fn host_given<'a>(
    parts: &'a Parts,
    first: Option<&'a HeaderValue>,
    more: bool,
) -> Option<&'a str> {
    if more {
        return None;
    }
    if let Some(authority) = parts.uri.authority() {
        if first.is_none() && parts.version == http::Version::HTTP_11 {
            return None;
        }
        // RFC 9113 section 8.3.1: an HTTP/2 `Host` naming another host than `:authority` is
        // malformed. Which one a server behind us reads is anyone's guess, so a page keyed
        // under one could be rendered for the other.
        if parts.version == http::Version::HTTP_2
            && first.is_some_and(|host| !same_authority(host.as_bytes(), &parts.uri))
        {
            return None;
        }
        return Some(authority.as_str());
    }
    match first {
        // RFC 9110 section 4.2.1: an http URI's host is never empty, so an HTTP/1.1 `Host:`
        // with nothing in it names no site, as a missing one does.
        Some(host) if host.is_empty() && parts.version >= http::Version::HTTP_11 => None,
        Some(host) => host.to_str().ok(),
        // HTTP/1.0 may name no host (one site per address); HTTP/1.1 must (RFC 9112 section
        // 3.2), and an HTTP/2 request for a site names it in `:authority` or `Host`.
        None if parts.version <= http::Version::HTTP_10 => Some(""),
        None => None,
    }
}

/// Whether a `Host` value names the target's authority: the same host in any case, with or
/// without the root's trailing dot, and the same port, a missing one being the scheme's
/// (`localhost` and `localhost:80` over http).
fn same_authority(host: &[u8], target: &http::Uri) -> bool {
    let Some(authority) = target.authority() else {
        return false;
    };
    let default_port = match target.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    let Ok(host) = host.parse::<http::uri::Authority>() else {
        return false;
    };
    // The root's trailing dot names the same host, as the key has it.
    without_root_dot(host.host()).eq_ignore_ascii_case(without_root_dot(authority.host()))
        && host.port_u16().unwrap_or(default_port) == authority.port_u16().unwrap_or(default_port)
}

/// Whether `Cache-Control` carries a directive meant for this cache, not for browsers.
fn names_shared_cache_directives(headers: &HeaderMap) -> bool {
    policy::header_directives(headers, header::CACHE_CONTROL).any(|directive| {
        policy::SHARED_CACHE_DIRECTIVES
            .iter()
            .any(|shared| directive.is(shared))
    })
}

/// A header value as text: UTF-8 when it is, else Latin-1 byte for byte (obs-text, RFC 9110
/// section 5.5; Node.js writes header strings so). Not `to_str`, which refuses both: a tag
/// header naming `revalidateTag("café")` lost every tag it carried.
fn header_text(value: &HeaderValue) -> Cow<'_, str> {
    match std::str::from_utf8(value.as_bytes()) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(value.as_bytes().iter().map(|&b| char::from(b)).collect()),
    }
}

/// Read as bytes: browsers send cookie values that are not ASCII (UTF-8 from
/// `document.cookie`), and such a value must not hide the other cookies of its field.
pub(super) fn has_cookie(headers: &HeaderMap, names: &[impl AsRef<str>]) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter_map(|pair| pair.split(|&b| b == b'=').next())
        .any(|name| {
            let name = name.trim_ascii();
            names.iter().any(|n| n.as_ref().as_bytes() == name)
        })
}

/// `Cache-Control: no-cache`, or `Pragma: no-cache` without a `Cache-Control` (which wins
/// over it, RFC 9111 section 5.4): the client wants the origin asked.
pub(super) fn client_wants_no_cache(headers: &HeaderMap) -> bool {
    match policy::CacheControl::from_headers(headers, header::CACHE_CONTROL.as_str()) {
        Some(cc) => cc.no_cache,
        None => headers
            .get(header::PRAGMA)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache")),
    }
}

/// `Cache-Control: no-store`: the answer to this request must not be stored.
pub(super) fn client_wants_no_store(headers: &HeaderMap) -> bool {
    policy::CacheControl::from_headers(headers, header::CACHE_CONTROL.as_str())
        .is_some_and(|cc| cc.no_store)
}

/// `Cache-Control: only-if-cached`: the client wants a stored response or nothing (RFC 9111
/// section 5.2.1.7).
pub(super) fn client_only_if_cached(headers: &HeaderMap) -> bool {
    policy::header_directives(headers, header::CACHE_CONTROL)
        .any(|directive| directive.is("only-if-cached"))
}

/// Adds `Vary: Accept-Encoding` to a compressed answer passed on unstored that does not say
/// it, as a stored one gets (see `fetch_once`): the origin was asked with the edge's encoding
/// class or the client's `Accept-Encoding`, and a cache in front of the edge must not hand
/// this body to a client that cannot decode it.
pub(super) fn says_it_varies_by_encoding(headers: &mut HeaderMap) {
    if is_compressed(headers)
        && !vary_names(headers)
            .iter()
            .any(|name| name == header::ACCEPT_ENCODING || name.as_str() == "*")
    {
        headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// Whether the answer's body is in a content coding (`gzip`, `br`, ...), not as the page is.
pub(super) fn is_compressed(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(crate::cache::entry::names_content_coding)
}

/// The header names a response's `Vary` lists, lowercased, sorted, without duplicates.
pub(super) fn vary_names(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).ok())
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

/// Adds `X-Cache` and `Cache-Status` to a response that did not come from a stored entry.
pub(super) fn mark(
    mut response: Response<Body>,
    status: CacheStatus,
    detail: Option<&str>,
) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("x-cache"),
        HeaderValue::from_static(status.x_cache()),
    );
    // After the members of the caches before this one (RFC 9211 section 2).
    if let Ok(value) = HeaderValue::from_str(&cache_status_header(status, None, detail)) {
        headers.append(HeaderName::from_static("cache-status"), value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_names_are_normalised() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::VARY,
            HeaderValue::from_static("RSC, Next-Router-State-Tree"),
        );
        headers.append(
            header::VARY,
            HeaderValue::from_static("accept-encoding, rsc"),
        );
        let names: Vec<String> = vary_names(&headers).iter().map(|n| n.to_string()).collect();
        assert_eq!(names, ["accept-encoding", "next-router-state-tree", "rsc"]);
    }

    #[test]
    fn header_text_reads_utf8_else_latin1() {
        let text = |bytes: &[u8]| {
            header_text(&HeaderValue::from_bytes(bytes).expect("value")).into_owned()
        };
        assert_eq!(text(b"products"), "products");
        assert_eq!(text("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(text(b"caf\xe9"), "caf\u{e9}");
    }

    #[test]
    fn cookie_names() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __prerender_bypass=x"),
        );
        assert!(has_cookie(&headers, &["__prerender_bypass"]));
        assert!(!has_cookie(&headers, &["__next_preview_data"]));
    }
}
