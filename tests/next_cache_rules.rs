//! What a shared cache in front of Next.js must get right: HTML and RSC payloads never mixed
//! (even when the origin forgot `Vary: RSC`), requests that must reach the origin (server
//! actions, draft mode), responses never stored (206, 5xx), `x-nextjs-cache: STALE` stored as
//! stale, a bare `stale-while-revalidate` given the default window, a one-year window capped.

mod support;

use std::time::Duration;

use support::{eventually, get, get_with, Edge, Origin, Reply};

/// Renders HTML, or an RSC payload for `RSC: 1`, and never sends `Vary`.
async fn forgetful_origin() -> Origin {
    Origin::start(|r| {
        let rsc = r.headers.get("rsc").is_some_and(|v| v == "1");
        let reply = Reply::ok(format!("{} v{}", if rsc { "rsc" } else { "html" }, r.count))
            .cc("s-maxage=600");
        typed(reply, rsc)
    })
    .await
}

fn is_rsc(r: &support::Resp) -> bool {
    r.header("content-type").starts_with("text/x-component") && r.text().starts_with("rsc")
}

#[tokio::test]
async fn rsc_and_html_never_mix_even_without_vary() {
    let origin = forgetful_origin().await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for round in 0..3 {
        let html = get(edge.addr, "/page").await;
        assert!(
            !is_rsc(&html),
            "round {round}: HTML request got {}",
            html.text()
        );
        let rsc = get_with(edge.addr, "/page", &[("rsc", "1")]).await;
        assert!(
            is_rsc(&rsc),
            "round {round}: RSC request got {}",
            rsc.text()
        );
        // `RSC: 0` or another value is not an RSC request.
        let other = get_with(edge.addr, "/page", &[("rsc", "0")]).await;
        assert!(
            !is_rsc(&other),
            "round {round}: RSC: 0 got {}",
            other.text()
        );
    }
    // Both forms are kept side by side, so after the first round both are hits.
    assert_eq!(get(edge.addr, "/page").await.cache(), "HIT");
    assert_eq!(
        get_with(edge.addr, "/page", &[("rsc", "1")]).await.cache(),
        "HIT"
    );
    assert_eq!(origin.count("/page"), 2);
}

#[tokio::test]
async fn server_actions_and_draft_mode_bypass_the_cache() {
    let origin = Origin::start(|r| Reply::ok(format!("v{}", r.count)).cc("s-maxage=600")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/b").await.text(), "v1");
    assert_eq!(get(edge.addr, "/b").await.cache(), "HIT");
    let bypassing: [(&str, &str); 3] = [
        ("next-action", "7f3a"),
        ("cookie", "theme=dark; __prerender_bypass=abc"),
        ("cookie", "__next_preview_data=xyz"),
    ];
    for (n, header) in bypassing.iter().enumerate() {
        let r = get_with(edge.addr, "/b", &[*header]).await;
        assert_eq!(r.cache(), "BYPASS", "{header:?}");
        assert_eq!(
            r.text(),
            format!("v{}", n + 2),
            "{header:?} reaches the origin"
        );
    }
    // What they fetched was not stored over the public copy.
    let public = get(edge.addr, "/b").await;
    assert_eq!(public.cache(), "HIT");
    assert_eq!(public.text(), "v1");
    // A cookie whose name merely contains the draft name is not draft mode.
    let r = get_with(edge.addr, "/b", &[("cookie", "x__prerender_bypass=1")]).await;
    assert_eq!(r.cache(), "HIT");
}

#[tokio::test]
async fn partial_content_and_server_errors_are_never_stored() {
    let origin = Origin::start(|r| {
        let status = match r.path.as_str() {
            "/partial" => 206,
            "/error" => 500,
            "/unavailable" => 503,
            "/not-implemented" => 501,
            "/empty" => 204,
            _ => 200,
        };
        Reply::ok(format!("v{}", r.count))
            .cc("s-maxage=600")
            .status(status)
    })
    .await;
    let edge = Edge::start(&origin.url(), &["--stale-if-error", "0s"]).await;
    for path in [
        "/partial",
        "/error",
        "/unavailable",
        "/not-implemented",
        "/empty",
    ] {
        let first = get(edge.addr, path).await;
        let second = get(edge.addr, path).await;
        assert_ne!(second.cache(), "HIT", "{path}");
        assert_eq!(
            origin.count(path),
            2,
            "{path}: both requests reach the origin"
        );
        assert_eq!(first.status, second.status, "{path}");
    }
}

#[tokio::test]
async fn next_stale_answers_are_stored_as_already_stale() {
    let origin = Origin::start(|r| {
        let reply =
            Reply::ok(format!("v{}", r.count)).cc("s-maxage=600, stale-while-revalidate=600");
        if r.count == 1 {
            reply.header("x-nextjs-cache", "STALE")
        } else {
            reply.header("x-nextjs-cache", "HIT")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/n").await.cache(), "MISS");
    let second = get(edge.addr, "/n").await;
    assert_eq!(second.cache(), "STALE", "stored as stale, so refreshed now");
    assert_eq!(second.text(), "v1");
    assert!(eventually(Duration::from_secs(5), || origin.count("/n") == 2).await);
    // The refreshed copy (x-nextjs-cache: HIT) is fresh.
    let mut r = get(edge.addr, "/n").await;
    for _ in 0..50 {
        if r.cache() == "HIT" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        r = get(edge.addr, "/n").await;
    }
    assert_eq!(r.cache(), "HIT");
    // Normally "v2". Under load a request can look up the stale copy just before the refresh
    // lands and start one more refresh after its flight ended ("v3"): refreshed either way.
    assert_ne!(r.text(), "v1", "the refreshed copy is served");
}

/// Stores `/w` with `Cache-Control: cc` and `Age: age`, then tells whether the copy is still in
/// its stale-while-revalidate window (served STALE) or past it (the next request is a MISS).
async fn second_request_status(cc: &'static str, age: &'static str, args: &[&str]) -> String {
    let origin =
        Origin::start(move |r| Reply::ok(format!("v{}", r.count)).cc(cc).header("age", age)).await;
    let edge = Edge::start(&origin.url(), args).await;
    assert_eq!(get(edge.addr, "/w").await.cache(), "MISS");
    get(edge.addr, "/w").await.cache().to_string()
}

#[tokio::test]
async fn a_bare_stale_while_revalidate_gets_the_default_window() {
    // Age 100 s, fresh for 10 s: inside a one-hour default window, outside the 60 s one.
    let cc = "s-maxage=10, stale-while-revalidate";
    assert_eq!(
        second_request_status(cc, "100", &["--default-swr", "1h"]).await,
        "STALE"
    );
    assert_eq!(
        second_request_status(cc, "100", &["--default-swr", "60s"]).await,
        "MISS"
    );
}

#[tokio::test]
async fn a_one_year_window_is_capped_by_max_stale() {
    // Next.js 15 sends one year; an answer 2.3 days old is past a 24 h cap, inside a 100 h one.
    let cc = "s-maxage=10, stale-while-revalidate=31536000";
    assert_eq!(
        second_request_status(
            cc,
            "200000",
            &["--max-stale", "24h", "--stale-if-error", "0s"]
        )
        .await,
        "MISS"
    );
    assert_eq!(
        second_request_status(cc, "200000", &["--max-stale", "100h"]).await,
        "STALE"
    );
}

/// Next.js lists `RSC` and its router headers in `Vary`, not `Next-Url` (outside interception
/// routes), yet a payload is kept for the `Next-Url` it was made for, as if listed: its `Vary`
/// then differs from the HTML page's. Storing either kind dropped the other, so HTML visits
/// and client-side navigations to one URL took turns missing (and anyone could keep a page's
/// HTML out of the cache by asking for its payload): both stay side by side.
#[tokio::test]
async fn an_rsc_payload_kept_for_its_next_url_leaves_the_html_page_stored() {
    let origin = Origin::start(|r| {
        let rsc = r.headers.get("rsc").is_some_and(|v| v == "1");
        let reply = Reply::ok(format!("{} v{}", if rsc { "rsc" } else { "html" }, r.count))
            .cc("s-maxage=600")
            .header("vary", "RSC, Next-Router-State-Tree, Next-Router-Prefetch");
        typed(reply, rsc)
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let navigation: &[(&str, &str)] = &[("rsc", "1"), ("next-url", "/from")];
    assert_eq!(get(edge.addr, "/page").await.cache(), "MISS");
    assert_eq!(
        get_with(edge.addr, "/page", navigation).await.cache(),
        "MISS"
    );
    for round in 0..2 {
        let html = get(edge.addr, "/page").await;
        assert_eq!(
            (html.cache(), html.text().as_str()),
            ("HIT", "html v1"),
            "round {round}"
        );
        let rsc = get_with(edge.addr, "/page", navigation).await;
        assert_eq!(
            (rsc.cache(), rsc.text().as_str()),
            ("HIT", "rsc v2"),
            "round {round}"
        );
    }
    assert_eq!(origin.total(), 2);
}

/// A prefetch payload (the page up to its loading boundary) served to a navigation shows the
/// loading state for good, and a whole payload served to a segment prefetch cannot be read as
/// a segment. With an origin that forgot `Vary`, the RSC guard kept payloads from HTML
/// requests but not one kind of payload from another: each is kept for the prefetch headers
/// it was made for.
#[tokio::test]
async fn a_prefetch_payload_never_answers_a_navigation_even_without_vary() {
    let origin = Origin::start(|r| {
        let rsc = r.headers.get("rsc").is_some_and(|v| v == "1");
        let kind = if !rsc {
            "html"
        } else if r.headers.contains_key("next-router-segment-prefetch") {
            "segment"
        } else if r.headers.contains_key("next-router-prefetch") {
            "prefetch"
        } else {
            "full"
        };
        let reply = Reply::ok(kind).cc("s-maxage=600");
        typed(reply, rsc)
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let requests: [(&[(&str, &str)], &str); 4] = [
        (&[("rsc", "1"), ("next-router-prefetch", "1")], "prefetch"),
        (&[("rsc", "1")], "full"),
        (
            &[("rsc", "1"), ("next-router-segment-prefetch", "/_tree")],
            "segment",
        ),
        (&[], "html"),
    ];
    for round in 0..2 {
        for (headers, kind) in requests {
            let answer = get_with(edge.addr, "/page", headers).await;
            let cache = if round == 0 { "MISS" } else { "HIT" };
            assert_eq!(
                (answer.cache(), answer.text().as_str()),
                (cache, kind),
                "round {round}"
            );
        }
    }
    assert_eq!(origin.total(), 4);
}

/// `reply` typed as an RSC payload or as the HTML page.
fn typed(reply: Reply, rsc: bool) -> Reply {
    let content_type = if rsc {
        "text/x-component"
    } else {
        "text/html; charset=utf-8"
    };
    reply.header("content-type", content_type)
}
