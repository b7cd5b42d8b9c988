//! The purge index: which stored keys belong to a page path, and which carry a tag.
//!
//! Why an index rather than moka's `invalidate_entries_if`: a purge must be visible to the very
//! next request and report exact counts (and dry runs), which a lazy predicate cannot do. Page
//! paths sit in a `BTreeMap`, so a `layout` or pattern purge scans only the range under its
//! literal prefix, never the whole cache. Hits never touch the index; admissions, evictions and
//! purges take its lock briefly (never while calling into moka, whose eviction listener locks
//! it too).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

use super::key::{split_key, Key};
use super::pattern::Pattern;

#[derive(Default)]
pub struct Index {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    records: HashMap<Key, Record>,
    by_page: BTreeMap<Box<str>, HashSet<Key>>,
    by_tag: HashMap<Box<str>, HashSet<Key>>,
}

struct Record {
    handle: PurgeHandle,
    page: Box<str>,
    tags: Vec<Box<str>>,
}

/// What a purge needs of a stored value without asking moka: a lookup per selected key (and the
/// housekeeping moka may run inline on reads) was most of a 10k-URL tag purge.
#[derive(Debug, Clone)]
pub struct PurgeHandle {
    /// Id of the stored value this record describes.
    pub id: u64,
    /// Shared with the stored value: set by a hard purge, read by every lookup.
    pub purged: Arc<AtomicBool>,
    /// Responses (Vary variants) the value holds.
    pub responses: usize,
    /// When moka expires the value; a record past it counts as gone.
    pub expires_at: Instant,
}

/// What a purge selects.
#[derive(Debug, Clone)]
pub enum Selector<'a> {
    Page(&'a str),
    /// The page and every page below it (`/blog` selects `/blog/a/b`, not `/blogger`).
    Subtree(&'a str),
    Pattern(&'a Pattern, bool),
    Tag(&'a str),
    All,
}

impl Index {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain maps behind, still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records (or replaces) what the stored value `id` under `key` is reachable by.
    pub fn insert(&self, key: &Key, handle: PurgeHandle, page: &str, tags: Vec<Box<str>>) {
        let mut inner = self.lock();
        if let Some(old) = inner.records.remove(key) {
            inner.unlink(key, &old);
        }
        let record = Record {
            handle,
            page: page.into(),
            tags,
        };
        inner
            .by_page
            .entry(record.page.clone())
            .or_default()
            .insert(key.clone());
        for tag in &record.tags {
            inner
                .by_tag
                .entry(tag.clone())
                .or_default()
                .insert(key.clone());
        }
        inner.records.insert(key.clone(), record);
    }

    /// Forgets `key`, but only if the record still describes value `id`: an eviction notice for
    /// an old copy must not unlink the copy that replaced it.
    pub fn remove(&self, key: &Key, id: u64) {
        let mut inner = self.lock();
        if inner.records.get(key).is_some_and(|r| r.handle.id == id) {
            if let Some(old) = inner.records.remove(key) {
                inner.unlink(key, &old);
            }
        }
    }

    /// Keys selected, restricted to `host` when given.
    pub fn select(&self, selector: &Selector<'_>, host: Option<&str>) -> Vec<Key> {
        self.select_handles(selector, host)
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }

    /// Keys selected with their purge handles, restricted to `host` when given.
    pub fn select_handles(
        &self,
        selector: &Selector<'_>,
        host: Option<&str>,
    ) -> Vec<(Key, PurgeHandle)> {
        let inner = self.lock();
        let records = &inner.records;
        let mut out: Vec<(Key, PurgeHandle)> = Vec::new();
        let mut take = |keys: &HashSet<Key>| {
            out.extend(
                keys.iter()
                    .filter(|k| host.is_none_or(|h| same_host(split_key(k).0, h)))
                    .filter_map(|k| records.get(k).map(|r| (k.clone(), r.handle.clone()))),
            )
        };
        match selector {
            Selector::Page(page) => {
                if let Some(keys) = inner.by_page.get(*page) {
                    take(keys);
                }
            }
            Selector::Subtree(root) => {
                let root = root.trim_end_matches('/');
                for (page, keys) in inner.by_page.range::<str, _>((
                    std::ops::Bound::Included(if root.is_empty() { "/" } else { root }),
                    std::ops::Bound::Unbounded,
                )) {
                    if !page.starts_with(root) {
                        break;
                    }
                    let below = root.is_empty()
                        || page.len() == root.len()
                        || page.as_bytes()[root.len()] == b'/';
                    if below {
                        take(keys);
                    }
                }
            }
            Selector::Pattern(pattern, subtree) => {
                let prefix = pattern.literal_prefix();
                let start = prefix.trim_end_matches('/');
                for (page, keys) in inner.by_page.range::<str, _>((
                    std::ops::Bound::Included(if start.is_empty() { "/" } else { start }),
                    std::ops::Bound::Unbounded,
                )) {
                    if !page.starts_with(start) {
                        break;
                    }
                    if pattern.matches(page, *subtree) {
                        take(keys);
                    }
                }
            }
            Selector::Tag(tag) => {
                if let Some(keys) = inner.by_tag.get(*tag) {
                    take(keys);
                }
            }
            Selector::All => {
                for keys in inner.by_page.values() {
                    take(keys);
                }
            }
        }
        out
    }

    /// Number of keys indexed (at most the number of stored keys).
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys reachable through the page and tag maps, counted with repetition; a consistency
    /// check for tests and metrics.
    pub fn linked_keys(&self) -> (usize, usize) {
        let inner = self.lock();
        (
            inner.by_page.values().map(HashSet::len).sum(),
            inner.by_tag.values().map(HashSet::len).sum(),
        )
    }
}

/// Whether a key's host (as requested, maybe with a port) is the purge's `host` (with or
/// without that port): `"host": "shop.example"` reaches `shop.example:8080` too.
fn same_host(stored: &str, wanted: &str) -> bool {
    stored == wanted
        || stored.strip_prefix(wanted).is_some_and(|rest| {
            rest.strip_prefix(':')
                .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        })
}

impl Inner {
    fn unlink(&mut self, key: &Key, record: &Record) {
        if let Some(keys) = self.by_page.get_mut(&record.page) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_page.remove(&record.page);
            }
        }
        for tag in &record.tags {
            if let Some(keys) = self.by_tag.get_mut(tag) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_tag.remove(tag);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        s.into()
    }

    fn handle(id: u64) -> PurgeHandle {
        PurgeHandle {
            id,
            purged: Arc::default(),
            responses: 1,
            expires_at: Instant::now() + std::time::Duration::from_secs(60),
        }
    }

    fn sorted(mut v: Vec<Key>) -> Vec<String> {
        v.sort();
        v.into_iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn selects_pages_subtrees_tags() {
        let index = Index::default();
        index.insert(&key("h/blog"), handle(1), "/blog", vec!["posts".into()]);
        index.insert(&key("h/blog?page=2"), handle(2), "/blog", vec![]);
        index.insert(
            &key("h/blog/a/b"),
            handle(3),
            "/blog/a/b",
            vec!["posts".into()],
        );
        index.insert(&key("h/blogger"), handle(4), "/blogger", vec![]);
        index.insert(&key("other/blog"), handle(5), "/blog", vec![]);
        assert_eq!(
            sorted(index.select(&Selector::Page("/blog"), Some("h"))),
            ["h/blog", "h/blog?page=2"]
        );
        assert_eq!(
            sorted(index.select(&Selector::Subtree("/blog"), Some("h"))),
            ["h/blog", "h/blog/a/b", "h/blog?page=2"]
        );
        assert_eq!(index.select(&Selector::Subtree("/"), None).len(), 5);
        assert_eq!(
            sorted(index.select(&Selector::Tag("posts"), None)),
            ["h/blog", "h/blog/a/b"]
        );
        let pattern = Pattern::parse("/blog/[...rest]");
        assert_eq!(
            sorted(index.select(&Selector::Pattern(&pattern, false), None)),
            ["h/blog/a/b"]
        );
    }

    #[test]
    fn a_host_matches_with_or_without_its_port() {
        assert!(same_host("shop.example", "shop.example"));
        assert!(same_host("shop.example:8080", "shop.example"));
        assert!(same_host("shop.example:8080", "shop.example:8080"));
        assert!(!same_host("shop.example:8080", "shop.example:9090"));
        assert!(!same_host("shop.example.evil", "shop.example"));
        assert!(!same_host("shop.example", "shop.example:8080"));
    }

    #[test]
    fn stale_removal_does_not_unlink_replacement() {
        let index = Index::default();
        index.insert(&key("h/x"), handle(1), "/x", vec!["t".into()]);
        index.insert(&key("h/x"), handle(2), "/x", vec!["u".into()]);
        index.remove(&key("h/x"), 1);
        assert_eq!(index.len(), 1);
        assert!(index.select(&Selector::Tag("t"), None).is_empty());
        assert_eq!(index.select(&Selector::Tag("u"), None).len(), 1);
        index.remove(&key("h/x"), 2);
        assert!(index.is_empty());
        assert_eq!(index.linked_keys(), (0, 0));
    }
}
