//! Core caching behaviour against a real origin: miss then hit, HEAD from GET, expiry, what is
//! not stored, Vary separation, conditional requests, the browser-facing headers.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{get, get_h2, get_with, send, send_h2_with, Edge, Origin, Reply};

#[tokio::test]
async fn miss_then_hit_with_cache_headers() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("render {}", r.count)).cc("s-maxage=60, stale-while-revalidate=31535940")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let first = get(edge.addr, "/page").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.cache(), "MISS");
    assert_eq!(
        first.header("cache-status"),
        "isr-edge; fwd=miss; stored; ttl=60"
    );
    let second = get(edge.addr, "/page").await;
    assert_eq!(second.cache(), "HIT");
    assert_eq!(second.text(), "render 1");
    assert!(second
        .header("cache-status")
        .starts_with("isr-edge; hit; ttl="));
    assert!(second.headers.contains_key("age"));
    // Browsers must not keep the one-year stale-while-revalidate: a reload revalidates.
    assert_eq!(
        second.header("cache-control"),
        "public, max-age=0, must-revalidate"
    );
    assert!(second.header("etag").starts_with("\"ie-"));
    assert_eq!(origin.count("/page"), 1);
    // HTTP/2 (h2c) clients share the same cache.
    let h2 = get_h2(edge.addr, "/page").await;
    assert_eq!(h2.cache(), "HIT");
    assert_eq!(h2.text(), "render 1");
}

#[tokio::test]
async fn head_is_answered_from_the_get_entry() {
    let origin = Origin::start(|_| Reply::ok("hello body").cc("s-maxage=60")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let head = send(edge.addr, "HEAD", "/h", &[], "").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        origin.seen()[0].method,
        "GET",
        "a HEAD miss fetches the GET so it can be stored"
    );
    let get = get(edge.addr, "/h").await;
    assert_eq!(get.cache(), "HIT");
    assert_eq!(get.text(), "hello body");
    let head = send(edge.addr, "HEAD", "/h", &[], "").await;
    assert_eq!(head.cache(), "HIT");
    assert_eq!(head.header("content-length"), "10");
    assert_eq!(origin.count("/h"), 1);
}

#[tokio::test]
async fn uncacheable_responses_are_not_stored() {
    let origin = Origin::start(|r| match r.path.as_str() {
        "/no-store" => Reply::ok("x").cc("no-store"),
        "/private" => Reply::ok("x").cc("private, max-age=60"),
        "/cookie" => Reply::ok("x")
            .cc("s-maxage=60")
            .header("set-cookie", "session=abc"),
        "/no-cache" => Reply::ok("x").cc("no-cache, s-maxage=60"),
        "/vary-star" => Reply::ok("x").cc("s-maxage=60").header("vary", "*"),
        "/plain" => Reply::ok("x"),
        "/partial" => Reply::ok("x").cc("s-maxage=60").status(206),
        "/empty" => Reply::ok("").cc("s-maxage=60").status(204),
        _ => Reply::ok("x").cc("s-maxage=60").status(503),
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for path in [
        "/no-store",
        "/private",
        "/cookie",
        "/no-cache",
        "/vary-star",
        "/plain",
        "/partial",
        "/empty",
        "/error",
    ] {
        let first = get(edge.addr, path).await;
        assert_eq!(first.cache(), "MISS", "{path}");
        let second = get(edge.addr, path).await;
        assert_eq!(second.cache(), "MISS", "{path} must not be stored");
        assert_eq!(origin.count(path), 2, "{path}");
        assert!(!first.header("cache-status").contains("stored"), "{path}");
    }
    // The Set-Cookie still reaches the client that caused it.
    assert_eq!(
        get(edge.addr, "/cookie").await.header("set-cookie"),
        "session=abc"
    );
}

#[tokio::test]
async fn authorization_requests_need_public_or_s_maxage() {
    let origin = Origin::start(|r| match r.path.as_str() {
        "/shared" => Reply::ok("x").cc("s-maxage=60"),
        _ => Reply::ok("x").cc("max-age=60"),
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let auth = [("authorization", "Bearer user-token")];
    get_with(edge.addr, "/mine", &auth).await;
    assert_eq!(get_with(edge.addr, "/mine", &auth).await.cache(), "MISS");
    get_with(edge.addr, "/shared", &auth).await;
    assert_eq!(get_with(edge.addr, "/shared", &auth).await.cache(), "HIT");
}

#[tokio::test]
async fn vary_keeps_variants_apart() {
    let origin = Origin::start(|r| {
        let rsc = r.headers.get("rsc").is_some();
        let lang = r
            .headers
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        let reply = if rsc {
            Reply::ok(format!("flight {lang}")).header("content-type", "text/x-component")
        } else {
            Reply::ok(format!("html {lang}")).header("content-type", "text/html")
        };
        reply
            .cc("s-maxage=60")
            .header("vary", "RSC, Next-Router-State-Tree, Accept-Language")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let html = get(edge.addr, "/p").await;
    let rsc = get_with(edge.addr, "/p", &[("rsc", "1")]).await;
    let fr = get_with(edge.addr, "/p", &[("accept-language", "fr")]).await;
    assert_eq!(
        (
            html.text().as_str(),
            rsc.text().as_str(),
            fr.text().as_str()
        ),
        ("html none", "flight none", "html fr")
    );
    assert_eq!(origin.count("/p"), 3);
    for _ in 0..2 {
        assert_eq!(get(edge.addr, "/p").await.text(), "html none");
        let again = get_with(edge.addr, "/p", &[("rsc", "1")]).await;
        assert_eq!(
            (again.cache(), again.text().as_str()),
            ("HIT", "flight none")
        );
        assert_eq!(
            get_with(edge.addr, "/p", &[("accept-language", "fr")])
                .await
                .text(),
            "html fr"
        );
    }
    assert_eq!(origin.count("/p"), 3);
}

/// A variant is made for the bytes its request carried: two values that differ only in bytes
/// that are not UTF-8 (a client writing Latin-1) are two variants. Both were read as U+FFFD,
/// and the page the origin made for one was served to the other.
#[tokio::test]
async fn vary_values_that_are_not_text_are_told_apart() {
    let origin = Origin::start(|r| {
        let bytes = r.headers.get("x-lang").map(|v| v.as_bytes().to_vec());
        Reply::ok(format!("made for {bytes:?}"))
            .cc("s-maxage=60")
            .header("vary", "X-Lang")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let ask = |value: &'static [u8]| async move {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(edge.addr)
            .await
            .expect("connect");
        let mut request = b"GET /lang HTTP/1.1\r\nhost: site.example\r\nx-lang: ".to_vec();
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
        stream.write_all(&request).await.expect("write");
        support::read_until_closed(&mut stream).await
    };
    let first = ask(b"\xff").await;
    assert!(first.ends_with("made for Some([255])"), "{first}");
    let other = ask(b"\xfe").await;
    assert!(other.ends_with("made for Some([254])"), "{other}");
    let text = ask("\u{fffd}".as_bytes()).await;
    assert!(text.ends_with("made for Some([239, 191, 189])"), "{text}");
    assert!(ask(b"\xff").await.contains("x-cache: HIT"));
    assert_eq!(origin.count("/lang"), 3);
}

#[tokio::test]
async fn accept_encoding_is_folded_into_classes() {
    let origin = Origin::start(|r| {
        let ae = r
            .headers
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        Reply::ok(format!("encoded for {ae}"))
            .cc("s-maxage=60")
            .header("vary", "Accept-Encoding")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let chrome = get_with(
        edge.addr,
        "/e",
        &[("accept-encoding", "gzip, deflate, br, zstd")],
    )
    .await;
    assert_eq!(chrome.text(), "encoded for br,gzip");
    let firefox = get_with(edge.addr, "/e", &[("accept-encoding", "br, gzip, deflate")]).await;
    assert_eq!(
        (firefox.cache(), firefox.text().as_str()),
        ("HIT", "encoded for br,gzip")
    );
    assert_eq!(
        get_with(edge.addr, "/e", &[("accept-encoding", "gzip")])
            .await
            .text(),
        "encoded for gzip"
    );
    assert_eq!(get(edge.addr, "/e").await.text(), "encoded for none");
    assert_eq!(origin.count("/e"), 3);
}

/// Next.js's `next start` compresses with gzip only. A browser accepting both br and gzip (every
/// browser: "gzip, deflate, br, zstd") must reach the origin accepting gzip too, or such an
/// origin answers it uncompressed; a client accepting br alone must never get gzip.
#[tokio::test]
async fn browsers_get_gzip_from_an_origin_without_brotli() {
    let origin = Origin::start(|r| {
        Reply::gzip_or_plain(r)
            .cc("s-maxage=60")
            .header("vary", "Accept-Encoding")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let chrome = get_with(
        edge.addr,
        "/g",
        &[("accept-encoding", "gzip, deflate, br, zstd")],
    )
    .await;
    assert_eq!(chrome.header("content-encoding"), "gzip");
    assert_eq!(chrome.text(), "gzipped");
    let firefox = get_with(edge.addr, "/g", &[("accept-encoding", "gzip, deflate, br")]).await;
    assert_eq!(
        (firefox.cache(), firefox.header("content-encoding")),
        ("HIT", "gzip")
    );
    let brotli_only = get_with(edge.addr, "/g", &[("accept-encoding", "br")]).await;
    assert_eq!(
        (
            brotli_only.header("content-encoding"),
            brotli_only.text().as_str()
        ),
        ("", "plain")
    );
    assert_eq!(origin.count("/g"), 2);
}

/// An origin that compresses for clients asking for it but forgets `Vary: Accept-Encoding`
/// (nginx's `gzip on` without `gzip_vary on` in front of an app): a client that did not ask for
/// gzip must never be served the gzipped copy, and the plain copy it gets must not push the
/// gzipped one out (each kind of client keeps hitting its own).
#[tokio::test]
async fn a_compressed_answer_without_vary_is_kept_for_its_encoding_alone() {
    let origin = Origin::start(|r| Reply::gzip_or_plain(r).cc("s-maxage=60")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let browser = [("accept-encoding", "gzip, deflate, br, zstd")];
    let first = get_with(edge.addr, "/c", &browser).await;
    assert_eq!(
        (first.header("content-encoding"), first.text().as_str()),
        ("gzip", "gzipped")
    );
    assert!(
        first.header("vary").eq_ignore_ascii_case("accept-encoding"),
        "a downstream cache must learn that the answer depends on Accept-Encoding: {:?}",
        first.header("vary")
    );
    let curl = get(edge.addr, "/c").await;
    assert_eq!(
        (
            curl.cache(),
            curl.header("content-encoding"),
            curl.text().as_str()
        ),
        ("MISS", "", "plain")
    );
    let again = get_with(edge.addr, "/c", &browser).await;
    assert_eq!(
        (
            again.cache(),
            again.header("content-encoding"),
            again.text().as_str()
        ),
        ("HIT", "gzip", "gzipped")
    );
    let curl_again = get(edge.addr, "/c").await;
    assert_eq!(
        (curl_again.cache(), curl_again.text().as_str()),
        ("HIT", "plain")
    );
    assert_eq!(origin.count("/c"), 2);
    // A 304 carries no representation metadata (RFC 9110 section 15.4.5): the browser keeps
    // the encoding of the copy it has.
    let etag = again.header("etag").to_string();
    let revalidation = get_with(
        edge.addr,
        "/c",
        &[browser[0], ("if-none-match", etag.as_str())],
    )
    .await;
    assert_eq!(
        (revalidation.status, revalidation.header("content-encoding")),
        (304, "")
    );

    // A page the origin never compresses stays one copy for every client.
    let plain_origin = Origin::start(|_| Reply::ok("plain").cc("s-maxage=60")).await;
    let edge = Edge::start(&plain_origin.url(), &[]).await;
    get_with(edge.addr, "/p", &browser).await;
    let other = get(edge.addr, "/p").await;
    assert_eq!((other.cache(), other.header("vary")), ("HIT", ""));
    assert_eq!(plain_origin.count("/p"), 1);
}

/// A page that cannot be stored (private) is fetched without the browser's conditions, as a
/// fetch for the cache is: the browser's `If-None-Match` must still be answered, or every
/// reload of a signed-in page would carry the whole page again.
#[tokio::test]
async fn conditional_requests_for_a_page_that_cannot_be_stored_get_304() {
    let origin = Origin::start(|_| {
        Reply::ok("your account")
            .cc("private, max-age=0")
            .header("etag", "\"acct-7\"")
            .header("last-modified", "Sat, 21 Nov 2026 10:00:00 GMT")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let first = get(edge.addr, "/account").await;
    assert_eq!((first.status, first.text().as_str()), (200, "your account"));
    let reload = get_with(edge.addr, "/account", &[("if-none-match", "\"acct-7\"")]).await;
    assert_eq!(reload.status, 304, "{:?}", reload.headers);
    assert!(reload.body.is_empty());
    assert_eq!(reload.header("etag"), "\"acct-7\"");
    assert_eq!(reload.header("cache-control"), "private, max-age=0");
    assert_eq!(reload.header("content-length"), "");
    let changed = get_with(edge.addr, "/account", &[("if-none-match", "\"acct-6\"")]).await;
    assert_eq!(
        (changed.status, changed.text().as_str()),
        (200, "your account")
    );
    let by_date = get_with(
        edge.addr,
        "/account",
        &[("if-modified-since", "Sat, 21 Nov 2026 10:00:00 GMT")],
    )
    .await;
    assert_eq!(by_date.status, 304);
    let head = send(
        edge.addr,
        "HEAD",
        "/account",
        &[("if-none-match", "W/\"acct-7\"")],
        "",
    )
    .await;
    assert_eq!(head.status, 304);
    // The origin was asked each time: nothing of the page was kept.
    assert_eq!(origin.count("/account"), 5);
}

/// The answer says `Vary: Accept-Encoding`, and nothing more.
fn assert_varies_by_encoding(answer: &support::Resp) {
    assert!(
        answer
            .header("vary")
            .eq_ignore_ascii_case("accept-encoding"),
        "{:?}",
        answer.headers
    );
}

/// A compressed answer passed on unstored (private) was asked for with the edge's encoding
/// class, not the client's `Accept-Encoding`: it says `Vary: Accept-Encoding` as a stored one
/// does, so a cache in front of the edge does not hand it to a client without gzip.
#[tokio::test]
async fn a_compressed_answer_passed_on_unstored_says_it_varies_by_encoding() {
    let origin = Origin::start(|r| Reply::gzip_or_plain(r).cc("private, max-age=60")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let answer = get_with(edge.addr, "/me", &[("accept-encoding", "gzip")]).await;
    assert_eq!(
        (answer.cache(), answer.header("content-encoding")),
        ("MISS", "gzip")
    );
    assert_varies_by_encoding(&answer);
    let plain = get(edge.addr, "/me").await;
    assert_eq!(plain.header("vary"), "");
}

/// The same for an origin's compressed error page, read whole or streamed.
#[tokio::test]
async fn a_compressed_error_page_says_it_varies_by_encoding() {
    let origin = Origin::start(|r| Reply::gzip_or_plain(r).status(503)).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let answer = get_with(edge.addr, "/down", &[("accept-encoding", "gzip")]).await;
    assert_eq!(
        (answer.status, answer.header("content-encoding")),
        (503, "gzip")
    );
    assert_varies_by_encoding(&answer);
}

/// The same for a compressed answer found too large only while it was read (sent chunked,
/// with no `Content-Length` to refuse it by up front): it streams on unstored, and says
/// `Vary: Accept-Encoding` as one refused by its length does.
#[tokio::test]
async fn a_compressed_answer_found_too_large_while_read_says_it_varies_by_encoding() {
    let origin = support::scripted_origin(|_| {
        let chunk = "x".repeat(2048);
        format!(
            "HTTP/1.1 200 OK\r\ncache-control: s-maxage=60\r\ncontent-encoding: gzip\r\n\
             transfer-encoding: chunked\r\nconnection: close\r\n\r\n\
             800\r\n{chunk}\r\n0\r\n\r\n"
        )
    })
    .await;
    let origin = format!("http://{origin}");
    let edge = Edge::start(&origin, &["--max-object-size", "1KiB"]).await;
    let answer = get_with(edge.addr, "/big", &[("accept-encoding", "gzip")]).await;
    assert_eq!(answer.body.len(), 2048);
    assert!(
        answer.header("cache-status").contains("detail=too-large"),
        "{:?}",
        answer.headers
    );
    assert_varies_by_encoding(&answer);
}

#[tokio::test]
async fn conditional_requests_get_304_from_the_cache() {
    let origin = Origin::start(|r| match r.path.as_str() {
        "/tagged" => Reply::ok("body")
            .cc("s-maxage=60")
            .header("etag", "W/\"v1\"")
            .header("last-modified", "Sat, 21 Nov 2026 10:00:00 GMT"),
        _ => Reply::ok("body").cc("s-maxage=60"),
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let first = get(edge.addr, "/plain").await;
    let etag = first.header("etag").to_string();
    assert!(
        !etag.is_empty(),
        "the proxy makes an ETag when the origin sent none"
    );
    let revalidation = get_with(edge.addr, "/plain", &[("if-none-match", &etag)]).await;
    assert_eq!(revalidation.status, 304);
    assert!(revalidation.body.is_empty());
    assert_eq!(revalidation.header("etag"), etag);
    assert_eq!(
        get_with(edge.addr, "/plain", &[("if-none-match", "\"stale\"")])
            .await
            .status,
        200
    );

    get(edge.addr, "/tagged").await;
    assert_eq!(
        get_with(edge.addr, "/tagged", &[("if-none-match", "\"v1\"")])
            .await
            .status,
        304
    );
    let ims = get_with(
        edge.addr,
        "/tagged",
        &[("if-modified-since", "Sat, 21 Nov 2026 11:00:00 GMT")],
    )
    .await;
    assert_eq!(ims.status, 304);
    let older = get_with(
        edge.addr,
        "/tagged",
        &[("if-modified-since", "Sat, 21 Nov 2026 09:00:00 GMT")],
    )
    .await;
    assert_eq!(older.status, 200);
    // Without `Last-Modified`, the stored `Date` stands in for it (RFC 9111 section 4.3.2).
    let since = |date: &str| {
        let date = date.to_string();
        async move {
            get_with(edge.addr, "/plain", &[("if-modified-since", &date)])
                .await
                .status
        }
    };
    assert_eq!(since("Fri, 01 Jan 2100 00:00:00 GMT").await, 304);
    assert_eq!(since("Sat, 01 Jan 2000 00:00:00 GMT").await, 200);
    // The origin never saw the browser's conditional headers: the cache needs full bodies.
    assert!(origin
        .seen()
        .iter()
        .all(|s| !s.headers.contains_key("if-none-match")));
    assert_eq!(origin.total(), 2);
}

/// `If-None-Match` is one list however many field lines carry it (RFC 9110 section 5.3), and
/// an entity tag may contain a comma (`etagc` allows it): neither hides a match.
#[tokio::test]
async fn if_none_match_is_read_across_field_lines_and_quoted_commas() {
    let origin = Origin::start(|r| match r.path.as_str() {
        "/comma" => Reply::ok("body")
            .cc("s-maxage=60")
            .header("etag", "\"a,b\""),
        _ => Reply::ok("body").cc("s-maxage=60").header("etag", "\"v1\""),
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    get(edge.addr, "/lines").await;
    let lines = get_with(
        edge.addr,
        "/lines",
        &[
            ("if-none-match", "\"other\""),
            ("if-none-match", "W/\"v1\""),
        ],
    )
    .await;
    assert_eq!(
        lines.status, 304,
        "the second field line names the stored tag"
    );
    let neither = get_with(
        edge.addr,
        "/lines",
        &[("if-none-match", "\"other\""), ("if-none-match", "\"v2\"")],
    )
    .await;
    assert_eq!(neither.status, 200);

    get(edge.addr, "/comma").await;
    for list in ["\"a,b\"", "\"x\", \"a,b\"", "W/\"a,b\",\"y\""] {
        let comma = get_with(edge.addr, "/comma", &[("if-none-match", list)]).await;
        assert_eq!(comma.status, 304, "{list}");
    }
    for list in ["\"a\", \"b\"", "\"a,b,c\""] {
        let other = get_with(edge.addr, "/comma", &[("if-none-match", list)]).await;
        assert_eq!(other.status, 200, "{list}");
    }
    assert_eq!(origin.total(), 2);
}

#[tokio::test]
async fn browser_cache_control_keeps_origin_max_age_and_can_be_turned_off() {
    let origin = Origin::start(|r| match r.path.as_str() {
        "/asset" => Reply::ok("x").cc("public, max-age=31536000, immutable"),
        _ => Reply::ok("x")
            .cc("s-maxage=10, stale-while-revalidate=31535990")
            .header("cdn-cache-control", "max-age=30"),
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(
        get(edge.addr, "/asset").await.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    let page = get(edge.addr, "/page").await;
    assert_eq!(
        page.header("cache-control"),
        "public, max-age=0, must-revalidate"
    );
    assert!(
        page.header("cdn-cache-control").is_empty(),
        "surrogate headers never reach clients"
    );
    assert_eq!(
        page.header("cache-status"),
        "isr-edge; fwd=miss; stored; ttl=30",
        "CDN-Cache-Control wins"
    );

    let passthrough = Edge::start(&origin.url(), &["--browser-cache-control", "origin"]).await;
    assert_eq!(
        get(passthrough.addr, "/page").await.header("cache-control"),
        "s-maxage=10, stale-while-revalidate=31535990"
    );
}

/// Answers the cache passes on without storing them get the browser `Cache-Control` too when
/// the origin's speaks to shared caches (a browser honours a one-year `stale-while-revalidate`
/// wherever it came from); one meant for browsers is left as the origin sent it.
#[tokio::test]
async fn answers_passed_through_do_not_hand_browsers_shared_cache_directives() {
    let origin = Origin::start(|r| match r.path.as_str() {
        "/personal" => Reply::ok("x").cc("private, max-age=0"),
        "/account" => Reply::ok("x").cc("no-cache, stale-if-error=86400"),
        "/big" => Reply::ok("x".repeat(4096)).cc("s-maxage=60, stale-while-revalidate=31536000"),
        _ => Reply::ok("x").cc("s-maxage=60, stale-while-revalidate=31536000"),
    })
    .await;
    let edge = Edge::start(
        &origin.url(),
        &["--bypass-cookie", "session", "--max-object-size", "1KiB"],
    )
    .await;
    let signed_in = get_with(edge.addr, "/page", &[("cookie", "session=1")]).await;
    assert_eq!(signed_in.cache(), "BYPASS");
    assert_eq!(
        signed_in.header("cache-control"),
        "public, max-age=0, must-revalidate"
    );
    let action = get_with(edge.addr, "/page", &[("next-action", "7f3a")]).await;
    assert_eq!(action.cache(), "BYPASS");
    assert_eq!(
        action.header("cache-control"),
        "public, max-age=0, must-revalidate"
    );
    let big = get(edge.addr, "/big").await;
    assert!(big.header("cache-status").contains("too-large"));
    assert_eq!(
        big.header("cache-control"),
        "public, max-age=0, must-revalidate"
    );
    let personal = get(edge.addr, "/personal").await;
    assert_eq!(personal.header("cache-control"), "private, max-age=0");
    // Never `public` where the origin did not let shared caches store it.
    let account = get_with(edge.addr, "/account", &[("authorization", "Bearer t")]).await;
    assert!(account
        .header("cache-status")
        .contains("detail=authorization"));
    assert_eq!(
        account.header("cache-control"),
        "private, max-age=0, must-revalidate"
    );

    let passthrough = Edge::start(
        &origin.url(),
        &[
            "--bypass-cookie",
            "session",
            "--browser-cache-control",
            "origin",
        ],
    )
    .await;
    let signed_in = get_with(passthrough.addr, "/page", &[("cookie", "session=1")]).await;
    assert_eq!(
        signed_in.header("cache-control"),
        "s-maxage=60, stale-while-revalidate=31536000"
    );
}

#[tokio::test]
async fn client_no_cache_does_not_bypass_unless_allowed() {
    let origin = Origin::start(|r| Reply::ok(format!("{}", r.count)).cc("s-maxage=60")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    get(edge.addr, "/r").await;
    let reload = get_with(
        edge.addr,
        "/r",
        &[("cache-control", "no-cache"), ("pragma", "no-cache")],
    )
    .await;
    assert_eq!(reload.cache(), "HIT");
    let no_store = get_with(edge.addr, "/r", &[("cache-control", "no-store")]).await;
    assert_eq!(no_store.cache(), "HIT");
    assert_eq!(origin.count("/r"), 1);

    let lenient = Edge::start(&origin.url(), &["--honor-client-no-cache"]).await;
    get(lenient.addr, "/r").await;
    assert_eq!(origin.count("/r"), 2);
    // A no-cache reload goes to the origin, and what it brings back is the stored page: the
    // next visitor sees what the reload saw, not the copy it was refused.
    let forced = get_with(lenient.addr, "/r", &[("cache-control", "no-cache")]).await;
    assert_eq!(forced.cache(), "MISS");
    assert_eq!(forced.text(), "3");
    // RFC 9211 section 2.2: a fresh copy the request's directives did not allow.
    assert!(
        forced
            .header("cache-status")
            .starts_with("isr-edge; fwd=request; stored"),
        "{}",
        forced.header("cache-status")
    );
    let next = get(lenient.addr, "/r").await;
    assert_eq!(next.cache(), "HIT");
    assert_eq!(next.text(), "3");
    let pragma = get_with(lenient.addr, "/r", &[("pragma", "no-cache")]).await;
    assert_eq!(pragma.text(), "4");
    assert_eq!(get(lenient.addr, "/r").await.text(), "4");
    // Pragma counts only without Cache-Control (RFC 9111 section 5.4).
    let both = get_with(
        lenient.addr,
        "/r",
        &[("pragma", "no-cache"), ("cache-control", "max-age=60")],
    )
    .await;
    assert_eq!(both.cache(), "HIT");
    // no-store: passed on, and its answer is not stored (RFC 9111 section 5.2.1.5).
    let no_store = get_with(lenient.addr, "/r", &[("cache-control", "no-store")]).await;
    assert_eq!(no_store.cache(), "BYPASS");
    assert_eq!(no_store.text(), "5");
    assert_eq!(get(lenient.addr, "/r").await.text(), "4");
    assert_eq!(origin.count("/r"), 5);
}

/// With `--honor-client-no-cache`, a client's `no-cache` refreshes a fresh page, but cannot
/// withdraw it: an answer the origin gives that client alone (a WAF's 403, a geo redirect)
/// leaves the copy everyone else is served.
#[tokio::test]
async fn a_forced_refresh_cannot_evict_the_shared_copy() {
    let origin = Origin::start(|r| {
        if r.headers.contains_key("x-blocked") {
            Reply::ok("blocked").status(403)
        } else {
            Reply::ok("page").cc("s-maxage=60")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &["--honor-client-no-cache"]).await;
    get(edge.addr, "/p").await;
    let forced = get_with(
        edge.addr,
        "/p",
        &[("cache-control", "no-cache"), ("x-blocked", "1")],
    )
    .await;
    assert_eq!((forced.status, forced.text().as_str()), (403, "blocked"));
    let next = get(edge.addr, "/p").await;
    assert_eq!((next.cache(), next.text().as_str()), ("HIT", "page"));
}

#[tokio::test]
async fn default_ttl_stores_responses_without_freshness() {
    let origin = Origin::start(|_| Reply::ok("laravel page")).await;
    let edge = Edge::start(&origin.url(), &["--default-ttl", "30s"]).await;
    get(edge.addr, "/l").await;
    let hit = get(edge.addr, "/l").await;
    assert_eq!(hit.cache(), "HIT");
    assert!(
        hit.header("cache-status").contains("ttl=30")
            || hit.header("cache-status").contains("ttl=29")
    );
}

#[tokio::test]
async fn large_responses_stream_through_uncached() {
    let big = "x".repeat(200 * 1024);
    let body = big.clone();
    let origin = Origin::start(move |_| Reply::ok(body.clone()).cc("s-maxage=60")).await;
    let edge = Edge::start(&origin.url(), &["--max-object-size", "64KiB"]).await;
    let first = get(edge.addr, "/big").await;
    assert_eq!(first.body.len(), big.len());
    assert!(
        first.header("cache-status").contains("detail=too-large"),
        "{}",
        first.header("cache-status")
    );
    let second = get(edge.addr, "/big").await;
    assert_eq!(second.body.len(), big.len());
    assert_eq!(origin.count("/big"), 2);
}

#[tokio::test]
async fn forwarded_headers_and_hop_by_hop_hygiene() {
    let origin = Origin::start(|_| {
        Reply::ok("x")
            .header("connection", "close, x-hop")
            .header("x-hop", "1")
            .header("keep-alive", "timeout=5")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let response = get_with(
        edge.addr,
        "/f",
        &[
            ("host", "site.example"),
            ("x-forwarded-host", "evil.example"),
            ("connection", "x-client-hop"),
            ("x-client-hop", "1"),
            ("x-forwarded-for", "203.0.113.9"),
        ],
    )
    .await;
    assert!(response.header("x-hop").is_empty());
    assert!(response.header("keep-alive").is_empty());
    let seen = &origin.seen()[0];
    assert_eq!(seen.headers["host"], "site.example");
    assert_eq!(seen.headers["x-forwarded-host"], "site.example");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert!(!seen.headers.contains_key("x-client-hop"));
}

/// RFC 9110 section 4.2.3: `host:80` and `host:` are `host`, and so is `host.` (the root's
/// trailing dot): one page for all; another port is another origin. A purge naming the default
/// port reaches the page too.
#[tokio::test]
async fn a_default_port_in_host_is_the_same_page() {
    let origin =
        Origin::start(|r| Reply::ok(format!("render {}", r.count)).cc("s-maxage=60")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let first = get_with(edge.addr, "/p", &[("host", "site.example:80")]).await;
    assert_eq!(first.cache(), "MISS");
    assert_eq!(origin.seen()[0].headers["host"], "site.example");
    for host in [
        "site.example",
        "Site.Example:80",
        "site.example:",
        "site.example.",
    ] {
        let again = get_with(edge.addr, "/p", &[("host", host)]).await;
        assert_eq!(
            (again.cache(), again.text().as_str()),
            ("HIT", "render 1"),
            "{host}"
        );
    }
    let other_port = get_with(edge.addr, "/p", &[("host", "site.example:8080")]).await;
    assert_eq!(other_port.cache(), "MISS");
    assert_eq!(origin.total(), 2);

    let purged = support::revalidate(
        edge.addr,
        serde_json::json!({"secret": support::SECRET, "paths": ["/p"], "host": "site.example:80"}),
    )
    .await;
    assert_eq!(purged.status, 200, "{}", purged.text());
    let after = get_with(edge.addr, "/p", &[("host", "site.example")]).await;
    assert_eq!(after.cache(), "MISS");
}

/// HTTP/2 clients send each cookie as a field of its own (browsers do, for HPACK); the origin
/// speaks HTTP/1.1 and must get them as one `Cookie` joined with "; " (RFC 9113 section
/// 8.2.3): two `Cookie` lines are read by some servers (Apache, and so PHP) as one cookie
/// "a=1, b=2", and the session is lost.
#[tokio::test]
async fn http2_cookie_fields_reach_the_origin_as_one() {
    let origin = Origin::start(|_| Reply::ok("x").cc("private")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let target = format!("http://{}/c", edge.addr);
    let cookies = [("cookie", "a=1"), ("cookie", "session=s3cret")];
    let response = send_h2_with(edge.addr, "GET", &target, None, &cookies).await;
    assert_eq!(response.status, 200);
    let seen = &origin.seen()[0];
    let sent: Vec<_> = seen.headers.get_all("cookie").iter().collect();
    assert_eq!(sent, ["a=1; session=s3cret"]);
}

#[tokio::test]
async fn paths_are_normalised_into_one_key() {
    let origin = Origin::start(|_| Reply::ok("x").cc("s-maxage=60")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    get(edge.addr, "/a/b").await;
    for alias in ["/a/./b", "//a//b", "/a/c/../b", "/%61/b"] {
        assert_eq!(get(edge.addr, alias).await.cache(), "HIT", "{alias}");
    }
    assert_eq!(origin.total(), 1);
    // Different queries are different pages.
    assert_eq!(get(edge.addr, "/a/b?page=2").await.cache(), "MISS");
}

#[tokio::test]
async fn rsc_and_html_never_mix_even_without_vary() {
    let origin = Origin::start(|r| {
        if r.headers.contains_key("rsc") {
            Reply::ok("flight")
                .header("content-type", "text/x-component")
                .cc("s-maxage=60")
        } else {
            Reply::ok("<html>")
                .header("content-type", "text/html")
                .cc("s-maxage=60")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for _ in 0..3 {
        assert_eq!(get(edge.addr, "/n").await.text(), "<html>");
        assert_eq!(
            get_with(edge.addr, "/n", &[("rsc", "1")]).await.text(),
            "flight"
        );
    }
    assert_eq!(origin.count("/n"), 2, "both forms stored side by side");
}

/// A GET with a body is fetched for the cache as a plain GET: the client's `Content-Length`
/// with no body behind it held an origin that reads request bodies (as Node does) until the
/// origin timeout, for this client and every request coalesced behind it.
#[tokio::test]
async fn a_get_with_a_body_is_fetched_without_its_framing() {
    let origin = Origin::start(|r| Reply::ok(format!("page {}", r.path)).cc("s-maxage=60")).await;
    let edge = Edge::start(&origin.url(), &["--origin-timeout", "3s"]).await;
    let with_body = send(
        edge.addr,
        "GET",
        "/b",
        &[("content-type", "text/plain"), ("expect", "100-continue")],
        "hello",
    )
    .await;
    assert_eq!(
        (with_body.status, with_body.text().as_str()),
        (200, "page /b")
    );
    let seen = &origin.seen()[0];
    for name in [
        "content-length",
        "content-type",
        "expect",
        "transfer-encoding",
    ] {
        assert!(!seen.headers.contains_key(name), "origin got {name}");
    }
    assert!(seen.body.is_empty());
    assert_eq!(get(edge.addr, "/b").await.cache(), "HIT");
}

/// An `Age` too large to read is 2^31 seconds (RFC 9111 section 1.2.2): the copy is already
/// stale, not fresh for its whole `s-maxage`.
#[tokio::test]
async fn an_age_too_large_to_read_is_old_not_new() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("render {}", r.count))
            .cc("s-maxage=60")
            .header("age", "99999999999999999999")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    get(edge.addr, "/old").await;
    let again = get(edge.addr, "/old").await;
    assert_ne!(again.cache(), "HIT", "{}", again.header("cache-status"));
    assert!(
        !again.header("cache-status").contains("ttl=-1844"),
        "{}",
        again.header("cache-status")
    );
}

/// A refresh made for a client with credentials (here a session cookie, answered with
/// `Set-Cookie`) is not stored, and does not evict the public copy either: otherwise any
/// client could evict any page on demand by sending a cookie.
#[tokio::test]
async fn a_personal_answer_does_not_evict_the_public_copy() {
    let origin = Origin::start(|r| {
        let reply =
            Reply::ok(format!("render {}", r.count)).cc("s-maxage=1, stale-while-revalidate=60");
        if r.headers.contains_key("cookie") {
            reply.header("set-cookie", "session=renewed")
        } else {
            reply
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/p").await.cache(), "MISS");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let with_cookie = get_with(edge.addr, "/p", &[("cookie", "session=abc")]).await;
    assert_eq!(with_cookie.cache(), "STALE");
    assert!(support::eventually(std::time::Duration::from_secs(5), || origin.total() == 2).await);
    assert!(
        origin.seen()[1].headers.contains_key("cookie"),
        "refreshed for the cookie"
    );
    let after = get(edge.addr, "/p").await;
    assert_eq!(
        (after.cache(), after.text().as_str()),
        ("STALE", "render 1"),
        "the public copy is still there"
    );
}

/// A page varying on a header the edge sets itself (`X-Forwarded-Host`, as multi-tenant
/// origins do) is matched by the client's value, as lookups compare: the second request hits.
#[tokio::test]
async fn vary_on_a_header_the_edge_sets_still_hits() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("render {}", r.count))
            .cc("s-maxage=60")
            .header("vary", "X-Forwarded-Host")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/t").await.cache(), "MISS");
    let again = get(edge.addr, "/t").await;
    assert_eq!((again.cache(), again.text().as_str()), ("HIT", "render 1"));
    let h2 = get_h2(edge.addr, "/t").await;
    assert_eq!(h2.text(), "render 1", "{}", h2.header("cache-status"));
}

/// A 4xx the cache does not keep answers the request that caused it (a header the origin
/// refused), not the page: a refresh it triggers leaves the stored copy for everyone else.
#[tokio::test]
async fn a_client_error_for_one_request_evicts_nothing() {
    let origin = Origin::start(|r| {
        if r.headers.contains_key("x-refused") {
            return Reply::ok("bad request").status(400);
        }
        Reply::ok(format!("render {}", r.count)).cc("s-maxage=1, stale-while-revalidate=600")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/p").await.cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = get_with(edge.addr, "/p", &[("x-refused", "1")]).await;
    assert_eq!(refused.cache(), "STALE");
    assert!(support::eventually(Duration::from_secs(5), || origin.total() == 2).await);
    // Time for a wrongful drop to follow the origin's 400.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = get(edge.addr, "/p").await;
    assert_eq!(
        (after.cache(), after.text().as_str()),
        ("STALE", "render 1"),
        "the stored copy is still served"
    );
}

/// A page withdrawn behind a login or for legal reasons (401, 403, 451 to everyone) loses its
/// stored copy: it must not stay public for the whole stale window.
#[tokio::test]
async fn a_page_answering_403_to_everyone_drops_its_copy() {
    let origin = Origin::start(|r| {
        if r.count == 1 {
            Reply::ok("public").cc("s-maxage=1, stale-while-revalidate=600")
        } else {
            Reply::ok("forbidden").status(403)
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/gone").await.cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(edge.addr, "/gone").await.cache(), "STALE");
    let latest = once_not_stale(edge.addr, "/gone", &[]).await;
    assert_eq!((latest.status, latest.text().as_str()), (403, "forbidden"));
}

/// An expired copy whose refetch cannot be stored: `Cache-Status` says the cache went to the
/// origin for a stale copy (`fwd=stale`), not for one it never had.
#[tokio::test]
async fn an_unstorable_refetch_of_an_expired_copy_says_fwd_stale() {
    let origin = Origin::start(|r| {
        if r.count == 1 {
            Reply::ok("public").cc("s-maxage=1")
        } else {
            Reply::ok("mine").cc("private")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/p").await.cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refetched = get(edge.addr, "/p").await;
    assert_eq!(refetched.text(), "mine");
    assert_eq!(
        refetched.header("cache-status"),
        "isr-edge; fwd=stale; detail=private"
    );
    let after = get(edge.addr, "/p").await;
    assert_eq!(
        after.header("cache-status"),
        "isr-edge; fwd=miss; detail=private"
    );
}

/// A variant whose refresh comes back private is dropped (it must not be served stale for the
/// whole window), and only that variant: the others were not re-rendered.
#[tokio::test]
async fn a_variant_turned_private_is_dropped_alone() {
    let private = Arc::new(AtomicBool::new(false));
    let now_private = private.clone();
    let origin = Origin::start(move |r| {
        let french = r
            .headers
            .get("accept-language")
            .is_some_and(|v| v.as_bytes() == b"fr");
        let cc = match (french, now_private.load(Ordering::Relaxed)) {
            (true, true) => "private, max-age=0",
            (true, false) => "s-maxage=1, stale-while-revalidate=600",
            (false, _) => "s-maxage=600",
        };
        Reply::ok(format!("render {}", r.count))
            .cc(cc)
            .header("vary", "accept-language")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for language in ["en", "fr"] {
        assert_eq!(
            get_with(edge.addr, "/p", &[("accept-language", language)])
                .await
                .cache(),
            "MISS"
        );
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    private.store(true, Ordering::Relaxed);
    let stale = get_with(edge.addr, "/p", &[("accept-language", "fr")]).await;
    assert_eq!(stale.cache(), "STALE");
    assert!(support::eventually(Duration::from_secs(5), || origin.total() == 3).await);
    // The refresh's answer is not stored, and the old French copy went with it (the drop
    // follows the origin's answer by a moment).
    let french = once_not_stale(edge.addr, "/p", &[("accept-language", "fr")]).await;
    assert_eq!(french.cache(), "MISS", "{}", french.header("cache-status"));
    let english = get_with(edge.addr, "/p", &[("accept-language", "en")]).await;
    assert_eq!(english.cache(), "HIT", "the English copy stays");
    let metrics = support::metrics_text(&edge).await;
    assert_eq!(
        support::metric(&metrics, "isr_edge_cache_withdrawn_responses_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        support::metric(
            &metrics,
            "isr_edge_cache_evictions_total{cause=\"uncacheable\"}"
        ),
        Some(0.0),
        "the URL keeps its English copy"
    );
}

/// A page that grows past `--max-object-size` streams through from then on; its old, small
/// copy is not served stale for the whole stale window while every refresh is thrown away.
#[tokio::test]
async fn a_page_grown_past_the_size_limit_drops_its_old_copy() {
    let origin = Origin::start(|r| {
        let body = if r.count == 1 {
            "small".to_string()
        } else {
            "x".repeat(4096)
        };
        Reply::ok(body).cc("s-maxage=1, stale-while-revalidate=600")
    })
    .await;
    let edge = Edge::start(&origin.url(), &["--max-object-size", "1KiB"]).await;
    assert_eq!(get(edge.addr, "/grows").await.cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = get(edge.addr, "/grows").await;
    assert_eq!((stale.cache(), stale.text().as_str()), ("STALE", "small"));
    assert!(support::eventually(Duration::from_secs(5), || origin.total() == 2).await);
    let latest = once_not_stale(edge.addr, "/grows", &[]).await;
    assert_eq!(latest.cache(), "MISS", "{}", latest.header("cache-status"));
    assert_eq!(latest.body.len(), 4096);
    assert!(latest.header("cache-status").contains("detail=too-large"));
}

/// RFC 9211 section 2: the members of the caches before this one (a CDN behind the edge) are
/// kept, and this cache's member comes last, on stored pages (miss, hit, kept head, 304) and on
/// answers passed through alike.
#[tokio::test]
async fn cache_status_keeps_the_members_of_caches_before_this_one() {
    let origin = Origin::start(|r| {
        let reply = Reply::ok("x").header("cache-status", "OriginCDN; hit");
        if r.path == "/private" {
            reply.cc("private")
        } else {
            reply.cc("s-maxage=600")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let members = |response: &support::Resp| -> Vec<String> {
        response
            .headers
            .get_all("cache-status")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect()
    };
    let miss = get(edge.addr, "/page").await;
    assert_eq!(
        members(&miss),
        ["OriginCDN; hit", "isr-edge; fwd=miss; stored; ttl=600"]
    );
    // The second and third hits are answered from the kept rendered head.
    for _ in 0..3 {
        let hit = get(edge.addr, "/page").await;
        let lines = members(&hit);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0], "OriginCDN; hit");
        assert!(lines[1].starts_with("isr-edge; hit; ttl="), "{lines:?}");
    }
    let etag = miss.header("etag").to_string();
    let not_modified = get_with(edge.addr, "/page", &[("if-none-match", &etag)]).await;
    assert_eq!(not_modified.status, 304);
    let lines = members(&not_modified);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "OriginCDN; hit");
    assert!(lines[1].starts_with("isr-edge; hit; ttl="), "{lines:?}");
    let passed = get(edge.addr, "/private").await;
    assert_eq!(
        members(&passed),
        ["OriginCDN; hit", "isr-edge; fwd=miss; detail=private"]
    );
}

/// RFC 9111 section 5.2.1.7: `only-if-cached` gets a stored response or a 504, never a trip to
/// the origin.
#[tokio::test]
async fn only_if_cached_never_reaches_the_origin() {
    let origin = Origin::start(|_| Reply::ok("page").cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let cold = get_with(edge.addr, "/p", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(cold.status, 504, "{}", cold.text());
    assert!(cold
        .header("cache-status")
        .contains("detail=only-if-cached"));
    assert_eq!(origin.total(), 0);
    assert_eq!(get(edge.addr, "/p").await.cache(), "MISS");
    let stored = get_with(
        edge.addr,
        "/p",
        &[("cache-control", "max-age=0, only-if-cached")],
    )
    .await;
    assert_eq!((stored.status, stored.cache()), (200, "HIT"));
    // A request the cache never answers (a form post) is not forwarded either; a range is
    // cut from the stored page, or a 504.
    let posted = send(
        edge.addr,
        "POST",
        "/p",
        &[
            ("content-type", "text/plain"),
            ("cache-control", "only-if-cached"),
        ],
        "",
    )
    .await;
    assert_eq!(
        (posted.status, posted.cache()),
        (504, "BYPASS"),
        "{}",
        posted.text()
    );
    let range = [("range", "bytes=0-1"), ("cache-control", "only-if-cached")];
    let part = get_with(edge.addr, "/p", &range).await;
    assert_eq!(
        (part.status, part.cache(), part.text().as_str()),
        (206, "HIT", "pa")
    );
    let cold = get_with(edge.addr, "/cold", &range).await;
    assert_eq!(cold.status, 504, "{}", cold.text());
    assert_eq!(origin.total(), 1);
}

/// The first answer for `path` that is not the old copy served stale: a withdrawal follows the
/// origin's answer to a background refresh by a moment. Gives up after ~2.5 s.
async fn once_not_stale(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> support::Resp {
    let mut latest = get_with(addr, path, headers).await;
    for _ in 0..50 {
        if latest.cache() != "STALE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        latest = get_with(addr, path, headers).await;
    }
    latest
}

/// An unstorable answer withdraws only copies stored before the origin was asked: a copy
/// stored while it was on its way (here by a request after a purge, which does not join the
/// older fetch) may come from a newer answer, and stays.
#[tokio::test]
async fn an_unstorable_answer_leaves_a_copy_stored_after_it_was_asked() {
    let origin = Origin::start(|r| match r.count {
        1 => Reply::ok("for one visitor")
            .cc("private")
            .delay(Duration::from_millis(600)),
        _ => Reply::ok("v2").cc("s-maxage=600"),
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let slow = tokio::spawn(get(edge.addr, "/p"));
    assert!(support::eventually(Duration::from_secs(5), || origin.count("/p") == 1).await);
    let purge = support::revalidate(
        edge.addr,
        serde_json::json!({"secret": support::SECRET, "paths": ["/p"]}),
    )
    .await;
    assert_eq!(purge.status, 200, "{}", purge.text());
    let fresh = get(edge.addr, "/p").await;
    assert_eq!((fresh.cache(), fresh.text().as_str()), ("MISS", "v2"));
    let slow = slow.await.expect("slow request");
    assert_eq!(slow.text(), "for one visitor");
    let after = get(edge.addr, "/p").await;
    assert_eq!((after.cache(), after.text().as_str()), ("HIT", "v2"));
    assert_eq!(origin.count("/p"), 2);
}

/// An app that sends many header fields (security headers, `Link` and `Set-Cookie` lines) is
/// still served and stored: hyper's default limit of 100 made every such page a 502.
#[tokio::test]
async fn an_origin_answer_with_many_header_fields_is_stored() {
    let origin = Origin::start(|_| {
        (0..150).fold(Reply::ok("many").cc("s-maxage=60"), |reply, i| {
            reply.header(&format!("x-field-{i}"), "v")
        })
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let first = get(edge.addr, "/many").await;
    assert_eq!((first.status, first.text().as_str()), (200, "many"));
    assert_eq!(first.header("x-field-149"), "v");
    assert_eq!(get(edge.addr, "/many").await.cache(), "HIT");
}

/// Under size pressure the cache keeps the pages hit most: a stream of pages asked for once or
/// twice (a crawler) pushes out the others, not a handful of pages every visitor asks for.
#[tokio::test]
async fn hot_pages_outlive_a_stream_of_one_off_pages_in_a_full_cache() {
    let origin = Origin::start(|_| Reply::ok(vec![b'x'; 1024]).cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &["--cache-size", "32KiB", "--workers", "1"]).await;
    let hot = ["/hot/a", "/hot/b", "/hot/c", "/hot/d"];
    for i in 0..3000 {
        if i % 16 == 0 {
            for page in hot {
                assert_eq!(get(edge.addr, page).await.status, 200);
            }
        }
        let one_off = format!("/crawled/{i}");
        assert_eq!(get(edge.addr, &one_off).await.status, 200);
        if i > 0 {
            let previous = format!("/crawled/{}", i - 1);
            assert_eq!(get(edge.addr, &previous).await.status, 200);
        }
    }
    let fetched: Vec<usize> = hot.iter().map(|page| origin.count(page)).collect();
    // Each was asked for 188 times, any other page at most twice: fetched once each (twice at
    // most, as moka's frequency estimates are probabilistic).
    assert!(
        fetched.iter().sum::<usize>() <= 2 * hot.len(),
        "hot pages fetched {fetched:?} times"
    );
}

/// An origin that sends no `Date` (RFC 9110 section 6.6.1 lets one without a clock): the
/// stored page gets the time it was received, so a hit says when the page was made, not when
/// it was served (its `Age` already counts the time since), and `If-Modified-Since` has a date
/// to be checked against (RFC 9111 section 4.3.2).
#[tokio::test]
async fn a_page_stored_without_date_keeps_the_time_it_was_received() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut request = vec![0u8; 4096];
                let _ = stream.read(&mut request).await;
                let answer = "HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\n\
                              content-length: 5\r\nconnection: close\r\n\r\nhello";
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    let edge = Edge::start(&format!("http://{addr}"), &[]).await;
    let first = get(edge.addr, "/undated").await;
    assert_eq!(first.cache(), "MISS");
    let made = first.header("date").to_string();
    // Past the next second, so a date made at serving time would differ.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let hit = get(edge.addr, "/undated").await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(hit.header("date"), made);
    let since = get_with(edge.addr, "/undated", &[("if-modified-since", &made)]).await;
    assert_eq!(since.status, 304);
}

/// A `Vary` member that is no field name (`Accept-Encoding Cookie`, written with a space) cannot
/// be honoured: it is refused like `Vary: *`, not dropped, which would give one visitor's page
/// to everyone.
#[tokio::test]
async fn a_vary_that_names_no_field_keeps_the_answer_unstored() {
    let origin = Origin::start(|r| {
        let cookie = r.headers.get("cookie").and_then(|v| v.to_str().ok());
        Reply::ok(format!("page for {}", cookie.unwrap_or("nobody")))
            .cc("s-maxage=60")
            .header("vary", "Accept-Encoding Cookie")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let alice = get_with(edge.addr, "/account", &[("cookie", "user=alice")]).await;
    assert_eq!(alice.text(), "page for user=alice");
    assert_eq!(
        alice.header("cache-status"),
        "isr-edge; fwd=miss; detail=vary-invalid"
    );
    let bob = get_with(edge.addr, "/account", &[("cookie", "user=bob")]).await;
    assert_eq!(
        (bob.cache(), bob.text().as_str()),
        ("MISS", "page for user=bob")
    );
}

/// A `Cache-Control` line holding a byte past ASCII (UTF-8 in an extension's quoted string) is
/// still read: its `private` keeps the page out of the shared cache.
#[tokio::test]
async fn private_is_read_from_a_cache_control_line_with_non_ascii_text() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("account {}", r.count))
            .cc("s-maxage=60")
            .cc("private, x-note=\"café\"")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let first = get(edge.addr, "/account").await;
    assert_eq!(
        first.header("cache-status"),
        "isr-edge; fwd=miss; detail=private"
    );
    // Nor does a cache after this one get told it may keep the page.
    assert!(
        !first.header("cache-control").starts_with("public"),
        "{:?}",
        first.headers
    );
    let second = get(edge.addr, "/account").await;
    assert_eq!(
        (second.cache(), second.text().as_str()),
        ("MISS", "account 2")
    );
}

/// Directives written with `;` or spaces between them (`private;max-age=0`, `no-store no-cache`)
/// are no directives RFC 9111 knows, but the origin meant the page for one visitor: they keep
/// it out of the cache that `--default-ttl` would otherwise store it in, as nginx and Varnish,
/// which look for the words, do.
#[tokio::test]
async fn private_or_no_store_written_with_semicolons_keeps_the_page_unstored() {
    let origin = Origin::start(|r| {
        let cc = match r.path.as_str() {
            "/semicolon" => "private;max-age=0",
            "/spaces" => "no-store no-cache",
            _ => "max-age=0; private",
        };
        Reply::ok(format!("account {}", r.count)).cc(cc)
    })
    .await;
    let edge = Edge::start(&origin.url(), &["--default-ttl", "60"]).await;
    for path in ["/semicolon", "/spaces", "/value"] {
        let first = get(edge.addr, path).await;
        assert!(
            !first.header("cache-status").contains("stored"),
            "{path}: {}",
            first.header("cache-status")
        );
        let second = get(edge.addr, path).await;
        assert_eq!(
            (second.cache(), second.text().as_str()),
            ("MISS", "account 2"),
            "{path}"
        );
    }
}
