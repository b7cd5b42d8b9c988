//! Telling the origin's own cache. When the origin is itself an ISR cache (`next start`),
//! evicting only our copy makes the next fetch return the origin's stale page, so before the
//! local eviction a revalidation is also
//! 1. forwarded to every `--origin-revalidate-url` (one per app instance), concurrently, as
//!    the JSON body the seed's route handler understands (see [`forwarded_body`]), its
//!    `secret` replaced by `--origin-revalidate-secret`; and
//! 2. with a Next.js preview-mode id, turned into `HEAD <path>` + `x-prerender-revalidate: <id>`
//!    to the origin for each concrete page, which makes Next regenerate that page at once (this
//!    reaches dynamic-route pages that Next 16's `revalidatePath` leaves stale).
//!
//! Both stages share one deadline (`--origin-revalidate-timeout`, 4 s by default: Laravel's HTTP
//! client gives up at 5 s). The secret and the id are never logged nor echoed; origin URLs are
//! reported without their query string, which may carry a secret.
//!
//! One [`Forwarder`] serves one origin: the flags configure the default origin's, and an
//! `[[origin]]` site may have its own ([`super::sites`] chooses which are told).
//!
//! **The forwarded body.** The seed's Next.js route (`app/api/revalidate/route.ts`) reads only
//! `secret` and `paths`, and passes each item of `paths` to `revalidatePath(path, 'page')`,
//! which throws on anything but a string (Next 16.4: `e.charCodeAt is not a function`, seen in
//! `tests/nextjs_e2e.rs`): the route answers 500, and we would report the origin as failed
//! although the request was fine. Our API takes more than that contract (object entries in
//! `paths`, `path`, tags, modes...), so the body is rewritten, not forwarded as received:
//! - `paths` lists every path the request named, as plain strings, in the request's order:
//!   the strings and the `{"path", "type"}` objects of `paths` and of `path`. A layout is sent
//!   as its path (the seed revalidates it as a page; a route that reads `type` still gets the
//!   top-level one). `paths` is present when the request had `paths` or `path`, so the seed
//!   also revalidates what a client sent as `path` alone; a `path` already in `paths` is
//!   listed once.
//! - `path` is kept when it is a string (routes written after the Next.js docs read it, and
//!   the seed ignores it); a list or object form is dropped, its paths being in `paths`.
//! - Every other field is passed through as received (`tag`, `tags`, `type`, `all`, `mode`,
//!   `profile`, `warm`, `host`, ...): the seed's route destructures `{ secret, paths }` and
//!   ignores the rest, so they cannot break it, and a route of its own may use them
//!   (`revalidateTag` for `tags`).
//!
//! The seed's Laravel shape (`{"secret", "paths": [strings]}`) comes out as it went in, with
//! only the secret replaced. A query-string request, which has no body, is sent as the body
//! `body_from_request` builds.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;
use tokio::time::{timeout_at, Instant};

use super::pages::{Page, PreviewModeId};
pub use super::report::{failed, CallResult, Report};
use super::request::{RevalidateRequest, Target};
use crate::body::{BoxError, UpstreamBody};
use crate::upstream::Upstream;

/// Most pages regenerated for one revalidation (an `all` or a wide tag could name the whole
/// cache); the rest are counted in `regenerate_skipped`.
pub const MAX_REGENERATE: usize = 1000;
/// Regeneration requests in flight at once (each one is a full render on the origin).
const REGENERATE_CONCURRENCY: usize = 8;
/// How much of a failing origin's answer is quoted back.
const ERROR_BODY_CHARS: usize = 300;

/// A secret from the command line or environment; `Debug` never shows it.
#[derive(Clone)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("****")
    }
}

impl std::str::FromStr for Redacted {
    type Err = String;
    fn from_str(text: &str) -> Result<Redacted, String> {
        Ok(Redacted(text.trim().to_string()))
    }
}

/// What to tell the origin's cache (see `config` for the flags and defaults).
#[derive(Debug, Clone, Default)]
pub struct OriginForwarding {
    pub urls: Vec<Uri>,
    pub secret: Option<Redacted>,
    pub timeout: Duration,
    pub preview_mode_id: Option<PreviewModeId>,
}

impl OriginForwarding {
    pub fn is_enabled(&self) -> bool {
        !self.urls.is_empty() || self.preview_mode_id.is_some()
    }
}

pub struct Forwarder {
    settings: OriginForwarding,
    client: Client<HttpConnector, UpstreamBody>,
    origin: Upstream,
    /// The `[[origin]]` host this forwarder serves: the `Host` of a regeneration whose page
    /// names none (the site's app may route by host).
    site: Option<String>,
}

impl Forwarder {
    /// `None` when nothing is configured (the common case: one `if let` in the handler).
    /// `site` is the `[[origin]]` host for a site's own forwarder.
    pub fn new(
        settings: OriginForwarding,
        origin: Upstream,
        site: Option<String>,
    ) -> Option<Arc<Forwarder>> {
        if !settings.is_enabled() {
            return None;
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(settings.timeout));
        // With a timer, as the origin pools have (see `upstream`): without one hyper-util
        // closes an idle connection only when it next checks it out.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .build(connector);
        Some(Arc::new(Forwarder {
            settings,
            client,
            origin,
            site,
        }))
    }

    /// Whether pages are regenerated (so the handler computes the concrete pages).
    pub fn regenerates(&self) -> bool {
        self.settings.preview_mode_id.is_some()
    }

    /// Tells every origin instance, then regenerates `pages`; returns when all answered or the
    /// deadline passed.
    pub async fn run(self: &Arc<Self>, body: Map<String, Value>, pages: Vec<Page>) -> Report {
        let deadline = Instant::now() + self.settings.timeout;
        let mut report = Report {
            origins: self.forward(body, deadline).await,
            ..Report::default()
        };
        if let Some(source) = &self.settings.preview_mode_id {
            match source.resolve() {
                Ok(id) => {
                    report.regenerate_skipped = pages.len().saturating_sub(MAX_REGENERATE);
                    let pages = pages.into_iter().take(MAX_REGENERATE).collect();
                    report.regenerated = self.regenerate(pages, id, deadline).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the Next.js preview-mode id");
                    report.regenerate_error = Some(e);
                }
            }
        }
        report
    }

    async fn forward(
        self: &Arc<Self>,
        mut body: Map<String, Value>,
        deadline: Instant,
    ) -> Vec<CallResult> {
        if let Some(secret) = &self.settings.secret {
            body.insert("secret".into(), Value::String(secret.0.clone()));
        }
        let body = Bytes::from(Value::Object(body).to_string());
        let calls: Vec<_> = self
            .settings
            .urls
            .iter()
            .map(|url| {
                let this = self.clone();
                let (url, body) = (url.clone(), body.clone());
                tokio::spawn(async move { this.post(url, body, deadline).await })
            })
            .collect();
        let mut results = Vec::with_capacity(calls.len());
        for (call, url) in calls.into_iter().zip(&self.settings.urls) {
            results.push(call.await.unwrap_or_else(|e| CallResult {
                url: Some(display_url(url)),
                ..failed(format!("internal error: {e}"))
            }));
        }
        results
    }

    async fn post(&self, url: Uri, body: Bytes, deadline: Instant) -> CallResult {
        let shown = display_url(&url);
        let (url, credentials) = without_credentials(url);
        let mut request = Request::new(boxed(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = url;
        request.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(credentials) = credentials {
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, credentials);
        }
        if let Some(secret) = &self.settings.secret {
            if let Ok(value) = HeaderValue::from_str(&secret.0) {
                request.headers_mut().insert("x-revalidate-secret", value);
            }
        }
        let result = call(
            &self.client,
            request,
            deadline,
            self.settings.timeout,
            |s| s.is_success(),
        )
        .await;
        if result.ok {
            tracing::info!(target: "isr_edge::audit", url = %shown, status = result.status, ok = result.ok, error = result.error.as_deref(), "forwarded revalidation to origin");
        } else {
            tracing::warn!(target: "isr_edge::audit", url = %shown, status = result.status, ok = result.ok, error = result.error.as_deref(), "forwarding the revalidation to the origin failed");
        }
        CallResult {
            url: Some(shown),
            ..result
        }
    }

    async fn regenerate(
        self: &Arc<Self>,
        pages: Vec<Page>,
        id: String,
        deadline: Instant,
    ) -> Vec<CallResult> {
        let Ok(id) = HeaderValue::from_str(&id) else {
            return vec![failed(
                "the preview-mode id is not a valid header value".into(),
            )];
        };
        let limit = Arc::new(Semaphore::new(REGENERATE_CONCURRENCY));
        let calls: Vec<_> = pages
            .iter()
            .map(|page| {
                let (this, limit, id, page) =
                    (self.clone(), limit.clone(), id.clone(), page.clone());
                tokio::spawn(async move {
                    let Ok(_permit) = limit.acquire().await else {
                        return failed("internal error: semaphore closed".into());
                    };
                    this.head(&page, id, deadline).await
                })
            })
            .collect();
        let mut results = Vec::with_capacity(calls.len());
        for (call, page) in calls.into_iter().zip(pages) {
            let result = call
                .await
                .unwrap_or_else(|e| failed(format!("internal error: {e}")));
            results.push(CallResult {
                path: Some(page.path),
                ..result
            });
        }
        results
    }

    /// `HEAD <path>` with `x-prerender-revalidate`: Next renders the page now and stores it.
    /// A Next.js app with `trailingSlash: true` serves `/p/` and answers `/p` (the page path
    /// purges name) with a 308 to it, regenerating nothing: that redirect is followed, once.
    async fn head(&self, page: &Page, id: HeaderValue, deadline: Instant) -> CallResult {
        let result = self.head_at(page, &page.path, id.clone(), deadline).await;
        match result.location.as_deref() {
            Some(location) if toggles_trailing_slash(&page.path, location) => {
                let location = location.to_string();
                self.head_at(page, &location, id, deadline).await
            }
            _ => result,
        }
    }

    async fn head_at(
        &self,
        page: &Page,
        path: &str,
        id: HeaderValue,
        deadline: Instant,
    ) -> CallResult {
        let mut headers = HeaderMap::new();
        headers.insert("x-prerender-revalidate", id);
        if let Some(host) = page
            .host
            .as_deref()
            .or(self.site.as_deref())
            .and_then(|h| HeaderValue::from_str(h).ok())
        {
            headers.insert(header::HOST, host);
        }
        let request =
            match self
                .origin
                .request(Method::HEAD, path, headers, crate::body::empty_upstream())
            {
                Ok(r) => r,
                Err(e) => return failed(e.to_string()),
            };
        // A page that no longer exists regenerates as a 404: that is a successful revalidation.
        let result = call(
            &self.client,
            request,
            deadline,
            self.settings.timeout,
            |s| s.is_success() || s.is_redirection() || s == StatusCode::NOT_FOUND,
        )
        .await;
        if result.ok {
            tracing::info!(target: "isr_edge::audit", path = %path, status = result.status, ok = result.ok, cache = result.cache.as_deref(), "asked the origin to regenerate");
        } else {
            tracing::warn!(target: "isr_edge::audit", path = %path, status = result.status, ok = result.ok, error = result.error.as_deref(), "the origin did not regenerate the page");
        }
        result
    }
}

/// Whether a redirect's `Location` names `path` itself with a trailing slash added or removed
/// (a path on the same origin, no query).
fn toggles_trailing_slash(path: &str, location: &str) -> bool {
    location.starts_with('/')
        && !location.starts_with("//")
        && !location.contains(['?', '#'])
        && (location.strip_suffix('/') == Some(path) || path.strip_suffix('/') == Some(location))
}

fn boxed(body: Bytes) -> UpstreamBody {
    Full::new(body)
        .map_err(|never| -> BoxError { match never {} })
        .boxed()
}

/// Sends one request and reads (a bounded part of) its answer, all before `deadline`.
async fn call(
    client: &Client<HttpConnector, UpstreamBody>,
    request: Request<UpstreamBody>,
    deadline: Instant,
    timeout: Duration,
    is_ok: impl Fn(StatusCode) -> bool,
) -> CallResult {
    let response = match timeout_at(deadline, client.request(request)).await {
        Err(_) => return failed(format!("no answer within {timeout:?}")),
        Ok(Err(e)) => return failed(crate::upstream::root_cause(&e)),
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    let cache = response
        .headers()
        .get("x-nextjs-cache")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let location = status
        .is_redirection()
        .then(|| response.headers().get(header::LOCATION))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let ok = is_ok(status);
    let body = Limited::new(response.into_body(), 64 * 1024).collect();
    let text = match timeout_at(deadline, body).await {
        Ok(Ok(collected)) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        _ => String::new(),
    };
    let error = (!ok).then(|| {
        let quoted: String = text.trim().chars().take(ERROR_BODY_CHARS).collect();
        if quoted.is_empty() {
            format!("origin answered {status}")
        } else {
            format!("origin answered {status}: {quoted}")
        }
    });
    CallResult {
        host: None,
        url: None,
        path: None,
        status: Some(status.as_u16()),
        ok,
        error,
        cache,
        location,
    }
}

/// `http://user:pass@app/api/revalidate` read as curl reads it: the credentials go as
/// `Authorization: Basic` (hyper would drop them) and leave the URL, which hyper keys its
/// connection pool by and writes in its debug log.
fn without_credentials(url: Uri) -> (Uri, Option<HeaderValue>) {
    use base64::Engine as _;
    let Some((user_info, host)) = url.authority().and_then(|a| a.as_str().rsplit_once('@')) else {
        return (url, None);
    };
    // Percent-escapes decoded; a `+` is itself here, not a space. A user name alone (a token)
    // is sent with an empty password, as curl does: RFC 7617 requires the colon.
    let mut user_info = super::request::decode_component(&user_info.replace('+', "%2B"));
    if !user_info.contains(':') {
        user_info.push(':');
    }
    let token = base64::engine::general_purpose::STANDARD.encode(user_info);
    let credentials = HeaderValue::from_str(&format!("Basic {token}"))
        .ok()
        .map(|mut value| {
            value.set_sensitive(true);
            value
        });
    let mut parts = url.clone().into_parts();
    parts.authority = host.parse().ok();
    match Uri::from_parts(parts) {
        Ok(bare) => (bare, credentials),
        Err(_) => (url, None),
    }
}

/// The URL as reported and logged: without its query, which may hold a secret, and without
/// the password of its user info.
pub fn display_url(url: &Uri) -> String {
    let scheme = url.scheme_str().unwrap_or("http");
    let authority = url.authority().map(|a| a.as_str()).unwrap_or("");
    let query = if url.query().is_some() { "?…" } else { "" };
    let shown = format!("{scheme}://{authority}{}", url.path());
    format!("{}{query}", crate::logging::masked_url(&shown))
}

/// The JSON body the origins get (see the module documentation): `received` is the request's
/// JSON object (`None` for a query-string request). The caller's secret goes in when it came
/// in a header or the query: the origin may expect it in the body, as the seed's does.
pub fn forwarded_body(
    received: Option<Map<String, Value>>,
    request: &RevalidateRequest,
) -> Map<String, Value> {
    let Some(mut body) = received else {
        return body_from_request(request);
    };
    if let Some(secret) = &request.secret {
        body.entry("secret")
            .or_insert_with(|| Value::String(secret.clone()));
    }
    if body.contains_key("paths") || body.contains_key("path") {
        body.insert("paths".into(), json!(request.paths));
    }
    if body.get("path").is_some_and(|path| !path.is_string()) {
        body.remove("path");
    }
    body
}

/// The JSON body forwarded for a request that came without one (GET / query-string style).
fn body_from_request(request: &RevalidateRequest) -> Map<String, Value> {
    let mut body = Map::new();
    if let Some(secret) = &request.secret {
        body.insert("secret".into(), json!(secret));
    }
    if !request.paths.is_empty() {
        body.insert("paths".into(), json!(request.paths));
    }
    if !request.tags.is_empty() {
        body.insert("tags".into(), json!(request.tags));
    }
    if request.targets.contains(&Target::All) {
        body.insert("all".into(), json!(true));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(received: Value) -> Value {
        let Value::Object(object) = received else {
            panic!("a JSON object");
        };
        let request = super::super::request::parse_object(&object).expect("accepted request");
        Value::Object(forwarded_body(Some(object), &request))
    }

    #[test]
    fn the_forwarded_body_is_one_the_seed_route_understands() {
        // The seed's Laravel shape goes as it came.
        let laravel = json!({"secret": "s", "paths": ["/", "/products"]});
        assert_eq!(forwarded(laravel.clone()), laravel);
        let twice = json!({"secret": "s", "paths": ["/", "/"]});
        assert_eq!(forwarded(twice.clone()), twice);
        // A `path` already in `paths` is not listed again.
        assert_eq!(
            forwarded(json!({"path": "/x", "paths": ["/x", "/z"]})),
            json!({"path": "/x", "paths": ["/x", "/z"]})
        );
        // Objects become their paths; other fields pass through.
        assert_eq!(
            forwarded(
                json!({"paths": [{"path": "/blog", "type": "layout"}, "/p"], "tag": "t", "mode": "soft"})
            ),
            json!({"paths": ["/blog", "/p"], "tag": "t", "mode": "soft"})
        );
        // `path` reaches the seed through `paths`; only a string `path` is kept itself.
        assert_eq!(
            forwarded(json!({"path": "/x", "type": "layout"})),
            json!({"path": "/x", "paths": ["/x"], "type": "layout"})
        );
        assert_eq!(
            forwarded(json!({"paths": ["/a"], "path": [{"path": "/b"}, "/c"]})),
            json!({"paths": ["/a", "/b", "/c"]})
        );
        // No paths named: none added.
        assert_eq!(
            forwarded(json!({"tags": ["products"]})),
            json!({"tags": ["products"]})
        );
    }

    #[test]
    fn urls_are_shown_without_query() {
        let url: Uri = "http://10.0.0.5:3000/api/revalidate?secret=hunter2"
            .parse()
            .expect("uri");
        assert_eq!(display_url(&url), "http://10.0.0.5:3000/api/revalidate?…");
        let url: Uri = "http://app:3000/api/revalidate".parse().expect("uri");
        assert_eq!(display_url(&url), "http://app:3000/api/revalidate");
    }

    #[test]
    fn credentials_in_a_url_become_basic_authorization() {
        let url: Uri = "http://ops:p%40ss+word@app:3000/api/revalidate?x=1"
            .parse()
            .expect("uri");
        let (bare, credentials) = without_credentials(url);
        assert_eq!(bare.to_string(), "http://app:3000/api/revalidate?x=1");
        let credentials = credentials.expect("credentials");
        // base64("ops:p@ss+word")
        assert_eq!(credentials, "Basic b3BzOnBAc3Mrd29yZA==");
        assert!(credentials.is_sensitive());
        let url: Uri = "http://ghp_token@app:3000/x".parse().expect("uri");
        let (_, credentials) = without_credentials(url);
        // base64("ghp_token:")
        assert_eq!(credentials.expect("credentials"), "Basic Z2hwX3Rva2VuOg==");
        let url: Uri = "http://app:3000/api/revalidate".parse().expect("uri");
        let (same, none) = without_credentials(url.clone());
        assert_eq!((same, none), (url, None));
    }
}
