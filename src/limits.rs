//! Data-plane limits with clear answers: URI length (414), Host allow-list (421), client body
//! size for pass-through requests (413), and the idle timeout on streamed origin bodies (a
//! stalled origin ends the response instead of holding the client forever). Header size (431),
//! header-read time and the connection cap are enforced by the server (`server.rs`).

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Response, StatusCode, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::{self, Body, BoxError};
use crate::config::strip_port;
use crate::server::Uploading;

pub fn uri_too_long(limit: usize) -> Response<Body> {
    body::text(
        StatusCode::URI_TOO_LONG,
        &format!("414 URI Too Long: the path and query may be at most {limit} bytes"),
    )
}

pub fn payload_too_large(limit: u64) -> Response<Body> {
    body::text(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("413 Content Too Large: request bodies may be at most {limit} bytes"),
    )
}

pub fn misdirected(host: &str) -> Response<Body> {
    body::text(
        StatusCode::MISDIRECTED_REQUEST,
        &format!("421 Misdirected Request: this server does not serve host {host:?}"),
    )
}

/// The 400 for a request whose host cannot key a page, naming what it sent: the target's
/// authority when it has one (HTTP/2 `:authority`, an absolute-form target), which is what
/// was refused, else its `Host` fields.
pub fn bad_host(request: &http::request::Parts) -> Response<Body> {
    let hosts: Vec<String> = request
        .headers
        .get_all(header::HOST)
        .iter()
        .map(|v| format!("{:?}", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let message = match request.uri.authority() {
        _ if hosts.len() > 1 => format!(
            "400 Bad Request: {} Host fields ({}); send one",
            hosts.len(),
            hosts.join(", ")
        ),
        _ if hosts.is_empty() && request.version == http::Version::HTTP_11 => {
            "400 Bad Request: an HTTP/1.1 request must carry a Host header".to_string()
        }
        None if hosts.is_empty() => {
            "400 Bad Request: the request names no host: send :authority (or Host)".to_string()
        }
        Some(authority)
            if request.version == http::Version::HTTP_2
                && !hosts.is_empty()
                && valid_host(authority.as_str()) =>
        {
            format!(
                "400 Bad Request: Host {} differs from :authority {:?}; send the same host in both, or Host not at all",
                hosts.join(", "),
                authority.as_str()
            )
        }
        Some(authority) => format!(
            "400 Bad Request: the target's authority {:?} is not one host name or address with an optional port",
            authority.as_str()
        ),
        None => format!(
            "400 Bad Request: Host {} is not one host name or address with an optional port",
            hosts.join(", ")
        ),
    };
    body::text(StatusCode::BAD_REQUEST, &message)
}

/// Whether `host` is `host[:port]` as a `Host` header carries it: a name or IPv4 address of
/// letters, digits, `-`, `.`, `_`, `~`, or a bracketed IPv6 literal, then an optional port
/// (at most 65535).
/// The cache key is the host followed by the path, so a host with `/` in it (or `?`, `#`, `@`)
/// could spell another URL's key: `Host: a.example/x` with `/y` is `a.example` with `/x/y`.
pub fn valid_host(host: &str) -> bool {
    let bytes = host.as_bytes();
    let (name_ok, port) = match bytes.split_first() {
        Some((b'[', rest)) => match rest.iter().position(|&b| b == b']') {
            Some(end) => (
                end > 0
                    && rest[..end]
                        .iter()
                        .all(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.'),
                &rest[end + 1..],
            ),
            None => return false,
        },
        // One table lookup per byte: this runs on every request.
        _ => {
            let name_end = bytes
                .iter()
                .position(|&b| !HOST_NAME_BYTE[usize::from(b)])
                .unwrap_or(bytes.len());
            // A port after no name (`Host: :8080`) names no host, as an empty `Host` does
            // (RFC 9110 section 4.2.1); nothing at all is an HTTP/1.0 request naming none.
            (name_end > 0 || name_end == bytes.len(), &bytes[name_end..])
        }
    };
    name_ok
        && match port.split_first() {
            None => true,
            // A port is at most 65535: `:99999` names no server, and would key pages apart.
            Some((b':', digits)) => is_port_number(digits),
            Some(_) => false,
        }
}

/// Digits of a port, at most 65535 (leading zeros allowed: `:080` is port 80).
pub fn is_port_number(digits: &[u8]) -> bool {
    digits.len() <= 5
        && digits.iter().all(u8::is_ascii_digit)
        && digits
            .iter()
            .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'))
            <= u32::from(u16::MAX)
}

/// Bytes of a host name or IPv4 address: letters, digits, `-`, `.`, `_`, `~`.
static HOST_NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        byte += 1;
    }
    table
};

/// Length of what the request line carries as the target.
pub fn uri_length(uri: &Uri) -> usize {
    uri.path_and_query().map_or(0, |pq| pq.as_str().len())
}

/// Whether the request's host (Host header or HTTP/2 `:authority`, port ignored) is one of
/// `allowed` (lowercase, no port). An empty list allows every host.
pub fn host_allowed(allowed: &[String], uri: &Uri, headers: &HeaderMap) -> Result<(), String> {
    if allowed.is_empty() {
        return Ok(());
    }
    // As the cache keys it: the target's authority (HTTP/2, absolute-form) wins over `Host`.
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .unwrap_or("");
    let name = strip_port(host.trim()).to_ascii_lowercase();
    // The root's trailing dot names the same host (the cache keys `site.example.` as
    // `site.example`).
    let name = crate::cache::key::without_root_dot(&name);
    if allowed.iter().any(|h| h == name) {
        Ok(())
    } else {
        Err(host.to_string())
    }
}

/// A declared `Content-Length` over `limit`.
pub fn declared_too_large(headers: &HeaderMap, limit: u64) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|len| len > limit)
}

/// How a client body made its origin request fail: the client's fault, not the origin's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFault {
    /// More than the limit arrived: 413.
    TooLarge,
    /// It broke its own framing (a bad chunk size, a chunk longer than it said) or ended
    /// before its length: 400.
    Unreadable,
    /// It stopped arriving: the origin timeout ran out while the origin was still waiting for
    /// the client's next bytes: 408.
    Stalled,
}

impl ClientFault {
    /// The answer; `limit` is the body limit a 413 names.
    pub fn response(self, limit: u64) -> Response<Body> {
        match self {
            ClientFault::TooLarge => payload_too_large(limit),
            ClientFault::Unreadable => body::text(
                StatusCode::BAD_REQUEST,
                "400 Bad Request: the request body is malformed or ended before its declared length",
            ),
            ClientFault::Stalled => body::text(
                StatusCode::REQUEST_TIMEOUT,
                "408 Request Timeout: the request body stopped arriving before the origin could answer",
            ),
        }
    }
}

/// Why a client body forwarded through [`Capped`] failed, if it did. The origin request fails
/// with it, and the answer (413, 400, 408) and the metrics must then blame the client: a 502 or
/// 504 and an origin error would let any client make a healthy origin look broken.
#[derive(Debug)]
pub struct BodyFault {
    too_large: AtomicBool,
    unreadable: AtomicBool,
    /// The last read of the client's body found nothing yet: the origin request is waiting on
    /// the client, not the other way round (an origin that stops reading stops asking).
    awaiting_client: AtomicBool,
    /// When bytes of the body were last forwarded (see [`BodyFault::last_forwarded`]), as
    /// nanoseconds after `since` plus one; 0: none yet. An atomic, not a lock: it is written
    /// for every chunk of an upload.
    forwarded_at: AtomicU64,
    /// When the body started: what `forwarded_at` counts from. Per body rather than per
    /// process, so an instant from one runtime's paused test clock is never measured against
    /// another's.
    since: Instant,
}

impl BodyFault {
    fn new() -> BodyFault {
        BodyFault {
            too_large: AtomicBool::new(false),
            unreadable: AtomicBool::new(false),
            awaiting_client: AtomicBool::new(false),
            forwarded_at: AtomicU64::new(0),
            since: Instant::now(),
        }
    }

    /// When bytes of the body were last passed to the origin, if any were: the origin timeout
    /// counts from then, as an upload still coming is the client's pace, not a slow origin.
    pub fn last_forwarded(&self) -> Option<Instant> {
        let stored = self.forwarded_at.load(Ordering::Relaxed);
        stored
            .checked_sub(1)
            .map(|nanos| self.since + Duration::from_nanos(nanos))
    }

    fn forwarded_now(&self) {
        // u64 nanoseconds last 584 years; past that, the last instant that fits.
        let nanos = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.forwarded_at.store(nanos + 1, Ordering::Relaxed);
    }

    /// Whether `error`, failing the origin request this body went with, is the client's
    /// doing, and how: the one place the answer and the metrics both ask.
    pub fn fault_for(&self, error: &crate::upstream::UpstreamError) -> Option<ClientFault> {
        if self.too_large.load(Ordering::Relaxed) {
            Some(ClientFault::TooLarge)
        } else if self.unreadable.load(Ordering::Relaxed) {
            Some(ClientFault::Unreadable)
        } else if matches!(error, crate::upstream::UpstreamError::Timeout(_))
            && self.awaiting_client.load(Ordering::Relaxed)
        {
            // An origin that stops reading an upload stops asking for it, so the last read
            // was not left waiting: that stays the origin's timeout.
            Some(ClientFault::Stalled)
        } else {
            None
        }
    }
}

/// A client request body that fails once more than `limit` bytes arrived, and records that
/// it did, or that it could not be read (so the proxy answers 413 or 400 rather than 502 when
/// the origin request fails for it).
pub struct Capped<B> {
    inner: B,
    remaining: u64,
    fault: Arc<BodyFault>,
    /// Keeps the client's connection counted as receiving until the body ends.
    uploading: Option<Uploading>,
}

#[derive(Debug, thiserror::Error)]
#[error("request body larger than the configured limit")]
pub struct TooLarge;

impl<B> Capped<B> {
    pub fn new(inner: B, limit: u64) -> (Capped<B>, Arc<BodyFault>) {
        let fault = Arc::new(BodyFault::new());
        let capped = Capped {
            inner,
            remaining: limit,
            fault: fault.clone(),
            uploading: None,
        };
        (capped, fault)
    }

    /// Holds `uploading` until the body ends, fails or is dropped.
    pub fn holding(mut self, uploading: Option<Uploading>) -> Capped<B> {
        self.uploading = uploading;
        self
    }
}

impl<B> HttpBody for Capped<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        self.fault
            .awaiting_client
            .store(polled.is_pending(), Ordering::Relaxed);
        let frame = match polled {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => {
                self.uploading = None;
                self.fault.unreadable.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(e.into())));
            }
            Poll::Ready(None) => {
                self.uploading = None;
                return Poll::Ready(None);
            }
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > self.remaining {
                self.fault.too_large.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(Box::new(TooLarge))));
            }
            self.remaining -= len;
            self.fault.forwarded_now();
            if let Some(uploading) = &self.uploading {
                uploading.forwarded(data.len());
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An origin body that fails when no chunk arrives for `idle`.
pub struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

#[derive(Debug, thiserror::Error)]
#[error("origin sent nothing for {0:?} in the middle of the body")]
pub struct Stalled(Duration);

impl<B> IdleTimeout<B> {
    pub fn new(inner: B, idle: Duration) -> IdleTimeout<B> {
        IdleTimeout {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl<B> HttpBody for IdleTimeout<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = Instant::now() + self.idle;
                self.timer.as_mut().reset(deadline);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    tracing::warn!(idle = ?self.idle, "origin body stalled; cutting it off");
                    Poll::Ready(Some(Err(Box::new(Stalled(self.idle)))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// The origin timeout counts from the instant the last chunk was forwarded, exactly as
    /// the clock read it (not rounded), and from nothing before the first.
    #[tokio::test(start_paused = true)]
    async fn the_last_forwarded_instant_is_the_last_chunks() {
        use http_body_util::BodyExt;
        let chunks = Chunks(vec![Bytes::from("cd"), Bytes::from("ab")]);
        let (mut capped, fault) = Capped::new(chunks, 10);
        assert_eq!(fault.last_forwarded(), None);
        tokio::time::advance(Duration::from_millis(1500)).await;
        let _ = capped.frame().await;
        assert_eq!(fault.last_forwarded(), Some(Instant::now()));
        tokio::time::advance(Duration::from_nanos(2_000_000_001)).await;
        let _ = capped.frame().await;
        assert_eq!(fault.last_forwarded(), Some(Instant::now()));
        assert!(capped.frame().await.is_none());
    }

    /// A body of these chunks, last first.
    struct Chunks(Vec<Bytes>);

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop().map(|chunk| Ok(Frame::data(chunk))))
        }
    }

    /// The 400 names what was refused: an HTTP/2 `:authority` with userinfo is named as such,
    /// not as a missing or valid `Host`.
    #[tokio::test]
    async fn a_bad_host_answer_names_what_was_refused() {
        use http_body_util::BodyExt;
        let text = |builder: http::request::Builder| async move {
            let (parts, ()) = builder.body(()).expect("request").into_parts();
            let body = bad_host(&parts).into_body().collect().await;
            String::from_utf8_lossy(&body.expect("body").to_bytes()).into_owned()
        };
        let h2 = || {
            http::Request::builder()
                .version(http::Version::HTTP_2)
                .uri("http://user@shop.example/p")
        };
        assert!(text(h2())
            .await
            .contains(r#"authority "user@shop.example""#));
        assert!(text(h2().header("host", "shop.example"))
            .await
            .contains(r#"authority "user@shop.example""#));
        let other = text(
            http::Request::builder()
                .version(http::Version::HTTP_2)
                .uri("http://shop.example/p")
                .header("host", "admin.example"),
        )
        .await;
        assert!(
            other.contains(r#"Host "admin.example" differs from :authority "shop.example""#),
            "{other}"
        );
        let h1 = || http::Request::builder().uri("/p");
        assert!(text(h1()).await.contains("must carry a Host header"));
        assert!(text(h1().header("host", "a/b"))
            .await
            .contains(r#"Host "a/b""#));
        assert!(text(h1().header("host", "a").header("host", "b"))
            .await
            .contains("2 Host fields"));
    }

    #[test]
    fn hosts_that_could_spell_another_key_are_not_valid() {
        for host in [
            "",
            "shop.example",
            "Shop.Example:8080",
            "127.0.0.1:3000",
            "[::1]:8080",
            "[2001:db8::1]",
            "my_host.internal",
            "host:",
            "host:65535",
        ] {
            assert!(valid_host(host), "{host}");
        }
        for host in [
            "shop.example/x",
            "shop.example:80/x",
            "shop.example?x",
            "shop.example#x",
            "user@shop.example",
            "shop example",
            "shop.example:80:81",
            "shop.example:123456",
            "shop.example:65536",
            "shop.example:99999",
            "[::1",
            "[::1]x",
            "[]",
            "[::1]/x",
            "shop.example%2fx",
        ] {
            assert!(!valid_host(host), "{host}");
        }
    }

    #[test]
    fn hosts() {
        let allowed = vec!["site.example".to_string()];
        let uri: Uri = "/".parse().expect("uri");
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("Site.Example:8080"));
        assert!(host_allowed(&allowed, &uri, &headers).is_ok());
        headers.insert(header::HOST, HeaderValue::from_static("site.example.:8080"));
        assert!(host_allowed(&allowed, &uri, &headers).is_ok(), "root's dot");
        headers.insert(header::HOST, HeaderValue::from_static("site.example.."));
        assert!(host_allowed(&allowed, &uri, &headers).is_err());
        headers.insert(header::HOST, HeaderValue::from_static("junk.example"));
        assert_eq!(
            host_allowed(&allowed, &uri, &headers),
            Err("junk.example".into())
        );
        assert!(host_allowed(&[], &uri, &headers).is_ok());
        let h2: Uri = "http://site.example/x".parse().expect("uri");
        assert!(host_allowed(&allowed, &h2, &HeaderMap::new()).is_ok());
    }
}
