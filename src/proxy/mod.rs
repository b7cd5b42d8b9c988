//! The data plane: one request, top to bottom.
//!
//! ```text
//! origin for the Host?    -> none: 421 (see `origins`)
//! bypass rule?             -> forward as is (X-Cache: BYPASS); unsafe methods evict the page;
//!                             a `[[route]]` with `bypass = true` is one (`routes`)
//! key = canonical host (no default port, no trailing dot) + path + query
//! lookup(key, Vary)
//!   Fresh                  -> HIT; with --honor-client-no-cache a `no-cache` request refreshes
//!                             it instead, as below (Cache-Status fwd=request)
//!   Stale (in SWR window)  -> STALE now, one background refresh (single flight)
//!   Expired / none         -> single flight: the leader's task fetches, admits if storable,
//!                             followers share its outcome; a failure falls back to the
//!                             expired copy while stale-if-error allows (STALE), else 502/504
//! refresh of a stored copy -> conditional on its own validators; a 304 that confirms it renews
//!                             it (its fields and lifetime) without the body crossing again
//! a GET with `Range`       -> looked up and fetched as the whole page, then cut (`range`);
//!                             a page that cannot be stored: the range is asked of the origin
//! ```
//! A matching `[[route]]` sets the lifetime and adds tags at admission (`routes`).
//! Storable responses are read whole (up to `--max-object-size`) before the client gets them,
//! so a truncated body is never stored or half-served from cache; anything else streams.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::body::{self, Answer, Body};
use crate::cache::entry::{cache_status_header, is_rsc_request, not_modified_by, NOT_IN_304};
use crate::cache::inflight::{Flight, Inflight, Joined, Waited};
use crate::cache::key::{
    canonical_host, encoding_class, is_plain_host, names_rsc_payload, normalized, page_path,
    primary_key, primary_key_text, push_plain_key, split_key, vary_value, Key,
};
use crate::cache::policy::{
    self, browser_cache_control, Freshness, FreshnessField, FreshnessRules,
};
use crate::cache::{Cache, CacheStatus, Entry, Forward, NewEntry, PurgeMode, PurgeRun, Selector};

use crate::config::{BrowserCacheControl, Limits};
use crate::limits::{self as limit, Capped, IdleTimeout};
use crate::metrics::{Metrics, StaleReason};
use crate::origins::{misdirected, Origins};
use crate::routes::{RouteRule, Routes};
use crate::server::Uploading;
use crate::upstream::{
    foreign_transfer_coding, origin_request_headers, origin_request_trailers, Upstream,
    UpstreamError,
};

mod fetch;
mod headers;
mod range;
mod warm;

use headers::{
    client_only_if_cached, client_wants_no_cache, client_wants_no_store, has_cookie, host_given,
    mark, request_host,
};
use warm::Warming;

/// The proxy's knobs (see `config` for defaults).
#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub max_object_size: u64,
    pub freshness: FreshnessRules,
    pub honor_client_no_cache: bool,
    /// Refreshes carry the stored copy's validators (`--conditional-refresh`).
    pub conditional_refresh: bool,
    pub browser_cache_control: BrowserCacheControl,
    /// Response headers that carry cache tags; removed before clients see them unless
    /// `keep_tag_headers`.
    pub tag_headers: Vec<HeaderName>,
    pub limits: Limits,
    /// Cookie names that make a request skip the cache (`--bypass-cookie`).
    pub bypass_cookies: Vec<String>,
    pub keep_tag_headers: bool,
}

pub struct Proxy {
    cache: Arc<Cache>,
    origins: Origins,
    routes: Routes,
    inflight: Inflight<Shared>,
    settings: ProxySettings,
    metrics: Arc<Metrics>,
    warming: Arc<Warming>,
    /// Unsafe exchanges still running for clients that went away (see [`Orphan`]).
    orphans: Arc<Semaphore>,
}

/// What one fetch for the cache produced, as every waiter sees it.
#[derive(Clone)]
enum Shared {
    Entry(Arc<Entry>, Admitted),
    /// With the origin's own error page when it was read whole.
    Error(UpstreamError, Option<Arc<ErrorPage>>),
    /// Not shareable (private, too large, ...): each waiter asks the origin itself.
    Uncacheable,
}

/// What the request that started a fetch gets.
enum Fetched {
    /// A complete storable response.
    Entry(Arc<Entry>, Admitted),
    /// The origin failed, with its own answer (its 5xx) if it sent one.
    Error(UpstreamError, Option<OriginAnswer>),
    /// Passed through as the origin sent it.
    Uncacheable(Response<Body>),
    /// The fetch this range or HEAD request waited on could not be shared: it goes to the
    /// origin on its own, as sent (a page too large to store is not downloaded whole for a
    /// part, or for its head).
    Unshared(PassAsSent),
}

/// How a fetch for the cache ended with a storable page; `stored`: kept in the cache (not
/// refused by a purge that ran meanwhile).
#[derive(Debug, Clone, Copy)]
enum Admitted {
    /// The origin sent the page.
    Fetched { stored: bool },
    /// The origin's `304` confirmed the stored copy, renewed.
    Confirmed { stored: bool },
}

impl Admitted {
    /// How the response is labelled, for a request that went to the origin because of `fwd`.
    fn status(self, fwd: Forward) -> CacheStatus {
        match self {
            Admitted::Fetched { stored } => CacheStatus::Miss { stored, fwd },
            Admitted::Confirmed { stored } => CacheStatus::Revalidated { stored, fwd },
        }
    }
}

/// The origin's own answer to a fetch that failed (a 5xx).
enum OriginAnswer {
    /// Read whole: the requests that waited on the fetch get it too.
    Read(Arc<ErrorPage>),
    /// Too large to hold: streamed to the request that started the fetch; the others get
    /// the proxy's own error.
    Streamed(Response<Body>),
}

impl OriginAnswer {
    fn response(self) -> Response<Body> {
        match self {
            OriginAnswer::Read(page) => page.response(),
            OriginAnswer::Streamed(response) => response,
        }
    }
}

/// An origin's 5xx read whole (its maintenance page, its `Retry-After`): during an outage every
/// visitor coalesced behind one fetch gets what the origin said, not a made-up error. Only an
/// answer meant for anyone is shared (see `fetch::origin_answer`).
struct ErrorPage {
    status: http::StatusCode,
    /// Client-facing already, without framing (the body is whole).
    headers: HeaderMap,
    body: Bytes,
}

impl ErrorPage {
    fn response(&self) -> Response<Body> {
        let mut response = Response::new(body::full(self.body.clone()));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}

impl Fetched {
    fn shared(&self) -> Shared {
        match self {
            Fetched::Entry(entry, admitted) => Shared::Entry(entry.clone(), *admitted),
            Fetched::Error(error, answer) => Shared::Error(
                error.clone(),
                match answer {
                    Some(OriginAnswer::Read(page)) => Some(page.clone()),
                    _ => None,
                },
            ),
            Fetched::Uncacheable(_) | Fetched::Unshared(_) => Shared::Uncacheable,
        }
    }
}

/// Everything a fetch for the cache needs, owned so it can run in its own task.
struct FetchRequest {
    key: Key,
    page: String,
    path_and_query: String,
    host: String,
    peer: IpAddr,
    headers: HeaderMap,
    /// A stored copy answers if the origin fails (stale-while-revalidate, stale-if-error): the
    /// origin's error page is not wanted then, and reading it would only delay that copy.
    stale_fallback: bool,
    /// The stored copy this request found stale or expired: the origin may confirm it with a
    /// `304` instead of sending the page again (unless `--conditional-refresh off`).
    copy: Option<Arc<Entry>>,
    /// Why the origin is asked.
    fwd: Forward,
}

/// How a request sent to the origin as it came is labelled (`X-Cache`, `Cache-Status`).
#[derive(Debug, Clone, Copy)]
struct PassLabel {
    status: CacheStatus,
    detail: &'static str,
}

impl PassLabel {
    /// Never considered for caching, for `reason`.
    fn bypass(reason: &'static str) -> PassLabel {
        PassLabel {
            status: CacheStatus::Bypass,
            detail: reason,
        }
    }

    /// `response` labelled so.
    fn mark(self, response: Response<Body>) -> Response<Body> {
        mark(response, self.status, Some(self.detail))
    }

    /// A range or HEAD (`detail`) of a page that cannot be stored, asked for as sent: a miss
    /// like any request for that page (not a bypass, which is configured), asked for the
    /// reason `fwd`.
    fn as_sent(fwd: Forward, detail: &'static str) -> PassLabel {
        PassLabel {
            status: CacheStatus::Miss { stored: false, fwd },
            detail,
        }
    }
}

/// What a range or HEAD request needs to go to the origin as sent, should the whole page it
/// waited for turn out not to be storable: its body, normalised path and host.
type PassAsSent = (Incoming, String, String);

impl Proxy {
    /// Whether unsafe exchanges whose clients went away are still running (see [`Orphan`]):
    /// shutdown waits for them as for open connections, so the origin is not cut off while
    /// acting on a form post.
    pub fn orphans_running(&self) -> bool {
        self.orphans.available_permits() < orphan_capacity(&self.settings)
    }

    pub fn new(cache: Arc<Cache>, upstream: Upstream, settings: ProxySettings) -> Proxy {
        Proxy::with_origins(cache, Origins::single(upstream), settings)
    }

    /// A proxy in front of several origins chosen by `Host`.
    pub fn with_origins(cache: Arc<Cache>, origins: Origins, settings: ProxySettings) -> Proxy {
        Proxy {
            metrics: Arc::new(Metrics::new(cache.clone())),
            cache,
            origins,
            routes: Routes::default(),
            inflight: Inflight::default(),
            orphans: Arc::new(Semaphore::new(orphan_capacity(&settings))),
            settings,
            warming: Arc::new(Warming::default()),
        }
    }

    /// Applies `[[route]]` rules (first match wins).
    pub fn with_routes(mut self, routes: Routes) -> Proxy {
        self.routes = routes;
        self
    }

    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// The default origin (else the first per-host one): what readiness checks probe.
    pub fn upstream(&self) -> Option<&Upstream> {
        self.origins.primary()
    }

    /// Which origins serve which hosts: a request for a host none serves is refused.
    pub fn origins(&self) -> &Origins {
        &self.origins
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// `normal_path`: the request path normalised (`cache::key::normalized`), or `None` when it
    /// already is normal.
    ///
    /// Everything up to the lookup runs here and now; only what waits for the origin (a pass,
    /// a miss) is a future, so a hit is answered without one.
    pub fn handle(
        self: &Arc<Self>,
        parts: Parts,
        normal_path: Option<String>,
        body: Incoming,
        peer: IpAddr,
    ) -> Answer {
        // The hit path borrows host and path from the request and builds the key in place (see
        // `with_plain_key`); the shared `Key` is made only when the origin is asked.
        if let Some(refusal) = refused_target(&parts) {
            return Answer::Ready(mark(refusal, CacheStatus::Bypass, Some("target")));
        }
        let Screen {
            host: written,
            bypass,
            range,
            conditional,
            rsc,
        } = self.screen(&parts);
        let Some(written) = written else {
            return Answer::Ready(limit::bad_host(&parts));
        };
        let plain = is_plain_host(written);
        if !plain && !limit::valid_host(written) {
            return Answer::Ready(limit::bad_host(&parts));
        }
        let host = if plain {
            Cow::Borrowed(written)
        } else {
            lowercased(canonical_host(written))
        };
        let host = host.as_ref();
        if self.origins.for_host(host).is_none() {
            return Answer::Ready(misdirected(host));
        }
        let path = match normal_path {
            None => Cow::Borrowed(parts.uri.path()),
            Some(path) => Cow::Owned(path),
        };
        let route_bypass = !self.routes.is_empty()
            && self
                .routes
                .find(&page_path(&path))
                .is_some_and(|rule| rule.bypass);
        if let Some(reason) = bypass.or(route_bypass.then_some("route")) {
            if client_only_if_cached(&parts.headers) {
                // What is bypassed is answered by the origin only, so not at all.
                return Answer::Ready(only_if_cached_miss(CacheStatus::Bypass));
            }
            let host = host.to_owned();
            let path = path.into_owned();
            let this = self.clone();
            return Answer::pending(async move {
                this.pass(parts, path, body, host, peer, PassLabel::bypass(reason))
                    .await
            });
        }
        // RFC 9110 section 14.2: ranges are defined for GET only; a HEAD is answered whole.
        let ranged = range && parts.method == Method::GET;
        // Only a range or a HEAD may still go to the origin as sent (see `Fetched::Unshared`):
        // for a page that cannot be stored, neither needs the whole page fetched.
        let as_sent = if ranged { "range" } else { "head" };
        let body = (ranged || parts.method == Method::HEAD).then_some(body);
        let now = Instant::now();
        // With `--honor-client-no-cache`, a `no-cache` reload is not answered from the stored
        // copy (RFC 9111 section 5.2.1.4) but refreshes it, as for an expired copy: the next
        // visitor gets what the reload got (nginx's `proxy_cache_bypass` stores it too).
        let refresh = self.settings.honor_client_no_cache && client_wants_no_cache(&parts.headers);

        let mut passed_over = None;
        let mut fwd = Forward::Miss;
        let query = parts.uri.query();
        let found = if plain {
            with_plain_key(host, &path, query, |key| {
                self.cache.lookup_as(key, &parts.headers, rsc, now)
            })
        } else {
            let key = primary_key_text(host, &path, query);
            self.cache.lookup_as(&key, &parts.headers, rsc, now)
        };
        if let Some(entry) = found {
            let age = entry.age(now);
            match entry.freshness_at_age(age) {
                Freshness::Fresh if refresh => {
                    passed_over = Some(entry);
                    fwd = Forward::Request;
                }
                Freshness::Fresh => {
                    let status = CacheStatus::Hit;
                    let response =
                        entry.render(&parts.method, &parts.headers, conditional, status, age);
                    return Answer::Labelled(
                        cut(ranged, response, &parts.headers),
                        status.x_cache(),
                    );
                }
                Freshness::Stale if !refresh => {
                    self.metrics.stale_served(if entry.is_soft_purged() {
                        StaleReason::SoftPurge
                    } else {
                        StaleReason::Swr
                    });
                    let key = primary_key(host, &path, query);
                    let mut fetch = self.fetch_request(&parts, key, &path, host.to_owned(), peer);
                    fetch.stale_fallback = true;
                    fetch.copy = Some(entry.clone());
                    fetch.fwd = Forward::Stale;
                    self.refresh_in_background(fetch);
                    let status = CacheStatus::Stale;
                    let response =
                        entry.render(&parts.method, &parts.headers, conditional, status, age);
                    return Answer::Labelled(
                        cut(ranged, response, &parts.headers),
                        status.x_cache(),
                    );
                }
                Freshness::Stale | Freshness::Expired => {
                    passed_over = Some(entry);
                    fwd = Forward::Stale;
                }
            }
        }

        if client_only_if_cached(&parts.headers) {
            // RFC 9111 section 5.2.1.7: no stored response that may be served, so 504.
            return Answer::Ready(only_if_cached_miss(CacheStatus::Miss {
                stored: false,
                fwd,
            }));
        }
        let key_text = primary_key_text(host, &path, query);
        let body = match body {
            // A range or HEAD of a page found unstorable a moment ago goes to the origin as
            // asked, without a whole-page fetch first (Varnish's hit-for-miss).
            Some(body) if self.cache.known_unstorable(&key_text, &page_path(&path)) => {
                let sent = (body, path.into_owned(), host.to_owned());
                let this = self.clone();
                return Answer::pending(async move {
                    let label = PassLabel::as_sent(fwd, as_sent);
                    this.pass_as_sent(parts, sent, peer, label).await
                });
            }
            body => body,
        };
        let mut fetch = self.fetch_request(&parts, key_text.into(), &path, host.to_owned(), peer);
        fetch.stale_fallback = passed_over.as_ref().is_some_and(|e| e.usable_on_error(now));
        fetch.copy = passed_over.clone();
        fetch.fwd = fwd;
        // Looked up again if the origin fails (a copy usable then must still be the cache's).
        let fallback_key = passed_over.is_some().then(|| fetch.key.clone());
        let mut passing = body.map(|body| (body, path.into_owned(), host.to_owned()));
        let this = self.clone();
        Answer::pending(async move {
            match (this.fetch_shared(fetch, &mut passing).await, passing) {
                (Fetched::Entry(entry, admitted), _) => {
                    let status = admitted.status(fwd);
                    let response =
                        entry.to_response(&parts.method, &parts.headers, status, Instant::now());
                    cut(ranged, response, &parts.headers)
                }
                // The page, asked for whole, could not be stored: rather than send all of it
                // (a video past `--max-object-size`), the range goes to the origin as asked,
                // if the origin would answer it (see `origin_serves_range`).
                (Fetched::Uncacheable(response), Some(passing))
                    if ranged && origin_serves_range(&response) =>
                {
                    // Dropped first: its origin connection is not held through the second ask.
                    drop(response);
                    let label = PassLabel::as_sent(fwd, as_sent);
                    this.pass_as_sent(parts, passing, peer, label).await
                }
                // A follower: it asked nothing yet, so it asks once, as sent.
                (Fetched::Unshared(passing), _) => {
                    let label = PassLabel::as_sent(fwd, as_sent);
                    this.pass_as_sent(parts, passing, peer, label).await
                }
                // The fetch noted the URL as unstorable if the answer speaks for it (not for
                // this request's credentials alone, say: `withdraw_replaced_copy`).
                (Fetched::Uncacheable(response), _) => {
                    not_modified_if_met(response, &parts.method, &parts.headers)
                }
                (Fetched::Error(error, origin_response), _) => {
                    let now = Instant::now();
                    // Not the copy found before the origin was asked: a purge may have removed
                    // it since (and answered), or a newer one been stored.
                    let copy = fallback_key
                        .and_then(|key| this.cache.lookup_as(&key, &parts.headers, rsc, now));
                    if let Some(copy) = copy.filter(|e| e.usable_on_error(now)) {
                        let host = request_host(&parts).unwrap_or_default();
                        let path = normalized(parts.uri.path());
                        // One line a second: with the origin down, every expired page a
                        // visitor asks for comes here.
                        static LINES: crate::logging::EverySecond =
                            crate::logging::EverySecond::new();
                        if let Some(held_back) = LINES.admit() {
                            tracing::warn!(error = %error, host, path = %path, more_since_last_line = held_back, "origin failed; serving stale copy");
                        }
                        this.metrics.stale_served(StaleReason::StaleIfError);
                        let status = CacheStatus::StaleIfError;
                        let response = copy.to_response(&parts.method, &parts.headers, status, now);
                        return cut(ranged, response, &parts.headers);
                    }
                    let response = origin_response
                        .map(OriginAnswer::response)
                        .unwrap_or_else(|| error.response());
                    mark(
                        response,
                        CacheStatus::Miss { stored: false, fwd },
                        Some(error.kind()),
                    )
                }
            }
        })
    }

    /// One look at the request's method and fields: its host (see `request_host`), whether the
    /// cache is bypassed (the reason is shown in `Cache-Status`), whether a range is asked for,
    /// and whether the request is conditional. Runs on every hit.
    fn screen<'a>(&self, parts: &'a Parts) -> Screen<'a> {
        if parts.method != Method::GET && parts.method != Method::HEAD {
            // Passed to the origin as it is: nothing else about it is asked.
            return Screen {
                host: request_host(parts),
                bypass: Some("method"),
                range: false,
                conditional: false,
                rsc: false,
            };
        }
        let headers = &parts.headers;
        // One pass over the request's field names instead of a hash lookup per name asked
        // about: a page view sends a dozen fields, most hits ask about none of them.
        let (mut range, mut action, mut upgrade, mut cookie, mut prerender, mut no_cache) =
            (false, false, false, false, false, false);
        let (mut conditional, mut rsc) = (false, false);
        // `Host` too: a hashed lookup of it cost ~250 instructions a hit. Each value of a
        // field comes by in turn, so a second `Host` is seen.
        let (mut host, mut more_hosts) = (None, false);
        for (name, value) in headers {
            match name.as_str() {
                "host" if host.is_some() => more_hosts = true,
                "host" => host = Some(value),
                "range" => range = true,
                "if-none-match" | "if-modified-since" => conditional = true,
                "next-action" => action = true,
                "upgrade" => upgrade = true,
                "cookie" => cookie = true,
                "x-prerender-revalidate" | "x-prerender-revalidate-if-generated" => {
                    prerender = true
                }
                "cache-control" | "pragma" => no_cache = true,
                "rsc" => rsc = true,
                _ => {}
            }
        }
        let bypass = if action {
            Some("server-action")
        } else if upgrade {
            Some("upgrade")
        } else if cookie && has_cookie(headers, &["__prerender_bypass", "__next_preview_data"]) {
            Some("draft-mode")
        } else if cookie && has_cookie(headers, &self.settings.bypass_cookies) {
            Some("cookie")
        } else if prerender {
            // Next.js on-demand regeneration; the header itself is stripped (upstream.rs), so
            // the origin serves this client as any other, but the answer must not be stored.
            Some("prerender-revalidate")
        } else if no_cache && self.settings.honor_client_no_cache && client_wants_no_store(headers)
        {
            // `no-cache` alone refreshes the stored copy (see `handle`); `no-store` forbids
            // storing the answer, so it passes.
            Some("client-no-store")
        } else {
            None
        };
        Screen {
            host: host_given(parts, host, more_hosts),
            bypass,
            range,
            conditional,
            rsc: rsc && is_rsc_request(headers),
        }
    }

    fn fetch_request(
        &self,
        parts: &Parts,
        key: Key,
        path: &str,
        host: String,
        peer: IpAddr,
    ) -> FetchRequest {
        let path_and_query = origin_target(path, parts.uri.query()).into_owned();
        FetchRequest {
            page: page_path(path).into_owned(),
            key,
            path_and_query,
            host,
            peer,
            headers: parts.headers.clone(),
            stale_fallback: false,
            copy: None,
            fwd: Forward::Miss,
        }
    }

    /// Single flight key. HTML and RSC requests for one URL are never coalesced together, and
    /// the URL's purge generation is part of the key: a request that arrives after a purge that
    /// may select its URL never joins a fetch that started before it (purges of other URLs do
    /// not split a flight).
    fn flight_key(&self, fetch: &FetchRequest) -> Key {
        let rsc = if is_rsc_request(&fetch.headers) {
            "rsc"
        } else {
            ""
        };
        // Requests of another encoding class get another variant from an origin that varies on
        // it (Next.js does): joined to one fetch they would each ask the origin on their own,
        // uncoalesced, when its answer did not match them.
        let encoding = encoding_class(&fetch.headers);
        let generation = self.cache.purge_generation(&fetch.key, &fetch.page);
        format!("{}\n{rsc}\n{encoding}\n{generation}", fetch.key).into()
    }

    /// Joins or leads the one origin request for this key. `as_sent`: what a range or HEAD
    /// request needs to be passed as sent; a follower takes it when the page proves
    /// unstorable.
    async fn fetch_shared(
        self: &Arc<Self>,
        fetch: FetchRequest,
        as_sent: &mut Option<PassAsSent>,
    ) -> Fetched {
        match self.inflight.join(&self.flight_key(&fetch)) {
            Joined::Leader(flight) => self.lead(flight, fetch).await,
            Joined::Follower(follower) => {
                self.metrics.coalesced_wait();
                match follower.outcome().await {
                    Waited::Outcome(Shared::Entry(entry, admitted))
                        if entry.matches_at(&fetch.headers, names_rsc_payload(&fetch.key)) =>
                    {
                        Fetched::Entry(entry, admitted)
                    }
                    // Of this request's encoding class: the flight key holds it.
                    Waited::Outcome(Shared::Error(error, page)) => {
                        Fetched::Error(error, page.map(OriginAnswer::Read))
                    }
                    // A range or HEAD of a page that cannot be stored is asked for as sent.
                    Waited::Outcome(Shared::Uncacheable) => match as_sent.take() {
                        Some(as_sent) => Fetched::Unshared(as_sent),
                        None => self.fetch_for_cache(fetch).await,
                    },
                    // The leader went away without an outcome, and this request was first to
                    // join again.
                    Waited::Lead(flight) => self.lead(flight, fetch).await,
                    // A Vary mismatch, or leaders that went away again and again: ask on our
                    // own.
                    Waited::Outcome(Shared::Entry(..)) | Waited::Alone => {
                        self.fetch_for_cache(fetch).await
                    }
                }
            }
        }
    }

    /// The fetch for `flight`'s followers and this request.
    async fn lead(self: &Arc<Self>, flight: Flight<Shared>, fetch: FetchRequest) -> Fetched {
        let (sender, receiver) = oneshot::channel();
        let this = self.clone();
        // Own task: the fetch completes (and followers are served) even if this client goes
        // away.
        tokio::spawn(async move {
            let fetched = this.fetch_for_cache(fetch).await;
            flight.finish(fetched.shared());
            let _ = sender.send(fetched);
        });
        receiver.await.unwrap_or_else(|_| {
            Fetched::Error(
                UpstreamError::Protocol("origin fetch task ended".into()),
                None,
            )
        })
    }

    /// [`Proxy::pass`] for a range or HEAD of a page that cannot be stored. Its conditions
    /// went to the origin with it; one that ignored them is answered here, as a fetch for the
    /// cache would have been (see `not_modified_if_met`).
    async fn pass_as_sent(
        self: &Arc<Self>,
        parts: Parts,
        (body, path, host): PassAsSent,
        peer: IpAddr,
        label: PassLabel,
    ) -> Response<Body> {
        // The conditions alone, not the whole request head.
        let mut conditions = HeaderMap::new();
        for name in [header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE] {
            for value in parts.headers.get_all(&name) {
                conditions.append(name.clone(), value.clone());
            }
        }
        let method = parts.method.clone();
        let response = self.pass(parts, path, body, host, peer, label).await;
        not_modified_if_met(response, &method, &conditions)
    }

    fn refresh_in_background(self: &Arc<Self>, fetch: FetchRequest) {
        if let Joined::Leader(flight) = self.inflight.join(&self.flight_key(&fetch)) {
            let this = self.clone();
            tokio::spawn(async move {
                // The page, not the key: a query string may carry a token.
                let (host, page) = (fetch.host.clone(), fetch.page.clone());
                let fetched = this.fetch_for_cache(fetch).await;
                if let Fetched::Error(error, _) = &fetched {
                    // One line a second: with the origin down, every stale page fails.
                    static LINES: crate::logging::EverySecond = crate::logging::EverySecond::new();
                    if let Some(held_back) = LINES.admit() {
                        tracing::warn!(error = %error, host, page, more_since_last_line = held_back, "background refresh failed; keeping the stale copy");
                    }
                }
                flight.finish(fetched.shared());
            });
        }
    }

    /// Forwards a request the cache does not handle, streaming both bodies. `path`: the
    /// request's path normalised (`cache::key::normalized`), as a fetch for the cache sends it:
    /// the raw one could climb out of the origin's base path (`/app` + `/../admin`).
    async fn pass(
        self: &Arc<Self>,
        mut parts: Parts,
        path: String,
        body: Incoming,
        host: String,
        peer: IpAddr,
        label: PassLabel,
    ) -> Response<Body> {
        let Some(upstream) = self.origins.for_host(&host) else {
            return misdirected(&host);
        };
        if parts.method == Method::CONNECT || parts.method == Method::TRACE {
            // Not a forward proxy; and a TRACE would echo the request back, cookies and
            // credentials included, for a script to read (cross-site tracing): nginx refuses
            // it too.
            return label.mark(not_for_origin(&parts.method));
        }
        // RFC 9110 section 7.6.2: an OPTIONS with no hops left is for this server to answer;
        // otherwise the origin gets one hop fewer.
        let max_forwards = (parts.method == Method::OPTIONS)
            .then(|| max_forwards(&parts.headers))
            .flatten();
        if max_forwards == Some(0) {
            return label.mark(not_for_origin(&parts.method));
        }
        if let Some(coding) = foreign_transfer_coding(&parts.headers) {
            // RFC 9112 section 6.1: a server that does not understand a request's transfer
            // coding answers 501. Forwarded, the body would lose its `Transfer-Encoding`
            // (hop-by-hop) and the origin would read the coded bytes as the content.
            return label.mark(
                body::text(
                    http::StatusCode::NOT_IMPLEMENTED,
                    &format!(
                        "501 Not Implemented: request bodies may only be sent chunked, not in transfer coding {coding:?}"
                    ),
                ),
            );
        }
        let max_body = self.settings.limits.max_body_size;
        if limit::declared_too_large(&parts.headers, max_body) {
            return label.mark(limit::payload_too_large(max_body));
        }
        let mut headers = origin_request_headers(&parts.headers, &parts.method, &host, peer);
        if let Some(hops) = max_forwards {
            headers.insert(header::MAX_FORWARDS, http::HeaderValue::from(hops - 1));
        }
        let path_and_query = origin_target(&path, parts.uri.query());
        let uploading = parts.extensions.remove::<Uploading>();
        let (capped, fault) = Capped::new(body, max_body);
        let capped = capped.holding(uploading);
        let upstream_body = capped
            .map_frame(|mut frame| {
                if let Some(trailers) = frame.trailers_mut() {
                    origin_request_trailers(trailers);
                }
                frame
            })
            .boxed();
        let request = match upstream.request(
            parts.method.clone(),
            &path_and_query,
            headers,
            upstream_body,
        ) {
            Ok(r) => r,
            Err(e) => return label.mark(e.response()),
        };
        let unsafe_method = !matches!(
            parts.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        // RFC 9111 section 4.4: a successful unsafe request invalidates what it changed.
        let changes =
            unsafe_method.then(|| (page_path(&path).into_owned(), host.to_ascii_lowercase()));
        let exchange = {
            let (this, upstream, fault) = (self.clone(), upstream.clone(), fault.clone());
            async move {
                let result = this.send_origin(&upstream, request, Some(&fault)).await;
                if let (Ok(response), Some((page, host))) = (&result, changes) {
                    let status = response.status();
                    if status.is_success() || status.is_redirection() {
                        this.cache.purge(
                            &Selector::Page(&page),
                            Some(&host),
                            PurgeRun::of(PurgeMode::Hard),
                        );
                    }
                }
                result
            }
        };
        // An unsafe request runs to the origin's answer in a task of its own: a client that
        // goes away once it is sent (a closed connection, an HTTP/2 reset) must not leave the
        // page the origin then changed in the cache.
        let result = if unsafe_method {
            let (adopt, adopted) = oneshot::channel();
            let task = tokio::spawn(async move {
                let result = exchange.await;
                // Gives back the orphan permit it was given if its client went away.
                drop(adopted);
                result
            });
            let mut orphan = Orphan {
                task: task.abort_handle(),
                adopt: Some(adopt),
                orphans: self.orphans.clone(),
            };
            let result = task.await.unwrap_or_else(|_| {
                Err(UpstreamError::Protocol("origin request task ended".into()))
            });
            orphan.adopt = None;
            result
        } else {
            exchange.await
        };
        match result {
            Ok(response) => self.relay(response, label.status, Some(label.detail)),
            Err(e) => {
                let answer = match fault.fault_for(&e) {
                    Some(client) => client.response(max_body),
                    None => e.response(),
                };
                label.mark(answer)
            }
        }
    }
}

/// The target a request is sent to the origin with, a fetch for the cache and a pass alike:
/// the normalised `path` (the raw one could climb out of the origin's base path) and the
/// query as the client sent it.
fn origin_target<'a>(path: &'a str, query: Option<&str>) -> Cow<'a, str> {
    match query {
        Some(query) => Cow::Owned(format!("{path}?{query}")),
        None => Cow::Borrowed(path),
    }
}

/// Unsafe exchanges that may run on after their clients went away (see [`Orphan`]): as many as
/// the connection limit lets run with their clients there.
fn orphan_capacity(settings: &ProxySettings) -> usize {
    crate::server::connection_slots(settings.limits.max_connections)
}

/// An unsafe request's exchange with the origin, run in a task of its own (see `Proxy::pass`),
/// while its client waits for the answer. If the client goes away (its request's future is
/// dropped), the task runs on only with one of the proxy's orphan permits, held to its end,
/// and is aborted when none is left: an HTTP/2 client that posts and resets the stream frees
/// the stream at once ("rapid reset"), and without a bound could keep any number of origin
/// requests and connections open over one connection, each until the origin answers or times
/// out. An aborted exchange is what every exchange was before: dropped with its client.
struct Orphan {
    task: AbortHandle,
    /// Hands the task its permit; `None` once the client got the answer.
    adopt: Option<oneshot::Sender<OwnedSemaphorePermit>>,
    orphans: Arc<Semaphore>,
}

impl Drop for Orphan {
    fn drop(&mut self) {
        let Some(adopt) = self.adopt.take() else {
            return;
        };
        if self.task.is_finished() {
            return;
        }
        match self.orphans.clone().try_acquire_owned() {
            // A task that ended meanwhile refuses it, and the permit is back at once.
            Ok(permit) => {
                let _ = adopt.send(permit);
            }
            Err(_) => {
                // Debug, not warn: a client doing this on purpose would flood the log.
                tracing::debug!(
                    "too many unsafe requests outlive their clients; dropping this one's"
                );
                self.task.abort();
            }
        }
    }
}

thread_local! {
    /// The key a plain host's request is looked up by. Most requests are hits, which need their
    /// key for the lookup only: a string of its own cost each one an allocation and a free.
    /// Holds the longest key this thread has seen, which `--max-uri-length` and the request
    /// head's size limit bound.
    static LOOKUP_KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// `look` with the primary key of a host [`is_plain_host`] accepted, the normalised path and
/// the query, built in [`LOOKUP_KEY`].
fn with_plain_key<T>(
    host: &str,
    path: &str,
    query: Option<&str>,
    look: impl FnOnce(&str) -> T,
) -> T {
    LOOKUP_KEY.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut key) => {
            key.clear();
            push_plain_key(&mut key, host, path, query);
            look(&key)
        }
        // A lookup that led to another on this thread: never so far, but not a panic if so.
        Err(_) => {
            let mut key = String::new();
            push_plain_key(&mut key, host, path, query);
            look(&key)
        }
    })
}

/// `host` in lower case, as the key spells it (`primary_key`). The origin is asked with this
/// host too, as nginx's `$host` is: an origin that matches host names by their bytes (a
/// tenant table) answered `Host: SHOP.example` with its 404, stored under `shop.example`'s key
/// for everyone.
fn lowercased(host: Cow<'_, str>) -> Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        host
    }
}

/// What `Proxy::screen` found in a request.
struct Screen<'a> {
    /// The host it names, as `request_host` finds it.
    host: Option<&'a str>,
    /// Why the cache is bypassed, as `Cache-Status` shows it.
    bypass: Option<&'static str>,
    /// A `Range` field is present.
    range: bool,
    /// An `If-None-Match` or `If-Modified-Since` field is present: a stored page may be
    /// answered `304`.
    conditional: bool,
    /// [`is_rsc_request`], looked up only when the pass saw an `RSC` field.
    rsc: bool,
}

/// An answer the cache could not keep, to a request whose conditions the origin never saw (a
/// fetch for the cache leaves them out: they are about the client's copy, not the cache's):
/// a `304` when they hold, as the origin would have answered them. Only the origin's own
/// `Last-Modified` counts for `If-Modified-Since`: this answer's `Date` is now.
fn not_modified_if_met(
    response: Response<Body>,
    method: &Method,
    request: &HeaderMap,
) -> Response<Body> {
    let conditional = request.contains_key(header::IF_NONE_MATCH)
        || request.contains_key(header::IF_MODIFIED_SINCE);
    if !conditional
        || !matches!(*method, Method::GET | Method::HEAD)
        || response.status() != StatusCode::OK
        || !not_modified_by(
            request,
            response.headers().get(header::ETAG),
            response.headers().get(header::LAST_MODIFIED),
        )
    {
        return response;
    }
    // The body is not read: its origin connection closes instead of carrying it for nothing.
    let (mut head, _) = response.into_parts();
    head.status = StatusCode::NOT_MODIFIED;
    for name in NOT_IN_304.iter().chain([&header::TRANSFER_ENCODING]) {
        head.headers.remove(name);
    }
    Response::from_parts(head, body::empty())
}

/// Whether the origin's answer to the whole page, which could not be stored, is worth asking
/// again as the range a client wants: only a `200` can have parts (a `404`, a redirect, a `401`
/// would only come back again), and only from an origin that says it serves byte ranges (RFC
/// 9110 section 14.3; static file servers and object stores do, a rendered page does not and
/// would be rendered twice). Otherwise the answer at hand is the client's, whole, as RFC 9110
/// section 14.2 allows: asked again, any uncacheable URL cost the origin two requests for one
/// whenever a client added a `Range`.
fn origin_serves_range(response: &Response<Body>) -> bool {
    response.status() == StatusCode::OK
        && response
            .headers()
            .get_all(header::ACCEPT_RANGES)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|unit| unit.trim().eq_ignore_ascii_case("bytes"))
}

/// `response`, made from a stored page, cut to the request's `Range` when it has one.
fn cut(ranged: bool, response: Response<Body>, request: &HeaderMap) -> Response<Body> {
    if ranged {
        range::answer(response, request)
    } else {
        response
    }
}

/// The 504 of RFC 9111 section 5.2.1.7 for a request saying `only-if-cached` that the cache
/// cannot answer.
fn only_if_cached_miss(status: CacheStatus) -> Response<Body> {
    mark(
        body::text(
            http::StatusCode::GATEWAY_TIMEOUT,
            "504 Gateway Timeout: not in the cache, and the request said only-if-cached",
        ),
        status,
        Some("only-if-cached"),
    )
}

/// The answer to a request target that names nothing on the origin, if this one does not.
fn refused_target(parts: &Parts) -> Option<Response<Body>> {
    let why = if parts.uri.path() == "*" {
        // `OPTIONS *` asks about this server.
        return Some(not_for_origin(&parts.method));
    } else if parts.uri.authority().is_some()
        && parts.uri.scheme().is_none()
        && parts.method != Method::CONNECT
    {
        // RFC 9112 section 3.2.3: `host:port` alone is CONNECT's target; a `GET host:80`
        // would otherwise be read as the page `/` of that host, and stored.
        "a host:port target is for CONNECT only; send a path or an absolute URL"
    } else if parts.uri.scheme_str().is_some_and(|scheme| {
        !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https")
    }) {
        // `ftp://host/x` names nothing an HTTP origin serves; read as `http`, it would be
        // fetched and stored as that page.
        "only http and https targets are served; send a path"
    } else {
        return None;
    };
    Some(body::text(
        http::StatusCode::BAD_REQUEST,
        &format!("400 Bad Request: {why}"),
    ))
}

/// The request's `Max-Forwards` (one field of digits), if it has a readable one.
fn max_forwards(headers: &http::HeaderMap) -> Option<u64> {
    let mut fields = headers.get_all(header::MAX_FORWARDS).iter();
    let only = fields.next().filter(|_| fields.next().is_none())?;
    let text = only.to_str().ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits past u64 are as many hops as anyone will see.
    Some(text.parse().unwrap_or(u64::MAX))
}

/// The answer to what never goes to the origin: `CONNECT` (a tunnel request: isr-edge is no
/// forward proxy), `TRACE` (405), `OPTIONS *` or one with no hops left (a question about this
/// server, answered here); any other method with the `*` target is malformed.
fn not_for_origin(method: &Method) -> Response<Body> {
    const ALLOW: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
    let mut response = if method == Method::OPTIONS {
        Response::new(body::empty())
    } else if method == Method::CONNECT {
        body::text(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed: this is a reverse proxy, not a tunnel",
        )
    } else if method == Method::TRACE {
        body::text(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed: TRACE is not passed on (it would echo cookies back)",
        )
    } else {
        body::text(
            http::StatusCode::BAD_REQUEST,
            "400 Bad Request: only OPTIONS may use the * target",
        )
    };
    response
        .headers_mut()
        .insert(header::ALLOW, http::HeaderValue::from_static(ALLOW));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings built in code need not know the semaphore's maximum: a proxy allowing
    /// "any number" of connections is built, not a panic.
    #[test]
    fn a_proxy_allowing_any_number_of_connections_is_built() {
        let settings = ProxySettings {
            max_object_size: 1 << 20,
            freshness: FreshnessRules::default(),
            honor_client_no_cache: false,
            conditional_refresh: true,
            browser_cache_control: BrowserCacheControl::Rewrite,
            tag_headers: Vec::new(),
            limits: Limits {
                max_connections: usize::MAX,
                ..Limits::default()
            },
            bypass_cookies: Vec::new(),
            keep_tag_headers: false,
        };
        let cache = Arc::new(Cache::new(1 << 20));
        let proxy = Proxy::with_origins(cache, Origins::new(None, Vec::new()), settings);
        assert!(!proxy.orphans_running());
    }

    #[test]
    fn the_origin_target_is_the_path_and_the_query_as_sent() {
        assert_eq!(origin_target("/a/b", None), "/a/b");
        assert_eq!(origin_target("/a", Some("x=1&y")), "/a?x=1&y");
        // An empty query is kept: the origin may tell `/a?` from `/a`.
        assert_eq!(origin_target("/a", Some("")), "/a?");
    }

    #[test]
    fn a_lookup_key_built_inside_another_lookup_is_its_own() {
        let outer_and_inner = with_plain_key("a.example", "/outer", Some("q=1"), |outer| {
            let inner = with_plain_key("b.example", "/inner", None, str::to_owned);
            (outer.to_owned(), inner)
        });
        assert_eq!(
            outer_and_inner,
            (
                primary_key_text("a.example", "/outer", Some("q=1")),
                primary_key_text("b.example", "/inner", None),
            )
        );
    }
}
