//! The HTTP/1.1 wire at the public listener and what reaches the origin: request framing,
//! request targets, and requests the cache passes on (form posts, ranges, bypass cookies).

mod support;

use support::*;

/// One request over its own connection, read until the server closes it.
async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut received = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut received),
    )
    .await
    .expect("the server closes the connection")
    .expect("read");
    String::from_utf8_lossy(&received).into_owned()
}

/// A request the cache does not handle goes to the origin at its normalised path, as a fetch
/// for the cache does: with an origin base path (`--origin http://app:3000/app`), a raw
/// `/../admin` (or `%2e%2e`) would reach `/app/../admin`, a page outside the app.
#[tokio::test]
async fn passed_requests_cannot_climb_out_of_the_origin_base_path() {
    let origin = Origin::start(|r| Reply::ok(format!("{} {}", r.method, r.target))).await;
    let edge = Edge::start(&format!("{}/app", origin.url()), &[]).await;
    let requests = [
        // A form post.
        "POST /../admin?x=1 HTTP/1.1\r\nhost: site.example\r\ncontent-length: 0\r\n",
        // A range.
        "GET /%2e%2e/admin HTTP/1.1\r\nhost: site.example\r\nrange: bytes=0-1\r\n",
        // Draft mode.
        "GET /a/../../admin HTTP/1.1\r\nhost: site.example\r\ncookie: __prerender_bypass=1\r\n",
        // A cached GET, for comparison.
        "GET /a/%2E%2E/../admin HTTP/1.1\r\nhost: site.example\r\n",
    ];
    for request in requests {
        let answer = raw(edge.addr, &format!("{request}connection: close\r\n\r\n")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{request:?}: {answer}");
    }
    let targets: Vec<(String, String)> = origin
        .seen()
        .iter()
        .map(|r| (r.method.to_string(), r.target.clone()))
        .collect();
    let expected = [
        ("POST", "/app/admin?x=1"),
        ("GET", "/app/admin"),
        ("GET", "/app/admin"),
        ("GET", "/app/admin"),
    ]
    .map(|(method, target)| (method.to_string(), target.to_string()));
    assert_eq!(targets, expected);
}

/// RFC 9112 section 6.1: only `chunked` is undone on the way in, and `Transfer-Encoding` is
/// hop-by-hop. A body sent `gzip, chunked` forwarded without its coding would be taken by the
/// origin for plain content: 501, the origin never hears of it. Plain `chunked` still passes.
#[tokio::test]
async fn a_request_body_in_a_transfer_coding_other_than_chunked_is_refused() {
    let origin = Origin::start(|r| Reply::ok(format!("got {:?}", r.body))).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let coded = raw(
        edge.addr,
        "POST /form HTTP/1.1\r\nhost: site.example\r\ntransfer-encoding: gzip, chunked\r\n\
         connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert!(coded.starts_with("HTTP/1.1 501"), "{coded}");
    assert!(coded.contains("\"gzip\""), "{coded}");
    assert_eq!(origin.total(), 0);
    let chunked = raw(
        edge.addr,
        "POST /form HTTP/1.1\r\nhost: site.example\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 200"), "{chunked}");
    assert!(chunked.ends_with("got b\"abc\""), "{chunked}");
    assert_eq!(origin.total(), 1);
}
