//! The response body type shared by every module, the canned responses built from it, and
//! [`Answer`]: a response ready now or one still to come.
//!
//! Hits are a `Full<Bytes>` (no allocation beyond a refcount); anything streamed from the origin
//! is boxed once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::{combinators::BoxBody, BodyExt, Empty};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the proxy answers with: a whole body held in memory (hits, canned answers), or a
/// stream from the origin.
pub enum Body {
    Full(Option<Bytes>),
    Stream(BoxBody<Bytes, BodyError>),
}

/// An error while streaming a body from the origin.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(BoxError);

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Body::Stream(stream) => Pin::new(stream).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Body::Stream(stream) => stream.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream(stream) => stream.size_hint(),
        }
    }
}

/// A response ready now (a hit, a refusal: nothing to wait for), or one that waits for the
/// origin or a request body.
///
/// Hits are answered without a future of their own. With an `async fn` for the whole flow,
/// every hit built, moved and polled a state machine sized for the slowest path (the miss,
/// with its fetch and fallbacks): answering hits here and now took 4.4 % off a hit's
/// instructions (16,446 -> 15,729, `benches/instructions.sh`). What waits is boxed, which also
/// keeps it out of the connection's per-request state.
pub enum Answer {
    Ready(Response<Body>),
    /// Ready, with the `X-Cache` value the response carries (a page served from the cache): the
    /// request counters and the access log take it from here, where finding the field among
    /// the response's was a hashed lookup on every hit.
    Labelled(Response<Body>, &'static str),
    Pending(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

impl Answer {
    pub fn pending(future: impl Future<Output = Response<Body>> + Send + 'static) -> Answer {
        Answer::Pending(Box::pin(future))
    }
}

/// What the proxy sends to the origin.
pub type UpstreamBody = BoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Body::Full(Some(bytes.into()))
}

pub fn empty() -> Body {
    Body::Full(None)
}

pub fn streaming<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    Body::Stream(body.map_err(|e| BodyError(e.into())).boxed())
}

pub fn empty_upstream() -> UpstreamBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A short plain-text answer, for errors the proxy produces itself.
pub fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(full(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A JSON answer; the control API's only response shape.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A HEAD gets the head a GET would get, without the body (RFC 9110 section 9.3.2), its
/// `Content-Length` included: hyper writes a GET's from the body, which the HEAD's answer no
/// longer has (`Entry::to_response` does the same for stored pages). The origin's 5xx page
/// shared with the requests that waited on its fetch is one such answer, canned errors others.
/// Applied to every answer, once (`app`): hyper's HTTP/1 server drops a HEAD's body itself,
/// its HTTP/2 server sends it, and clients reset the stream.
pub fn strip_body_for_head(method: &http::Method, response: &mut Response<Body>) {
    if method != http::Method::HEAD {
        return;
    }
    let framed = response.headers().contains_key(header::CONTENT_LENGTH)
        || response.headers().contains_key(header::TRANSFER_ENCODING);
    // Statuses that never have content get no length (RFC 9110 section 8.6), as hyper does.
    let status = response.status();
    let has_content = !(status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED);
    // Only a body that is there gives a length: an empty one is a HEAD passed through (the
    // origin sent no body) or an answer already emptied, whose GET length is not known here,
    // and `Content-Length: 0` would be a wrong one (RFC 9110 section 8.6).
    let body = std::mem::replace(response.body_mut(), empty());
    if !framed && has_content && !http_body::Body::is_end_stream(&body) {
        if let Some(length) = http_body::Body::size_hint(&body).exact() {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
    }
}
