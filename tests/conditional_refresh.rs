//! Conditional refresh: a stale or expired copy is refreshed with its validators, and a `304`
//! from the origin renews it (new fields, new lifetime, same body) instead of the page crossing
//! again. An answer that does not confirm the copy is followed by a plain GET.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::{eventually, get, get_with, metric, metrics_text, revalidate, Edge, Origin, Reply};

const ETAG: &str = "\"v1\"";
const LAST_MODIFIED: &str = "Sat, 21 Nov 2026 10:00:00 GMT";

/// The page the origin renders: one validator pair, a short freshness and a tag.
fn page(cache_control: &str) -> Reply {
    Reply::ok("the page")
        .cc(cache_control)
        .header("etag", ETAG)
        .header("last-modified", LAST_MODIFIED)
        .header("x-next-cache-tags", "products")
        .header("x-rendered", "first")
}

fn asked_conditionally(seen: &support::Seen) -> bool {
    seen.headers.get("if-none-match").is_some_and(|v| v == ETAG)
        && seen
            .headers
            .get("if-modified-since")
            .is_some_and(|v| v == LAST_MODIFIED)
}

#[tokio::test]
async fn a_stale_copy_confirmed_by_304_is_renewed_without_its_body() {
    let origin = Origin::start(|r| {
        if asked_conditionally(r) {
            Reply::ok("")
                .status(304)
                .cc("s-maxage=60")
                .header("etag", ETAG)
                .header("x-rendered", "confirmed")
        } else {
            page("s-maxage=1, stale-while-revalidate=60")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/p").await.cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = get(edge.addr, "/p").await;
    assert_eq!(
        (stale.cache(), stale.text().as_str()),
        ("STALE", "the page")
    );
    assert!(eventually(Duration::from_secs(5), || origin.count("/p") == 2).await);
    assert!(
        asked_conditionally(&origin.seen()[1]),
        "the refresh carries the copy's validators: {:?}",
        origin.seen()[1].headers
    );

    // Renewed: fresh for the 304's 60 s, with its fields, the stored body and ETag (the
    // background refresh may still be storing it).
    let mut hit = get(edge.addr, "/p").await;
    for _ in 0..50 {
        if hit.header("x-rendered") == "confirmed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        hit = get(edge.addr, "/p").await;
    }
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(hit.text(), "the page");
    assert_eq!(hit.header("x-rendered"), "confirmed");
    assert_eq!(hit.header("etag"), ETAG);
    assert_eq!(hit.header("content-length"), "8");
    assert!(
        !hit.header("cache-control").contains("s-maxage"),
        "the 304's Cache-Control is rewritten for browsers like a page's: {}",
        hit.header("cache-control")
    );
    assert!(hit.headers.get("x-next-cache-tags").is_none());
    assert_eq!(origin.count("/p"), 2);
    let metrics = metrics_text(&edge).await;
    assert_eq!(
        metric(&metrics, "isr_edge_origin_not_modified_total"),
        Some(1.0),
        "{metrics}"
    );

    // The renewed copy keeps the tags the 304 did not repeat.
    assert_eq!(
        revalidate(
            edge.addr,
            json!({"secret": support::SECRET, "tags": ["products"]})
        )
        .await
        .status,
        200
    );
    assert_eq!(get(edge.addr, "/p").await.cache(), "MISS");
}

#[tokio::test]
async fn an_expired_copy_confirmed_by_304_is_served_and_stored() {
    let origin = Origin::start(|r| {
        if asked_conditionally(r) {
            Reply::ok("").status(304).cc("s-maxage=60")
        } else {
            page("s-maxage=1")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/p").await.cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refreshed = get(edge.addr, "/p").await;
    assert_eq!(refreshed.status, 200);
    assert_eq!(refreshed.text(), "the page");
    assert_eq!(refreshed.cache(), "MISS");
    assert!(
        refreshed
            .header("cache-status")
            .contains("fwd=stale; fwd-status=304; stored"),
        "{}",
        refreshed.header("cache-status")
    );
    assert!(asked_conditionally(&origin.seen()[1]));
    let hit = get(edge.addr, "/p").await;
    assert_eq!((hit.cache(), hit.text().as_str()), ("HIT", "the page"));
    assert_eq!(origin.count("/p"), 2);

    // A browser's own condition is still answered from the renewed copy.
    let browser = get_with(edge.addr, "/p", &[("if-none-match", ETAG)]).await;
    assert_eq!((browser.status, browser.cache()), (304, "HIT"));
}

/// A `304` that does not confirm the copy (another `ETag`, a `Vary` naming more than the
/// copy's), or no longer lets it be stored (`Set-Cookie`), is followed by a plain GET, whose
/// answer decides.
#[tokio::test]
async fn a_304_that_does_not_confirm_the_copy_is_followed_by_a_full_fetch() {
    let origin = Origin::start(|r| {
        let conditional = r.headers.contains_key("if-none-match");
        match (r.path.as_str(), conditional) {
            ("/moved-on", true) => Reply::ok("").status(304).header("etag", "\"v2\""),
            ("/cookie", true) => Reply::ok("")
                .status(304)
                .header("set-cookie", "session=abc"),
            // The origin now tells apart requests the copy answered alike.
            ("/varies-now", true) => Reply::ok("").status(304).header("vary", "accept-language"),
            (_, _) if r.count == 1 => page("s-maxage=1"),
            (_, _) => Reply::ok("the new page")
                .cc("s-maxage=60")
                .header("etag", "\"v2\""),
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let paths = ["/moved-on", "/cookie", "/varies-now"];
    for path in paths {
        assert_eq!(get(edge.addr, path).await.cache(), "MISS");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for path in paths {
        let refreshed = get(edge.addr, path).await;
        assert_eq!(
            (refreshed.status, refreshed.text().as_str()),
            (200, "the new page"),
            "{path}"
        );
        assert!(refreshed.headers.get("set-cookie").is_none(), "{path}");
        assert_eq!(origin.count(path), 3, "{path}");
        let seen: Vec<_> = origin
            .seen()
            .into_iter()
            .filter(|s| s.path == path)
            .collect();
        assert!(asked_conditionally(&seen[1]), "{path}");
        assert!(
            !seen[2].headers.contains_key("if-none-match"),
            "{path}: the second ask is plain"
        );
        assert_eq!(get(edge.addr, path).await.text(), "the new page", "{path}");
    }
    let metrics = metrics_text(&edge).await;
    assert_eq!(
        metric(&metrics, "isr_edge_origin_not_modified_total"),
        Some(0.0)
    );
}

/// Only the origin's own validators are sent: the `ETag` the proxy makes from a body means
/// nothing to the origin. A request with credentials refreshes without conditions, as a 304
/// without `Cache-Control` would renew a copy without the `public` its answer needs.
#[tokio::test]
async fn only_the_origins_own_validators_are_sent() {
    let origin = Origin::start(|r| match r.path.as_str() {
        "/no-validators" => Reply::ok("plain").cc("s-maxage=1"),
        _ => page("s-maxage=1, public"),
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert!(!get(edge.addr, "/no-validators")
        .await
        .header("etag")
        .is_empty());
    get(edge.addr, "/with-credentials").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    get(edge.addr, "/no-validators").await;
    get_with(
        edge.addr,
        "/with-credentials",
        &[("authorization", "Bearer x")],
    )
    .await;
    let seen = origin.seen();
    assert_eq!(seen.len(), 4);
    for request in &seen[2..] {
        assert!(
            !request.headers.contains_key("if-none-match")
                && !request.headers.contains_key("if-modified-since"),
            "{}: {:?}",
            request.path,
            request.headers
        );
    }
}

/// A variant is renewed as itself: the gzip page confirmed by a 304 does not replace the
/// identity page stored beside it, and keeps the `Vary` it was stored under.
#[tokio::test]
async fn a_confirmed_variant_keeps_its_siblings() {
    let origin = Origin::start(|r| {
        let gzip = r.accepts_gzip();
        let etag = if gzip { "\"gz\"" } else { "\"id\"" };
        if r.headers.get("if-none-match").is_some_and(|v| v == etag) {
            // As Next.js does: its compression adds `Accept-Encoding` to `Vary` only for
            // answers with a body.
            return Reply::ok("")
                .status(304)
                .cc("s-maxage=60")
                .header("etag", etag)
                .header("vary", "rsc");
        }
        Reply::ok(if gzip { "gzip body" } else { "plain body" })
            .cc("s-maxage=1")
            .header("etag", etag)
            .header("vary", "rsc, accept-encoding")
            .gzipped_if(gzip)
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let gzip = [("accept-encoding", "gzip")];
    assert_eq!(get(edge.addr, "/v").await.text(), "plain body");
    assert_eq!(get_with(edge.addr, "/v", &gzip).await.text(), "gzip body");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let renewed = get_with(edge.addr, "/v", &gzip).await;
    assert_eq!(renewed.text(), "gzip body");
    assert_eq!(renewed.header("content-encoding"), "gzip");
    assert_eq!(renewed.header("vary"), "rsc, accept-encoding");
    assert_eq!(origin.count("/v"), 3);
    let gzip_hit = get_with(edge.addr, "/v", &gzip).await;
    assert_eq!(
        (gzip_hit.cache(), gzip_hit.text().as_str()),
        ("HIT", "gzip body")
    );
    // The identity page is still there (expired, so refreshed by its own 304), not replaced.
    let plain = get(edge.addr, "/v").await;
    assert_eq!(plain.text(), "plain body");
    assert!(plain.headers.get("content-encoding").is_none());
    assert_eq!(origin.count("/v"), 4);
    let metrics = metrics_text(&edge).await;
    assert_eq!(
        metric(&metrics, "isr_edge_origin_not_modified_total"),
        Some(2.0)
    );
}

/// nginx's gzip weakens the ETag of what it compresses (`W/"v1"`) but answers a conditional
/// request's 304 with the origin's strong one (`"v1"`): the 304 confirms the copy (weak
/// comparison), and the renewed copy keeps its weak tag. Made strong, the gzipped bytes and
/// the plain ones would share one strong validator, which `If-Range` trusts to splice ranges.
#[tokio::test]
async fn a_304_does_not_make_a_weak_etag_strong() {
    let origin = Origin::start(|r| {
        if r.headers.get("if-none-match").is_some() {
            return Reply::ok("")
                .status(304)
                .cc("s-maxage=60")
                .header("etag", "\"v1\"");
        }
        Reply::ok("gzip body")
            .cc("s-maxage=1")
            .header("etag", "W/\"v1\"")
            .header("vary", "accept-encoding")
            .gzipped_if(true)
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let gzip = [("accept-encoding", "gzip")];
    assert_eq!(
        get_with(edge.addr, "/w", &gzip).await.header("etag"),
        "W/\"v1\""
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let renewed = get_with(edge.addr, "/w", &gzip).await;
    assert_eq!(renewed.text(), "gzip body");
    assert_eq!(origin.count("/w"), 2, "renewed by the 304");
    let hit = get_with(edge.addr, "/w", &gzip).await;
    assert_eq!(
        (hit.cache(), hit.header("etag")),
        ("HIT", "W/\"v1\""),
        "the renewed copy keeps its weak tag"
    );
}

/// A copy purged while its conditional refresh was on its way is not renewed by the 304: a
/// validator (weak, or a `Last-Modified` to the second) can confirm what the purge said had
/// changed. Here the request that found it waited behind another variant's fetch, and asked
/// on its own after the purge.
#[tokio::test]
async fn a_copy_purged_during_its_refresh_is_not_renewed() {
    let purged = Arc::new(AtomicBool::new(false));
    let origin = Origin::start({
        let purged = purged.clone();
        move |r| {
            let language = r
                .headers
                .get("accept-language")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_string();
            let version = if purged.load(Ordering::SeqCst) {
                "v2"
            } else {
                "v1"
            };
            let etag = format!("\"v1-{language}\"");
            if r.headers
                .get("if-none-match")
                .is_some_and(|v| v == etag.as_str())
            {
                // The validator still matches: the origin has not re-rendered yet.
                let reply = Reply::ok("").status(304).header("etag", &etag);
                return if language == "en" {
                    reply.delay(Duration::from_millis(600))
                } else {
                    reply
                };
            }
            Reply::ok(format!("{version}-{language}"))
                .cc("s-maxage=1")
                .header("vary", "accept-language")
                .header("etag", &format!("\"{version}-{language}\""))
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    const EN: [(&str, &str); 1] = [("accept-language", "en")];
    const FR: [(&str, &str); 1] = [("accept-language", "fr")];
    let (en, fr) = (EN, FR);
    assert_eq!(get_with(edge.addr, "/p", &en).await.text(), "v1-en");
    assert_eq!(get_with(edge.addr, "/p", &fr).await.text(), "v1-fr");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let leader = tokio::spawn(get_with(edge.addr, "/p", &EN));
    assert!(eventually(Duration::from_secs(5), || origin.count("/p") == 3).await);
    let follower = tokio::spawn(get_with(edge.addr, "/p", &FR));
    let mut joined = false;
    for _ in 0..100 {
        let metrics = metrics_text(&edge).await;
        if metric(&metrics, "isr_edge_coalesced_waits_total") == Some(1.0) {
            joined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(joined, "the fr request waits behind the en fetch");
    purged.store(true, Ordering::SeqCst);
    let purge = revalidate(
        edge.addr,
        json!({"secret": support::SECRET, "paths": ["/p"]}),
    )
    .await;
    assert_eq!(purge.status, 200, "{}", purge.text());

    assert_eq!(leader.await.expect("leader").text(), "v2-en");
    assert_eq!(follower.await.expect("follower").text(), "v2-fr");
    let again = get_with(edge.addr, "/p", &fr).await;
    assert_eq!((again.cache(), again.text().as_str()), ("HIT", "v2-fr"));
}

/// A 304 need not repeat `CDN-Cache-Control`: its `Cache-Control` alone must not set the
/// lifetime `CDN-Cache-Control` set (RFC 9213), so the copy stays fresh for 1 s, not 600.
#[tokio::test]
async fn a_304_does_not_override_cdn_cache_control_with_cache_control() {
    let origin = Origin::start(|r| {
        if r.headers.contains_key("if-none-match") {
            Reply::ok("")
                .status(304)
                .cc("max-age=600")
                .header("etag", ETAG)
        } else {
            Reply::ok("the page")
                .cc("max-age=600")
                .header("cdn-cache-control", "max-age=1")
                .header("etag", ETAG)
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/p").await.cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let renewed = get(edge.addr, "/p").await;
    assert_eq!(renewed.text(), "the page");
    assert_eq!(origin.count("/p"), 2);
    let status = renewed.header("cache-status").to_string();
    assert!(
        status.contains("ttl=1") || status.contains("ttl=0"),
        "{status}"
    );
    assert_eq!(renewed.header("cache-control"), "max-age=600");
}

/// An origin that sends `Last-Modified` and no `ETag` is asked with `If-Modified-Since`
/// alone at every refresh, not only the first: the `ETag` made here from the body is never
/// sent, renewed copies included (it would win over `If-Modified-Since` and fail).
#[tokio::test]
async fn a_last_modified_copy_stays_renewable() {
    let origin = Origin::start(|r| {
        if r.headers.contains_key("if-none-match") {
            Reply::ok("rendered again").cc("s-maxage=1")
        } else if r.headers.contains_key("if-modified-since") {
            Reply::ok("").status(304).cc("s-maxage=1")
        } else {
            Reply::ok("the page")
                .cc("s-maxage=1")
                .header("last-modified", LAST_MODIFIED)
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let first = get(edge.addr, "/p").await;
    assert!(!first.header("etag").is_empty());
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let renewed = get(edge.addr, "/p").await;
        assert_eq!(renewed.text(), "the page");
        assert_eq!(renewed.header("etag"), first.header("etag"));
    }
    let seen = origin.seen();
    assert_eq!(seen.len(), 3);
    for request in &seen[1..] {
        assert!(
            request.headers.contains_key("if-modified-since")
                && !request.headers.contains_key("if-none-match"),
            "{:?}",
            request.headers
        );
    }
}

/// A copy made fresh by `Expires` alone stays bound to that time when a 304 leaves `Expires`
/// out (RFC 9111 section 4.3.4): past it, every request asks again. A 304 naming a new
/// `Expires` renews it until then.
#[tokio::test]
async fn a_304_without_expires_keeps_the_stored_expiry() {
    let new_expires = Arc::new(AtomicBool::new(false));
    let said = new_expires.clone();
    let origin = Origin::start(move |r| {
        let in_secs = |secs| {
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(secs))
        };
        if !asked_conditionally(r) {
            return Reply::ok("the page")
                .header("expires", &in_secs(1))
                .header("etag", ETAG)
                .header("last-modified", LAST_MODIFIED);
        }
        let not_modified = Reply::ok("").status(304);
        if said.load(Ordering::SeqCst) {
            not_modified.header("expires", &in_secs(60))
        } else {
            not_modified
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/p").await.cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for asked in 2..=3 {
        let renewed = get(edge.addr, "/p").await;
        assert_eq!((renewed.status, renewed.text().as_str()), (200, "the page"));
        assert!(
            renewed.header("cache-status").contains("fwd-status=304"),
            "request {asked}: {}",
            renewed.header("cache-status")
        );
        assert_eq!(origin.count("/p"), asked);
    }

    new_expires.store(true, Ordering::SeqCst);
    let renewed = get(edge.addr, "/p").await;
    assert!(renewed.header("cache-status").contains("fwd-status=304"));
    assert_eq!(get(edge.addr, "/p").await.cache(), "HIT");
    assert_eq!(origin.count("/p"), 4);
}

/// Requests coalesced behind a conditional refresh all get the renewed copy from one 304; a
/// 304 without `Cache-Control` keeps the stored lifetime (1 s here, not a default).
#[tokio::test]
async fn waiters_share_one_304_and_a_bare_304_keeps_the_lifetime() {
    let origin = Origin::start(|r| {
        if asked_conditionally(r) {
            Reply::ok("").status(304).delay(Duration::from_millis(300))
        } else {
            page("s-maxage=1")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    get(edge.addr, "/p").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let waiting: Vec<_> = (0..20)
        .map(|_| tokio::spawn(get(edge.addr, "/p")))
        .collect();
    for request in waiting {
        let answer = request.await.expect("request");
        assert_eq!((answer.status, answer.text().as_str()), (200, "the page"));
        // Every waiter was answered by the one 304, and says so.
        assert!(
            answer.header("cache-status").contains("fwd-status=304"),
            "{}",
            answer.header("cache-status")
        );
    }
    assert_eq!(origin.count("/p"), 2);
    let status = get(edge.addr, "/p")
        .await
        .header("cache-status")
        .to_string();
    assert!(
        status.starts_with("isr-edge; hit")
            && (status.contains("ttl=1") || status.contains("ttl=0")),
        "{status}"
    );
}

/// A soft purge marks the copy stale; the origin's 304 confirms it is still current, and it
/// is fresh again. A 304 saying `x-nextjs-cache: STALE` (Next served its own stale copy) is
/// stored as already stale, like such a 200, so the next request refreshes it again.
#[tokio::test]
async fn a_soft_purged_copy_is_renewed_and_a_next_stale_304_is_stored_stale() {
    let origin = Origin::start(|r| {
        if !asked_conditionally(r) {
            return page("s-maxage=600, stale-while-revalidate=600");
        }
        let reply = Reply::ok("")
            .status(304)
            .cc("s-maxage=600, stale-while-revalidate=600");
        if r.path == "/next-stale" && r.count == 2 {
            reply.header("x-nextjs-cache", "STALE")
        } else {
            reply
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for path in ["/soft", "/next-stale"] {
        get(edge.addr, path).await;
        let purge = revalidate(
            edge.addr,
            json!({"secret": support::SECRET, "paths": [path], "mode": "soft"}),
        )
        .await;
        assert_eq!(purge.status, 200, "{}", purge.text());
        assert_eq!(get(edge.addr, path).await.cache(), "STALE", "{path}");
        assert!(eventually(Duration::from_secs(5), || origin.count(path) == 2).await);
    }
    let mut soft = get(edge.addr, "/soft").await;
    for _ in 0..50 {
        if soft.cache() == "HIT" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        soft = get(edge.addr, "/soft").await;
    }
    assert_eq!((soft.cache(), soft.text().as_str()), ("HIT", "the page"));
    assert_eq!(origin.count("/soft"), 2);
    // Stored stale: served at once and refreshed again (the third origin request).
    // (Until the third request reaches the origin: its 304 makes the copy fresh.)
    for _ in 0..100 {
        if origin.count("/next-stale") == 3 {
            break;
        }
        assert_eq!(get(edge.addr, "/next-stale").await.cache(), "STALE");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(origin.count("/next-stale"), 3);
}

/// `--conditional-refresh off`, for an origin whose 304s cannot be trusted: refreshes ask for
/// the whole page.
#[tokio::test]
async fn conditional_refresh_can_be_turned_off() {
    let origin = Origin::start(|_| page("s-maxage=1")).await;
    let edge = Edge::start(&origin.url(), &["--conditional-refresh", "off"]).await;
    get(edge.addr, "/p").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(edge.addr, "/p").await.text(), "the page");
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        !seen[1].headers.contains_key("if-none-match")
            && !seen[1].headers.contains_key("if-modified-since"),
        "{:?}",
        seen[1].headers
    );
}
