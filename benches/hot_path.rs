//! What do the hot functions of a HIT cost? Building the key (path normalisation + primary key),
//! looking up a stored entry, parsing `Cache-Control` (and deciding a lifetime), and rendering
//! the stored entry as a response.
//!
//! Before the timings it prints what a stored page costs in memory: RSS growth per cached
//! 1 KiB page with the bench origin's headers (100k pages; 2k under `cargo test`).
//!
//! `cargo bench --bench hot_path`; under `cargo test --all-targets` each runs once.

mod support;
use support::{full_run, resident_bytes};

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use isr_edge::cache::key::{normalize_path, page_path, primary_key};
use isr_edge::cache::policy::{storable_lifetime, CacheControl, FreshnessRules, Lifetime};
use isr_edge::cache::{Cache, CacheStatus, NewEntry};

/// The binary's allocator, so the memory figure is the one the proxy has.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// RSS growth per stored 1 KiB page, everything included: body, stored headers, entry, moka's
/// own nodes, the key, the purge index. The headers are what `shared/bench`'s origin sends.
fn entry_memory(n: usize) {
    let body = vec![b'x'; 1024];
    let cache = Cache::new(64 << 30);
    let before = resident_bytes();
    for i in 0..n {
        let path = format!("/kb/1/page-{i}");
        let key = primary_key("127.0.0.1:18083", &path, None);
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("content-type", "text/html; charset=utf-8"),
            ("cache-control", "public, max-age=0, must-revalidate"),
            ("content-length", "1024"),
            ("date", "Sat, 21 Nov 2026 22:47:02 GMT"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        headers.insert(
            "x-origin-seq",
            HeaderValue::from_str(&i.to_string()).unwrap_or(HeaderValue::from_static("0")),
        );
        let new = NewEntry {
            status: StatusCode::OK,
            headers,
            body: Bytes::copy_from_slice(&body),
            vary: vec![],
            tags: vec![],
            lifetime: Lifetime {
                fresh_for: Duration::from_secs(60),
                stale_while_revalidate: Duration::from_secs(60),
                stale_if_error: Duration::from_secs(86_400),
                must_revalidate: false,
            },
            initial_age: Duration::ZERO,
            freshness_field: Default::default(),
        };
        cache.admit(&key, &path, new, cache.epoch());
    }
    cache.sync();
    assert_eq!(cache.url_count() as usize, n, "nothing evicted");
    let per_page = resident_bytes().saturating_sub(before) as f64 / n as f64;
    println!(
        "stored page memory: {n} pages of 1 KiB cost {per_page:.0} bytes each in RSS = {:.2}x the body",
        per_page / 1024.0
    );
}

/// Headers a browser sends on a page view.
fn browser_request() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("host", "shop.example"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("accept-language", "en-US,en;q=0.9"),
        ("cookie", "theme=dark; session=abc123"),
    ] {
        h.insert(
            http::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    h
}

/// What a Next.js ISR page answers with.
fn origin_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("s-maxage=60, stale-while-revalidate=31535940"),
    );
    h.insert(
        header::VARY,
        HeaderValue::from_static(
            "RSC, Next-Router-State-Tree, Next-Router-Prefetch, Accept-Encoding",
        ),
    );
    h.insert("x-nextjs-cache", HeaderValue::from_static("HIT"));
    h.insert("x-powered-by", HeaderValue::from_static("Next.js"));
    h
}

fn benches(c: &mut Criterion) {
    entry_memory(if full_run() { 100_000 } else { 2_000 });
    let mut group = c.benchmark_group("hot path");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));

    group.bench_function("key: normalize_path + primary_key", |b| {
        b.iter(|| {
            let path = normalize_path(black_box("/products/blue-shirt"));
            primary_key(
                black_box("shop.example"),
                &path,
                black_box(Some("ref=home")),
            )
        })
    });
    group.bench_function("key: page_path of an RSC form", |b| {
        b.iter(|| page_path(black_box("/products/blue-shirt.prefetch.rsc")).len())
    });

    let cache = Cache::new(256 << 20);
    let request = browser_request();
    let rules = FreshnessRules::default();
    for i in 0..10_000 {
        let path = format!("/products/item-{i}");
        let key = primary_key("shop.example", &path, None);
        let new = NewEntry {
            status: StatusCode::OK,
            headers: origin_headers(),
            body: Bytes::from(vec![b'x'; 1024]),
            vary: vec![],
            tags: vec![],
            lifetime: Lifetime {
                fresh_for: Duration::from_secs(3600),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                must_revalidate: false,
            },
            initial_age: Duration::ZERO,
            freshness_field: Default::default(),
        };
        cache.admit(&key, &path, new, cache.epoch());
    }
    let key = primary_key("shop.example", "/products/item-4242", None);
    group.bench_function("lookup of a hit (10k stored)", |b| {
        b.iter(|| cache.lookup(black_box(&key), &request).is_some())
    });

    group.bench_function("Cache-Control parse", |b| {
        b.iter(|| {
            CacheControl::parse(black_box(
                "public, s-maxage=60, stale-while-revalidate=31535940",
            ))
        })
    });
    let response_headers = origin_headers();
    let now = SystemTime::now();
    group.bench_function("storable_lifetime (Next.js ISR headers)", |b| {
        b.iter(|| {
            storable_lifetime(
                &Method::GET,
                false,
                StatusCode::OK,
                black_box(&response_headers),
                &rules,
                now,
            )
            .is_ok()
        })
    });

    let entry = cache.lookup(&key, &request).expect("stored");
    group.bench_function("Entry::to_response (1 KiB HIT)", |b| {
        b.iter(|| {
            entry.to_response(
                &Method::GET,
                &request,
                CacheStatus::Hit,
                tokio::time::Instant::now(),
            )
        })
    });
    group.finish();
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
