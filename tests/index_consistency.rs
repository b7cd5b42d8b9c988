//! The purge index stays in step with what the cache holds under churn: after many inserts into
//! a small cache (moka evicting by size, from several threads at once), the index holds no more
//! keys than the cache, and purges still find everything that is stored.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use isr_edge::cache::key::primary_key;
use isr_edge::cache::policy::Lifetime;
use isr_edge::cache::{Cache, NewEntry, PurgeMode, PurgeRun, Selector};

fn new_entry(i: usize) -> NewEntry {
    NewEntry {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: Bytes::from(vec![b'x'; 512 + i % 1024]),
        vary: vec![],
        tags: vec![format!("t{}", i % 7).into(), "all-pages".into()],
        lifetime: Lifetime {
            fresh_for: Duration::from_secs(600),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            must_revalidate: false,
        },
        initial_age: Duration::ZERO,
        freshness_field: Default::default(),
    }
}

/// Request headers asking for `value` in `Accept-Language`.
fn language(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "accept-language",
        http::HeaderValue::from_str(value).expect("value"),
    );
    headers
}

/// Page `i`'s entry, made for `Accept-Language: value`.
fn varied(i: usize, value: &str) -> NewEntry {
    let mut entry = new_entry(i);
    entry.vary = vec![(
        http::HeaderName::from_static("accept-language"),
        Some(value.to_string()),
    )];
    entry
}

/// A hard purge of the tag every page carries, on a thread of its own; joined, it says how many
/// URLs it selected.
fn purge_every_page_in_background(cache: &Arc<Cache>) -> std::thread::JoinHandle<usize> {
    let cache = cache.clone();
    std::thread::spawn(move || {
        cache
            .purge(
                &Selector::Tag("all-pages"),
                None,
                PurgeRun::of(PurgeMode::Hard),
            )
            .urls
    })
}

/// Admits `count` entries spread over pages and query variants, with the same pages coming back
/// (replacements) as well as new ones (evictions).
fn churn(cache: &Cache, thread: usize, count: usize) {
    for i in 0..count {
        let n = (i * 7 + thread * 13) % 3000;
        let page = format!("/s{}/p{}", n % 17, n);
        let query = (n % 3 == 0).then(|| format!("v={}", i % 4));
        let key = primary_key("h", &page, query.as_deref());
        let epoch = cache.epoch();
        cache.admit(&key, &page, new_entry(i), epoch);
    }
}

fn assert_consistent(cache: &Cache, when: &str) {
    cache.sync();
    let stored = cache.url_count() as usize;
    assert!(
        cache.indexed_keys() <= stored,
        "{when}: index holds {} keys, cache {stored}",
        cache.indexed_keys()
    );
    let everything = cache.purge(&Selector::All, None, PurgeRun::dry_run(PurgeMode::Hard));
    assert_eq!(
        everything.urls, stored,
        "{when}: a purge of everything finds every stored URL"
    );
    let (by_page, by_tag) = cache.index().linked_keys();
    assert_eq!(by_page, cache.indexed_keys(), "{when}: page map");
    assert_eq!(
        by_tag,
        2 * cache.indexed_keys(),
        "{when}: tag map (two tags per URL)"
    );
}

#[test]
fn the_index_never_outgrows_a_small_cache_under_churn() {
    let cache = Cache::new(256 * 1024);
    churn(&cache, 0, 8_000);
    assert_consistent(&cache, "one thread");
    assert!(
        cache
            .evictions()
            .size
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "the cache did evict"
    );

    let cache = Arc::new(cache);
    let threads: Vec<_> = (1..=4)
        .map(|t| {
            let cache = cache.clone();
            std::thread::spawn(move || churn(&cache, t, 5_000))
        })
        .collect();
    for t in threads {
        t.join().expect("churn thread");
    }
    assert_consistent(&cache, "four threads");

    // A tag purge removes every stored URL carrying it.
    let tagged = cache
        .purge(
            &Selector::Tag("t3"),
            None,
            PurgeRun::dry_run(PurgeMode::Hard),
        )
        .urls;
    assert!(tagged > 0, "some t3 pages are stored");
    let purged = cache.purge(&Selector::Tag("t3"), None, PurgeRun::of(PurgeMode::Hard));
    assert_eq!(purged.urls, tagged);
    assert_eq!(
        cache
            .purge(
                &Selector::Tag("t3"),
                None,
                PurgeRun::dry_run(PurgeMode::Hard)
            )
            .urls,
        0,
        "gone at once, before moka has dropped them"
    );
    assert_consistent(&cache, "after a tag purge");
    assert_eq!(
        cache
            .purge(
                &Selector::Tag("t3"),
                None,
                PurgeRun::dry_run(PurgeMode::Hard)
            )
            .urls,
        0
    );

    // And a layout purge of one section.
    let section = cache.purge(
        &Selector::Subtree("/s5"),
        None,
        PurgeRun::of(PurgeMode::Hard),
    );
    assert!(section.urls > 0);
    assert_consistent(&cache, "after a layout purge");
    assert_eq!(
        cache
            .purge(
                &Selector::Subtree("/s5"),
                None,
                PurgeRun::dry_run(PurgeMode::Hard)
            )
            .urls,
        0
    );
}

#[test]
fn a_lookup_after_a_purge_finds_nothing() {
    let cache = Cache::new(64 * 1024 * 1024);
    churn(&cache, 0, 3000);
    cache.sync();
    let key = primary_key("h", "/s2/p19", None);
    assert!(cache.lookup(&key, &HeaderMap::new()).is_some());
    let count = cache.purge(
        &Selector::Page("/s2/p19"),
        None,
        PurgeRun::of(PurgeMode::Hard),
    );
    assert_eq!(count.urls, 1);
    assert!(cache.lookup(&key, &HeaderMap::new()).is_none());
}

/// A variant withdrawn (its origin's newer answer could not be stored) while a hard purge runs
/// over the same URLs never brings a purged page back: every URL the purge selected is gone
/// for every variant afterwards, whichever of the two reached a URL first.
#[test]
fn withdrawing_variants_during_a_purge_never_brings_a_purged_page_back() {
    const URLS: usize = 20_000;
    let cache = Arc::new(Cache::new(1 << 30));
    let keys: Vec<_> = (0..URLS)
        .map(|i| primary_key("h", &format!("/p{i}"), None))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        for value in ["en", "fr"] {
            let epoch = cache.epoch();
            cache.admit(key, &format!("/p{i}"), varied(i, value), epoch);
        }
    }
    let (english, french) = (language("en"), language("fr"));
    assert!(keys.iter().all(|key| cache.lookup(key, &english).is_some()));
    let purging = purge_every_page_in_background(&cache);
    let mut withdrawn = 0;
    for key in keys.iter().rev() {
        withdrawn +=
            usize::from(cache.withdraw_answered(key, &french, tokio::time::Instant::now()));
    }
    let purged = purging.join().expect("purge thread");
    cache.sync();
    assert!(
        purged > 0 && withdrawn > 0,
        "purged {purged}, withdrew {withdrawn}"
    );
    for key in &keys {
        assert!(cache.lookup(key, &english).is_none(), "{key:?} came back");
        assert!(cache.lookup(key, &french).is_none(), "{key:?} came back");
    }
}

/// A variant admitted while a hard purge runs never carries a purged variant of its URL into
/// the new value: the purge marks the value it finds under the index lock, and an admission
/// that read that value as live just before must not store its variants again afterwards. The
/// first admission after the purge is logged races it; a few rounds make a loss by chance rare.
#[test]
fn a_variant_admitted_during_a_purge_never_brings_a_purged_one_back() {
    const URLS: usize = 20_000;
    const ROUNDS: usize = 4;
    let cache = Arc::new(Cache::new(1 << 30));
    let keys: Vec<_> = (0..URLS)
        .map(|i| primary_key("h", &format!("/p{i}"), None))
        .collect();
    let english = language("en");
    for round in 0..ROUNDS {
        for (i, key) in keys.iter().enumerate() {
            let epoch = cache.epoch();
            cache.admit(key, &format!("/p{i}"), varied(i, "en"), epoch);
        }
        assert!(keys.iter().all(|key| cache.lookup(key, &english).is_some()));
        let before = cache.epoch();
        let purging = purge_every_page_in_background(&cache);
        // Fetches that started once the purge was logged: their own answers may be stored.
        while cache.epoch() == before {
            std::hint::spin_loop();
        }
        for (i, key) in keys.iter().enumerate().rev().take(100) {
            let epoch = cache.epoch();
            cache.admit(key, &format!("/p{i}"), varied(i, "de"), epoch);
        }
        let purged = purging.join().expect("purge thread");
        cache.sync();
        assert!(purged > 0, "purged {purged}");
        for key in &keys {
            assert!(
                cache.lookup(key, &english).is_none(),
                "round {round}: {key:?} came back"
            );
        }
    }
}
