//! ISR freshness over real time: expiry, stale-while-revalidate with exactly one background
//! refresh, stale-if-error, and a purge beating a fetch that was already running.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::{eventually, get, revalidate, Edge, Origin, Reply};

#[tokio::test]
async fn expired_entries_wait_for_the_origin() {
    let origin = Origin::start(|r| Reply::ok(format!("v{}", r.count)).cc("s-maxage=1")).await;
    let edge = Edge::start(&origin.url(), &["--stale-if-error", "0"]).await;
    assert_eq!(get(edge.addr, "/x").await.text(), "v1");
    assert_eq!(get(edge.addr, "/x").await.cache(), "HIT");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = get(edge.addr, "/x").await;
    assert_eq!((after.cache(), after.text().as_str()), ("MISS", "v2"));
    assert_eq!(origin.count("/x"), 2);
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let origin = Origin::start(|r| {
        let reply = Reply::ok(format!("v{}", r.count)).cc("s-maxage=1, stale-while-revalidate=60");
        // The refresh is slow, so every concurrent request below overlaps it.
        if r.count > 1 {
            reply.delay(Duration::from_millis(300))
        } else {
            reply
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/s").await.text(), "v1");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let mut stale = Vec::new();
    for _ in 0..20 {
        let addr = edge.addr;
        stale.push(tokio::spawn(async move { get(addr, "/s").await }));
    }
    for client in stale {
        let response = client.await.expect("client");
        assert_eq!(
            (response.cache(), response.text().as_str()),
            ("STALE", "v1")
        );
        assert!(response.header("cache-status").contains("fwd=stale"));
    }
    assert!(eventually(Duration::from_secs(5), || origin.count("/s") == 2).await);
    // Once the refresh is admitted, the next request is a fresh HIT with the new body.
    let mut refreshed = None;
    for _ in 0..100 {
        let response = get(edge.addr, "/s").await;
        if response.cache() == "HIT" {
            refreshed = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(refreshed.expect("refresh admitted").text(), "v2");
    assert_eq!(origin.count("/s"), 2, "exactly one background refresh");
}

#[tokio::test]
async fn stale_if_error_serves_the_last_good_copy() {
    let failing = Arc::new(AtomicBool::new(false));
    let flag = failing.clone();
    let origin = Origin::start(move |r| {
        if flag.load(Ordering::SeqCst) {
            Reply::ok("boom").status(503)
        } else {
            Reply::ok(format!("good {}", r.count)).cc("s-maxage=1")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/e").await.text(), "good 1");
    failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let during = get(edge.addr, "/e").await;
    assert_eq!(during.status, 200);
    assert_eq!(
        (during.cache(), during.text().as_str()),
        ("STALE", "good 1")
    );
    assert!(during.header("cache-status").contains("stale-if-error"));
    // A page never stored gets the origin's own error.
    let fresh_miss = get(edge.addr, "/never").await;
    assert_eq!(
        (fresh_miss.status, fresh_miss.text().as_str()),
        (503, "boom")
    );
    failing.store(false, Ordering::SeqCst);
    let recovered = get(edge.addr, "/e").await;
    assert_eq!(
        (recovered.cache(), recovered.text().as_str()),
        ("MISS", "good 3")
    );
}

#[tokio::test]
async fn stale_if_error_covers_a_dead_origin() {
    let mut origin =
        Origin::start(|_| Reply::ok("kept").cc("s-maxage=1, stale-if-error=300")).await;
    let edge = Edge::start(&origin.url(), &["--origin-timeout", "1s"]).await;
    get(edge.addr, "/d").await;
    origin.stop();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = get(edge.addr, "/d").await;
    assert_eq!((response.status, response.text().as_str()), (200, "kept"));
    assert_eq!(response.cache(), "STALE");
    let missing = get(edge.addr, "/other").await;
    assert_eq!(missing.status, 502);
    assert!(
        missing.text().contains("origin unreachable"),
        "{}",
        missing.text()
    );
}

/// A copy purged while its request waited for the origin is not that request's fallback when
/// the origin then fails: once the purge has answered, the purged page is served to no one (a
/// takedown must not leak out through an origin outage).
#[tokio::test]
async fn a_copy_purged_while_the_origin_was_asked_is_not_served_when_it_fails() {
    let failing = Arc::new(AtomicBool::new(false));
    let flag = failing.clone();
    let origin = Origin::start(move |r| {
        if flag.load(Ordering::SeqCst) {
            Reply::ok("boom")
                .status(503)
                .delay(Duration::from_millis(600))
        } else {
            Reply::ok(format!("old {}", r.count)).cc("s-maxage=1, stale-if-error=300")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/taken-down").await.text(), "old 1");
    failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let addr = edge.addr;
    let waiting = tokio::spawn(async move { get(addr, "/taken-down").await });
    assert!(eventually(Duration::from_secs(2), || origin.count("/taken-down") == 2).await);
    let purged = revalidate(
        edge.addr,
        json!({"secret": support::SECRET, "paths": ["/taken-down"]}),
    )
    .await;
    assert_eq!(purged.status, 200);
    let answer = waiting.await.expect("client");
    assert_ne!(answer.text(), "old 1", "{:?}", answer.headers);
    assert!(answer.status >= 500, "{}", answer.status);
}

#[tokio::test]
async fn origin_timeout_gives_504() {
    let origin = Origin::start(|_| {
        Reply::ok("late")
            .cc("s-maxage=60")
            .delay(Duration::from_secs(3))
    })
    .await;
    let edge = Edge::start(&origin.url(), &["--origin-timeout", "300ms"]).await;
    let response = get(edge.addr, "/slow").await;
    assert_eq!(response.status, 504);
    assert!(
        response.text().contains("did not answer"),
        "{}",
        response.text()
    );
}

#[tokio::test]
async fn a_purge_beats_a_fetch_already_running() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("v{}", r.count))
            .cc("s-maxage=60")
            .delay(Duration::from_millis(if r.count == 1 { 600 } else { 0 }))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let addr = edge.addr;
    let slow = tokio::spawn(async move { get(addr, "/race").await });
    assert!(eventually(Duration::from_secs(2), || origin.count("/race") == 1).await);
    // The page changes while the old render is in flight.
    let answer = revalidate(
        edge.addr,
        json!({"secret": support::SECRET, "paths": ["/race"]}),
    )
    .await;
    assert_eq!(answer.status, 200);
    // A request after the purge does not join the fetch that started before it.
    let after_purge = get(edge.addr, "/race").await;
    assert_eq!(after_purge.text(), "v2");
    let first = slow.await.expect("slow client");
    assert_eq!(
        first.text(),
        "v1",
        "the request that started before the purge still gets its answer"
    );
    assert!(
        !first.header("cache-status").contains("stored"),
        "but it is not stored as fresh"
    );
    let next = get(edge.addr, "/race").await;
    assert_eq!((next.cache(), next.text().as_str()), ("HIT", "v2"));
    assert_eq!(origin.count("/race"), 2);
}

/// Purges of other URLs while a fetch runs (a form posted elsewhere, a revalidation of another
/// page or of a tag the page does not carry) neither stop it from being stored nor split the
/// requests waiting for it into more origin fetches. A purge of a tag it carries does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_of_other_urls_do_not_spoil_a_fetch_in_flight() {
    let origin = Origin::start(|r| {
        let slow = r.path.starts_with("/slow");
        Reply::ok(format!("{} #{}", r.path, r.count))
            .cc("s-maxage=60")
            .header("x-next-cache-tags", if slow { "slow-tag" } else { "other" })
            .delay(Duration::from_millis(if slow { 500 } else { 0 }))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let addr = edge.addr;
    let first = tokio::spawn(async move { get(addr, "/slow").await });
    assert!(eventually(Duration::from_secs(2), || origin.count("/slow") == 1).await);
    // A form posted to another URL invalidates that URL only (RFC 9111 section 4.4).
    let posted = support::send(edge.addr, "POST", "/form", &[], "a=1").await;
    assert_eq!(posted.status, 200);
    let answer = revalidate(
        edge.addr,
        json!({"secret": support::SECRET, "paths": ["/elsewhere"]}),
    )
    .await;
    assert_eq!(answer.status, 200);
    let joined = get(edge.addr, "/slow").await;
    assert_eq!(joined.text(), "/slow #1", "joined the fetch in flight");
    let first = first.await.expect("first client");
    assert!(
        first.header("cache-status").contains("stored"),
        "{}",
        first.header("cache-status")
    );
    assert_eq!(get(edge.addr, "/slow").await.cache(), "HIT");
    assert_eq!(origin.count("/slow"), 1);

    // A purge of a tag the page does not carry: stored. (A request arriving after a tag purge
    // does not join a fetch that started before it: the fetch's tags are not known yet.)
    let third = tokio::spawn(async move { get(addr, "/slow3").await });
    assert!(eventually(Duration::from_secs(2), || origin.count("/slow3") == 1).await);
    let answer = revalidate(
        edge.addr,
        json!({"secret": support::SECRET, "tags": ["other"]}),
    )
    .await;
    assert_eq!(answer.status, 200);
    let third = third.await.expect("third client");
    assert!(
        third.header("cache-status").contains("stored"),
        "{}",
        third.header("cache-status")
    );

    // A tag the page carries, purged while its fetch runs: not stored.
    let second = tokio::spawn(async move { get(addr, "/slow2").await });
    assert!(eventually(Duration::from_secs(2), || origin.count("/slow2") == 1).await);
    let answer = revalidate(
        edge.addr,
        json!({"secret": support::SECRET, "tags": ["slow-tag"]}),
    )
    .await;
    assert_eq!(answer.status, 200);
    let second = second.await.expect("second client");
    assert!(
        !second.header("cache-status").contains("stored"),
        "{}",
        second.header("cache-status")
    );
    assert_eq!(get(edge.addr, "/slow2").await.text(), "/slow2 #2");
}

/// A directive given twice takes its first value (RFC 9111 section 4.2.1: the first occurrence,
/// or the response is stale): an app's `max-age=0` followed by a middleware's `max-age=60`,
/// on one line or two, is not a page to serve for a minute without asking the origin.
#[tokio::test]
async fn a_directive_given_twice_takes_its_first_value() {
    let origin = Origin::start(|r| {
        let reply = Reply::ok(format!("v{}", r.count));
        if r.path == "/one-line" {
            reply.cc("max-age=0, max-age=60")
        } else {
            reply.cc("s-maxage=0").cc("s-maxage=60")
        }
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    for path in ["/one-line", "/two-lines"] {
        assert_eq!(get(edge.addr, path).await.text(), "v1", "{path}");
        let again = get(edge.addr, path).await;
        assert_eq!(
            (again.cache(), again.text().as_str()),
            ("MISS", "v2"),
            "{path}"
        );
    }
}
