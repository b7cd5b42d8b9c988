//! The composition root and the one routing decision: the control API or the proxy.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;

use crate::body::{strip_body_for_head, Answer, Body};
use crate::cache::key::{normalize_path, normalized};
use crate::cache::Cache;
use crate::config::Config;
use crate::limits;
use crate::logging::{self, AccessStart};
use crate::origins::Origins;
use crate::proxy::{Proxy, ProxySettings};
use crate::revalidate::forward::Forwarder;
use crate::revalidate::sites::Forwarders;
use crate::revalidate::Revalidate;
use crate::upstream::Upstream;

const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

pub struct App {
    proxy: Arc<Proxy>,
    revalidate: Revalidate,
    revalidate_path: String,
    access_log: bool,
    max_uri_length: usize,
    allowed_hosts: Vec<String>,
}

impl App {
    /// `origin` is the default origin; `config.host_origins` add one upstream client per host.
    pub fn new(config: &Config, origin: Option<&Uri>) -> App {
        let cache = Arc::new(Cache::new(config.cache_size));
        let origins = Origins::new(
            origin.map(|uri| Upstream::new(uri, config.origin_timeout, config.workers)),
            config
                .host_origins
                .iter()
                .map(|h| {
                    (
                        h.host.clone(),
                        Upstream::new(&h.url, config.origin_timeout, config.workers),
                    )
                })
                .collect(),
        );
        let settings = ProxySettings {
            max_object_size: config.max_object_size,
            freshness: config.freshness.clone(),
            honor_client_no_cache: config.honor_client_no_cache,
            conditional_refresh: config.conditional_refresh,
            browser_cache_control: config.browser_cache_control,
            tag_headers: config.tag_headers.clone(),
            keep_tag_headers: config.keep_tag_headers,
            limits: config.limits.clone(),
            bypass_cookies: config.bypass_cookies.clone(),
        };
        // The flags' forwarding regenerates on the default origin (else the first per-host one);
        // a site's own forwarding keys, on that site's origin.
        let default_forwarder = origins
            .primary()
            .cloned()
            .and_then(|upstream| Forwarder::new(config.origin_forwarding.clone(), upstream, None));
        let timeout = config.origin_forwarding.timeout;
        let site_forwarders = config
            .host_origins
            .iter()
            .filter(|site| site.forwarding.is_enabled())
            .filter_map(|site| {
                let upstream = origins.for_host(&site.host)?.clone();
                let settings = site.forwarding.settings(timeout);
                let forwarder = Forwarder::new(settings, upstream, Some(site.host.clone()))?;
                Some((site.host.clone(), forwarder))
            })
            .collect();
        let forwarders = Forwarders::new(default_forwarder, site_forwarders);
        let proxy = Arc::new(
            Proxy::with_origins(cache, origins, settings).with_routes(config.routes.clone()),
        );
        App {
            revalidate: Revalidate::new(proxy.clone(), config.secrets.clone())
                .with_guard(config.guard.clone(), config.require_signature)
                .warm_by_default(config.warm_on_revalidate)
                .with_forwarders(forwarders),
            proxy,
            // Compared with normalised request paths.
            revalidate_path: normalize_path(&config.revalidate_path),
            access_log: config.access_log,
            max_uri_length: config.limits.max_uri_length,
            allowed_hosts: config.allowed_hosts.clone(),
        }
    }

    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// Answers one request; counts it by cache status and writes its access-log line.
    pub fn handle(self: &Arc<Self>, request: Request<Incoming>, peer: SocketAddr) -> Answer {
        let access = self.access_log.then(|| AccessStart {
            method: request.method().clone(),
            uri: request.uri().clone(),
            started: std::time::Instant::now(),
        });
        let method = request.method().clone();
        // A ready answer is finished where it lies and handed on as it came, not taken apart
        // and rebuilt: each rebuild was a copy of the whole response on every hit.
        // Left in the tuple `route` returns: binding its parts copied the answer once more.
        let mut routed = self.route(request, peer);
        let answered_by = routed.1;
        match &mut routed.0 {
            Answer::Ready(response) => {
                strip_body_for_head(&method, response);
                self.finish(response, answered_by, None, access);
            }
            Answer::Labelled(response, x_cache) => {
                strip_body_for_head(&method, response);
                self.finish(response, answered_by, Some(*x_cache), access);
            }
            Answer::Pending(pending) => {
                let pending = std::mem::replace(pending, Box::pin(std::future::pending()));
                let app = self.clone();
                return Answer::pending(async move {
                    let mut response = pending.await;
                    strip_body_for_head(&method, &mut response);
                    app.finish(&response, answered_by, None, access);
                    response
                });
            }
        }
        routed.0
    }

    /// Counts the answered request and writes its access-log line. `x_cache`: the response's
    /// `X-Cache` value when the answer came labelled with it (see `Answer::Labelled`);
    /// otherwise it is read from the response.
    fn finish(
        &self,
        response: &Response<Body>,
        answered_by: AnsweredBy,
        x_cache: Option<&'static str>,
        access: Option<AccessStart>,
    ) {
        let x_cache = x_cache
            .map(str::as_bytes)
            .or_else(|| response.headers().get(X_CACHE).map(HeaderValue::as_bytes));
        self.proxy
            .metrics()
            .request(x_cache, answered_by == AnsweredBy::ControlApi);
        if let Some(access) = access {
            let cache = x_cache.and_then(|v| std::str::from_utf8(v).ok());
            logging::access(&access, response, cache.unwrap_or("-"));
        }
    }

    /// The answer, and who gave it (for the request counters).
    fn route(
        self: &Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> (Answer, AnsweredBy) {
        let (parts, body) = request.into_parts();
        if limits::uri_length(&parts.uri) > self.max_uri_length {
            let is_control = self.is_control(&normalized(parts.uri.path()));
            return (self.uri_too_long(is_control), AnsweredBy::Limits);
        }
        let path = normalized(parts.uri.path());
        let is_control = self.is_control(&path);
        // Handed on, so the proxy does not normalise again (`None`: the path already is).
        let normal_path = match path {
            Cow::Borrowed(_) => None,
            Cow::Owned(path) => Some(path),
        };
        // Bytes sent raw are escaped (`é` is `%C3%A9`): the limit holds for the URI as the
        // origin would get it too, or a long raw path would pass here and fail to be sent.
        let query = parts.uri.query().map_or(0, |q| q.len() + 1);
        if normal_path
            .as_ref()
            .is_some_and(|path| path.len() + query > self.max_uri_length)
        {
            return (self.uri_too_long(is_control), AnsweredBy::Limits);
        }
        if is_control {
            let app = self.clone();
            let answer =
                Answer::pending(async move { app.revalidate.handle(parts, body, peer.ip()).await });
            return (answer, AnsweredBy::ControlApi);
        }
        // Only the data plane: a backend may call the control API by IP or internal name.
        if let Err(host) = limits::host_allowed(&self.allowed_hosts, &parts.uri, &parts.headers) {
            return (
                Answer::Ready(limits::misdirected(&host)),
                AnsweredBy::Limits,
            );
        }
        (
            self.proxy.handle(parts, normal_path, body, peer.ip()),
            AnsweredBy::Proxy,
        )
    }
}

impl App {
    /// Whether a normalised path is the control API's: `/api/./revalidate` or
    /// `//api/%72evalidate` reach it too, never the origin (with the secret in the body).
    fn is_control(&self, path: &str) -> bool {
        path == self.revalidate_path
            || path.strip_suffix('/') == Some(self.revalidate_path.as_str())
    }

    /// The 414, in the control API's JSON on its path: a backend sending many paths in a
    /// query string reads `success` and `message`, and got plain text.
    fn uri_too_long(&self, is_control: bool) -> Answer {
        Answer::Ready(if is_control {
            crate::revalidate::uri_too_long(self.max_uri_length)
        } else {
            limits::uri_too_long(self.max_uri_length)
        })
    }
}

/// Which part of the app answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnsweredBy {
    /// Refused before routing went further (URI too long, unknown host).
    Limits,
    ControlApi,
    Proxy,
}
