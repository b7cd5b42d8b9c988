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
