//! Range requests answered from a whole page (RFC 9110 section 14): one satisfiable range is a
//! `206` with `Content-Range`, several are one `multipart/byteranges` `206`, none a `416`.
//!
//! The cache stores and fetches whole pages only, as nginx's `proxy_cache` and Varnish do: a
//! range request that misses fetches the page without its `Range`, and every later range of it
//! is a hit. Only a stored `200` is cut; anything else (a `404` page, a `304`) answers as it is,
//! which RFC 9110 section 14.2 allows for any range request.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Frame, SizeHint};

use crate::body::{self, Body};

/// More range-specs than this in one `Range` is a broken client or an attempt to make the
/// server assemble many small parts (RFC 9110 section 14.2 lets a server ignore it): the whole
/// page is sent instead.
const MAX_RANGE_SPECS: usize = 64;

/// What a `Range` field asks of a body `len` bytes long.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ranges {
    /// Not a byte-range set this cache serves (another unit, malformed, too many specs): the
    /// whole page answers.
    Whole,
    /// Well formed, but no range starts inside the body: `416`.
    Unsatisfiable,
    /// Inclusive `(first, last)` offsets inside the body, in the order the request named them,
    /// overlapping and adjacent ranges merged (RFC 9110 section 15.3.7.2 lets a server coalesce
    /// them), none empty.
    Parts(Vec<(u64, u64)>),
}

/// Reads a `Range` field value against a body of `len` bytes.
pub(super) fn parse(field: &[u8], len: u64) -> Ranges {
    let Some((unit, set)) = split_once(field, b'=') else {
        return Ranges::Whole;
    };
    // An empty body has no byte to cut; sending it whole is always allowed.
    if !unit.trim_ascii().eq_ignore_ascii_case(b"bytes") || len == 0 {
        return Ranges::Whole;
    }
    let mut parts = Vec::new();
    let mut specs = 0;
    // A list: empty elements (`bytes=0-1,,2-3`) are allowed and skipped (RFC 9110 5.6.1).
    for spec in set.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        if spec.is_empty() {
            continue;
        }
        specs += 1;
        if specs > MAX_RANGE_SPECS {
            return Ranges::Whole;
        }
        let Some((first, last)) = split_once(spec, b'-') else {
            return Ranges::Whole;
        };
        let range = match (number(first), number(last)) {
            // `-N`: the last N bytes; `-0` selects nothing.
            (None, Some(suffix)) if first.is_empty() => {
                (suffix > 0).then(|| (len - suffix.min(len), len - 1))
            }
            // `F-`: from F to the end.
            (Some(first), None) if last.is_empty() => (first < len).then(|| (first, len - 1)),
            (Some(first), Some(last)) if first <= last => {
                (first < len).then(|| (first, last.min(len - 1)))
            }
            // `5-3`, `-`, `a-b`: the whole field is invalid, and ignored.
            _ => return Ranges::Whole,
        };
        parts.extend(range);
    }
    if specs == 0 {
        return Ranges::Whole;
    }
    if parts.is_empty() {
        return Ranges::Unsatisfiable;
    }
    // Merged in ascending order, then sent in the order the request named them, as nginx
    // sends them: RFC 9110 section 15.3.7.2 says parts SHOULD come in the request's order (a
    // client may take them by position rather than by their `Content-Range`), a merged part
    // where the first of its ranges was named.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_unstable_by_key(|&at| parts[at]);
    let mut merged: Vec<(usize, (u64, u64))> = Vec::with_capacity(parts.len());
    for at in order {
        let (first, last) = parts[at];
        match merged.last_mut() {
            Some((named_at, previous)) if first <= previous.1.saturating_add(1) => {
                previous.1 = previous.1.max(last);
                *named_at = (*named_at).min(at);
            }
            _ => merged.push((at, (first, last))),
        }
    }
    merged.sort_unstable_by_key(|&(named_at, _)| named_at);
    Ranges::Parts(merged.into_iter().map(|(_, range)| range).collect())
}

/// Cuts the ranges a GET's `Range` asks for out of `response`, a whole page with its body in
/// memory. Anything else is returned as it is: no `Range` (or two of them), an `If-Range` the
/// page does not match, a status other than `200`, a streamed body.
pub(super) fn answer(response: Response<Body>, request: &HeaderMap) -> Response<Body> {
    if response.status() != StatusCode::OK {
        return response;
    }
    let mut fields = request.get_all(header::RANGE).iter();
    let (Some(field), None) = (fields.next(), fields.next()) else {
        return response;
    };
    if !if_range_holds(request, response.headers()) {
        return response;
    }
    let (mut head, body) = response.into_parts();
    let Body::Full(Some(bytes)) = body else {
        return Response::from_parts(head, body);
    };
    let len = bytes.len() as u64;
    let mut ranges = parse(field.as_bytes(), len);
    // Several ranges of a compressed variant: a `multipart/byteranges` body under the page's
    // `Content-Encoding` reads as if the multipart body itself were compressed, and a client
    // that decodes it fails. The whole page answers instead (Varnish never sends multipart).
    if matches!(&ranges, Ranges::Parts(parts) if parts.len() > 1)
        && head.headers.contains_key(header::CONTENT_ENCODING)
    {
        ranges = Ranges::Whole;
    }
    if ranges != Ranges::Whole {
        not_of_the_whole(&mut head.headers);
    }
    let body = match ranges {
        Ranges::Whole => body::full(bytes),
        Ranges::Unsatisfiable => {
            head.status = StatusCode::RANGE_NOT_SATISFIABLE;
            // An empty body: what described the page's bytes would describe nothing (a
            // `Content-Encoding: gzip` on no bytes fails to decode).
            for name in [header::CONTENT_TYPE, header::CONTENT_ENCODING] {
                head.headers.remove(name);
            }
            head.headers
                .insert(header::CONTENT_RANGE, content_range(None, len));
            body::empty()
        }
        Ranges::Parts(parts) => {
            head.status = StatusCode::PARTIAL_CONTENT;
            match parts.as_slice() {
                &[(first, last)] => {
                    head.headers.insert(
                        header::CONTENT_RANGE,
                        content_range(Some((first, last)), len),
                    );
                    body::full(bytes.slice(first as usize..=last as usize))
                }
                _ => {
                    let content_type = head.headers.remove(header::CONTENT_TYPE);
                    head.headers
                        .insert(header::CONTENT_TYPE, multipart_content_type());
                    body::streaming(multipart(&bytes, &parts, content_type.as_ref()))
                }
            }
        }
    };
    Response::from_parts(head, body)
}

/// A `206` or `416` made from a page's head: the fields that describe the whole page's content
/// go. `Content-Digest` and `Content-MD5` are computed over the message's content (RFC 9530
/// section 2), which is now a part or nothing: a client that checks them would reject every
/// range. (`Repr-Digest` is of the representation, the same for every part: it stays.) And an
/// origin's `Accept-Ranges: none` is not what this answer says: it says `bytes`.
fn not_of_the_whole(headers: &mut HeaderMap) {
    for name in [header::CONTENT_LENGTH, CONTENT_DIGEST, CONTENT_MD5] {
        headers.remove(name);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
}

const CONTENT_DIGEST: header::HeaderName = header::HeaderName::from_static("content-digest");
const CONTENT_MD5: header::HeaderName = header::HeaderName::from_static("content-md5");

/// RFC 9110 section 13.1.5: without `If-Range` a range is served; with one, only while the page
/// is the one the client holds part of, by a strong `ETag` match or its exact `Last-Modified`
/// when that is a strong validator.
/// Otherwise the client gets the whole page, never parts of two versions.
fn if_range_holds(request: &HeaderMap, page: &HeaderMap) -> bool {
    let mut fields = request.get_all(header::IF_RANGE).iter();
    let Some(condition) = fields.next() else {
        return true;
    };
    if fields.next().is_some() {
        return false;
    }
    let condition = condition.as_bytes().trim_ascii();
    if condition.starts_with(b"\"") {
        // Strong comparison: a weak tag on either side never matches.
        return page
            .get(header::ETAG)
            .is_some_and(|etag| etag.as_bytes().trim_ascii() == condition);
    }
    if condition.starts_with(b"W/") {
        return false;
    }
    let date = |bytes: &[u8]| {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| httpdate::parse_http_date(text.trim()).ok())
    };
    let field = |name| {
        page.get(name)
            .and_then(|value: &HeaderValue| date(value.as_bytes()))
    };
    let (Some(asked), Some(modified)) = (date(condition), field(header::LAST_MODIFIED)) else {
        return false;
    };
    // Step 1 of 13.1.5: a date that is not a strong validator is false. A cache may take a
    // `Last-Modified` as strong only when the stored `Date` is at least a second after it
    // (RFC 9110 section 8.8.2.2): a page rendered in the second it says it was modified (an
    // origin that sends both as the time of rendering) may change again within that second
    // under the same date, and the client would join parts of two versions.
    let strong = field(header::DATE)
        .zip(modified.checked_add(std::time::Duration::from_secs(1)))
        .is_some_and(|(sent, one_second_later)| sent >= one_second_later);
    strong && asked == modified
}

/// `bytes first-last/len`, or `bytes */len` for a `416`.
fn content_range(range: Option<(u64, u64)>, len: u64) -> HeaderValue {
    let text = match range {
        Some((first, last)) => format!("bytes {first}-{last}/{len}"),
        None => format!("bytes */{len}"),
    };
    // Digits, spaces, `-`, `/` and `*` only.
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("bytes */0"))
}

/// A boundary no page is likely to contain: random per process, as nginx's is a counter.
fn boundary() -> &'static str {
    static BOUNDARY: OnceLock<String> = OnceLock::new();
    BOUNDARY.get_or_init(|| {
        let state = RandomState::new();
        format!(
            "isr-edge-{:016x}{:016x}",
            state.hash_one(1u8),
            state.hash_one(2u8)
        )
    })
}

fn multipart_content_type() -> HeaderValue {
    HeaderValue::try_from(format!("multipart/byteranges; boundary={}", boundary()))
        .unwrap_or_else(|_| HeaderValue::from_static("multipart/byteranges"))
}

/// The `multipart/byteranges` body (RFC 9110 section 14.6): each part with the page's
/// `Content-Type` and its own `Content-Range`. The parts' bytes are slices of the stored page,
/// not a copy: a copy is as large as the page (`bytes=0-0,2-`), and every client that asks and
/// then reads slowly (256 streams on one HTTP/2 connection) would hold its own, where a whole
/// page or a single range holds only a reference to the stored one.
fn multipart(bytes: &Bytes, parts: &[(u64, u64)], content_type: Option<&HeaderValue>) -> Chunks {
    let boundary = boundary();
    let len = bytes.len();
    let mut chunks = VecDeque::with_capacity(parts.len() * 2 + 1);
    for &(first, last) in parts {
        let mut head = format!("\r\n--{boundary}\r\n").into_bytes();
        if let Some(content_type) = content_type {
            head.extend_from_slice(b"content-type: ");
            head.extend_from_slice(content_type.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(
            format!("content-range: bytes {first}-{last}/{len}\r\n\r\n").as_bytes(),
        );
        chunks.push_back(Bytes::from(head));
        chunks.push_back(bytes.slice(first as usize..=last as usize));
    }
    chunks.push_back(Bytes::from(format!("\r\n--{boundary}--\r\n")));
    let remaining = chunks.iter().map(|chunk| chunk.len() as u64).sum();
    Chunks { chunks, remaining }
}

/// A body sent as the chunks it was made of, its length known up front (so it is sent with a
/// `Content-Length`, and logged with its size).
struct Chunks {
    chunks: VecDeque<Bytes>,
    remaining: u64,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let chunk = self.chunks.pop_front();
        if let Some(chunk) = &chunk {
            self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
        }
        Poll::Ready(chunk.map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

fn split_once(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == separator)?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

/// `1*DIGIT`; digits past `u64` saturate (a range past any body's end).
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(field: &str, len: u64) -> Ranges {
        parse(field.as_bytes(), len)
    }

    #[test]
    fn byte_ranges_resolve_against_the_length() {
        assert_eq!(parts("bytes=0-499", 1000), Ranges::Parts(vec![(0, 499)]));
        assert_eq!(parts("bytes=500-", 1000), Ranges::Parts(vec![(500, 999)]));
        assert_eq!(parts("bytes=-200", 1000), Ranges::Parts(vec![(800, 999)]));
        assert_eq!(parts("bytes=-2000", 1000), Ranges::Parts(vec![(0, 999)]));
        assert_eq!(
            parts("bytes=990-5000", 1000),
            Ranges::Parts(vec![(990, 999)])
        );
        // Digits past u64 are past any end.
        assert_eq!(
            parts("bytes=0-99999999999999999999999", 10),
            Ranges::Parts(vec![(0, 9)])
        );
        assert_eq!(
            parts("bytes=99999999999999999999999-", 10),
            Ranges::Unsatisfiable
        );
    }

    #[test]
    fn several_ranges_are_merged_where_they_touch_and_kept_in_the_requests_order() {
        assert_eq!(
            parts("bytes=500-600, 0-9 ,601-700,,-1", 1000),
            Ranges::Parts(vec![(500, 700), (0, 9), (999, 999)])
        );
        // A merged part goes where the first of its ranges was named.
        assert_eq!(
            parts("bytes=900-950,100-200,0-150,960-", 1000),
            Ranges::Parts(vec![(900, 950), (0, 200), (960, 999)])
        );
        assert_eq!(
            parts("bytes=0-5,3-4,1000-", 1000),
            Ranges::Parts(vec![(0, 5)])
        );
    }

    #[test]
    fn nothing_inside_the_body_is_unsatisfiable() {
        assert_eq!(parts("bytes=1000-", 1000), Ranges::Unsatisfiable);
        assert_eq!(parts("bytes=-0", 1000), Ranges::Unsatisfiable);
        assert_eq!(parts("bytes=-0,2000-3000", 1000), Ranges::Unsatisfiable);
    }

    #[test]
    fn an_if_range_date_needs_a_page_sent_a_second_after_it_was_modified() {
        let fields = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for &(name, value) in pairs {
                map.append(name, HeaderValue::from_static(value));
            }
            map
        };
        const MODIFIED: &str = "Sat, 21 Nov 2026 10:00:00 GMT";
        let request = fields(&[("range", "bytes=0-1"), ("if-range", MODIFIED)]);
        for (date, holds) in [
            (Some("Sat, 21 Nov 2026 10:00:01 GMT"), true),
            (Some("Sat, 21 Nov 2026 10:00:00 GMT"), false),
            // Nothing tells that the date is strong.
            (None, false),
        ] {
            let mut page = fields(&[("last-modified", MODIFIED)]);
            if let Some(date) = date {
                page.insert(header::DATE, HeaderValue::from_static(date));
            }
            assert_eq!(if_range_holds(&request, &page), holds, "{date:?}");
        }
    }

    /// The parts of a multipart answer are the stored page's own bytes, not a copy: a copy of
    /// an 8 MiB page per `bytes=0-0,2-` request would be held by every client that reads it
    /// slowly, where a whole page or a single range holds only a reference.
    #[tokio::test]
    async fn multipart_parts_are_slices_of_the_stored_page() {
        use http_body_util::BodyExt;
        let page = Bytes::from(vec![b'x'; 1 << 20]);
        let mut request = HeaderMap::new();
        request.insert(header::RANGE, HeaderValue::from_static("bytes=0-0,2-"));
        let response = answer(Response::new(body::full(page.clone())), &request);
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        let mut body = response.into_body();
        let declared = http_body::Body::size_hint(&body).exact();
        let stored = page[..].as_ptr_range();
        let (mut sent, mut shared) = (0, 0);
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.expect("a frame").into_data() else {
                continue;
            };
            sent += data.len();
            if stored.contains(&data.as_ptr()) {
                shared += data.len();
            }
        }
        assert_eq!(declared, Some(sent as u64), "the length is known up front");
        assert_eq!(shared, page.len() - 1, "the page's bytes are not copied");
    }

    #[test]
    fn what_is_not_a_byte_range_set_asks_for_the_whole_page() {
        for field in [
            "bytes",
            "items=0-1",
            "bytes=",
            "bytes=,",
            "bytes=5-3",
            "bytes=-",
            "bytes=1",
            "bytes=a-1",
            "bytes=0-1,x",
            "bytes=+1-2",
            "bytes=0x1-2",
        ] {
            assert_eq!(parts(field, 1000), Ranges::Whole, "{field}");
        }
        // An empty body has nothing to cut.
        assert_eq!(parts("bytes=0-1", 0), Ranges::Whole);
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGE_SPECS + 1].join(","));
        assert_eq!(parts(&many, 1000), Ranges::Whole);
        let most = format!("bytes={}", vec!["0-0"; MAX_RANGE_SPECS].join(","));
        assert_eq!(parts(&most, 1000), Ranges::Parts(vec![(0, 0)]));
    }
}
