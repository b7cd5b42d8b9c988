//! The origin client: a keep-alive pool (hyper-util), request header hygiene (hop-by-hop
//! headers, `X-Forwarded-*`, headers that let clients poison the cache or reach Next.js
//! internals), timeouts, and [`UpstreamError`], the one place origin failures become 502/504.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::{self, Body, UpstreamBody};

/// Most header fields read from an origin's answer.
const ORIGIN_MAX_HEADERS: usize = 256;

/// Why the origin gave no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("origin unreachable: {0}")]
    Connect(String),
    #[error("origin did not answer within {0:?}")]
    Timeout(Duration),
    #[error("origin sent an invalid response: {0}")]
    Protocol(String),
    #[error("origin response body failed: {0}")]
    Body(String),
    #[error("origin answered {0}")]
    Status(StatusCode),
}

impl UpstreamError {
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::Status(s) => *s,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// Short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Protocol(_) => "protocol",
            UpstreamError::Body(_) => "body",
            UpstreamError::Status(_) => "status",
        }
    }

    /// The answer a client gets when no stored copy can stand in.
    pub fn response(&self) -> Response<Body> {
        let status = self.status();
        let reason = status.canonical_reason().unwrap_or("Error");
        body::text(status, &format!("{} {reason}: {self}", status.as_u16()))
    }
}

/// Headers that describe one connection, never forwarded (RFC 9110 section 7.6.1). Not
/// `Trailer`: it names the trailer fields end to end (section 6.6.2), and an HTTP/1.1 server
/// sends only the trailers it names.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Request headers a client must not be able to set: they change what the origin renders
/// without being part of the cache key (cache poisoning: `Forwarded`, `X-Host`, the
/// `X-Forwarded-*` family, which isr-edge sets itself; `X-Forwarded-Prefix`, which Laravel's
/// `TrustProxies` trusts by default and puts in front of every URL it generates; the scheme
/// overrides Rack and IIS read), or reach Next.js internals
/// (CVE-2025-29927 `x-middleware-subrequest`, CVE-2024-46982 `x-now-route-matches`,
/// CVE-2023-46298 `x-middleware-prefetch`, and the `x-nextjs-data` / `x-matched-path` headers
/// Next.js trusts from its own router). Two families go whole, see [`UNTRUSTED_PREFIXES`].
const UNTRUSTED_REQUEST_HEADERS: [&str; 21] = [
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-forwarded-server",
    "front-end-https",
    "x-url-scheme",
    "x-original-url",
    "x-rewrite-url",
    "x-now-route-matches",
    "x-prerender-revalidate",
    "x-prerender-revalidate-if-generated",
    "x-next-revalidated-tags",
    "x-next-revalidate-tag-token",
    "forwarded",
    "x-host",
    "x-original-host",
    "x-matched-path",
    "x-nextjs-data",
];

/// Name prefixes of request headers that are Next.js's own, never a browser's: `x-middleware-`
/// (what middleware tells the router: `-subrequest`, `-prefetch`, `-rewrite`,
/// `-override-headers`, `-request-*`...) and `x-invoke-` (what the router tells a render
/// worker: `-path`, `-query`, `-status`, `-error`...). Versions that trusted one from a
/// client rendered what it named, and the cache stored it.
const UNTRUSTED_PREFIXES: [&str; 2] = ["x-middleware-", "x-invoke-"];

/// The names a message's `Connection` header lists (trimmed, as sent).
pub fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    list_tokens(headers, header::CONNECTION)
}

/// The comma-separated elements of every `name` field, trimmed (empty ones included). Read as
/// bytes: a field with a byte that is not visible ASCII in it still lists the others (`to_str`
/// refused the whole field, and a header it named as hop-by-hop reached the origin).
fn list_tokens(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
}

/// Removes hop-by-hop headers, including any named by `Connection`, and a `Content-Length`
/// that came with `Transfer-Encoding` (RFC 9112 section 6.3: the encoding framed the message,
/// and the length must not be forwarded; passed on, it told clients the wrong length).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|name| HeaderName::from_bytes(name).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Headers that make a request another method at the origin (Laravel, Symfony and Rails honour
/// them on POST). Dropped from GET and HEAD, whose answers are stored: a GET the origin took
/// for a DELETE or PUT would be stored as the page. On other methods, never stored, an API
/// client's `POST` with `X-HTTP-Method-Override: DELETE` reaches the origin as sent.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Removes the fields a client must not be able to send the origin (see
/// [`UNTRUSTED_REQUEST_HEADERS`] and [`UNTRUSTED_PREFIXES`]).
fn strip_untrusted(headers: &mut HeaderMap) {
    for name in UNTRUSTED_REQUEST_HEADERS {
        headers.remove(name);
    }
    let internal: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            UNTRUSTED_PREFIXES
                .iter()
                .any(|prefix| name.as_str().starts_with(prefix))
        })
        .cloned()
        .collect();
    for name in internal {
        headers.remove(name);
    }
}

/// The trailer fields of a client's request body as the origin gets them: the same fields
/// are kept from it as from the head (hop-by-hop ones and those of [`strip_untrusted`]). A
/// field named in `Trailer` is forwarded after the body, and `X-Forwarded-Host` or
/// `x-middleware-subrequest` sent there reached the origin, past the checks on the head.
pub fn origin_request_trailers(trailers: &mut HeaderMap) {
    strip_hop_by_hop(trailers);
    strip_untrusted(trailers);
}

/// The headers sent to the origin for a client request.
pub fn origin_request_headers(
    client: &HeaderMap,
    method: &Method,
    host: &str,
    peer: IpAddr,
) -> HeaderMap {
    let mut headers = client.clone();
    strip_hop_by_hop(&mut headers);
    if matches!(*method, Method::GET | Method::HEAD) {
        for name in METHOD_OVERRIDES {
            headers.remove(name);
        }
    }
    // `TE` is this hop's, but a client that takes trailers can get the origin's through the
    // proxy: asked without it, an origin may send none (hyper's sends them only when asked).
    if list_tokens(client, header::TE).any(|coding| coding.eq_ignore_ascii_case(b"trailers")) {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    strip_untrusted(&mut headers);
    // HTTP/2 clients send each cookie as a field of its own; the origin speaks HTTP/1.1 and
    // gets them as one field joined with "; " (RFC 9113 section 8.2.3).
    if headers.get_all(header::COOKIE).iter().nth(1).is_some() {
        let mut joined = Vec::new();
        for value in headers.get_all(header::COOKIE) {
            if !joined.is_empty() {
                joined.extend_from_slice(b"; ");
            }
            joined.extend_from_slice(value.as_bytes());
        }
        if let Ok(value) = HeaderValue::from_bytes(&joined) {
            headers.insert(header::COOKIE, value);
        }
    }
    // Every field line, in order: a proxy in front may add its own line after the client's
    // (HAProxy's `option forwardfor`), and the origin trusts the last entries most.
    let mut forwarded_for = Vec::new();
    for previous in headers.get_all("x-forwarded-for") {
        forwarded_for.extend_from_slice(previous.as_bytes());
        forwarded_for.extend_from_slice(b", ");
    }
    forwarded_for.extend_from_slice(peer.to_string().as_bytes());
    if let Ok(value) = HeaderValue::from_bytes(&forwarded_for) {
        headers.insert("x-forwarded-for", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if host.is_empty() {
        // An HTTP/1.0 request may name no host: the origin gets its own (the HTTP client adds
        // the origin URL's authority to a request without `Host`), not an empty one.
        headers.remove(header::HOST);
    } else if let Ok(value) = HeaderValue::from_str(host) {
        headers.insert("x-forwarded-host", value.clone());
        // The host the page is keyed under, whatever `Host` said: HTTP/2 clients send
        // `:authority` instead, and an absolute-form target's authority wins over `Host`.
        headers.insert(header::HOST, value);
    }
    headers
}

/// The origin: where it is and how to reach it.
#[derive(Clone)]
pub struct Upstream {
    /// One keep-alive pool per worker (see `server`), like nginx's per-worker upstream pools:
    /// a connection is registered with the event loop of the worker that opened it, so a
    /// worker only uses its own and never waits on another worker's thread.
    clients: Arc<[Client<HttpConnector, UpstreamBody>]>,
    scheme_authority: String,
    base_path: String,
    timeout: Duration,
}

impl Upstream {
    /// `workers`: how many worker event loops will send requests (one pool each; at least 1).
    pub fn new(origin: &Uri, timeout: Duration, workers: usize) -> Upstream {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let clients = (0..workers.max(1))
            .map(|_| {
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(60))
                    // Without a timer hyper-util applies the idle timeout only when it checks a
                    // connection out: those a burst left idle stayed open for good.
                    .pool_timer(TokioTimer::new())
                    .pool_max_idle_per_host(512)
                    // hyper's default of 100 fields made a page whose app sends more (security
                    // headers, several `Link` and `Set-Cookie` lines) a 502 every time. The
                    // header list is then held on the heap, one allocation per origin answer
                    // (misses and passed-through requests; hits never ask the origin).
                    .http1_max_headers(ORIGIN_MAX_HEADERS)
                    .build(connector.clone())
            })
            .collect();
        let scheme = origin.scheme_str().unwrap_or("http");
        let authority = origin.authority().map(|a| a.as_str()).unwrap_or("");
        Upstream {
            clients,
            scheme_authority: format!("{scheme}://{authority}"),
            base_path: origin.path().trim_end_matches('/').to_string(),
            timeout,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Base URL of the origin, as configured.
    pub fn base_url(&self) -> String {
        format!("{}{}", self.scheme_authority, self.base_path)
    }

    /// Builds a request to the origin for `path_and_query` (starting with `/`).
    pub fn request(
        &self,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: UpstreamBody,
    ) -> Result<Request<UpstreamBody>, UpstreamError> {
        let uri = format!(
            "{}{}{}",
            self.scheme_authority, self.base_path, path_and_query
        );
        let uri: Uri = uri
            .parse()
            .map_err(|e| UpstreamError::Protocol(format!("cannot build origin URL: {e}")))?;
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// Sends a request and waits for the response head, within the origin timeout counted
    /// from the later of now and `uploaded()`: when bytes of the request's body were last
    /// forwarded. The upload runs inside this wait, and one slower than the timeout (a 10 MiB
    /// form post over a slow link) is the client's pace, not an origin that does not answer.
    pub async fn send(
        &self,
        request: Request<UpstreamBody>,
        uploaded: impl Fn() -> Option<tokio::time::Instant>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let client = &self.clients[crate::server::current_worker() % self.clients.len()];
        let answer = client.request(request);
        tokio::pin!(answer);
        let mut deadline = tokio::time::Instant::now() + self.timeout;
        let answered = loop {
            match tokio::time::timeout_at(deadline, &mut answer).await {
                Ok(answered) => break answered,
                Err(_) => match uploaded().map(|at| at + self.timeout) {
                    Some(later) if later > deadline => deadline = later,
                    _ => return Err(UpstreamError::Timeout(self.timeout)),
                },
            }
        };
        match answered {
            Err(e) if e.is_connect() => Err(UpstreamError::Connect(root_cause(&e))),
            Err(e) => Err(UpstreamError::Protocol(root_cause(&e))),
            Ok(mut response) => {
                // Never asked for (isr-edge forwards no `Upgrade`), and a client handed it would
                // get a connection switched to nothing.
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    return Err(UpstreamError::Protocol(
                        "origin switched protocols (101) without being asked".into(),
                    ));
                }
                if let Some(coding) = foreign_transfer_coding(response.headers()) {
                    // Only `chunked` is undone on the way in; passed on or stored without
                    // its header, any other coding would be a corrupt body.
                    return Err(UpstreamError::Protocol(format!(
                        "origin used transfer coding {coding:?}, which isr-edge does not decode"
                    )));
                }
                strip_hop_by_hop(response.headers_mut());
                Ok(response)
            }
        }
    }
}

/// A transfer coding other than `chunked` in a message's `Transfer-Encoding`, if any: only
/// `chunked` is undone (by hyper), and the header itself is hop-by-hop, so a body in any other
/// coding would be passed on as if it were not coded.
pub fn foreign_transfer_coding(headers: &HeaderMap) -> Option<String> {
    list_tokens(headers, header::TRANSFER_ENCODING)
        .find(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case(b"chunked"))
        .map(|coding| String::from_utf8_lossy(coding).into_owned())
}

/// An error and its sources on one line, for answers and logs.
pub(crate) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        message = format!("{message}: {inner}");
        source = inner.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proxy in front may add its `X-Forwarded-For` as a field line of its own (HAProxy's
    /// `option forwardfor` does), after one the client sent: every line is kept, in order, or
    /// the origin reads the client's made-up address where the real one was.
    #[test]
    fn every_forwarded_for_line_is_kept() {
        let mut client = HeaderMap::new();
        client.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        client.append("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        let headers = origin_request_headers(
            &client,
            &Method::GET,
            "site.example",
            "10.0.0.2".parse().expect("ip"),
        );
        let forwarded: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(forwarded, ["6.6.6.6, 203.0.113.7, 10.0.0.2"]);
    }

    #[test]
    fn a_request_naming_no_host_sends_none_of_its_own() {
        let mut client = HeaderMap::new();
        client.insert(header::HOST, HeaderValue::from_static(""));
        let headers =
            origin_request_headers(&client, &Method::GET, "", "10.0.0.2".parse().expect("ip"));
        assert!(headers.get(header::HOST).is_none());
        assert!(headers.get("x-forwarded-host").is_none());
    }

    #[test]
    fn request_hygiene() {
        let mut client = HeaderMap::new();
        client.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        client.insert("x-secret-hop", HeaderValue::from_static("1"));
        client.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        client.insert(
            "x-middleware-subrequest",
            HeaderValue::from_static("middleware"),
        );
        client.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        client.insert(header::HOST, HeaderValue::from_static("site.example"));
        let headers = origin_request_headers(
            &client,
            &Method::GET,
            "site.example",
            "127.0.0.1".parse().expect("ip"),
        );
        assert!(headers.get("x-secret-hop").is_none());
        assert!(headers.get(header::CONNECTION).is_none());
        assert!(headers.get("x-middleware-subrequest").is_none());
        assert_eq!(headers["x-forwarded-host"], "site.example");
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers[header::HOST], "site.example");
    }
}
