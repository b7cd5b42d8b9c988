//! Range requests (RFC 9110 section 14): cut from the stored page, which a miss fetches whole;
//! a page that cannot be stored is asked for as the range.

mod support;

use std::time::Duration;

use support::*;

const PAGE: &str = "0123456789abcdef";
const ETAG: &str = "\"v1\"";
const MODIFIED: &str = "Sat, 21 Nov 2026 10:00:00 GMT";

/// A stored 16-byte page with an ETag and a Last-Modified.
async fn stored_page() -> (Origin, Edge) {
    let origin = Origin::start(|_| {
        Reply::ok(PAGE)
            .cc("s-maxage=600")
            .header("content-type", "text/plain")
            .header("etag", ETAG)
            .header("last-modified", MODIFIED)
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    (origin, edge)
}

#[tokio::test]
async fn a_range_misses_once_for_the_whole_page_and_is_then_cut_from_it() {
    let (origin, edge) = stored_page().await;
    let first = get_with(edge.addr, "/v", &[("range", "bytes=2-5")]).await;
    assert_eq!(
        (first.status, first.cache(), first.text().as_str()),
        (206, "MISS", "2345")
    );
    assert_eq!(first.header("content-range"), "bytes 2-5/16");
    assert_eq!(first.header("content-length"), "4");
    assert_eq!(first.header("etag"), ETAG);
    assert_eq!(first.header("content-type"), "text/plain");
    // The origin was asked for the whole page, not the range.
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].headers.get("range").is_none(),
        "{:?}",
        seen[0].headers
    );

    for (range, part, content_range) in [
        ("bytes=-3", "def", "bytes 13-15/16"),
        ("bytes=10-", "abcdef", "bytes 10-15/16"),
        ("bytes=0-0", "0", "bytes 0-0/16"),
        // Past the end: up to the end.
        ("bytes=14-99", "ef", "bytes 14-15/16"),
        ("bytes=-99", PAGE, "bytes 0-15/16"),
        // Overlapping and adjacent ranges merge into one.
        ("bytes=0-3, 2-5,6-7", "01234567", "bytes 0-7/16"),
        ("BYTES = 1-2", "12", "bytes 1-2/16"),
    ] {
        let answer = get_with(edge.addr, "/v", &[("range", range)]).await;
        assert_eq!(
            (answer.status, answer.cache(), answer.text().as_str()),
            (206, "HIT", part),
            "{range}"
        );
        assert_eq!(answer.header("content-range"), content_range, "{range}");
    }
    // A plain request still gets the whole page, with no trace of ranges.
    let whole = get(edge.addr, "/v").await;
    assert_eq!((whole.status, whole.text().as_str()), (200, PAGE));
    assert!(whole.headers.get("content-range").is_none());
    assert_eq!(origin.total(), 1);
}

#[tokio::test]
async fn several_ranges_are_one_multipart_answer() {
    let (_origin, edge) = stored_page().await;
    let answer = get_with(edge.addr, "/v", &[("range", "bytes=12-13,0-1")]).await;
    assert_eq!(answer.status, 206);
    assert!(answer.headers.get("content-range").is_none());
    let content_type = answer.header("content-type");
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"));
    // In the order the request named them (RFC 9110 section 15.3.7.2), each part typed as the
    // page and with its own range.
    let expected = format!(
        "\r\n--{boundary}\r\ncontent-type: text/plain\r\ncontent-range: bytes 12-13/16\r\n\r\ncd\
         \r\n--{boundary}\r\ncontent-type: text/plain\r\ncontent-range: bytes 0-1/16\r\n\r\n01\
         \r\n--{boundary}--\r\n"
    );
    assert_eq!(answer.text(), expected);
    assert_eq!(answer.header("content-length"), expected.len().to_string());
    // Ranges that overlap are one part, sent where the first of them was named.
    let merged = get_with(edge.addr, "/v", &[("range", "bytes=14-,2-3,0-2")]).await;
    let parts: Vec<(String, String)> = byteranges(&merged)
        .into_iter()
        .map(|(range, data)| (range, String::from_utf8_lossy(&data).into_owned()))
        .collect();
    assert_eq!(
        parts,
        [
            ("bytes 14-15/16".to_string(), "ef".to_string()),
            ("bytes 0-3/16".to_string(), "0123".to_string()),
        ]
    );
}

#[tokio::test]
async fn a_range_past_the_end_is_416_and_one_not_understood_gets_the_whole_page() {
    let (origin, edge) = stored_page().await;
    assert_eq!(get(edge.addr, "/v").await.cache(), "MISS");
    for range in ["bytes=16-", "bytes=99-100", "bytes=-0", "bytes=16-20, 30-"] {
        let answer = get_with(edge.addr, "/v", &[("range", range)]).await;
        assert_eq!((answer.status, answer.cache()), (416, "HIT"), "{range}");
        assert_eq!(answer.header("content-range"), "bytes */16", "{range}");
        assert!(answer.body.is_empty(), "{range}");
        assert!(answer.headers.get("content-type").is_none(), "{range}");
    }
    // Another unit, malformed, or a range the other way round: ignored (RFC 9110 section 14.2).
    for range in [
        "items=0-1",
        "bytes=5-3",
        "bytes=a-b",
        "bytes=",
        "bytes=-",
        "bytes 0-1",
    ] {
        let answer = get_with(edge.addr, "/v", &[("range", range)]).await;
        assert_eq!(
            (answer.status, answer.text().as_str()),
            (200, PAGE),
            "{range}"
        );
    }
    // Range is defined for GET only: a HEAD is answered as a HEAD.
    let head = send(edge.addr, "HEAD", "/v", &[("range", "bytes=0-1")], "").await;
    assert_eq!((head.status, head.header("content-length")), (200, "16"));
    assert!(head.headers.get("content-range").is_none());
    assert_eq!(origin.total(), 1);
}

#[tokio::test]
async fn if_range_serves_the_range_only_while_the_page_is_the_one_the_client_has_part_of() {
    let (_origin, edge) = stored_page().await;
    for (if_range, status) in [
        (ETAG, 206),
        ("\"v0\"", 200),
        // Weak tags never match (strong comparison).
        ("W/\"v1\"", 200),
        (MODIFIED, 206),
        ("Sat, 21 Nov 2026 09:59:59 GMT", 200),
        ("yesterday", 200),
    ] {
        let answer = get_with(
            edge.addr,
            "/v",
            &[("range", "bytes=0-1"), ("if-range", if_range)],
        )
        .await;
        assert_eq!(answer.status, status, "{if_range}");
        let body = if status == 206 { "01" } else { PAGE };
        assert_eq!(answer.text(), body, "{if_range}");
    }
    // A matching If-None-Match is answered first (RFC 9110 section 13.2.2): 304, no range.
    let cached = get_with(
        edge.addr,
        "/v",
        &[("range", "bytes=0-1"), ("if-none-match", ETAG)],
    )
    .await;
    assert_eq!(cached.status, 304);
    assert!(cached.headers.get("content-range").is_none());
}

/// Pages that are not `200` are sent whole: a range of a 404 page means nothing.
#[tokio::test]
async fn only_a_stored_200_is_cut() {
    let origin = Origin::start(|_| Reply::ok("not here").status(404).cc("s-maxage=60")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for cache in ["MISS", "HIT"] {
        let answer = get_with(edge.addr, "/gone", &[("range", "bytes=0-2")]).await;
        assert_eq!(
            (answer.status, answer.cache(), answer.text().as_str()),
            (404, cache, "not here")
        );
    }
}

/// An origin answering ranges itself (as a static file server does), for pages the cache does
/// not store.
fn ranged_origin(
    page: &'static str,
    cache_control: &'static str,
) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |request| {
        let range = request
            .headers
            .get("range")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("bytes="))
            .and_then(|value| value.split_once('-'))
            .and_then(|(first, last)| Some((first.parse::<usize>().ok()?, last.parse().ok()?)));
        let reply = match range {
            Some((first, last)) => Reply::ok(&page[first..=last])
                .status(206)
                .cc(cache_control)
                .header(
                    "content-range",
                    &format!("bytes {first}-{last}/{}", page.len()),
                ),
            None => Reply::ok(page).cc(cache_control),
        };
        reply.header("accept-ranges", "bytes")
    }
}

/// The `Range` each request the origin saw carried, if any.
fn ranges_asked(seen: &[Seen]) -> Vec<Option<String>> {
    seen.iter()
        .map(|r| {
            r.headers
                .get("range")
                .map(|v| v.to_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// A page too large to store, or private, is not sent whole to a client that asked for part of
/// it: the range goes to the origin as asked (a video past `--max-object-size` is not downloaded
/// whole for each seek).
#[tokio::test]
async fn a_range_of_a_page_that_cannot_be_stored_is_asked_of_the_origin() {
    let big = Origin::start(ranged_origin(PAGE, "s-maxage=600")).await;
    let edge = Edge::start(&big.url(), &["--max-object-size", "8"]).await;
    let answer = get_with(edge.addr, "/video", &[("range", "bytes=4-7")]).await;
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (206, "4567"),
        "{:?}",
        answer.headers
    );
    assert_eq!(answer.header("content-range"), "bytes 4-7/16");
    let ranges = ranges_asked(&big.seen());
    // First the whole page for the cache (too large: dropped at its head), then the range.
    assert_eq!(ranges, [None, Some("bytes=4-7".to_string())]);
    // Known unstorable now: the next range goes to the origin as the range at once, and a
    // plain request still asks for the page for the cache.
    let again = get_with(edge.addr, "/video", &[("range", "bytes=0-1")]).await;
    assert_eq!((again.status, again.text().as_str()), (206, "01"));
    // A miss like a whole request for the page, not a bypass (which configuration decides).
    for answer in [&answer, &again] {
        assert_eq!(answer.header("x-cache"), "MISS");
        assert_eq!(
            answer.header("cache-status"),
            "isr-edge; fwd=miss; detail=range"
        );
    }
    assert_eq!(get(edge.addr, "/video").await.text(), PAGE);
    let ranges = ranges_asked(&big.seen()[2..]);
    assert_eq!(ranges, [Some("bytes=0-1".to_string()), None]);

    let private = Origin::start(ranged_origin(PAGE, "private, max-age=60")).await;
    let edge = Edge::start(&private.url(), &[]).await;
    let answer = get_with(edge.addr, "/account.pdf", &[("range", "bytes=0-2")]).await;
    assert_eq!((answer.status, answer.text().as_str()), (206, "012"));
    assert_eq!(answer.header("cache-control"), "private, max-age=60");
}

/// A HEAD of a page found too large to store goes to the origin as a HEAD (a link checker or
/// uptime probe does not download a video whole for each look), and HEADs waiting on a fetch
/// that proves unstorable each ask as a HEAD too.
#[tokio::test]
async fn a_head_of_a_page_that_cannot_be_stored_is_asked_of_the_origin_as_a_head() {
    let big = Origin::start(ranged_origin(PAGE, "s-maxage=600")).await;
    let edge = Edge::start(&big.url(), &["--max-object-size", "8"]).await;
    let first = send(edge.addr, "HEAD", "/video", &[], "").await;
    assert_eq!(first.status, 200);
    let again = send(edge.addr, "HEAD", "/video", &[], "").await;
    assert_eq!((again.status, again.text().as_str()), (200, ""));
    assert_eq!(again.header("content-length"), PAGE.len().to_string());
    assert_eq!(again.header("x-cache"), "MISS");
    assert_eq!(
        again.header("cache-status"),
        "isr-edge; fwd=miss; detail=head"
    );
    let methods: Vec<String> = big.seen().iter().map(|r| r.method.to_string()).collect();
    // The first learns the page cannot be stored (a GET for the cache); the next is a HEAD.
    assert_eq!(methods, ["GET", "HEAD"]);
    // A GET still fetches the page for the cache.
    assert_eq!(get(edge.addr, "/video").await.text(), PAGE);
    assert_eq!(
        big.seen().last().map(|r| r.method.to_string()).as_deref(),
        Some("GET")
    );
}

/// Range requests for one cold URL share one fetch of the whole page, each getting its part.
#[tokio::test]
async fn concurrent_ranges_of_a_cold_page_make_one_origin_request() {
    let origin = Origin::start(|_| {
        Reply::ok(PAGE)
            .cc("s-maxage=600")
            .delay(Duration::from_millis(300))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let addr = edge.addr;
    let requests: Vec<_> = (0..16usize)
        .map(|first| {
            let range = format!("bytes={first}-{first}");
            tokio::spawn(async move { get_with(addr, "/cold", &[("range", &range)]).await })
        })
        .collect();
    for (first, request) in requests.into_iter().enumerate() {
        let answer = request.await.expect("request task");
        assert_eq!(answer.status, 206, "{first}");
        assert_eq!(answer.body[..], PAGE.as_bytes()[first..=first]);
    }
    assert_eq!(origin.total(), 1);
}

/// Ranges over HTTP/2, and from a copy served stale while the origin fails.
#[tokio::test]
async fn ranges_are_cut_over_http2_and_from_a_copy_kept_for_a_failing_origin() {
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fails = failing.clone();
    let origin = Origin::start(move |_| {
        if fails.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::ok("down").status(503)
        } else {
            Reply::ok(PAGE).cc("max-age=1, stale-if-error=600")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let target = format!("http://{}/v", edge.addr);
    let h2 = send_h2_with(edge.addr, "GET", &target, None, &[("range", "bytes=3-4")]).await;
    assert_eq!((h2.status, h2.text().as_str()), (206, "34"));
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let kept = get_with(edge.addr, "/v", &[("range", "bytes=-2")]).await;
    assert_eq!(
        (kept.status, kept.cache(), kept.text().as_str()),
        (206, "STALE", "ef")
    );
    assert_eq!(origin.total(), 2);
}

/// The parts of a `multipart/byteranges` answer: each part's `Content-Range` and bytes.
fn byteranges(answer: &Resp) -> Vec<(String, Vec<u8>)> {
    let content_type = answer.header("content-type");
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart: {content_type}"));
    let delimiter = format!("\r\n--{boundary}");
    let body = &answer.body[..];
    let mut parts = Vec::new();
    let mut rest = body
        .strip_prefix(delimiter.as_bytes())
        .unwrap_or_else(|| panic!("no opening delimiter"));
    loop {
        if rest == b"--\r\n" {
            return parts;
        }
        rest = rest.strip_prefix(b"\r\n").expect("a part's head");
        let head_end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of a part's head");
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let range = head
            .lines()
            .find_map(|line| line.strip_prefix("content-range: "))
            .expect("a part's content-range")
            .to_string();
        let data = &rest[head_end + 4..];
        let next = data
            .windows(delimiter.len())
            .position(|w| w == delimiter.as_bytes())
            .expect("the next delimiter");
        parts.push((range, data[..next].to_vec()));
        rest = &data[next + delimiter.len()..];
    }
}

/// 64 disjoint ranges over a 4 MiB page: every part is sent whole and in place, with the
/// answer's length known up front, over HTTP/1.1 and HTTP/2.
#[tokio::test]
async fn many_ranges_over_a_large_page_are_each_sent_whole() {
    const SIZE: usize = 4 << 20;
    let page: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let body = bytes::Bytes::from(page.clone());
    let origin = Origin::start(move |_| Reply::ok(body.clone()).cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let specs: Vec<(usize, usize)> = (0..64).map(|i| (i * 65_536, i * 65_536 + 1_000)).collect();
    let range = format!(
        "bytes={}",
        specs
            .iter()
            .map(|(first, last)| format!("{first}-{last}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let target = format!("http://{}/big", edge.addr);
    for (wire, answer) in [
        (
            "h1",
            get_with(edge.addr, "/big", &[("range", &range)]).await,
        ),
        (
            "h2",
            send_h2_with(edge.addr, "GET", &target, None, &[("range", &range)]).await,
        ),
    ] {
        assert_eq!(answer.status, 206, "{wire}");
        assert_eq!(
            answer.header("content-length"),
            answer.body.len().to_string(),
            "{wire}"
        );
        let parts = byteranges(&answer);
        assert_eq!(parts.len(), specs.len(), "{wire}");
        for ((content_range, data), (first, last)) in parts.iter().zip(&specs) {
            assert_eq!(
                content_range,
                &format!("bytes {first}-{last}/{SIZE}"),
                "{wire}"
            );
            assert!(data[..] == page[*first..=*last], "{wire}: {content_range}");
        }
    }
    assert_eq!(origin.total(), 1);
}

/// A part's head does not carry what describes the whole page's content: a `Content-Digest`
/// (RFC 9530: of the message's content, now a part) would fail every check of a part, and an
/// origin's `Accept-Ranges: none` contradicts the `206`. The representation's `Repr-Digest`
/// stays, and the whole page keeps all of them.
#[tokio::test]
async fn a_part_does_not_carry_the_digest_of_the_whole_page() {
    let origin = Origin::start(|_| {
        Reply::ok(PAGE)
            .cc("s-maxage=600")
            .header("content-digest", "sha-256=:whole=:")
            .header("content-md5", "d2hvbGU=")
            .header("repr-digest", "sha-256=:whole=:")
            .header("accept-ranges", "none")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let whole = get(edge.addr, "/v").await;
    assert_eq!(whole.header("content-digest"), "sha-256=:whole=:");
    assert_eq!(whole.header("content-md5"), "d2hvbGU=");
    for (range, status) in [
        ("bytes=0-1", 206),
        ("bytes=0-1,4-5", 206),
        ("bytes=99-", 416),
    ] {
        let answer = get_with(edge.addr, "/v", &[("range", range)]).await;
        assert_eq!((answer.status, answer.cache()), (status, "HIT"), "{range}");
        for name in ["content-digest", "content-md5"] {
            assert!(answer.headers.get(name).is_none(), "{range}: {name}");
        }
        assert_eq!(answer.header("repr-digest"), "sha-256=:whole=:", "{range}");
        assert_eq!(answer.header("accept-ranges"), "bytes", "{range}");
    }
}

/// RFC 9110 section 13.1.5: an `If-Range` date holds only when the page's `Last-Modified` is a
/// strong validator, which a cache knows by its `Date` being at least a second later (section
/// 8.8.2.2). A page dated the second it was modified (rendered and sent at once) could change
/// again within that second under the same date: the client gets the whole page, not a part
/// that may belong to another version than the one it holds.
#[tokio::test]
async fn an_if_range_date_holds_only_for_a_last_modified_a_second_before_the_page_was_sent() {
    let origin = Origin::start(|request| {
        let now = std::time::SystemTime::now();
        let modified = if request.path == "/rendered-now" {
            now
        } else {
            now - Duration::from_secs(3600)
        };
        Reply::ok(PAGE)
            .cc("s-maxage=600")
            .header("date", &httpdate::fmt_http_date(now))
            .header("last-modified", &httpdate::fmt_http_date(modified))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for (path, status) in [("/rendered-now", 200), ("/older", 206)] {
        let modified = get(edge.addr, path)
            .await
            .header("last-modified")
            .to_string();
        assert!(!modified.is_empty(), "{path}");
        let answer = get_with(
            edge.addr,
            path,
            &[("range", "bytes=0-1"), ("if-range", &modified)],
        )
        .await;
        assert_eq!((answer.status, answer.cache()), (status, "HIT"), "{path}");
        let body = if status == 206 { "01" } else { PAGE };
        assert_eq!(answer.text(), body, "{path}");
    }
}

/// A range of an answer that cannot be stored is asked of the origin again only when that can
/// give a part: a `200` from an origin that says `Accept-Ranges: bytes`. A `404`, a redirect,
/// or a page rendered per request (which says nothing of ranges) would come back the same, and
/// any client could double the origin's work on any URL by adding a `Range`: the first answer
/// is the client's, whole (RFC 9110 section 14.2).
#[tokio::test]
async fn an_unstorable_answer_that_cannot_have_parts_is_not_asked_for_twice() {
    let origin = Origin::start(|request| match request.path.as_str() {
        "/missing" => Reply::ok("no such page").status(404),
        "/moved" => Reply::ok("").status(302).header("location", "/there"),
        "/unranged" => Reply::ok(PAGE).cc("private, no-store"),
        "/ranged" => ranged_origin(PAGE, "private, no-store")(request),
        _ => Reply::ok("").status(500),
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for (path, status, body, asked) in [
        ("/missing", 404, "no such page", 1),
        ("/moved", 302, "", 1),
        ("/unranged", 200, PAGE, 1),
        // One that serves ranges is asked for the part.
        ("/ranged", 206, "23", 2),
    ] {
        let answer = get_with(edge.addr, path, &[("range", "bytes=2-3")]).await;
        assert_eq!(
            (answer.status, answer.text().as_str()),
            (status, body),
            "{path}"
        );
        assert_eq!(origin.count(path), asked, "{path}");
    }
}

/// Range requests that waited on a fetch whose answer could not be stored each ask the origin
/// for their range once: none of them fetches the whole page again.
#[tokio::test]
async fn followers_of_a_fetch_that_could_not_be_stored_ask_for_their_range_once() {
    let ranges = ranged_origin(PAGE, "private, max-age=60");
    let origin = Origin::start(move |request| {
        let reply = ranges(request);
        if request.headers.contains_key("range") {
            reply
        } else {
            reply.delay(Duration::from_millis(300))
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let addr = edge.addr;
    let requests: Vec<_> = (0..6usize)
        .map(|first| {
            let range = format!("bytes={first}-{}", first + 1);
            tokio::spawn(async move { get_with(addr, "/private", &[("range", &range)]).await })
        })
        .collect();
    for (first, request) in requests.into_iter().enumerate() {
        let answer = request.await.expect("request task");
        assert_eq!(answer.status, 206, "{first}");
        assert_eq!(answer.body[..], PAGE.as_bytes()[first..=first + 1]);
    }
    let seen = origin.seen();
    let whole = seen
        .iter()
        .filter(|r| !r.headers.contains_key("range"))
        .count();
    assert_eq!(
        (whole, seen.len()),
        (1, 7),
        "one fetch of the page, one per range"
    );
}

/// Ranges of a compressed variant are byte ranges of what is stored, sent with its
/// `Content-Encoding`; several of them would be a multipart body under that encoding, which a
/// decoding client fails to read: the whole variant is sent instead.
#[tokio::test]
async fn several_ranges_of_a_compressed_variant_get_the_whole_variant() {
    let origin = Origin::start(|r| {
        let gzip = r.accepts_gzip();
        Reply::ok(if gzip { "GZIPPEDBYTES" } else { PAGE })
            .cc("s-maxage=600")
            .header("vary", "accept-encoding")
            .gzipped_if(gzip)
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let gzip = ("accept-encoding", "gzip");
    let one = get_with(edge.addr, "/z", &[gzip, ("range", "bytes=0-3")]).await;
    assert_eq!((one.status, one.text().as_str()), (206, "GZIP"));
    assert_eq!(one.header("content-encoding"), "gzip");
    let several = get_with(edge.addr, "/z", &[gzip, ("range", "bytes=0-1,4-5")]).await;
    assert_eq!(
        (several.status, several.cache(), several.text().as_str()),
        (200, "HIT", "GZIPPEDBYTES")
    );
    // The identity variant is still cut into parts.
    let plain = get_with(edge.addr, "/z", &[("range", "bytes=0-1,4-5")]).await;
    assert_eq!(plain.status, 206);
    assert!(plain
        .header("content-type")
        .starts_with("multipart/byteranges"));
}

/// The memory of URLs found unstorable keeps range requests from fetching the page whole for a
/// minute, so only an answer that speaks for the URL may set it: one about the request that got
/// it (its credentials, an RSC request's answer to a page that has none, a `429` for one
/// client) says nothing of the page, and any client could send one a minute to keep a video
/// that video players only ever ask for in ranges from ever being stored.
#[tokio::test]
async fn one_client_s_unstorable_answer_does_not_keep_ranges_from_the_cache() {
    let origin = Origin::start(|request| {
        if request.headers.contains_key("x-flood") {
            return Reply::ok("slow down").status(429);
        }
        // A static file server's answer: storable (no `public`, so not for credentials).
        ranged_origin(PAGE, "max-age=600")(request)
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for (n, poison) in [
        ("authorization", "Bearer x"),
        ("rsc", "1"),
        ("x-flood", "1"),
    ]
    .into_iter()
    .enumerate()
    {
        let path = format!("/video{n}");
        let first = get_with(edge.addr, &path, &[poison]).await;
        assert_eq!(first.cache(), "MISS", "{poison:?}");
        let range = get_with(edge.addr, &path, &[("range", "bytes=2-3")]).await;
        assert_eq!(
            (range.status, range.cache(), range.text().as_str()),
            (206, "MISS", "23"),
            "{poison:?}: the range fetched the page for the cache"
        );
        let again = get_with(edge.addr, &path, &[("range", "bytes=4-5")]).await;
        assert_eq!(
            (again.status, again.cache(), again.text().as_str()),
            (206, "HIT", "45"),
            "{poison:?}"
        );
    }
}

/// A revalidation says the origin's pages changed, so what the proxy remembers of their
/// answers goes with it: a page that could not be stored (private until now) and is storable
/// after the change has its next range fetched whole for the cache and then cut from it,
/// instead of every range going to the origin for the rest of the minute.
#[tokio::test]
async fn a_revalidation_forgets_which_pages_could_not_be_stored() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let public = Arc::new(AtomicBool::new(false));
    let switch = public.clone();
    let origin = Origin::start(move |request| {
        if switch.load(Ordering::SeqCst) {
            ranged_origin(PAGE, "s-maxage=600")(request)
        } else {
            ranged_origin(PAGE, "private, max-age=60")(request)
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let private = get_with(edge.addr, "/doc.pdf", &[("range", "bytes=0-1")]).await;
    assert_eq!((private.status, private.text().as_str()), (206, "01"));
    public.store(true, Ordering::SeqCst);
    let answer = revalidate(
        edge.addr,
        serde_json::json!({"secret": SECRET, "paths": ["/doc.pdf"]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let before = origin.seen().len();
    let first = get_with(edge.addr, "/doc.pdf", &[("range", "bytes=2-3")]).await;
    assert_eq!(
        (first.status, first.cache(), first.text().as_str()),
        (206, "MISS", "23")
    );
    let second = get_with(edge.addr, "/doc.pdf", &[("range", "bytes=4-5")]).await;
    assert_eq!(
        (second.status, second.cache(), second.text().as_str()),
        (206, "HIT", "45")
    );
    assert_eq!(ranges_asked(&origin.seen()[before..]), [None]);
}

/// A form post or a beacon changes the page it is sent to (RFC 9111 section 4.4), not every
/// page: it must not make the proxy forget that a video is too large to store, or on a site
/// posting a beacon per page view every seek would fetch the video whole for the cache first.
#[tokio::test]
async fn a_post_elsewhere_does_not_forget_which_pages_could_not_be_stored() {
    let origin = Origin::start(ranged_origin(PAGE, "s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &["--max-object-size", "8"]).await;
    let first = get_with(edge.addr, "/video", &[("range", "bytes=4-7")]).await;
    assert_eq!((first.status, first.text().as_str()), (206, "4567"));
    assert_eq!(
        ranges_asked(&origin.seen()),
        [None, Some("bytes=4-7".to_string())]
    );
    let beacon = send(edge.addr, "POST", "/api/track", &[], "viewed").await;
    assert_eq!(beacon.status, 200);
    let before = origin.seen().len();
    let seek = get_with(edge.addr, "/video", &[("range", "bytes=0-1")]).await;
    assert_eq!((seek.status, seek.text().as_str()), (206, "01"));
    assert_eq!(
        ranges_asked(&origin.seen()[before..]),
        [Some("bytes=0-1".to_string())],
        "the seek went to the origin as the range at once"
    );
    // A post to the video's own URL may have changed it: the next range asks for it whole.
    let changed = send(edge.addr, "POST", "/video", &[], "new cut").await;
    assert_eq!(changed.status, 200);
    let before = origin.seen().len();
    let seek = get_with(edge.addr, "/video", &[("range", "bytes=2-3")]).await;
    assert_eq!((seek.status, seek.text().as_str()), (206, "23"));
    assert_eq!(
        ranges_asked(&origin.seen()[before..]),
        [None, Some("bytes=2-3".to_string())]
    );
}
