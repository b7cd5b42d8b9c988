//! An RSC request's answer says nothing about the stored HTML page: when the origin answers
//! `RSC: 1` with something uncacheable (Next 16 redirects `RSC: 1` without `_rsc` with a 307),
//! the HTML copy of the same URL stays, so a client sending `RSC: 1` cannot evict pages.

mod support;

use support::{get, get_with, Edge, Origin, Reply};

#[tokio::test]
async fn an_uncacheable_rsc_answer_does_not_evict_the_html_copy() {
    let origin = Origin::start(|r| {
        if r.headers.contains_key("rsc") {
            Reply::ok("").status(307).header("location", "/p?_rsc=abc")
        } else {
            Reply::ok(format!("<html>render {}</html>", r.count))
                .cc("s-maxage=600")
                .header("content-type", "text/html")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/p").await.cache(), "MISS");
    for _ in 0..3 {
        let redirect = get_with(edge.addr, "/p", &[("rsc", "1")]).await;
        assert_eq!(redirect.status, 307);
        let html = get(edge.addr, "/p").await;
        assert_eq!(html.cache(), "HIT");
        assert_eq!(html.text(), "<html>render 1</html>");
    }
}

/// A URL that names an RSC payload by its path (`.rsc`, `.prefetch.rsc`, `.segments/…rsc`) is
/// an RSC request whatever its headers: its stored payload is served again, instead of every
/// request going to the origin while answers say `stored`.
#[tokio::test]
async fn a_url_naming_an_rsc_payload_is_hit() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("payload {}", r.count))
            .cc("s-maxage=600")
            .header("content-type", "text/x-component")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for path in [
        "/products/a.rsc",
        "/products/a.prefetch.rsc",
        "/products/a.segments/_tree.segment.rsc",
    ] {
        assert_eq!(get(edge.addr, path).await.cache(), "MISS", "{path}");
        let again = get(edge.addr, path).await;
        assert_eq!(
            (again.cache(), again.text().as_str()),
            ("HIT", "payload 1"),
            "{path}"
        );
        let navigation = get_with(edge.addr, path, &[("rsc", "1")]).await;
        assert_eq!(navigation.cache(), "HIT", "{path}");
        assert_eq!(origin.count(path), 1, "{path}");
    }
}
