//! Core caching behaviour against a real origin: miss then hit, HEAD from GET, expiry, what is
//! not stored, Vary separation, conditional requests, the browser-facing headers.

mod support;

use std::time::Duration;

use support::{get, get_h2, get_with, send, Edge, Origin, Reply};

#[tokio::test]
async fn miss_then_hit_with_cache_headers() {
    let origin = Origin::start(|r| Reply::ok(format!("render {}", r.count)).cc("s-maxage=60, stale-while-revalidate=31535940")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let first = get(edge.addr, "/page").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.cache(), "MISS");
    assert_eq!(first.header("cache-status"), "isr-edge; fwd=miss; stored; ttl=60");
    let second = get(edge.addr, "/page").await;
    assert_eq!(second.cache(), "HIT");
    assert_eq!(second.text(), "render 1");
    assert!(second.header("cache-status").starts_with("isr-edge; hit; ttl="));
    assert!(second.headers.contains_key("age"));
    // Browsers must not keep the one-year stale-while-revalidate: a reload revalidates.
    assert_eq!(second.header("cache-control"), "public, max-age=0, must-revalidate");
    assert!(second.header("etag").starts_with("\"ie-"));
    assert_eq!(origin.count("/page"), 1);
    // HTTP/2 (h2c) clients share the same cache.
    let h2 = get_h2(edge.addr, "/page").await;
    assert_eq!(h2.cache(), "HIT");
    assert_eq!(h2.text(), "render 1");
}
