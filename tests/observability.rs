//! Observability against the real proxy: `/metrics` numbers after real traffic (cache status,
//! origin requests and errors, coalescing, stale reasons, revalidations, cache gauges),
//! `/healthz` and `/readyz` on the admin listener, and that the admin endpoints never answer
//! on the public port.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{get, metric, metrics_text, revalidate, Edge, Origin, Reply};

#[tokio::test]
async fn metrics_follow_hits_misses_purges_and_cache_size() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("page {}", r.path))
            .cc("s-maxage=60")
            .header("cache-tag", "t")
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    assert_eq!(get(edge.addr, "/a").await.cache(), "MISS");
    assert_eq!(get(edge.addr, "/a").await.cache(), "HIT");
    assert_eq!(get(edge.addr, "/a").await.cache(), "HIT");
    assert_eq!(get(edge.addr, "/b").await.cache(), "MISS");

    let text = metrics_text(&edge).await;
    assert_eq!(
        metric(&text, "isr_edge_requests_total{cache=\"hit\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "isr_edge_requests_total{cache=\"miss\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "isr_edge_origin_requests_total"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "isr_edge_origin_latency_seconds_count"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(metric(&text, "isr_edge_cache_entries"), Some(2.0), "{text}");
    assert_eq!(
        metric(&text, "isr_edge_cache_index_keys"),
        Some(2.0),
        "{text}"
    );
    let bytes = metric(&text, "isr_edge_cache_bytes").expect("cache bytes");
    assert!(bytes > "page /a".len() as f64 * 2.0, "{text}");

    let answer = revalidate(
        edge.addr,
        json!({"secret": support::SECRET, "paths": ["/a"]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let refused = revalidate(edge.addr, json!({"secret": "wrong", "paths": ["/a"]})).await;
    assert_eq!(refused.status, 401);

    let text = metrics_text(&edge).await;
    assert_eq!(
        metric(
            &text,
            "isr_edge_revalidations_total{outcome=\"ok\",target=\"path\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "isr_edge_revalidations_total{outcome=\"unauthorized\",target=\"none\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "isr_edge_purge_duration_seconds_count"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "isr_edge_requests_total{cache=\"api\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "isr_edge_cache_evictions_total{cause=\"purge\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(metric(&text, "isr_edge_cache_entries"), Some(1.0), "{text}");
    assert_eq!(
        metric(&text, "isr_edge_cache_index_keys"),
        Some(1.0),
        "{text}"
    );
}

/// Every family the README lists is exposed from the first scrape, its labelled series at 0:
/// `isr_edge_revalidations_total` was missing altogether until the first revalidation, so an
/// alert on failed authentications read "no data" rather than 0.
#[tokio::test]
async fn every_documented_family_is_exposed_before_any_traffic() {
    let origin = Origin::start(|r| Reply::ok(r.path.clone())).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let text = metrics_text(&edge).await;
    let families = [
        ("requests", "counter"),
        ("origin_requests", "counter"),
        ("origin_not_modified", "counter"),
        ("origin_latency_seconds", "histogram"),
        ("origin_errors", "counter"),
        ("coalesced_waits", "counter"),
        ("stale_served", "counter"),
        ("revalidations", "counter"),
        ("purge_duration_seconds", "histogram"),
        ("warm_skipped", "counter"),
        ("cache_entries", "gauge"),
        ("cache_bytes", "gauge"),
        ("cache_index_keys", "gauge"),
        ("cache_evictions", "counter"),
        ("cache_withdrawn_responses", "counter"),
        ("workers", "gauge"),
        ("connections_open", "gauge"),
        ("connections_accepted", "counter"),
    ];
    for (family, kind) in families {
        let line = format!("# TYPE isr_edge_{family} {kind}\n");
        assert!(text.contains(&line), "{line}{text}");
    }
    for sample in [
        "isr_edge_revalidations_total{outcome=\"unauthorized\",target=\"none\"}",
        "isr_edge_revalidations_total{outcome=\"ok\",target=\"path\"}",
        "isr_edge_revalidations_total{outcome=\"origin-failed\",target=\"tag\"}",
        "isr_edge_requests_total{cache=\"stale\"}",
        "isr_edge_origin_errors_total{kind=\"connect\"}",
        "isr_edge_stale_served_total{reason=\"stale-if-error\"}",
        "isr_edge_cache_evictions_total{cause=\"expiry\"}",
    ] {
        assert_eq!(metric(&text, sample), Some(0.0), "{sample}\n{text}");
    }
    let refused = revalidate(edge.addr, json!({"secret": "wrong", "paths": ["/a"]})).await;
    assert_eq!(refused.status, 401);
    let text = metrics_text(&edge).await;
    assert_eq!(
        metric(
            &text,
            "isr_edge_revalidations_total{outcome=\"unauthorized\",target=\"none\"}"
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn coalesced_waits_and_stale_reasons_are_counted() {
    let origin = Origin::start(|r| {
        Reply::ok(format!("v{}", r.count))
            .cc("s-maxage=1, stale-while-revalidate=60")
            .delay(Duration::from_millis(300))
    })
    .await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let burst: Vec<_> = (0..5)
        .map(|_| tokio::spawn(get(edge.addr, "/slow")))
        .collect();
    for request in burst {
        assert_eq!(request.await.expect("request").status, 200);
    }
    assert_eq!(origin.count("/slow"), 1);
    let text = metrics_text(&edge).await;
    let waits = metric(&text, "isr_edge_coalesced_waits_total").expect("coalesced waits");
    assert!(waits >= 1.0, "{text}");

    // Soft purge: the next request gets the old copy (STALE) and triggers one refresh.
    let answer = revalidate(
        edge.addr,
        json!({"secret": support::SECRET, "paths": ["/slow"], "mode": "soft"}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(get(edge.addr, "/slow").await.cache(), "STALE");
    let text = metrics_text(&edge).await;
    assert_eq!(
        metric(&text, "isr_edge_stale_served_total{reason=\"soft-purge\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "isr_edge_stale_served_total{reason=\"swr\"}"),
        Some(0.0),
        "{text}"
    );
}

#[tokio::test]
async fn origin_errors_by_kind_and_readiness() {
    let mut origin = Origin::start(|_| Reply::ok("fine").cc("s-maxage=60")).await;
    let edge = Edge::start(&origin.url(), &[]).await;
    let admin = edge.admin.expect("admin listener");
    assert_eq!(get(admin, "/healthz").await.status, 200);
    assert_eq!(get(admin, "/readyz").await.status, 200);

    // The origin's listener closes once its accept loop has seen the stop.
    origin.stop();
    let mut status = 0;
    for _ in 0..50 {
        status = get(admin, "/readyz").await.status;
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        status, 503,
        "readyz must fail once the origin refuses connections"
    );
    assert_eq!(
        get(admin, "/healthz").await.status,
        200,
        "liveness does not depend on the origin"
    );

    let failed = get(edge.addr, "/new").await;
    assert_eq!(failed.status, 502);
    let text = metrics_text(&edge).await;
    assert_eq!(
        metric(&text, "isr_edge_origin_errors_total{kind=\"connect\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(get(admin, "/nothing").await.status, 404);
}

#[tokio::test]
async fn admin_endpoints_are_not_on_the_public_port() {
    let origin = Origin::start(|r| Reply::ok(format!("origin saw {}", r.path))).await;
    let edge = Edge::start(&origin.url(), &["--admin-listen", "off"]).await;
    assert!(edge.admin.is_none());
    let public = get(edge.addr, "/metrics").await;
    assert_eq!(
        public.text(),
        "origin saw /metrics",
        "the public port proxies /metrics to the origin"
    );
    assert_eq!(origin.count("/metrics"), 1);
}

#[tokio::test]
async fn evictions_by_cause_origin_errors_by_kind_and_refused_requests() {
    let origin = Origin::start(|r| match r.path.as_str() {
        // Cacheable first, then `private`: the proxy drops the old copy itself.
        "/turns-private" if r.count == 1 => Reply::ok("v1").cc("s-maxage=1, stale-if-error=60"),
        "/turns-private" => Reply::ok("mine").cc("private"),
        // Fine first, then a 500: the old copy is served under stale-if-error.
        "/fails" if r.count == 1 => Reply::ok("v1").cc("s-maxage=1, stale-if-error=60"),
        "/fails" => Reply::ok("down").status(500),
        "/expires" => Reply::ok("short").cc("s-maxage=1, stale-if-error=0"),
        "/slow" => Reply::ok("late").delay(Duration::from_secs(3)),
        _ => Reply::ok("page").cc("s-maxage=60"),
    })
    .await;
    let edge = Edge::start(
        &origin.url(),
        &["--origin-timeout", "300ms", "--max-uri-length", "200"],
    )
    .await;
    for path in ["/turns-private", "/fails", "/expires", "/purged"] {
        assert_eq!(get(edge.addr, path).await.cache(), "MISS", "{path}");
    }
    let answer = revalidate(
        edge.addr,
        json!({"secret": support::SECRET, "paths": ["/purged"]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    // Past every s-maxage=1 above.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let private = get(edge.addr, "/turns-private").await;
    assert_eq!(private.text(), "mine");
    let stale = get(edge.addr, "/fails").await;
    assert_eq!((stale.text().as_str(), stale.cache()), ("v1", "STALE"));
    assert_eq!(get(edge.addr, "/slow").await.status, 504);
    let long = format!("/{}", "x".repeat(300));
    assert_eq!(get(edge.addr, &long).await.status, 414);
    let long_control = format!("/api/revalidate?path=/{}", "x".repeat(300));
    assert_eq!(get(edge.addr, &long_control).await.status, 414);

    let text = metrics_text(&edge).await;
    for (sample, expected) in [
        ("isr_edge_cache_evictions_total{cause=\"purge\"}", 1.0),
        ("isr_edge_cache_evictions_total{cause=\"uncacheable\"}", 1.0),
        ("isr_edge_cache_evictions_total{cause=\"expiry\"}", 1.0),
        ("isr_edge_cache_evictions_total{cause=\"size\"}", 0.0),
        (
            "isr_edge_stale_served_total{reason=\"stale-if-error\"}",
            1.0,
        ),
        ("isr_edge_origin_errors_total{kind=\"status\"}", 1.0),
        ("isr_edge_origin_errors_total{kind=\"timeout\"}", 1.0),
        ("isr_edge_requests_total{cache=\"refused\"}", 2.0),
        ("isr_edge_requests_total{cache=\"api\"}", 1.0),
        ("isr_edge_requests_total{cache=\"stale\"}", 1.0),
    ] {
        assert_eq!(metric(&text, sample), Some(expected), "{sample}\n{text}");
    }
}

/// `--cache-size 0` is refused: moka drops inserts into a zero-capacity cache without telling
/// its eviction listener, so the purge index grew by a record per URL. A tiny capacity evicts
/// through the listener, and the index stays no larger than what is stored.
#[tokio::test]
async fn a_tiny_cache_keeps_its_purge_index_in_step() {
    let origin = Origin::start(|r| Reply::ok(format!("page {}", r.path)).cc("s-maxage=60")).await;
    let edge = Edge::start(&origin.url(), &["--cache-size", "1"]).await;
    for i in 0..20 {
        assert_eq!(get(edge.addr, &format!("/p{i}")).await.status, 200);
    }
    let text = metrics_text(&edge).await;
    let entries = metric(&text, "isr_edge_cache_entries").expect("entries");
    let indexed = metric(&text, "isr_edge_cache_index_keys").expect("index keys");
    assert!(indexed <= entries, "{text}");
}
