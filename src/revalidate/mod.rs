//! The control plane: `/api/revalidate`. `GET` is the health check (or a query-string
//! revalidation when it names a secret or targets); `POST` takes the JSON body Next.js route
//! handlers take. Order of checks: caller ([`guard`]: allow-list 403, rate limit 429), method,
//! size, JSON shape, secret or HMAC signature, targets; a refused request evicts nothing.
//! Answers keep the Next.js route's shape and add counts. With origin forwarding configured
//! ([`forward`]), the origin's own cache is told first and the local eviction follows, whatever
//! the origin answered.

pub mod forward;
pub mod guard;
pub mod pages;
pub mod report;
pub mod request;
pub mod sites;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use crate::body::{self, Body};
use crate::cache::key::{
    encode_path, implicit_layout_tag, implicit_page_tag, normalize_path, page_path, percent_encode,
};
use crate::cache::pattern::Pattern;
use crate::cache::{PurgeCount, PurgeMode, PurgeRun, Selector};
use crate::config::Secrets;
use crate::proxy::Proxy;
use guard::{Guard, GuardSettings, Refusal};
use request::{ImplicitTag, RevalidateRequest, Target};
use sites::Forwarders;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Time allowed for a request body to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Example keys listed in a dry run's answer.
const DRY_RUN_EXAMPLES: usize = 100;

pub struct Revalidate {
    proxy: Arc<Proxy>,
    secrets: Secrets,
    version: AtomicU64,
    guard: Guard,
    require_signature: bool,
    warm_by_default: bool,
    forwarders: Option<Arc<Forwarders>>,
}

/// `{"success":false,"message":...}` with a status.
pub fn refusal(status: StatusCode, message: &str) -> Response<Body> {
    body::json(status, &json!({"success": false, "message": message}))
}

/// A request target over `limit` bytes on the endpoint's path (many paths in a query string).
pub fn uri_too_long(limit: usize) -> Response<Body> {
    refusal(
        StatusCode::URI_TOO_LONG,
        &format!(
            "the path and query may be at most {limit} bytes; POST the paths in a JSON body like {{\"secret\": \"...\", \"paths\": [\"/\"]}}"
        ),
    )
}

/// The endpoint's methods, as a Next.js route handler with `GET` and `POST` lists them.
const ALLOWED_METHODS: HeaderValue = HeaderValue::from_static("GET, HEAD, OPTIONS, POST");

fn method_not_allowed() -> Response<Body> {
    let mut response = refusal(
        StatusCode::METHOD_NOT_ALLOWED,
        "Use GET for the health check or POST with {\"secret\": \"...\", \"paths\": [\"/\"]}",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, ALLOWED_METHODS);
    response
}

/// `OPTIONS`: the methods, no body (what Next.js answers for a route handler without one).
fn options() -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
        .headers_mut()
        .insert(header::ALLOW, ALLOWED_METHODS);
    response
}

impl Revalidate {
    pub fn new(proxy: Arc<Proxy>, secrets: Secrets) -> Revalidate {
        Revalidate {
            proxy,
            secrets,
            version: AtomicU64::new(0),
            guard: Guard::new(GuardSettings::default()),
            require_signature: false,
            warm_by_default: false,
            forwarders: None,
        }
    }

    /// Re-fetch evicted URLs after every hard purge, as if each request said `"warm": true`
    /// (a request may still say `"warm": false`).
    pub fn warm_by_default(mut self, warm: bool) -> Revalidate {
        self.warm_by_default = warm;
        self
    }

    /// Tells the origins' own caches before each eviction (see [`forward`], [`sites`]).
    pub fn with_forwarders(mut self, forwarders: Option<Arc<Forwarders>>) -> Revalidate {
        self.forwarders = forwarders;
        self
    }

    /// Adds the allow-list and rate limit (see [`guard`]); with `require_signature`, only
    /// HMAC-signed POSTs are accepted.
    pub fn with_guard(mut self, settings: GuardSettings, require_signature: bool) -> Revalidate {
        self.guard = Guard::new(settings);
        self.require_signature = require_signature;
        self
    }

    pub fn cache_version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// `peer` is the TCP peer; the caller is derived from it by the guard.
    pub async fn handle(&self, parts: Parts, body: Incoming, peer: IpAddr) -> Response<Body> {
        let peer = self.guard.client(peer, &parts.headers);
        if !self.guard.allowed(peer) {
            return self.refuse(
                peer,
                StatusCode::FORBIDDEN,
                "This address may not call the revalidation endpoint (--revalidate-allow)",
            );
        }
        if parts.method == Method::OPTIONS {
            return options();
        }
        let is_health = matches!(parts.method, Method::GET | Method::HEAD)
            && !request::query_requests_revalidation(parts.uri.query().unwrap_or(""));
        if !is_health {
            if let Err(Refusal::RateLimited(wait)) =
                self.guard.take(peer, 1.0, tokio::time::Instant::now())
            {
                return self.rate_limited(peer, wait);
            }
        }
        let response = self.handle_admitted(parts, body, peer).await;
        let now = tokio::time::Instant::now();
        match response.status() {
            // Guessing secrets costs double.
            StatusCode::UNAUTHORIZED => self.guard.charge_failure(peer, now),
            // An authenticated backend purging page after page is never refused.
            status if status.is_success() && !is_health => self.guard.refund(peer, now),
            _ => {}
        }
        response
    }

    async fn handle_admitted(&self, parts: Parts, body: Incoming, peer: IpAddr) -> Response<Body> {
        let query = parts.uri.query().unwrap_or("");
        // The JSON object as received, from which the body forwarded to the origin is made
        // (`None` for query-string requests).
        let mut received = None;
        let mut parsed = match parts.method {
            Method::GET | Method::HEAD if !request::query_requests_revalidation(query) => {
                return self.health()
            }
            Method::GET | Method::HEAD => {
                if !self.secrets.is_configured() {
                    self.proxy.metrics().revalidation("not-configured", "none");
                    return not_configured();
                }
                if self.require_signature {
                    return self.refuse(peer, StatusCode::UNAUTHORIZED, SIGNATURE_REQUIRED);
                }
                // The secret first, as for a POST: an unauthenticated caller learns nothing
                // about the rest of what it sent.
                if !self.authorized(&parts.headers, request::query_secret(query).as_deref()) {
                    return self.refuse(peer, StatusCode::UNAUTHORIZED, "Invalid secret");
                }
                match request::parse_query(query) {
                    Ok(r) => r,
                    Err(e) => return self.refuse(peer, StatusCode::BAD_REQUEST, &e.0),
                }
            }
            Method::POST => {
                if !self.secrets.is_configured() {
                    self.proxy.metrics().revalidation("not-configured", "none");
                    return not_configured();
                }
                match self.read_post(&parts, body, query, peer).await {
                    Ok((r, object)) => {
                        received = object;
                        r
                    }
                    Err(response) => return response,
                }
            }
            _ => return method_not_allowed(),
        };
        if parsed.secret.is_none() {
            // The secret that authorized the request, for forwarding to an origin that wants
            // the caller's own (the purge client sends it as `Authorization: Bearer`).
            parsed.secret = header_secret(&parts.headers).map(str::to_string);
        }
        if let Some(host) = parsed.host.as_deref() {
            let origins = self.proxy.origins();
            if origins.for_host(host).is_none() {
                // Requests for it are refused (421), so nothing can be stored for it: most
                // likely a typo, which a deploy script should hear about rather than get a
                // success that purged nothing.
                let known = origins.hosts().collect::<Vec<_>>().join(", ");
                return self.refuse(
                    peer,
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "host {host:?} has no origin here, so nothing is stored for it; configured hosts: {known}"
                    ),
                );
            }
        }
        self.revalidate(parsed, received, peer).await
    }

    fn rate_limited(&self, peer: IpAddr, wait: std::time::Duration) -> Response<Body> {
        let seconds = guard::retry_after_secs(wait);
        let mut response = self.refuse(
            peer,
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many revalidation requests from this address; retry in {seconds} s"),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    }

    /// Reads and parses a POST body; the secret is checked before the targets are, so an
    /// unauthenticated caller learns nothing about what it sent.
    async fn read_post(
        &self,
        parts: &Parts,
        body: Incoming,
        query: &str,
        peer: IpAddr,
    ) -> Result<(RevalidateRequest, Option<Map<String, Value>>), Response<Body>> {
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        // A body that cannot be read or parsed is refused for what is wrong with it, unless the
        // caller sent a secret or signature outside it that fails: a wrong secret is 401
        // whatever else is wrong, so a caller without one learns nothing about what it sent.
        let wrong_credential = self.wrong_credential_outside_body(parts, query);
        let refuse_body = |status: StatusCode, message: &str| match wrong_credential {
            Some(reason) => self.refuse(peer, StatusCode::UNAUTHORIZED, reason),
            None => self.refuse(peer, status, message),
        };
        if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
            return Err(refuse_body(
                StatusCode::PAYLOAD_TOO_LARGE,
                too_large_message(),
            ));
        }
        // A body trickling in (or never coming) must not hold the connection: 64 KiB takes
        // far less than this on any network a backend calls from.
        let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY_BYTES).collect());
        let Ok(read) = read.await else {
            return Err(refuse_body(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            ));
        };
        let bytes = match read {
            Ok(collected) => collected.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return Err(refuse_body(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    too_large_message(),
                ))
            }
            Err(e) => {
                return Err(refuse_body(
                    StatusCode::BAD_REQUEST,
                    &format!("could not read the request body: {e}"),
                ))
            }
        };
        // An empty body with everything in the query (`POST /api/revalidate?secret=..&path=/`).
        if bytes.iter().all(u8::is_ascii_whitespace) && request::query_requests_revalidation(query)
        {
            // A signature covers the body only: over an empty one it would admit any targets
            // the query names, and one observed request could be replayed with others.
            if parts.headers.contains_key("x-signature") {
                return Err(self.refuse(
                    peer,
                    StatusCode::UNAUTHORIZED,
                    "Invalid signature: a signed request sends its targets in the signed JSON body",
                ));
            }
            if let Some(refusal) =
                self.check_post_auth(parts, &bytes, request::query_secret(query).as_deref(), peer)
            {
                return Err(refusal);
            }
            let parsed = request::parse_query(query)
                .map_err(|e| self.refuse(peer, StatusCode::BAD_REQUEST, &e.0))?;
            return Ok((parsed, None));
        }
        // The body is read by now, so a signature over it can be checked as well.
        let refuse_unparsed = |message: &str| {
            let signed = parts.headers.contains_key("x-signature");
            if signed || wrong_credential.is_some() {
                if let Some(refusal) = self.check_post_auth(
                    parts,
                    &bytes,
                    request::query_secret(query).as_deref(),
                    peer,
                ) {
                    return refusal;
                }
            }
            self.refuse(peer, StatusCode::BAD_REQUEST, message)
        };
        // Refused, not read as its last value, when a field is given twice.
        let value = request::json_value(&bytes)
            .map_err(|e| refuse_unparsed(&request::unreadable_json(&e)))?;
        let Value::Object(object) = value else {
            return Err(refuse_unparsed(
                "body must be a JSON object like {\"secret\": \"...\", \"paths\": [\"/\"]}",
            ));
        };
        let body_secret = object.get("secret").and_then(Value::as_str);
        let query_secret = request::query_secret(query);
        if let Some(refusal) =
            self.check_post_auth(parts, &bytes, body_secret.or(query_secret.as_deref()), peer)
        {
            return Err(refusal);
        }
        request::check_query_secret(query)
            .map_err(|e| self.refuse(peer, StatusCode::BAD_REQUEST, &e.0))?;
        let mut parsed = request::parse_object(&object)
            .map_err(|e| self.refuse(peer, StatusCode::BAD_REQUEST, &e.0))?;
        if parsed.secret.is_none() {
            parsed.secret = query_secret;
        }
        Ok((parsed, Some(object)))
    }

    /// A POST is admitted by a valid `X-Signature` over its raw body, or (unless
    /// `--require-signature`) by a secret in the body, query or headers; otherwise the 401.
    fn check_post_auth(
        &self,
        parts: &Parts,
        bytes: &[u8],
        secret: Option<&str>,
        peer: IpAddr,
    ) -> Option<Response<Body>> {
        let refusal = match parts.headers.get("x-signature").map(|v| v.to_str()) {
            Some(Ok(signature)) if self.secrets.verify_signature(bytes, signature) => return None,
            Some(_) => "Invalid signature",
            None if self.require_signature => SIGNATURE_REQUIRED,
            None if self.authorized(&parts.headers, secret) => return None,
            None => "Invalid secret",
        };
        Some(self.refuse(peer, StatusCode::UNAUTHORIZED, refusal))
    }

    /// Why a POST is refused 401 if its body cannot be read: a header or query secret that
    /// matches none (even beside a signature, which cannot be judged without the body), or
    /// one sent where `--require-signature` wants a signature. `None`: no credential outside
    /// the body, or one that authenticates.
    fn wrong_credential_outside_body(&self, parts: &Parts, query: &str) -> Option<&'static str> {
        let headers = &parts.headers;
        let query_secret = request::query_secret(query);
        let presented = query_secret.is_some()
            || bearer(headers).is_some()
            || revalidate_secret_header(headers).is_some();
        if self.require_signature {
            let signed = headers.contains_key("x-signature");
            return (presented && !signed).then_some(SIGNATURE_REQUIRED);
        }
        (presented && !self.authorized(headers, query_secret.as_deref()))
            .then_some("Invalid secret")
    }

    /// The secret may come in the body or query, as `Authorization: Bearer`, or as
    /// `x-revalidate-secret`; any one that matches suffices.
    fn authorized(&self, headers: &HeaderMap, secret: Option<&str>) -> bool {
        [secret, bearer(headers), revalidate_secret_header(headers)]
            .into_iter()
            .flatten()
            .any(|candidate| self.secrets.verify(candidate.as_bytes()))
    }

    fn health(&self) -> Response<Body> {
        body::json(
            StatusCode::OK,
            &json!({
                "status": "ok",
                "message": "On-demand revalidation endpoint is ready",
                "usage": "POST with { secret, paths: [\"/\"] }",
                "cache_version": self.cache_version(),
            }),
        )
    }

    fn refuse(&self, peer: IpAddr, status: StatusCode, message: &str) -> Response<Body> {
        let outcome = match status {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::PAYLOAD_TOO_LARGE => "too-large",
            StatusCode::BAD_REQUEST => "bad-request",
            _ => "refused",
        };
        self.proxy.metrics().revalidation(outcome, "none");
        tracing::warn!(target: "isr_edge::audit", caller = %peer, status = status.as_u16(), reason = message, "revalidation refused");
        refusal(status, message)
    }

    async fn revalidate(
        &self,
        request: RevalidateRequest,
        received: Option<Map<String, Value>>,
        peer: IpAddr,
    ) -> Response<Body> {
        let started = std::time::Instant::now();
        let mode = request.mode();
        let cache = self.proxy.cache();
        // The origin's cache first, so our next fetch gets its new page; a dry run tells nobody.
        let forwarded = match &self.forwarders {
            Some(forwarders) if !request.dry_run && request.has_targets() => {
                let pages = if forwarders.regenerates() {
                    pages::concrete_pages(cache, &request)
                } else {
                    Vec::new()
                };
                let body = forward::forwarded_body(received, &request);
                Some(forwarders.run(request.host.as_deref(), body, pages).await)
            }
            _ => None,
        };
        let host = request.host.as_deref();
        let examples_wanted = if request.dry_run { DRY_RUN_EXAMPLES } else { 0 };
        let mut total = 0usize;
        let warm = request.warm.unwrap_or(self.warm_by_default)
            && mode == PurgeMode::Hard
            && !request.dry_run;
        let mut to_warm = Vec::new();
        let mut examples = Vec::new();
        let mut per_target = Vec::with_capacity(request.targets.len());
        for target in &request.targets {
            let run = PurgeRun {
                mode,
                dry_run: request.dry_run,
                examples: examples_wanted,
                keep_values: warm,
            };
            let count: PurgeCount = purge_target(cache, target, host, run);
            total += count.responses;
            let mut reported = json!({"type": target.kind(), "target": target.value()});
            // As at the top level: a dry run evicts nothing, and says what it would have.
            if request.dry_run {
                reported["evicted"] = json!(0);
                reported["would_evict"] = json!(count.responses);
            } else {
                reported["evicted"] = json!(count.responses);
            }
            per_target.push(reported);
            examples.extend(
                count
                    .examples
                    .into_iter()
                    .take(DRY_RUN_EXAMPLES.saturating_sub(examples.len())),
            );
            if warm {
                let variants = count.values.iter().map(|value| value.variant_requests());
                to_warm.extend(count.keys.into_iter().zip(variants));
            }
        }
        let version = if request.dry_run {
            self.cache_version()
        } else {
            self.version.fetch_add(1, Ordering::Relaxed) + 1
        };
        let metrics = self.proxy.metrics();
        metrics.purge_duration(started.elapsed());
        // The local eviction happened either way, but the caller is told 502: an origin whose
        // cache was not refreshed serves the old page again, which is what operators alert on.
        let origin_failed = forwarded.as_ref().is_some_and(|report| !report.ok());
        let outcome = if request.dry_run {
            "dry-run"
        } else if origin_failed {
            "origin-failed"
        } else {
            "ok"
        };
        for target in &request.targets {
            metrics.revalidation(outcome, target.kind());
        }
        if request.targets.is_empty() {
            metrics.revalidation(outcome, "none");
        }
        let warm_skipped = if warm { self.proxy.warm(to_warm) } else { 0 };
        let mode_name = match mode {
            PurgeMode::Hard => "hard",
            PurgeMode::Soft => "soft",
        };
        // Plain text rather than a Debug list (`["/"]`, which JSON logs carried as an escaped
        // string), comma-joined as the query-string form takes them; absent when empty.
        let listed = |items: &[String]| (!items.is_empty()).then(|| items.join(","));
        let (paths, tags) = (listed(&request.paths), listed(&request.tags));
        // A level must be a constant at its call site: one line, written at either level.
        macro_rules! audit {
            ($level:ident) => {
                tracing::$level!(
                    target: "isr_edge::audit",
                    caller = %peer,
                    paths = paths.as_deref(),
                    tags = tags.as_deref(),
                    evicted = total,
                    mode = mode_name,
                    dry_run = request.dry_run,
                    origin_ok = forwarded.as_ref().map(forward::Report::ok),
                    duration_us = started.elapsed().as_micros() as u64,
                    result = outcome,
                    "revalidated"
                )
            };
        }
        if origin_failed {
            audit!(warn);
        } else {
            audit!(info);
        }
        let now = SystemTime::now();
        let mut revalidated = json!({
            "paths": request.paths,
            "timestamp": humantime::format_rfc3339_millis(now).to_string(),
        });
        if !request.tags.is_empty() {
            revalidated["tags"] = json!(request.tags);
        }
        let mut answer = json!({
            "success": true,
            "message": if request.dry_run { "Dry run: nothing was evicted" } else { "Revalidated successfully" },
            "revalidated": revalidated,
            "evicted": if request.dry_run { 0 } else { total },
            "cache_version": version,
            "now": now.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            "mode": mode_name,
            "targets": per_target,
        });
        if request.dry_run {
            answer["dry_run"] = json!(true);
            answer["would_evict"] = json!(total);
            answer["examples"] = json!(examples);
        }
        if request.targets.is_empty() {
            answer["warning"] = json!("no paths, tags or all given: nothing was revalidated");
        }
        if warm_skipped > 0 {
            // Evicted all the same; a deploy script learns that these wait for a visitor.
            answer["warm_skipped"] = json!(warm_skipped);
        }
        if let Some(report) = forwarded {
            report.write_into(&mut answer);
            if !report.ok() {
                answer["success"] = json!(false);
                answer["message"] = json!("Evicted from this cache, but the origin's cache was not revalidated: see origins / regenerated");
                return body::json(StatusCode::BAD_GATEWAY, &answer);
            }
        }
        body::json(StatusCode::OK, &answer)
    }
}

const SIGNATURE_REQUIRED: &str =
    "Signature required: POST the JSON body with X-Signature: sha256=<hex HMAC-SHA256 of the body>";

fn not_configured() -> Response<Body> {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "Revalidation is not configured: set REVALIDATE_SECRET",
    )
}

fn too_large_message() -> &'static str {
    "body is larger than 64 KiB; split the paths over several requests"
}

/// The path part of what a client wrote as a path (`/products?page=2` -> `/products`).
pub(crate) fn without_query(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or(path)
}

/// The credentials of `Authorization: Bearer <secret>`. The scheme is matched without regard to
/// case (RFC 9110 section 11.1: `bearer` and `BEARER` are the same scheme); the secret itself
/// is compared by [`Secrets::verify`], in constant time.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(credentials.trim())
}

fn revalidate_secret_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-revalidate-secret")
        .and_then(|v| v.to_str().ok())
}

/// A secret sent in a header, for a request whose body and query carried none.
fn header_secret(headers: &HeaderMap) -> Option<&str> {
    bearer(headers).or_else(|| revalidate_secret_header(headers))
}

/// A tag as Next.js writes it into `x-next-cache-tags` (`encodeCacheTagsHeaderValue`): a
/// header value carries printable ASCII only, so every other character is percent-encoded as
/// its UTF-8 bytes, and ASCII (`%` included) is left as it is. `None` when that is the tag
/// itself. Apps and backends name the tag as `revalidateTag` got it (`café`), which alone
/// never matched the `caf%C3%A9` the header stored.
fn next_header_form(tag: &str) -> Option<String> {
    // Byte by byte: every byte of a character past ASCII is past `~` too.
    match percent_encode(tag, |b| !(b' '..=b'~').contains(&b)) {
        std::borrow::Cow::Borrowed(_) => None,
        std::borrow::Cow::Owned(wire) => Some(wire),
    }
}

/// Maps one target to index selectors. Next.js implicit tags (`_N_T_/blog/layout`,
/// `_N_T_/blog/[slug]/page`, `_N_T_/blog/a`) become the layout, pattern or page purges they
/// stand for, so a tag revalidation forwarded verbatim from a Next.js app reaches its pages.
fn purge_target(
    cache: &crate::cache::Cache,
    target: &Target,
    host: Option<&str>,
    run: PurgeRun,
) -> PurgeCount {
    // `route_path`: a Next.js file-system path (from an implicit tag), where route groups and
    // slots are route syntax; a client's path is a URL path unless it has a dynamic segment.
    // `also_tag`: pages carrying this tag are purged too (an implicit tag also names the pages
    // whose origin listed it, stored under another URL: basePath, i18n prefixes, rewrites).
    // Without one, a literal page or layout brings its own implicit tag, so it reaches the
    // URLs a middleware rewrite served it under (see `key::rewrite_tags`).
    let purge_path = |path: &str, subtree: bool, route_path: bool, also_tag: Option<&Selector>| {
        // Written as a person would (`/café`); matched as requests stored it (`/caf%C3%A9`).
        // A query names one URL of the page; the page is purged with all its URLs (a purge
        // reaching more than asked is safe, one silently reaching nothing is not).
        let path = &normalize_path(&encode_path(without_query(path)));
        let is_pattern = if route_path {
            Pattern::is_route_pattern(path)
        } else {
            Pattern::is_pattern(path)
        };
        let pattern;
        let page;
        let own_tag;
        let (selector, own_tag) = if is_pattern {
            pattern = Pattern::parse(path);
            (Selector::Pattern(&pattern, subtree), None)
        } else {
            page = page_path(path).into_owned();
            if subtree {
                own_tag = implicit_layout_tag(&page);
                (Selector::Subtree(&page), Some(own_tag.as_str()))
            } else {
                own_tag = implicit_page_tag(&page);
                (Selector::Page(&page), Some(own_tag.as_str()))
            }
        };
        let rewritten = own_tag.map(Selector::Rewritten);
        match also_tag.or(rewritten.as_ref()) {
            Some(also) => cache.purge(&Selector::Either(&selector, also), host, run),
            None => cache.purge(&selector, host, run),
        }
    };
    match target {
        Target::Page(path) => purge_path(path, false, false, None),
        Target::Layout(path) => purge_path(path, true, false, None),
        Target::All => cache.purge(&Selector::All, host, run),
        Target::Tag(tag) => {
            let as_named = Selector::Tag(tag);
            let wire = next_header_form(tag);
            let as_sent = wire.as_deref().map(Selector::Tag);
            let either;
            let tag_selector = match &as_sent {
                Some(as_sent) => {
                    either = Selector::Either(&as_named, as_sent);
                    &either
                }
                None => &as_named,
            };
            let also_tag = Some(tag_selector);
            match ImplicitTag::of(tag) {
                Some(ImplicitTag::Layout(route)) => purge_path(route, true, true, also_tag),
                Some(ImplicitTag::Page(route)) => purge_path(route, false, true, also_tag),
                Some(ImplicitTag::Url(path)) => purge_path(path, false, false, also_tag),
                None => cache.purge(tag_selector, host, run),
            }
        }
    }
}
