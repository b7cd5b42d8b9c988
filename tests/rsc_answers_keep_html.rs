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

/// Under a URL that names an RSC payload, a newer answer of the other type replaces the stored
/// one instead of being kept beside it (and hidden behind it).
#[tokio::test]
async fn under_an_rsc_url_a_new_answer_replaces_one_of_the_other_type() {
    let origin = Origin::start(|r| {
        if r.count == 1 {
            Reply::ok("<html>old</html>").cc("s-maxage=1, stale-while-revalidate=600")
        } else {
            Reply::ok("payload new")
                .cc("s-maxage=600")
                .header("content-type", "text/x-component")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/a.rsc").await.cache(), "MISS");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(get(edge.addr, "/a.rsc").await.cache(), "STALE");
    let mut latest = get(edge.addr, "/a.rsc").await;
    for _ in 0..50 {
        if latest.cache() == "HIT" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        latest = get(edge.addr, "/a.rsc").await;
    }
    assert_eq!(
        (latest.cache(), latest.text().as_str()),
        ("HIT", "payload new")
    );
    assert_eq!(origin.count("/a.rsc"), 2);
}

/// `RSC: 1` named in `Connection` never reaches the origin, which renders HTML: the request
/// is an HTML request, gets the HTML copy, and is a hit the second time (it missed every
/// time while the RSC guard wanted a payload for it).
#[tokio::test]
async fn rsc_named_in_connection_is_an_html_request() {
    let origin = Origin::start(|r| {
        if r.headers.get("rsc").is_some_and(|v| v == "1") {
            Reply::ok("rsc payload")
                .cc("s-maxage=600")
                .header("content-type", "text/x-component")
                .header("vary", "RSC")
        } else {
            Reply::ok("<html>page</html>")
                .cc("s-maxage=600")
                .header("content-type", "text/html")
                .header("vary", "RSC")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let hop = [("rsc", "1"), ("connection", "RSC")];
    let first = get_with(edge.addr, "/p", &hop).await;
    assert_eq!(first.text(), "<html>page</html>");
    let second = get_with(edge.addr, "/p", &hop).await;
    assert_eq!(
        (second.cache(), second.text().as_str()),
        ("HIT", "<html>page</html>")
    );
    assert_eq!(origin.count("/p"), 1);
    // A real RSC request still gets the payload.
    assert_eq!(
        get_with(edge.addr, "/p", &[("rsc", "1")]).await.text(),
        "rsc payload"
    );
}

/// An answer an RSC request could never be served from the cache (HTML to `RSC: 1`, as a Pages
/// Router page or Next's empty 404 to a segment prefetch gives) is passed on unstored, saying
/// so: stored, it took memory, said `stored`, and every such request went to the origin all
/// the same. The HTML copy of the URL is untouched.
#[tokio::test]
async fn an_answer_no_request_like_it_can_be_served_is_not_stored() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("<html>render {}</html>", r.count))
            .cc("s-maxage=600")
            .header("content-type", "text/html")
            .header("vary", "rsc")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/p").await.cache(), "MISS");
    let rsc = get_with(edge.addr, "/p", &[("rsc", "1")]).await;
    assert_eq!(rsc.status, 200);
    assert_eq!(
        rsc.header("cache-status"),
        "isr-edge; fwd=miss; detail=rsc-mismatch"
    );
    let html = get(edge.addr, "/p").await;
    assert_eq!(
        (html.cache(), html.text().as_str()),
        ("HIT", "<html>render 1</html>")
    );
}
