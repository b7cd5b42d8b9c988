//! What does a purge cost, and what does the purge index cost in memory? An exact-path purge
//! among 1M stored entries, a tag purge of 10k entries, `layout` and pattern purges at two cache
//! sizes (their cost should follow what they match, not the cache size), and the index's bytes
//! per entry (RSS growth while indexing 1M keys, printed before the timings).
//!
//! What is timed is the `Cache::purge` call, from the epoch bump to its answer: selecting and
//! marking under the index lock, counting, and removing from moka (inline for a single URL,
//! handed to a background thread for the tag, `layout` and pattern purges, whose removals are not
//! timed). Before each timed round, untimed, the previous round's URLs are stored again and, for
//! those purges, `Cache::sync` waits for the previous background removals and moka's pending
//! maintenance: each purge starts from a quiet cache rather than competing with the previous
//! round's cleanup on the same cores.
//!
//! `cargo bench --bench purge` runs the full fixtures; under `cargo test --all-targets` (no
//! `--bench` argument) criterion runs each bench once and the fixtures shrink to a few thousand
//! entries, so the test run stays fast.

mod support;
use support::{full_run, resident_bytes};

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use http::{HeaderMap, StatusCode};
use isr_edge::cache::index::Index;
use isr_edge::cache::key::{primary_key, Key};
use isr_edge::cache::pattern::Pattern;
use isr_edge::cache::policy::Lifetime;
use isr_edge::cache::{Cache, NewEntry, PurgeHandle, PurgeMode, PurgeRun, Selector};

/// Pages under `/blog/`: what the layout and pattern purges match, whatever the cache size.
const MATCHED: usize = 100;
/// Entries carrying the tag `hot`.
const TAGGED: usize = 10_000;

fn sizes() -> (usize, usize) {
    if full_run() {
        (100_000, 1_000_000)
    } else {
        (1_000, 5_000)
    }
}

struct Page {
    key: Key,
    page: String,
    tags: Vec<Box<str>>,
}

/// `n` pages: `MATCHED` under `/blog/`, the rest spread over 1000 sections; the first
/// `TAGGED` (or all, if fewer) carry the tag `hot`, every page one of 1000 other tags.
fn pages(n: usize) -> Vec<Page> {
    (0..n)
        .map(|i| {
            let page = if i < MATCHED {
                format!("/blog/post-{i}")
            } else {
                format!("/section-{}/page-{i}", i % 1000)
            };
            let mut tags: Vec<Box<str>> = vec![format!("t{}", i % 1000).into()];
            if i < TAGGED {
                tags.push("hot".into());
            }
            Page {
                key: primary_key("bench.example", &page, None),
                page,
                tags,
            }
        })
        .collect()
}

fn entry(tags: &[Box<str>]) -> NewEntry {
    NewEntry {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: Bytes::from_static(b"<html>cached page</html>"),
        vary: vec![],
        tags: tags.to_vec(),
        lifetime: Lifetime {
            fresh_for: Duration::from_secs(3600),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            must_revalidate: false,
        },
        initial_age: Duration::ZERO,
        freshness_field: Default::default(),
    }
}

fn admit(cache: &Cache, p: &Page) {
    cache.admit(&p.key, &p.page, entry(&p.tags), cache.epoch());
}

/// Stores `pages` again after a purge with background removals, and waits for the cache to be
/// quiet (see the module doc).
fn restore(cache: &Cache, pages: &[Page]) {
    pages.iter().for_each(|p| admit(cache, p));
    cache.sync();
}

fn filled(pages: &[Page]) -> Cache {
    let cache = Cache::new(64 << 30);
    for p in pages {
        admit(&cache, p);
    }
    cache.sync();
    assert_eq!(cache.url_count() as usize, pages.len(), "nothing evicted");
    cache
}

/// RSS growth while indexing `n` keys that already exist (as they do in the cache, where the
/// index shares the key allocation with moka): the index's own bytes per entry.
fn index_memory(n: usize) {
    let pages = pages(n);
    let before = resident_bytes();
    let started = Instant::now();
    let index = Index::default();
    for (id, p) in pages.iter().enumerate() {
        let handle = PurgeHandle {
            id: id as u64,
            value: std::sync::Weak::new(),
            responses: 1,
            expires_at: tokio::time::Instant::now() + Duration::from_secs(3600),
        };
        index.insert(&p.key, handle, &p.page, p.tags.clone());
    }
    let took = started.elapsed();
    let after = resident_bytes();
    let per_entry = after.saturating_sub(before) as f64 / n as f64;
    println!(
        "index memory: {n} keys (2 tags each) add {:.1} MiB RSS = {per_entry:.0} bytes per entry; indexed in {took:.2?}",
        after.saturating_sub(before) as f64 / (1 << 20) as f64
    );
    assert_eq!(index.len(), n);
}

/// Times `purge` after `restore` (untimed) has put back what the previous round removed.
fn timed(iters: u64, mut restore: impl FnMut(u64), mut purge: impl FnMut(u64)) -> Duration {
    let mut total = Duration::ZERO;
    for i in 0..iters {
        restore(i);
        let started = Instant::now();
        purge(i);
        total += started.elapsed();
    }
    total
}

fn benches(c: &mut Criterion) {
    let (small, large) = sizes();
    index_memory(large);

    let all = Arc::new(pages(large));
    let started = Instant::now();
    let big = filled(&all);
    println!(
        "fixture: {large} entries stored in {:.2?}",
        started.elapsed()
    );

    let mut group = c.benchmark_group("purge");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat);

    group.bench_function(BenchmarkId::new("exact path", large), |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                |i| admit(&big, &all[MATCHED + i as usize % (large - MATCHED)]),
                |i| {
                    let p = &all[MATCHED + i as usize % (large - MATCHED)];
                    let n = big.purge(
                        &Selector::Page(&p.page),
                        None,
                        PurgeRun::of(PurgeMode::Hard),
                    );
                    assert_eq!(n.urls, 1);
                },
            )
        })
    });

    let tagged = TAGGED.min(large);
    group.bench_function(BenchmarkId::new(format!("tag of {tagged}"), large), |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                |_| restore(&big, &all[..tagged]),
                |_| {
                    let n = big.purge(&Selector::Tag("hot"), None, PurgeRun::of(PurgeMode::Hard));
                    assert_eq!(n.urls, tagged);
                },
            )
        })
    });

    let small_pages = &all[..small];
    let small_cache = filled(small_pages);
    let pattern = Pattern::parse("/blog/[slug]");
    for (size, cache, source) in [(small, &small_cache, small_pages), (large, &big, &all[..])] {
        group.bench_function(
            BenchmarkId::new(format!("layout of {MATCHED}"), size),
            |b| {
                b.iter_custom(|iters| {
                    timed(
                        iters,
                        |_| restore(cache, &source[..MATCHED]),
                        |_| {
                            let n = cache.purge(
                                &Selector::Subtree("/blog"),
                                None,
                                PurgeRun::of(PurgeMode::Hard),
                            );
                            assert_eq!(n.urls, MATCHED);
                        },
                    )
                })
            },
        );
        group.bench_function(
            BenchmarkId::new(format!("pattern of {MATCHED}"), size),
            |b| {
                b.iter_custom(|iters| {
                    timed(
                        iters,
                        |_| restore(cache, &source[..MATCHED]),
                        |_| {
                            let n = cache.purge(
                                &Selector::Pattern(&pattern, false),
                                None,
                                PurgeRun::of(PurgeMode::Hard),
                            );
                            assert_eq!(n.urls, MATCHED);
                        },
                    )
                })
            },
        );
    }
    group.finish();
}

criterion_group!(purge, benches);
criterion_main!(purge);
