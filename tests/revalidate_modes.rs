//! What the next visitor gets after a revalidation: `hard` (the default: evicted, the next request
//! waits for the origin), `soft` / `profile: "max"` (the old copy at once, marked STALE, while
//! exactly one background request refreshes it), and `warm` (re-fetched in the background, so the
//! next request is a HIT with the new body).

mod support;

use std::time::Duration;

use serde_json::json;
use support::{eventually, get, get_with, revalidate, Edge, Origin, Reply, SECRET};

/// Renders `v<n>`; renders after the first are slowed down, so a refresh is still running while
/// the test sends its next requests.
async fn origin(slow: Duration) -> Origin {
    Origin::start(move |r| {
        let reply = Reply::ok(format!("v{}", r.count)).cc("s-maxage=600");
        if r.count > 1 {
            reply.delay(slow)
        } else {
            reply
        }
    })
    .await
}

async fn store(edge: &Edge, path: &str) {
    assert_eq!(get(edge.addr, path).await.text(), "v1");
    assert_eq!(get(edge.addr, path).await.cache(), "HIT");
}

#[tokio::test]
async fn hard_mode_makes_the_next_request_wait_for_the_new_body() {
    let origin = origin(Duration::from_millis(100)).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    store(&edge, "/h").await;
    let a = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/h"], "mode": "hard"}),
    )
    .await
    .json();
    assert_eq!(a["mode"], "hard");
    assert_eq!(a["evicted"], 1);
    let next = get(edge.addr, "/h").await;
    assert_eq!(next.cache(), "MISS");
    assert_eq!(next.text(), "v2");
    assert_eq!(get(edge.addr, "/h").await.cache(), "HIT");
    assert_eq!(origin.count("/h"), 2);
}

async fn soft_purge_serves_old_then_new(body: serde_json::Value) {
    let origin = origin(Duration::from_millis(300)).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    store(&edge, "/s").await;
    store(&edge, "/s?variant=2").await;
    let a = revalidate(edge.addr, body.clone()).await.json();
    assert_eq!(a["mode"], "soft", "{body}");
    assert_eq!(a["evicted"], 2, "{body}");

    // While the one refresh runs, every request gets the old copy at once.
    for _ in 0..3 {
        let r = get(edge.addr, "/s").await;
        assert_eq!(r.cache(), "STALE", "{body}");
        assert_eq!(r.text(), "v1");
    }
    assert!(eventually(Duration::from_secs(5), || origin.count("/s") == 2).await);
    let mut fresh = get(edge.addr, "/s").await;
    for _ in 0..50 {
        if fresh.cache() == "HIT" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        fresh = get(edge.addr, "/s").await;
    }
    assert_eq!(fresh.cache(), "HIT", "{body}");
    assert_eq!(fresh.text(), "v2");
    assert_eq!(origin.count("/s"), 2, "exactly one background refresh");
    // The other URL was marked too and refreshes on its own first request.
    let other = get(edge.addr, "/s?variant=2").await;
    assert_eq!(other.cache(), "STALE");
    assert_eq!(other.text(), "v1");
}

#[tokio::test]
async fn soft_mode_serves_the_old_copy_once_then_the_refreshed_one() {
    soft_purge_serves_old_then_new(json!({"secret": SECRET, "paths": ["/s"], "mode": "soft"}))
        .await;
}

#[tokio::test]
async fn profile_max_is_soft_mode_in_next_vocabulary() {
    soft_purge_serves_old_then_new(json!({"secret": SECRET, "tag": "_N_T_/s", "profile": "max"}))
        .await;
}

#[tokio::test]
async fn a_soft_purge_does_not_revive_a_copy_kept_only_for_errors() {
    // Stale-while-revalidate is over (age 100 > 10 + 5), the copy is kept for stale-if-error only.
    let origin = Origin::start(|r| {
        Reply::ok(format!("v{}", r.count))
            .cc("s-maxage=10, stale-while-revalidate=5")
            .header("age", "100")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/e").await.text(), "v1");
    let a = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/e"], "mode": "soft"}),
    )
    .await
    .json();
    assert_eq!(a["evicted"], 1);
    let next = get(edge.addr, "/e").await;
    assert_eq!(next.cache(), "MISS", "an expired copy stays expired");
    assert_eq!(next.text(), "v2");
}

/// `must-revalidate` (and `proxy-revalidate`, its shared-cache form) forbids serving a copy
/// stale: after a soft purge the next request waits for the origin, revalidating with the
/// copy's validators, instead of getting the old page marked STALE.
#[tokio::test]
async fn a_soft_purge_does_not_serve_stale_what_must_be_revalidated() {
    for directive in ["must-revalidate", "proxy-revalidate"] {
        let origin = Origin::start(move |r| {
            Reply::ok(format!("v{}", r.count)).cc(&format!("s-maxage=600, {directive}"))
        })
        .await;
        let edge = Edge::start(&origin.url(), &[]).await;
        store(&edge, "/m").await;
        let a = revalidate(
            edge.addr,
            json!({"secret": SECRET, "paths": ["/m"], "mode": "soft"}),
        )
        .await
        .json();
        assert_eq!(
            (a["mode"].as_str(), a["evicted"].as_u64()),
            (Some("soft"), Some(1))
        );
        let next = get(edge.addr, "/m").await;
        assert_ne!(next.cache(), "STALE", "{directive}");
        assert_eq!(next.text(), "v2", "{directive}: the old copy was served");
        assert_eq!(get(edge.addr, "/m").await.cache(), "HIT", "{directive}");
        assert_eq!(origin.count("/m"), 2, "{directive}");
    }
}

#[tokio::test]
async fn warm_refetches_so_the_next_request_is_a_hit_with_the_new_body() {
    let origin = origin(Duration::ZERO).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    store(&edge, "/w").await;
    store(&edge, "/w?page=2").await;
    store(&edge, "/other").await;
    let a = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/w"], "warm": true}),
    )
    .await
    .json();
    assert_eq!(a["evicted"], 2);
    assert!(
        eventually(Duration::from_secs(5), || origin.count("/w") == 2
            && origin.count("/w?page=2") == 2)
        .await,
        "both URLs re-fetched"
    );
    for path in ["/w", "/w?page=2"] {
        let mut r = get(edge.addr, path).await;
        // The warm fetch may still be admitting; a request joining it shares its answer.
        for _ in 0..50 {
            if r.cache() == "HIT" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            r = get(edge.addr, path).await;
        }
        assert_eq!(r.cache(), "HIT", "{path}");
        assert_eq!(r.text(), "v2", "{path}");
        assert_eq!(origin.count(path), 2, "{path}: no second fetch");
    }
    assert_eq!(
        origin.count("/other"),
        1,
        "only the evicted URLs are warmed"
    );
}

#[tokio::test]
async fn warm_on_revalidate_flag_warms_every_hard_purge() {
    let origin = origin(Duration::ZERO).await;
    let edge = Edge::start(&origin.url(), &["--warm-on-revalidate"]).await;
    store(&edge, "/f").await;
    let a = revalidate(edge.addr, json!({"secret": SECRET, "paths": ["/f"]}))
        .await
        .json();
    assert_eq!(a["evicted"], 1);
    assert!(eventually(Duration::from_secs(5), || origin.count("/f") == 2).await);
    // Opting out per request.
    store(&edge, "/g").await;
    revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/g"], "warm": false}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(origin.count("/g"), 1);
    let r = get_with(edge.addr, "/g", &[]).await;
    assert_eq!(r.cache(), "MISS");
}

#[tokio::test]
async fn an_uncacheable_answer_does_not_void_concurrent_fetches_of_other_pages() {
    let origin = Origin::start(|r| match r.path.as_str() {
        "/private" => Reply::ok("mine").cc("private, no-store"),
        _ => Reply::ok(format!("v{}", r.count))
            .cc("s-maxage=600")
            .delay(Duration::from_millis(300)),
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let addr = edge.addr;
    let slow = tokio::spawn(async move { get(addr, "/slow").await });
    assert!(eventually(Duration::from_secs(5), || origin.count("/slow") == 1).await);
    // While /slow is being fetched, a private page passes through.
    assert_eq!(get(edge.addr, "/private").await.text(), "mine");
    assert_eq!(slow.await.expect("slow request").cache(), "MISS");
    let again = get(edge.addr, "/slow").await;
    assert_eq!(again.cache(), "HIT", "the slow page was stored");
    assert_eq!(origin.count("/slow"), 1);
}

/// Warming fetches every variant the purged URL had, with the request headers it was made
/// for: a browser's `br,gzip` page and a client-side navigation's RSC payload come back as HITs,
/// not only the plain page no browser asks for.
#[tokio::test]
async fn warm_refetches_each_variant_the_url_had() {
    let version = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let current = version.clone();
    let origin = Origin::start(move |r| {
        let v = current.load(std::sync::atomic::Ordering::Relaxed);
        let encoding = r
            .headers
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("identity")
            .to_string();
        if r.headers.contains_key("rsc") {
            return Reply::ok(format!("rsc v{v}"))
                .cc("s-maxage=600")
                .header("content-type", "text/x-component")
                .header("vary", "Accept-Encoding");
        }
        // No `RSC` in `Vary`, as some origins forget: the payload is told apart by its type.
        Reply::ok(format!("html {encoding} v{v}"))
            .cc("s-maxage=600")
            .header("vary", "Accept-Encoding")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let browser: &[(&str, &str)] = &[("accept-encoding", "gzip, deflate, br")];
    let navigation: &[(&str, &str)] = &[("rsc", "1"), ("accept-encoding", "gzip, deflate, br")];
    for headers in [browser, navigation, &[]] {
        assert_eq!(get_with(edge.addr, "/v", headers).await.cache(), "MISS");
    }
    version.store(2, std::sync::atomic::Ordering::Relaxed);
    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/v"], "warm": true}),
    )
    .await
    .json();
    assert_eq!(answer["evicted"], 3);
    assert!(
        eventually(Duration::from_secs(5), || origin.total() == 6).await,
        "three variants re-fetched, got {}",
        origin.total()
    );
    for (headers, body) in [
        (browser, "html br,gzip v2"),
        (navigation, "rsc v2"),
        (&[][..], "html identity v2"),
    ] {
        let mut r = get_with(edge.addr, "/v", headers).await;
        for _ in 0..50 {
            if r.cache() == "HIT" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            r = get_with(edge.addr, "/v", headers).await;
        }
        assert_eq!((r.cache(), r.text().as_str()), ("HIT", body), "{headers:?}");
    }
    assert_eq!(origin.total(), 6, "no visitor went to the origin");
}

/// Next.js 16 answers an RSC request whose `_rsc` does not match the hash of its router
/// headers, `Next-Url` included, with a 307, yet lists no `Next-Url` in `Vary`. A client-side
/// navigation (which sends `Next-Url`) is re-warmed with the `Next-Url` it was made for, so
/// the next navigation is a HIT, not a miss behind a warming fetch Next refused.
#[tokio::test]
async fn warm_refetches_a_navigation_with_its_next_url() {
    let version = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let current = version.clone();
    let origin = Origin::start(move |r| {
        let v = current.load(std::sync::atomic::Ordering::Relaxed);
        let Some(next_url) = r.headers.get("next-url").and_then(|v| v.to_str().ok()) else {
            return Reply::ok("").status(307).header("location", "/n?_rsc");
        };
        Reply::ok(format!("rsc v{v} from {next_url}"))
            .cc("s-maxage=600")
            .header("content-type", "text/x-component")
            .header(
                "vary",
                "rsc, next-router-state-tree, next-router-prefetch, next-router-segment-prefetch, Accept-Encoding",
            )
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let navigation: &[(&str, &str)] = &[("rsc", "1"), ("next-url", "/links")];
    let first = get_with(edge.addr, "/n?_rsc=h1", navigation).await;
    assert_eq!(
        (first.cache(), first.text().as_str()),
        ("MISS", "rsc v1 from /links")
    );
    version.store(2, std::sync::atomic::Ordering::Relaxed);
    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/n"], "warm": true}),
    )
    .await
    .json();
    assert_eq!(answer["evicted"], 1);
    assert!(
        eventually(Duration::from_secs(5), || origin.total() == 2).await,
        "the navigation re-fetched"
    );
    let mut r = get_with(edge.addr, "/n?_rsc=h1", navigation).await;
    for _ in 0..50 {
        if r.cache() == "HIT" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        r = get_with(edge.addr, "/n?_rsc=h1", navigation).await;
    }
    assert_eq!(
        (r.cache(), r.text().as_str()),
        ("HIT", "rsc v2 from /links")
    );
    assert_eq!(origin.total(), 2, "no visitor went to the origin");
}

/// Warming is bounded for the whole process, not per purge: several purges warming at once
/// (a deploy script purging tag after tag) never have more than 8 renders running on the
/// origin between them. Each purge used to get 8 of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_warm_purges_share_one_bound_on_origin_fetches() {
    const PURGES: usize = 6;
    const PAGES: usize = 10;
    let origin = origin(Duration::from_millis(300)).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let paths: Vec<Vec<String>> = (0..PURGES)
        .map(|purge| (0..PAGES).map(|page| format!("/w{purge}/{page}")).collect())
        .collect();
    for path in paths.iter().flatten() {
        assert_eq!(get(edge.addr, path).await.text(), "v1");
    }
    let purges: Vec<_> = paths
        .iter()
        .map(|paths| {
            let (addr, paths) = (edge.addr, paths.clone());
            tokio::spawn(async move {
                revalidate(
                    addr,
                    json!({"secret": SECRET, "paths": paths, "warm": true}),
                )
                .await
            })
        })
        .collect();
    for purge in purges {
        let answer = purge.await.expect("purge task");
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.json()["evicted"], PAGES);
    }
    let all: Vec<String> = paths.into_iter().flatten().collect();
    assert!(
        eventually(Duration::from_secs(60), || all
            .iter()
            .all(|path| origin.count(path) == 2))
        .await,
        "every purged page was warmed once"
    );
    let max = origin.max_in_flight();
    assert!(max <= 8, "{max} origin renders ran at once");
}

/// An origin compressing without `Vary: Accept-Encoding` (nginx's `gzip on` alone) has its
/// gzipped and its plain copy kept side by side, each for its encoding; warming both after a
/// purge must leave both stored, whichever was stored last before it: the plain copy fetched
/// first must not be stored for every client, then pushed out by the gzipped one.
#[tokio::test]
async fn warm_keeps_both_encodings_of_an_origin_that_compresses_without_vary() {
    let version = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let current = version.clone();
    let origin = Origin::start(move |r| {
        let v = current.load(std::sync::atomic::Ordering::Relaxed);
        let gzip = r.accepts_gzip();
        let kind = if gzip { "gzipped" } else { "plain" };
        Reply::ok(format!("{kind} v{v}"))
            .cc("s-maxage=600")
            .gzipped_if(gzip)
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let browser: &[(&str, &str)] = &[("accept-encoding", "gzip, deflate, br")];
    assert_eq!(get_with(edge.addr, "/z", browser).await.cache(), "MISS");
    assert_eq!(get(edge.addr, "/z").await.cache(), "MISS");
    // The gzipped copy refreshed after a soft purge: now the last one stored.
    let soft = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/z"], "mode": "soft"}),
    )
    .await;
    assert_eq!(soft.status, 200, "{}", soft.text());
    assert_eq!(get_with(edge.addr, "/z", browser).await.cache(), "STALE");
    assert!(
        eventually(Duration::from_secs(5), || origin.total() == 3).await,
        "the gzipped copy refreshed"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    version.store(2, std::sync::atomic::Ordering::Relaxed);
    let answer = revalidate(
        edge.addr,
        json!({"secret": SECRET, "paths": ["/z"], "warm": true}),
    )
    .await
    .json();
    assert_eq!(answer["evicted"], 2, "{answer}");
    assert!(
        eventually(Duration::from_secs(5), || origin.total() == 5).await,
        "both copies re-fetched, got {}",
        origin.total()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (headers, body) in [(browser, "gzipped v2"), (&[][..], "plain v2")] {
        let r = get_with(edge.addr, "/z", headers).await;
        assert_eq!((r.cache(), r.text().as_str()), ("HIT", body), "{headers:?}");
    }
    assert_eq!(origin.total(), 5, "no visitor went to the origin");
}
