//! The cache: the only module that touches moka. Lookup by key and request headers (Vary),
//! admission with the purge check (`purge_log`), purges through the index, and the counters
//! tests and metrics read.
//!
//! Layout: one moka entry per primary key (host + path + query) holds that URL's Vary variants,
//! so a hit is one hash lookup plus a scan of a handful of variants, and a page purge removes
//! every variant at once.

pub mod entry;
mod hot;
pub mod index;
pub mod inflight;
mod interned;
pub mod key;
pub mod pattern;
pub mod policy;
mod purge_log;
mod removals;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderMap};
use moka::notification::RemovalCause;
use tokio::time::Instant;

pub use entry::{CacheStatus, Entry, Forward, NewEntry};
pub use index::{PurgeHandle, Selector};
pub use key::Key;

use index::Index;

/// Most Vary variants kept per URL; beyond that the oldest goes (an attacker varying a header
/// must not multiply one URL's memory).
const MAX_VARIANTS: usize = 16;

/// The variants stored for one primary key.
#[derive(Debug)]
pub struct Variants {
    /// Unique per stored value; the index uses it to ignore stale eviction notices.
    id: u64,
    entries: VariantList,
    weight: u32,
    /// Set by a hard purge: from then on the value is gone for lookups and admissions; moka
    /// drops it shortly after (see [`Cache::purge`]). The index record reaches it through a
    /// weak pointer, so a purge sets it without a moka lookup, and a lookup reads it where it
    /// already is (no allocation of its own, no second pointer to follow).
    purged: AtomicBool,
    /// Set when moka lets go of the value (replaced, evicted, removed): the per-worker tables
    /// of hot URLs then ask moka again (see `hot`).
    retired: AtomicBool,
}

/// A URL's variants: the usual single one without a list allocation of its own.
#[derive(Debug)]
enum VariantList {
    One(Arc<Entry>),
    Many(Box<[Arc<Entry>]>),
}

impl From<Vec<Arc<Entry>>> for VariantList {
    fn from(mut entries: Vec<Arc<Entry>>) -> VariantList {
        match (entries.pop(), entries.is_empty()) {
            (Some(only), true) => VariantList::One(only),
            (Some(last), false) => {
                entries.push(last);
                VariantList::Many(entries.into_boxed_slice())
            }
            (None, _) => VariantList::Many(Box::default()),
        }
    }
}

impl std::ops::Deref for VariantList {
    type Target = [Arc<Entry>];

    fn deref(&self) -> &[Arc<Entry>] {
        match self {
            VariantList::One(entry) => std::slice::from_ref(entry),
            VariantList::Many(entries) => entries,
        }
    }
}

impl Variants {
    /// The request headers of each variant held and still in service (see
    /// `Entry::variant_request`; withdrawn ones and ones past their keep time are not fetched
    /// again). Compressed variants come first: an origin compressing without
    /// `Vary: Accept-Encoding` has its plain answer kept beside them only while one is held
    /// (see `Cache::varies_by_encoding`); fetched first, into an empty slot, the plain answer
    /// would be stored for every client and then pushed out by the compressed one.
    pub fn variant_requests(&self) -> Vec<HeaderMap> {
        let now = Instant::now();
        let mut entries: Vec<&Arc<Entry>> = self
            .entries
            .iter()
            .filter(|e| !e.is_withdrawn())
            .filter(|e| !e.outlived(now))
            .collect();
        entries.sort_by_key(|e| !e.is_compressed());
        entries
            .into_iter()
            .filter_map(|e| e.variant_request())
            .collect()
    }

    /// Whether this value is still served (not purged).
    pub(crate) fn is_live(&self) -> bool {
        !self.purged.load(Ordering::Acquire)
    }

    fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Past moka's expiry (see [`KeepFor`]): moka no longer returns it, though it may not have
    /// dropped it yet.
    fn expired(&self, now: Instant) -> bool {
        self.entries.iter().all(|e| e.outlived(now))
    }

    /// Marks the value purged; true if it was live until now.
    pub(crate) fn mark_purged(&self) -> bool {
        !self.purged.swap(true, Ordering::AcqRel)
    }
}

/// What a purge does to what it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeMode {
    /// Removed: the next request waits for the origin.
    Hard,
    /// Marked stale: the next request gets the old copy at once and triggers one refresh.
    Soft,
}

/// How one purge runs: [`PurgeRun::of`] a mode, the rest as needed
/// (`PurgeRun { dry_run: true, ..PurgeRun::of(PurgeMode::Hard) }`).
#[derive(Debug, Clone, Copy)]
pub struct PurgeRun {
    pub mode: PurgeMode,
    /// Counts what the purge selects and changes nothing.
    pub dry_run: bool,
    /// Affected keys listed in [`PurgeCount::examples`].
    pub examples: usize,
    /// A hard purge keeps the values it removes in [`PurgeCount::values`] (for re-warming).
    /// Not by default: the last reference to a large purge's pages would then be dropped, and
    /// their memory freed, on the purging request's thread (+25 % on a 10k-URL tag purge)
    /// instead of the background removal's.
    pub keep_values: bool,
}

impl PurgeRun {
    pub fn of(mode: PurgeMode) -> PurgeRun {
        PurgeRun {
            mode,
            dry_run: false,
            examples: 0,
            keep_values: false,
        }
    }

    /// Counts only: what a purge in `mode` would select.
    pub fn dry_run(mode: PurgeMode) -> PurgeRun {
        PurgeRun {
            dry_run: true,
            ..PurgeRun::of(mode)
        }
    }
}

/// Counts of one purge.
#[derive(Debug, Default, Clone)]
pub struct PurgeCount {
    /// Stored responses (variants) affected.
    pub responses: usize,
    /// URLs (primary keys) affected.
    pub urls: usize,
    /// Up to `examples_wanted` of the affected keys.
    pub examples: Vec<String>,
    /// Every affected key (for re-warming).
    pub keys: Vec<Key>,
    /// The purged values, one per key, when [`PurgeRun::keep_values`] asked for them:
    /// re-warming asks them which variants to fetch again ([`Variants::variant_requests`]).
    pub values: Vec<Arc<Variants>>,
}

/// Cumulative eviction counts by cause, for metrics.
#[derive(Debug, Default)]
pub struct EvictionCounts {
    pub size: AtomicU64,
    pub expired: AtomicU64,
    pub purged: AtomicU64,
    /// Dropped by the proxy because the origin's newer answer may not be stored (it turned
    /// `private`, `no-store`, set a cookie...): not a purge, nobody asked for it.
    pub uncacheable: AtomicU64,
    /// Stored responses (one `Vary` variant each) withdrawn for that reason, including those
    /// whose URL keeps other variants and so is not removed.
    pub withdrawn: AtomicU64,
}

pub struct Cache {
    /// Tells this cache's URLs from another's in the per-worker tables of hot URLs.
    id: u64,
    /// The per-worker tables of hot URLs answer only while moka weighs less than this (half
    /// its capacity; see [`Cache::lookup_at`]).
    hot_below: u64,
    store: moka::sync::Cache<Key, Arc<Variants>>,
    index: Arc<Index>,
    /// Every purge, so a fetch that started before one selecting its URL is not kept as fresh.
    purges: purge_log::PurgeLog,
    next_id: AtomicU64,
    evictions: Arc<EvictionCounts>,
    /// Removes large hard purges from moka in the background.
    removals: removals::Removals,
    /// URLs whose last answer from the origin could not be stored (see [`Cache::note_unstorable`]),
    /// each with the purge epoch its fetch started at.
    unstorable: moka::sync::Cache<Key, u64>,
}

/// How long a URL found unstorable is remembered: Varnish keeps its hit-for-miss objects two
/// minutes; an origin that starts sending a storable page is heard at the next whole-page miss
/// anyway, whatever this says.
const UNSTORABLE_FOR: Duration = Duration::from_secs(60);

/// Bytes of URLs remembered as unstorable at most, each weighed as its key plus
/// `UNSTORABLE_OVERHEAD`: some 16,000 URLs of a typical length. Weighed, not counted: a key is
/// as long as the client's target (up to `--max-uri-length`, 8 KiB by default), and ten
/// thousand of them, each noted by a request for a private page with a query of its own, were
/// 80 MiB that no `--cache-size` accounts for.
const UNSTORABLE_BYTES: u64 = 2 << 20;

/// What moka keeps per remembered URL besides its key, roughly.
const UNSTORABLE_OVERHEAD: usize = 64;

/// Hard purges selecting more URLs than this hand the removal from moka to a thread: the
/// answer (and every request after it) only waits for the values to be marked purged.
const INLINE_REMOVALS: usize = 32;

struct KeepFor;

impl moka::Expiry<Key, Arc<Variants>> for KeepFor {
    fn expire_after_create(
        &self,
        _: &Key,
        value: &Arc<Variants>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.keep_for(Instant::now()))
    }

    fn expire_after_update(
        &self,
        _: &Key,
        value: &Arc<Variants>,
        _: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.keep_for(Instant::now()))
    }
}

impl Variants {
    fn keep_for(&self, now: Instant) -> Duration {
        self.entries
            .iter()
            .map(|e| e.lifetime().keep_for().saturating_sub(e.age(now)))
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// Removes `key` if it still holds value `id` (a newer admission is left alone), unmarked: the
/// eviction listener counts it as uncacheable, not purged.
fn drop_if_id(store: &moka::sync::Cache<Key, Arc<Variants>>, key: &Key, id: u64) {
    store
        .entry(key.clone())
        .and_compute_with(|current| match current {
            Some(c) if c.value().id == id => moka::ops::compute::Op::Remove,
            _ => moka::ops::compute::Op::Nop,
        });
}

/// Removes `key` for a purge if it still holds value `id` (a newer admission is left alone).
/// The value is marked purged first, which is also how the eviction listener tells a purge
/// from the proxy dropping a URL that stopped being cacheable.
fn remove_if_id(store: &moka::sync::Cache<Key, Arc<Variants>>, key: &Key, id: u64) {
    store
        .entry(key.clone())
        .and_compute_with(|current| match current {
            Some(c) if c.value().id == id => {
                c.value().mark_purged();
                moka::ops::compute::Op::Remove
            }
            _ => moka::ops::compute::Op::Nop,
        });
}

impl Cache {
    /// A cache bounded to `capacity_bytes`, counting body, headers and key bytes.
    pub fn new(capacity_bytes: u64) -> Cache {
        let index = Arc::new(Index::default());
        let evictions = Arc::new(EvictionCounts::default());
        let listener_index = index.clone();
        let listener_counts = evictions.clone();
        let store = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|key: &Key, value: &Arc<Variants>| {
                value.weight.saturating_add(key.len() as u32)
            })
            .expire_after(KeepFor)
            .eviction_listener(move |key: Arc<Key>, value: Arc<Variants>, cause| {
                value.retired.store(true, Ordering::Release);
                let counter = match cause {
                    RemovalCause::Replaced => return,
                    RemovalCause::Size => &listener_counts.size,
                    RemovalCause::Expired => &listener_counts.expired,
                    RemovalCause::Explicit if !value.is_live() => &listener_counts.purged,
                    RemovalCause::Explicit => &listener_counts.uncacheable,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                listener_index.remove(&key, value.id);
            })
            .build();
        static NEXT_CACHE: AtomicU64 = AtomicU64::new(1);
        Cache {
            id: NEXT_CACHE.fetch_add(1, Ordering::Relaxed),
            hot_below: capacity_bytes / 2,
            store,
            index,
            purges: purge_log::PurgeLog::default(),
            next_id: AtomicU64::new(1),
            evictions,
            removals: removals::Removals::default(),
            unstorable: moka::sync::Cache::builder()
                .max_capacity(UNSTORABLE_BYTES)
                .weigher(|key: &Key, _: &u64| {
                    u32::try_from(key.len() + UNSTORABLE_OVERHEAD).unwrap_or(u32::MAX)
                })
                .time_to_live(UNSTORABLE_FOR)
                .build(),
        }
    }

    /// Remembers for a minute that the origin's answer for `key` (host, path and query) could not
    /// be stored: a range of it is then asked of the origin as the range at once, instead of
    /// after a whole-page fetch whose answer would be dropped (a video past
    /// `--max-object-size`, a page the origin marks private). `epoch`: the purge epoch read
    /// before the fetch that found it (see [`Cache::epoch`]); a purge since that may select the
    /// URL forgets it (see [`Cache::known_unstorable`]).
    pub fn note_unstorable(&self, key: &Key, epoch: u64) {
        self.unstorable.insert(key.clone(), epoch);
    }

    /// Whether `key`'s page (`page`) was found unstorable within the last minute, and no purge
    /// that may select it ran since its fetch started: the page may be storable after the
    /// change. Only those: a form post elsewhere (which purges the page it is sent to) must
    /// not make every seek of a video fetch it whole again.
    pub fn known_unstorable(&self, key: &str, page: &str) -> bool {
        self.unstorable
            .get(key)
            .is_some_and(|epoch| !self.purges.selected_since(epoch, key, page, None))
    }

    /// The stored variant for this request, if any.
    pub fn lookup(&self, key: &str, request: &HeaderMap) -> Option<Arc<Entry>> {
        self.lookup_as(key, request, entry::is_rsc_request(request), Instant::now())
    }

    /// [`Cache::lookup`] at `now`, as the caller already read the clock, for a caller that
    /// already knows whether the request is an RSC request (see [`Entry::matches_as`]).
    pub fn lookup_as(
        &self,
        key: &str,
        request: &HeaderMap,
        rsc_request: bool,
        now: Instant,
    ) -> Option<Arc<Entry>> {
        // From half its capacity on, moka counts reads (its frequency sketch starts then) and,
        // once full, evicts by those counts and by read order: every hit must then reach it.
        // Hits answered by the tables, 15 in 16, made the pages hit most look as cold as the
        // pages a crawler asks for once, and moka evicted them for those.
        let hot_key = (self.store.weighted_size() < self.hot_below)
            .then(|| hot::HotKey::of(self.id, key))
            .flatten();
        let remembered = hot_key.as_ref().and_then(|hot_key| hot::find(hot_key, now));
        let variants = match remembered {
            Some(variants) => variants,
            None => {
                let variants = self.store.get(key);
                if let Some(hot_key) = &hot_key {
                    hot::remember(hot_key, variants.as_ref());
                }
                variants?
            }
        };
        if !variants.is_live() {
            return None;
        }
        variants
            .entries
            .iter()
            // The URL is looked at only when the RSC guard alone turned a variant down. A
            // withdrawn variant is passed by, not the end of the search: another may match.
            .find(|e| {
                !e.is_withdrawn()
                    && (e.matches_as(request, false, rsc_request)
                        || (key::names_rsc_payload(key)
                            && e.matches_as(request, true, rsc_request)))
            })
            .cloned()
    }

    /// The purge epoch; read it before starting a fetch and hand it to [`Cache::admit`].
    pub fn epoch(&self) -> u64 {
        self.purges.epoch()
    }

    /// Changes when a purge that may select this URL runs (not for purges of other URLs):
    /// requests agreeing on it may share one origin fetch.
    pub fn purge_generation(&self, key: &str, page: &str) -> u64 {
        self.purges.generation(key, page)
    }

    /// Builds the entry and stores it unless a purge ran since `epoch_at_start`. Returns the
    /// entry (to serve either way) and whether it was stored.
    pub fn admit(
        &self,
        key: &Key,
        page: &str,
        new: NewEntry,
        epoch_at_start: u64,
    ) -> (Arc<Entry>, bool) {
        let now = Instant::now();
        let entry = Arc::new(Entry::new(new, now));
        if self
            .purges
            .selected_since(epoch_at_start, key, page, Some(entry.tags()))
        {
            return (entry, false);
        }
        // The tags of every variant the new value holds (variants carried over included).
        let mut stored_tags: Vec<Box<str>> = Vec::new();
        let value_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let inserted = entry.clone();
        let rsc_url = key::names_rsc_payload(key);
        let mut carried_from: Option<Arc<Variants>> = None;
        self.store.entry(key.clone()).and_compute_with(|current| {
            let mut entries: Vec<Arc<Entry>> = Vec::with_capacity(4);
            if let Some(current) = current.filter(|c| c.value().is_live()) {
                let same_vary_names = |e: &Entry| e.vary_names() == inserted.vary_names();
                entries.extend(
                    current
                        .value()
                        .entries
                        .iter()
                        // An RSC payload and an HTML page never replace each other, even when the
                        // origin forgot `Vary: RSC`, nor when their `Vary` lists differ (an RSC
                        // payload is kept for its `Next-Url` and prefetch headers as if listed,
                        // see `fetch_once`): each kind answers its own requests, and storing one
                        // dropped the other, so the two kinds of request took turns missing.
                        // Under a URL that names an RSC payload the two kinds are not kept
                        // apart (`Entry::matches_at`): the new answer replaces either.
                        .filter(|e| {
                            let other_kind = e.is_rsc != inserted.is_rsc && !rsc_url;
                            (other_kind || (same_vary_names(e) && !e.same_vary(&inserted)))
                                && !e.is_withdrawn()
                        })
                        .filter(|e| !e.outlived(now))
                        .cloned(),
                );
                if !entries.is_empty() {
                    carried_from = Some(current.value().clone());
                }
            }
            entries.push(inserted.clone());
            if entries.len() > MAX_VARIANTS {
                entries.remove(0);
            }
            let weight = entries
                .iter()
                .map(|e| e.weight())
                .sum::<usize>()
                .min(u32::MAX as usize) as u32;
            let mut tags: Vec<Box<str>> = entries
                .iter()
                .flat_map(|e| e.tags().iter().cloned())
                .collect();
            tags.sort();
            tags.dedup();
            // Recorded under moka's lock for this key, so index records follow the order of
            // the stored values; an eviction notice for this value (even an immediate one)
            // comes after and finds the record.
            let value = Arc::new(Variants {
                id: value_id,
                entries: entries.into(),
                weight,
                purged: AtomicBool::new(false),
                retired: AtomicBool::new(false),
            });
            let handle = PurgeHandle {
                id: value_id,
                value: Arc::downgrade(&value),
                responses: value.entries.len(),
                expires_at: now + value.keep_for(now),
            };
            stored_tags.clone_from(&tags);
            self.index.insert(key, handle, page, tags);
            moka::ops::compute::Op::Put(value)
        });
        // A purge that started after our epoch read but before the index knew the key would
        // have missed it: undo our own insert. Asked with every variant's tags: a purge of a
        // tag only a carried-over variant has must not be undone by this store. And a purge
        // logged before our epoch read may still have been marking the value we carried
        // variants over from (it does so under the index lock, which our insert then waited
        // for): those variants were purged, and must not live on in ours.
        if carried_from.is_some_and(|value| !value.is_live())
            || self
                .purges
                .selected_since(epoch_at_start, key, page, Some(&stored_tags))
        {
            remove_if_id(&self.store, key, value_id);
            return (entry, false);
        }
        (entry, true)
    }

    /// Applies one purge selector. Bumps the epoch first, so fetches already running are not
    /// stored as fresh afterwards. A hard purge marks the selected values purged (invisible to
    /// the very next lookup, counted exactly) and removes them from moka inline when few, or in
    /// a background thread when many: a tag purge of 10k URLs answers in milliseconds.
    pub fn purge(&self, selector: &Selector<'_>, host: Option<&str>, run: PurgeRun) -> PurgeCount {
        let PurgeRun {
            mode,
            dry_run,
            examples: examples_wanted,
            keep_values,
        } = run;
        fn counted(count: &mut PurgeCount, key: Key, responses: usize, examples_wanted: usize) {
            count.responses += responses;
            count.urls += 1;
            if count.examples.len() < examples_wanted {
                count.examples.push(key.to_string());
            }
            count.keys.push(key);
        }
        if !dry_run {
            self.purges.record(selector, host);
        }
        let now = Instant::now();
        let mut count = PurgeCount::default();
        let mut removals: Vec<(Key, u64)> = Vec::new();
        // Decided on the index records alone, under its lock: each reaches its stored value
        // without a moka lookup.
        self.index.visit(selector, host, |selected| {
            if selected.expires_at <= now {
                // Expired: moka no longer returns it, whatever the index still says.
                return;
            }
            // A value moka already dropped (its eviction notice not yet handled) is gone too.
            let Some(value) = selected.value.upgrade().filter(|v| v.is_live()) else {
                return;
            };
            match (dry_run, mode) {
                (true, _) => {}
                // On the entries themselves: a variant admitted meanwhile carries the same
                // entries over into its value, still marked.
                (false, PurgeMode::Soft) => value.entries.iter().for_each(|e| e.soft_purge()),
                (false, PurgeMode::Hard) => {
                    if !value.mark_purged() {
                        return;
                    }
                    removals.push((selected.key.clone(), selected.id));
                    if keep_values {
                        count.values.push(value.clone());
                    }
                }
            }
            counted(
                &mut count,
                selected.key.clone(),
                selected.responses,
                examples_wanted,
            );
        });
        self.remove_purged(removals);
        count
    }

    fn remove_purged(&self, removals: Vec<(Key, u64)>) {
        if removals.len() <= INLINE_REMOVALS {
            for (key, id) in &removals {
                remove_if_id(&self.store, key, *id);
            }
            return;
        }
        self.removals.send(&self.store, removals);
    }

    /// Withdraws the stored variants `request` would be answered with, when the origin's
    /// answer to it can no longer be stored (the page turned private, grew past the size
    /// limit...): the old copy must not outlive that answer. Variants made for other request
    /// header values (`Vary`), and the RSC payload for an HTML request or the reverse, stay:
    /// the answer says nothing about them, and a client must not evict what others are served.
    /// No purge epoch is bumped: this is the proxy's own bookkeeping, and must not make
    /// concurrent fetches of other URLs unstorable the way a revalidation does. `asked_at`: when
    /// the origin was asked; copies stored since stay. When nothing is left in service, the
    /// URL's value goes (counted as an uncacheable eviction). True if anything was withdrawn.
    pub fn withdraw_answered(&self, key: &Key, request: &HeaderMap, asked_at: Instant) -> bool {
        let Some(value) = self.store.get(key.as_ref()).filter(|v| v.is_live()) else {
            return false;
        };
        let mut withdrew = false;
        let rsc_url = key::names_rsc_payload(key);
        for entry in value
            .entries
            .iter()
            // A copy stored after the origin was asked came from an answer that may be newer
            // than the one withdrawing: it stays.
            .filter(|e| e.matches_at(request, rsc_url) && e.stored_at() <= asked_at)
        {
            if entry.withdraw() {
                withdrew = true;
                self.evictions.withdrawn.fetch_add(1, Ordering::Relaxed);
            }
        }
        if withdrew && value.entries.iter().all(|e| e.is_withdrawn()) {
            drop_if_id(&self.store, key, value.id);
        }
        withdrew
    }

    /// Whether `entry` is still in service under `key`: not purged, replaced, withdrawn or
    /// evicted since it was found.
    pub fn holds(&self, key: &str, entry: &Arc<Entry>) -> bool {
        self.store.get(key).is_some_and(|value| {
            value.is_live()
                && value
                    .entries
                    .iter()
                    .any(|e| Arc::ptr_eq(e, entry) && !e.is_withdrawn())
        })
    }

    /// Whether a variant held for `key` was stored for its encoding class (its `Vary`, the
    /// origin's or one the proxy gave a compressed answer, names `Accept-Encoding`).
    pub fn varies_by_encoding(&self, key: &str) -> bool {
        self.store.get(key).is_some_and(|value| {
            value.is_live()
                && value
                    .entries
                    .iter()
                    .any(|e| !e.is_withdrawn() && e.vary_names().contains(&header::ACCEPT_ENCODING))
        })
    }

    /// Runs moka's pending maintenance (evictions, listener calls) now, after waiting for the
    /// background removals of large hard purges.
    pub fn sync(&self) {
        self.removals.wait();
        self.store.run_pending_tasks();
    }

    /// Stored URLs (primary keys).
    pub fn url_count(&self) -> u64 {
        self.store.entry_count()
    }

    /// Bytes accounted by the weigher.
    pub fn weighted_bytes(&self) -> u64 {
        self.store.weighted_size()
    }

    /// Keys in the purge index (never more than stored URLs once `sync` has run).
    pub fn indexed_keys(&self) -> usize {
        self.index.len()
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn evictions(&self) -> &EvictionCounts {
        &self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory of URLs found unstorable is bounded in bytes, whatever the URLs' length.
    #[test]
    fn long_urls_noted_unstorable_stay_within_the_byte_bound() {
        let cache = Cache::new(1 << 20);
        let query = "q".repeat(8 << 10);
        for n in 0..1_000 {
            cache.note_unstorable(&Key::from(format!("shop.example/private?{n}{query}")), 0);
        }
        cache.unstorable.run_pending_tasks();
        let held: usize = cache.unstorable.iter().map(|(key, _)| key.len()).sum();
        assert!(held as u64 <= UNSTORABLE_BYTES, "{held} bytes of URLs held");
        assert!(cache.unstorable.entry_count() > 0);
    }
}
