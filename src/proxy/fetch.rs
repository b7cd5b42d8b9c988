//! The origin fetch behind a cache miss or refresh: one GET, read whole up to
//! `--max-object-size` within the origin timeout, turned into an entry and admitted. Anything
//! that cannot be stored streams through (`PrefixedBody` replays what was already read).

use super::headers::{is_compressed, says_it_varies_by_encoding, vary_names};
use super::*;
use crate::cache::entry::is_rsc_content;
use crate::cache::key::{named_in_connection, rewrite_tags};

/// Next.js's `Next-Url` request header (the page a client-side navigation starts from).
const NEXT_URL: HeaderName = HeaderName::from_static("next-url");

/// The request headers that make Next.js answer an RSC request with a prefetch (a page's
/// payload up to its loading boundary, or one segment of it) instead of the whole payload.
const PREFETCH_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("next-router-prefetch"),
    HeaderName::from_static("next-router-segment-prefetch"),
];

/// Logs an origin failure, before its answer's head or in the body of a page read for the
/// cache, whatever the client then gets (a 5xx, or a stale copy, which has a line of its own
/// where it is served). At most one line a second per process, saying how
/// many more failed since: an origin down under load would otherwise write a line per
/// request. The origin is named as configured, credential query parameters masked.
fn log_origin_failure(upstream: &Upstream, error: &UpstreamError) {
    static LINES: crate::logging::EverySecond = crate::logging::EverySecond::new();
    let Some(held_back) = LINES.admit() else {
        return;
    };
    let origin = upstream.base_url();
    tracing::warn!(
        origin = %crate::logging::masked_url(&origin),
        kind = error.kind(),
        %error,
        more_since_last_line = held_back,
        "origin request failed"
    );
}

impl Proxy {
    /// Sends one request to the origin, counting it, its latency and its failure kind.
    /// `client_body`: how the client's body forwarded with it fared; a failure caused by that
    /// body (too large, malformed, cut short, stalled) is not counted against the origin.
    pub(super) async fn send_origin(
        &self,
        upstream: &Upstream,
        request: http::Request<crate::body::UpstreamBody>,
        client_body: Option<&limit::BodyFault>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let started = Instant::now();
        let uploaded = || client_body.and_then(limit::BodyFault::last_forwarded);
        let result = upstream.send(request, uploaded).await;
        match &result {
            Ok(_) => self.metrics.origin_request(Some(started.elapsed())),
            Err(error) => {
                self.metrics.origin_request(None);
                if client_body.and_then(|body| body.fault_for(error)).is_none() {
                    self.metrics.origin_error(error.kind());
                    log_origin_failure(upstream, error);
                }
            }
        }
        result
    }

    /// One GET to the origin for the cache: storable responses are read whole and admitted.
    /// With a stored copy to refresh (`fetch.copy`), the GET carries the copy's validators
    /// first: a `304` that confirms it renews the copy without the body crossing again (what
    /// Varnish does, and nginx with `proxy_cache_revalidate`); one that does not is followed
    /// by a plain GET.
    pub(super) async fn fetch_for_cache(&self, fetch: FetchRequest) -> Fetched {
        let conditional = self.settings.conditional_refresh;
        if let Some(copy) = fetch.copy.as_ref().filter(|_| conditional) {
            if let Some(fetched) = self.fetch_once(&fetch, Some(copy)).await {
                return fetched;
            }
        }
        // Without a copy there is nothing a 304 could confirm: `fetch_once` answers it itself.
        match self.fetch_once(&fetch, None).await {
            Some(fetched) => fetched,
            None => self.unasked_not_modified(&fetch),
        }
    }

    /// A 304 to a fetch without conditions answers nothing it asked, and a client that sent
    /// none would get an empty page: a protocol error (a 502, or the stale copy), never stored.
    /// An origin bug nothing else would show the operator but a count of protocol errors: one
    /// line a second, naming the page (not its query, which may carry a token).
    fn unasked_not_modified(&self, fetch: &FetchRequest) -> Fetched {
        static LINES: crate::logging::EverySecond = crate::logging::EverySecond::new();
        if let Some(held_back) = LINES.admit() {
            tracing::warn!(
                host = %fetch.host,
                page = %fetch.page,
                more_since_last_line = held_back,
                "origin answered 304 Not Modified to a request without conditions; treated as an origin error"
            );
        }
        self.metrics.origin_error("protocol");
        Fetched::Error(
            UpstreamError::Protocol("origin answered 304 to a request without conditions".into()),
            None,
        )
    }

    /// One GET, conditional on `copy`'s validators when it has any. `None`: the origin's `304`
    /// did not confirm `copy`, and the page must be asked for whole.
    async fn fetch_once(&self, fetch: &FetchRequest, copy: Option<&Arc<Entry>>) -> Option<Fetched> {
        let Some(upstream) = self.origins.for_host(&fetch.host) else {
            return Some(Fetched::Error(
                UpstreamError::Connect(format!("no origin for host {:?}", fetch.host)),
                None,
            ));
        };
        let epoch = self.cache.epoch();
        let asked_at = Instant::now();
        // How every answer passed on without being stored is labelled.
        let unstored = CacheStatus::Miss {
            stored: false,
            fwd: fetch.fwd,
        };
        let mut headers =
            origin_request_headers(&fetch.headers, &Method::GET, &fetch.host, fetch.peer);
        // A fetch for the cache is a plain GET without a body, whatever the client sent: a
        // client's `Content-Length` with no body behind it would hold the origin (and every
        // request coalesced behind this one) until the origin timeout. The client's own
        // conditions are about its copy, not the cache's.
        for name in [
            header::CONTENT_LENGTH,
            header::EXPECT,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::IF_RANGE,
            header::RANGE,
            // A page read whole keeps no trailers.
            header::TE,
        ] {
            headers.remove(name);
        }
        // The stored body must suit every client in the encoding class, not just this one.
        match encoding_class(&fetch.headers) {
            "identity" => headers.remove(header::ACCEPT_ENCODING),
            class => headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(class)),
        };
        let has_authorization = fetch.headers.contains_key(header::AUTHORIZATION);
        // Not for a request with credentials: a 304 without `Cache-Control` would renew the
        // copy without the `public` that storing an answer to credentials needs.
        let copy = copy.filter(|copy| !has_authorization && copy.add_validators(&mut headers));
        let request = match upstream.request(
            Method::GET,
            &fetch.path_and_query,
            headers,
            body::empty_upstream(),
        ) {
            Ok(r) => r,
            Err(e) => return Some(Fetched::Error(e, None)),
        };
        let response = match self.send_origin(upstream, request, None).await {
            Ok(r) => r,
            Err(e) => return Some(Fetched::Error(e, None)),
        };
        let status = response.status();
        if status == http::StatusCode::NOT_MODIFIED {
            if let Some(copy) = copy {
                let (head, _) = response.into_parts();
                return self.confirm(copy, head.headers, fetch, epoch);
            }
            // The client's conditions were stripped above.
            return Some(self.unasked_not_modified(fetch));
        }
        if status.is_server_error() {
            self.metrics.origin_error("status");
            let answer = self
                .origin_answer(response, fetch, upstream.timeout())
                .await;
            return Some(Fetched::Error(UpstreamError::Status(status), answer));
        }
        let route = self.routes.find(&fetch.page);
        let lifetime = self.lifetime(route, has_authorization, status, response.headers());
        let lifetime = match lifetime {
            Ok(lifetime) => lifetime,
            Err(why) => {
                // A 4xx about the request (a header the origin refused, a rate limit) must not
                // evict the copy everyone else is served. Any other answer that cannot be stored
                // is the page's new state: a redirect, or a 401/403/451 for a page withdrawn
                // (a personal one is kept out by the credentials guard).
                if !(why == policy::NotStorable::Status && about_the_request(status)) {
                    self.withdraw_replaced_copy(fetch, asked_at, epoch);
                }
                return Some(Fetched::Uncacheable(self.relay(
                    response,
                    unstored,
                    Some(why.as_str()),
                )));
            }
        };
        // An answer a request like this one could never be served from the cache (the RSC
        // guard of `Entry::matches_at`: Next's empty 404 to a segment prefetch, a Pages Router
        // page's HTML to `RSC: 1`) is passed on unstored: stored, it would take memory, say
        // `stored`, and send every such request to the origin all the same. It says nothing
        // of the copy the other kind of request is served, so nothing is withdrawn.
        if !names_rsc_payload(&fetch.key)
            && is_rsc_content(response.headers()) != is_rsc_request(&fetch.headers)
        {
            return Some(Fetched::Uncacheable(self.relay(
                response,
                unstored,
                Some("rsc-mismatch"),
            )));
        }
        let declared_length = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared_length.is_some_and(|len| len > self.settings.max_object_size) {
            self.withdraw_replaced_copy(fetch, asked_at, epoch);
            return Some(Fetched::Uncacheable(self.relay(
                response,
                unstored,
                Some("too-large"),
            )));
        }

        let (head, body) = response.into_parts();
        let bytes =
            match read_limited(body, self.settings.max_object_size, upstream.timeout()).await {
                Read::Complete(bytes) => bytes,
                Read::TooLarge(prefix, rest) => {
                    self.withdraw_replaced_copy(fetch, asked_at, epoch);
                    let response = http::Response::from_parts(head, PrefixedBody { prefix, rest });
                    return Some(Fetched::Uncacheable(self.relay(
                        response,
                        unstored,
                        Some("too-large"),
                    )));
                }
                Read::Failed(error) => {
                    self.metrics.origin_error(error.kind());
                    log_origin_failure(upstream, &error);
                    return Some(Fetched::Error(error, None));
                }
            };

        let mut headers = head.headers;
        // Its trailers, if any, were not kept with the body.
        headers.remove(header::TRAILER);
        let tags = self.page_tags(&mut headers, route, &fetch.page);
        let mut vary = vary_names(&headers)
            .into_iter()
            .map(|name| {
                // A header the client named in `Connection` never reached the origin: the page
                // was rendered without it, and is the variant for its absence. Every other value
                // is the client's, as lookups compare them (headers the edge sets itself stay
                // out of it, or no later request would match).
                let value = if named_in_connection(&fetch.headers, &name) {
                    None
                } else {
                    vary_value(&fetch.headers, &name).map(|v| v.into_owned())
                };
                (name, value)
            })
            .collect::<Vec<_>>();
        // Next.js checks an RSC request's `_rsc` against a hash of its router headers,
        // `Next-Url` included, and answers a 307 when they disagree, but does not list
        // `Next-Url` in `Vary` (outside interception routes). A payload fetched with one is
        // kept for it as if it were listed, so re-warming sends it back (without it, Next
        // answered the warming fetch with a 307 and the next navigation missed). Requests
        // sharing an `_rsc` value share their `Next-Url`: hits are the same.
        if is_rsc_request(&fetch.headers)
            && is_rsc_content(&headers)
            && !vary.iter().any(|(name, _)| name == NEXT_URL)
            && !named_in_connection(&fetch.headers, &NEXT_URL)
        {
            if let Some(next_url) = vary_value(&fetch.headers, &NEXT_URL) {
                vary.push((NEXT_URL, Some(next_url.into_owned())));
                // Sorted as `vary_names` gives them, so pages varying alike share one list.
                vary.sort_by(|(a, _), (b, _)| a.as_str().cmp(b.as_str()));
            }
        }
        // A prefetch answer served to a navigation renders the page's loading state and never
        // the page, and a whole payload served to a segment prefetch cannot be read as one.
        // Next.js lists both headers in `Vary` (13 and 14 only the first: they send no segment
        // prefetches), but an origin that forgot `Vary`, or a `headers()` rule that replaced
        // it, lists neither: a payload is kept for the values it was made for as if listed,
        // as the RSC guard keeps payloads and HTML apart.
        if is_rsc_request(&fetch.headers) && is_rsc_content(&headers) {
            for name in PREFETCH_HEADERS {
                if vary.iter().any(|(listed, _)| *listed == name) {
                    continue;
                }
                let value = if named_in_connection(&fetch.headers, &name) {
                    None
                } else {
                    vary_value(&fetch.headers, &name).map(|v| v.into_owned())
                };
                vary.push((name, value));
            }
            vary.sort_by(|(a, _), (b, _)| a.as_str().cmp(b.as_str()));
        }
        if !vary.iter().any(|(name, _)| name == header::ACCEPT_ENCODING)
            && (is_compressed(&headers) || self.cache.varies_by_encoding(&fetch.key))
        {
            // An origin compressing without `Vary: Accept-Encoding` (nginx's `gzip on` without
            // `gzip_vary`): the compressed copy is kept for its encoding class alone, or a
            // client that never asked for gzip would be served it. A plain answer for a URL
            // held that way is kept for its class too: with no `Vary` it would replace the
            // compressed copy (variants agree on their `Vary`), and the next browser would
            // fetch that again, and so on. Downstream caches are told as nginx's `gzip_vary`
            // tells them.
            vary.push((
                header::ACCEPT_ENCODING,
                Some(encoding_class(&fetch.headers).to_string()),
            ));
            vary.sort_by(|(a, _), (b, _)| a.as_str().cmp(b.as_str()));
            headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        let initial_age = initial_age(&headers, &lifetime);
        let freshness_field = FreshnessField::of(&headers);
        self.client_facing(&mut headers, true);
        let new = NewEntry {
            freshness_field,
            status,
            headers,
            body: bytes,
            vary,
            tags,
            lifetime,
            initial_age,
        };
        let (entry, stored) = self.cache.admit(&fetch.key, &fetch.page, new, epoch);
        Some(Fetched::Entry(entry, Admitted::Fetched { stored }))
    }

    /// The origin's `304` for `copy`: the copy renewed with the answer's fields and lifetime,
    /// admitted. `None` when the page must be asked for whole, and that answer decides, as it
    /// would without a copy: the answer does not confirm the copy (another `ETag`, a `Vary`
    /// naming more), no longer lets it be stored (`private`, `Set-Cookie`), or the copy is no
    /// longer the one the cache holds (purged, replaced, withdrawn since it was found: a
    /// validator, weak or a `Last-Modified` to the second, could confirm what a purge said
    /// had changed).
    fn confirm(
        &self,
        copy: &Arc<Entry>,
        mut update: HeaderMap,
        fetch: &FetchRequest,
        epoch: u64,
    ) -> Option<Fetched> {
        if !copy.confirmed_by(&update, &vary_names(&update)) || !self.cache.holds(&fetch.key, copy)
        {
            return None;
        }
        let route = self.routes.find(&fetch.page);
        // The lifetime is set again only by a field at least as strong as the one that set it:
        // a 304 need not repeat a `CDN-Cache-Control`, and its `Cache-Control` (or nothing, as
        // RFC 9110 section 15.4.5 allows) must not override it. Otherwise the stored lifetime
        // stands (its route rule applied).
        let field = FreshnessField::of(&update);
        let stored_field = copy.freshness_field();
        let (lifetime, field) = if field != FreshnessField::None && field >= stored_field {
            (
                self.lifetime(route, false, copy.status, &update).ok()?,
                field,
            )
        } else if field == FreshnessField::None && stored_field == FreshnessField::Expires {
            // RFC 9111 section 4.3.4: the stored `Expires` stands and is measured against the
            // 304's `Date`. The copy is fresh until the time the origin named, not for the same
            // span again: an `Expires` at midnight does not become one a day later. Set among
            // the 304's fields, it renews the copy with the value it already had.
            if let Some(expires) = copy.expires() {
                update.insert(header::EXPIRES, expires);
            }
            (
                self.lifetime(route, false, copy.status, &update).ok()?,
                stored_field,
            )
        } else {
            if update.contains_key(header::SET_COOKIE) {
                return None;
            }
            (copy.lifetime(), stored_field)
        };
        let initial_age = initial_age(&update, &lifetime);
        let names_tags = self
            .settings
            .tag_headers
            .iter()
            .any(|name| update.contains_key(name));
        let tags = if names_tags {
            let mut tags = self.page_tags(&mut update, route, &fetch.page);
            if rewrite_tags(&update, &fetch.page).is_empty() {
                // A 304 need not repeat the rewrite headers the copy was stored with: the
                // copy's implicit tags stand, or a purge of the rewrite target would miss it.
                tags.extend(
                    copy.tags()
                        .iter()
                        .filter(|t| t.starts_with("_N_T_"))
                        .cloned(),
                );
                tags.sort();
                tags.dedup();
            }
            tags
        } else {
            copy.tags().to_vec()
        };
        let has_cache_control = update.contains_key(header::CACHE_CONTROL);
        self.client_facing(&mut update, true);
        if !has_cache_control {
            // The browser `Cache-Control` stored with the copy stands.
            update.remove(header::CACHE_CONTROL);
        }
        self.metrics.origin_not_modified();
        let new = copy.confirmed(update, lifetime, field, initial_age, tags);
        let (entry, stored) = self.cache.admit(&fetch.key, &fetch.page, new, epoch);
        Some(Fetched::Entry(entry, Admitted::Confirmed { stored }))
    }

    /// Whether and how long an answer is stored: the page's `[[route]]` rule, else the
    /// origin's headers.
    fn lifetime(
        &self,
        route: Option<&RouteRule>,
        has_authorization: bool,
        status: http::StatusCode,
        headers: &HeaderMap,
    ) -> Result<policy::Lifetime, policy::NotStorable> {
        let now = SystemTime::now();
        match route {
            Some(rule) => rule.lifetime(
                has_authorization,
                status,
                headers,
                &self.settings.freshness,
                now,
            ),
            None => policy::storable_lifetime(
                &Method::GET,
                has_authorization,
                status,
                headers,
                &self.settings.freshness,
                now,
            ),
        }
    }

    /// The tags an answer for `page` names, with its route rule's and those of the page a
    /// Next.js middleware rewrite rendered it from.
    fn page_tags(
        &self,
        headers: &mut HeaderMap,
        route: Option<&RouteRule>,
        page: &str,
    ) -> Vec<Box<str>> {
        let mut tags = self.take_tags(headers);
        tags.extend(rewrite_tags(headers, page));
        if let Some(rule) = route {
            tags.extend(rule.tags.iter().cloned());
        }
        tags.sort();
        tags.dedup();
        tags
    }

    /// The origin's own error answer: read whole when anyone may get it and it is small (error
    /// pages are), so the requests coalesced behind this fetch get it too; streamed to this
    /// request alone when not; none when its body fails (the proxy's own error then). An
    /// answer to credentials, or one that sets a cookie, says `private` or `no-store`, or
    /// varies on more than encoding and RSC, is this request's alone, as it would be if it
    /// were a page: a Laravel 500 sets the session cookie of the request that caused it.
    async fn origin_answer(
        &self,
        response: Response<Incoming>,
        fetch: &FetchRequest,
        timeout: std::time::Duration,
    ) -> Option<OriginAnswer> {
        const ERROR_PAGE_MAX: u64 = 64 * 1024;
        let (mut head, body) = response.into_parts();
        self.client_facing(&mut head.headers, false);
        // Asked with the edge's encoding class, as any answer passed on unstored.
        says_it_varies_by_encoding(&mut head.headers);
        let cache_control =
            policy::CacheControl::from_headers(&head.headers, header::CACHE_CONTROL.as_str())
                .unwrap_or_default();
        // Requests of another encoding class or kind (HTML, RSC) never share a fetch (see
        // `flight_key`): a `Vary` naming only those (Next.js's) does not make it personal.
        let varies = vary_names(&head.headers).iter().any(|name| {
            !matches!(
                name.as_str(),
                "accept-encoding"
                    | "rsc"
                    | "next-router-state-tree"
                    | "next-router-prefetch"
                    | "next-router-segment-prefetch"
                    | "next-url"
            )
        });
        let personal = fetch.headers.contains_key(header::AUTHORIZATION)
            || fetch.headers.contains_key(header::COOKIE)
            || head.headers.contains_key(header::SET_COOKIE)
            || varies
            || !policy::vary_names_only_fields(&head.headers)
            || cache_control.private
            || cache_control.no_store;
        // With a stored copy that can stand in, the body is not waited for: the copy answers,
        // and this page (streamed) only if the copy stopped being usable meanwhile.
        if personal || fetch.stale_fallback {
            return Some(OriginAnswer::Streamed(
                self.streamed(http::Response::from_parts(head, body)),
            ));
        }
        match read_limited(body, ERROR_PAGE_MAX, timeout).await {
            Read::Complete(body) => {
                head.headers.remove(header::CONTENT_LENGTH);
                head.headers.remove(header::TRANSFER_ENCODING);
                head.headers.remove(header::TRAILER);
                Some(OriginAnswer::Read(Arc::new(ErrorPage {
                    status: head.status,
                    headers: head.headers,
                    body,
                })))
            }
            Read::TooLarge(prefix, rest) => Some(OriginAnswer::Streamed(self.streamed(
                http::Response::from_parts(head, PrefixedBody { prefix, rest }),
            ))),
            Read::Failed(_) => None,
        }
    }

    /// The origin's answer cannot be stored (private now, too large...), and it is the page's
    /// state, not an answer to this request alone: the URL is noted as unstorable, and the
    /// stored copy this request would get must not outlive it, or it would be served stale for
    /// the whole stale window while every refresh is thrown away. Not a purge: bumping the
    /// epoch here (on every private page) would make every concurrent fetch of other URLs
    /// unstorable. Only the variants this request matches go (`Cache::withdraw_answered`): an
    /// RSC request's answer says nothing about the HTML copy, nor one `Accept-Language` about
    /// another. `epoch`: the purge epoch read before the origin was asked.
    fn withdraw_replaced_copy(&self, fetch: &FetchRequest, asked_at: Instant, epoch: u64) {
        // Nor does a client with credentials speak for the others: its answer may be personal
        // (an `Authorization` the origin did not mark `public`, a session cookie answered with
        // `Set-Cookie`) while the stored copy still serves everyone else. Nor one that asked
        // past a fresh copy (`no-cache` with `--honor-client-no-cache`): any client could
        // evict a page on demand whenever a WAF or a geo rule answers it alone 403 or 302.
        let credentials = fetch.headers.contains_key(header::AUTHORIZATION)
            || fetch.headers.contains_key(header::COOKIE);
        if !credentials && fetch.fwd != Forward::Request {
            self.cache
                .withdraw_answered(&fetch.key, &fetch.headers, asked_at);
            // The same answers, and only they, speak for the URL in the memory of pages found
            // unstorable (see `Cache::note_unstorable`): noted by one client's credentials, an
            // RSC request's answer, or a 429 for one client, it would send everyone's ranges
            // past the cache, and a client could keep a video from ever being stored.
            self.cache.note_unstorable(&fetch.key, epoch);
        }
    }
}

/// Age the answer already had when it arrived. RFC 9111 section 1.2.2: an `Age` too large to
/// read is 2^31 seconds, not 0.
fn initial_age(headers: &HeaderMap, lifetime: &policy::Lifetime) -> std::time::Duration {
    let age = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .map(|v| v.parse::<u64>().unwrap_or(u64::MAX).min(1 << 31))
        .map(std::time::Duration::from_secs)
        .unwrap_or_default();
    // Next.js sends the full s-maxage on a STALE answer (vercel/next.js#49084): store it as
    // already stale so it is refreshed on the next request instead of a full period later.
    if headers
        .get("x-nextjs-cache")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"stale"))
    {
        return age.max(lifetime.fresh_for);
    }
    age
}

/// Statuses that answer something about the request itself rather than the page it names.
fn about_the_request(status: http::StatusCode) -> bool {
    matches!(
        status.as_u16(),
        400 | 406 | 408 | 411 | 412 | 413 | 415 | 416 | 417 | 421 | 428 | 429 | 431
    )
}

enum Read {
    Complete(Bytes),
    /// Over the limit: what was read so far and the rest of the body, to stream through.
    TooLarge(VecDeque<Bytes>, Incoming),
    Failed(UpstreamError),
}

async fn read_limited(mut body: Incoming, limit: u64, timeout: std::time::Duration) -> Read {
    let deadline = Instant::now() + timeout;
    let mut chunks: VecDeque<Bytes> = VecDeque::new();
    let mut total: u64 = 0;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Read::Failed(UpstreamError::Timeout(timeout)),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Read::Failed(UpstreamError::Body(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            chunks.push_back(data);
            if total > limit {
                return Read::TooLarge(chunks, body);
            }
        }
    }
    // Always into a buffer of its own: a chunk hyper hands out is a slice of the connection's
    // read buffer, and keeping it would keep that whole buffer (KiBs) alive per stored page.
    let mut joined = Vec::with_capacity(total as usize);
    for chunk in chunks {
        joined.extend_from_slice(&chunk);
    }
    Read::Complete(Bytes::from(joined))
}

/// The part of a body already read, then the rest as it arrives.
struct PrefixedBody {
    prefix: VecDeque<Bytes>,
    rest: Incoming,
}

impl HttpBody for PrefixedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(chunk) = self.prefix.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}
