//! The purges of the recent past, so a fetch that was in flight during a purge can tell whether
//! that purge was about its URL.
//!
//! Why: a response the origin rendered before a change must not be stored as fresh after the
//! purge that announced the change. A single epoch bumped by every purge was enough to tell, but
//! it made every fetch in flight unstorable, whatever URL a purge named: a client posting a form
//! (which invalidates the posted URL, RFC 9111 section 4.4) in a loop kept the cache from
//! filling, and one unrelated purge threw away a soft purge's refresh. Each purge is logged with
//! what it selects; an admission asks only about the purges since its fetch started, and is
//! refused only when one of them selects its URL (by page, subtree, pattern, host, or one of
//! the tags it carries). When the log has dropped purges a fetch spans, the answer is "yes":
//! refusing a store is always safe.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::index::{in_subtree, same_host, Selector};
use super::key::split_key;
use super::pattern::Pattern;
use crate::config::strip_port;

/// Purges remembered; a fetch spanning more than this many is refused storage.
const CAPACITY: usize = 4096;
/// Bytes of subtree roots, patterns and hosts remembered (pages and tags are kept as hashes).
const TEXT_CAPACITY: usize = 1 << 20;

#[derive(Default)]
pub(super) struct PurgeLog {
    /// Purges logged so far: the epoch of the newest one.
    epoch: AtomicU64,
    log: Mutex<Log>,
    /// Hashes hosts, pages and tags, so a scan compares numbers and reads a host's text only on
    /// a match (a scan of a full log took ~120 us comparing text, ~15 us this way).
    hasher: RandomState,
}

#[derive(Default)]
struct Log {
    /// Consecutive epochs, oldest first.
    entries: VecDeque<Logged>,
    text_bytes: usize,
    /// The epoch of the newest purge dropped from the log (0: none yet). Any URL may have been
    /// selected by it, as far as the log can still tell.
    newest_dropped: u64,
}

struct Logged {
    epoch: u64,
    /// Of the host without its port, when the purge names a host.
    host_hash: Option<u64>,
    host: Option<Box<str>>,
    scope: Scope,
}

/// What a scan compares each logged purge with.
struct Query<'a> {
    key: &'a str,
    page: &'a str,
    host_hash: u64,
    page_hash: u64,
    /// Hashes of the tags the response carries (`None`: not known yet).
    tags: Option<Vec<u64>>,
}

/// A [`Selector`] as the log keeps it. Pages and tags are kept as their hash alone: a
/// collision only refuses a store, which is always safe, and a client posting to long URLs
/// (each successful post logs its page) cannot fill the log's text budget.
enum Scope {
    Page(u64),
    Subtree(Box<str>),
    Pattern(Pattern, bool),
    Tag(u64),
    /// A page or layout purge's own implicit tag, reaching the URLs rewritten to it. Selects
    /// only fetches whose tags are known: taken as a tag purge, every page purge would give
    /// every URL a new generation (no request joining a fetch begun before it) and forget what
    /// is known unstorable. A request arriving after it may still join a fetch of a rewritten
    /// URL begun before it (served that answer once); the answer is not stored.
    Rewritten(u64),
    All,
}

impl Logged {
    fn text_bytes(&self) -> usize {
        let scope = match &self.scope {
            Scope::Subtree(text) => text.len(),
            Scope::Pattern(pattern, _) => pattern.source().len(),
            Scope::Page(_) | Scope::Tag(_) | Scope::Rewritten(_) | Scope::All => 0,
        };
        scope + self.host.as_deref().map_or(0, str::len)
    }

    /// Whether this purge selects the URL `query` describes; with no tags known (before the
    /// answer arrived), any tag purge might.
    fn selects(&self, query: &Query<'_>) -> bool {
        // Numbers first: most logged purges name other pages or tags.
        let cheap_miss = match &self.scope {
            Scope::Page(hash) => *hash != query.page_hash,
            Scope::Tag(hash) => query.tags.as_ref().is_some_and(|tags| !tags.contains(hash)),
            Scope::Rewritten(hash) => query.tags.as_ref().is_none_or(|tags| !tags.contains(hash)),
            _ => false,
        };
        if cheap_miss || self.host_hash.is_some_and(|hash| hash != query.host_hash) {
            return false;
        }
        if let Some(host) = &self.host {
            if !same_host(split_key(query.key).0, host) {
                return false;
            }
        }
        match &self.scope {
            Scope::Subtree(root) => in_subtree(query.page, root),
            Scope::Pattern(pattern, subtree) => pattern.matches(query.page, *subtree),
            Scope::Page(_) | Scope::Tag(_) | Scope::Rewritten(_) | Scope::All => true,
        }
    }
}

impl PurgeLog {
    fn hash(&self, text: &str) -> u64 {
        self.hasher.hash_one(text)
    }

    fn query<'a>(&self, key: &'a str, page: &'a str, tags: Option<&'a [Box<str>]>) -> Query<'a> {
        Query {
            key,
            page,
            host_hash: self.hash(strip_port(split_key(key).0)),
            page_hash: self.hash(page),
            tags: tags.map(|tags| tags.iter().map(|t| self.hash(t)).collect()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // Plain data: a panic while holding the lock leaves it usable.
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The epoch now: read it before a fetch starts and hand it to [`PurgeLog::selected_since`].
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Logs a purge. Call it before the purge looks for what it selects, so an admission racing
    /// the purge either is found by it or finds it here.
    pub(super) fn record(&self, selector: &Selector<'_>, host: Option<&str>) {
        if let Selector::Either(first, second) = selector {
            self.record(first, host);
            self.record(second, host);
            return;
        }
        let scope = match selector {
            Selector::Page(page) => Scope::Page(self.hash(page)),
            Selector::Subtree(root) => Scope::Subtree((*root).into()),
            Selector::Pattern(pattern, subtree) => Scope::Pattern((*pattern).clone(), *subtree),
            Selector::Tag(tag) => Scope::Tag(self.hash(tag)),
            Selector::Rewritten(tag) => Scope::Rewritten(self.hash(tag)),
            Selector::All | Selector::Either(..) => Scope::All,
        };
        let mut log = self.lock();
        let epoch = self.epoch.load(Ordering::SeqCst) + 1;
        let logged = Logged {
            epoch,
            host_hash: host.map(|h| self.hash(strip_port(h))),
            host: host.map(Into::into),
            scope,
        };
        log.text_bytes += logged.text_bytes();
        log.entries.push_back(logged);
        while log.entries.len() > CAPACITY || log.text_bytes > TEXT_CAPACITY {
            let Some(dropped) = log.entries.pop_front() else {
                break;
            };
            log.text_bytes -= dropped.text_bytes();
            log.newest_dropped = dropped.epoch;
        }
        // Published under the lock, so the log always holds the newest epoch.
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    /// Whether a purge since `epoch` selects the URL `key` (page `page`) carrying `tags` (or any
    /// tags, when `None`).
    pub(super) fn selected_since(
        &self,
        epoch: u64,
        key: &str,
        page: &str,
        tags: Option<&[Box<str>]>,
    ) -> bool {
        if self.epoch() == epoch {
            return false;
        }
        let query = self.query(key, page, tags);
        let log = self.lock();
        let Some(oldest) = log.entries.front().map(|e| e.epoch) else {
            return true;
        };
        if oldest > epoch + 1 {
            // Some of the purges since then are forgotten.
            return true;
        }
        log.entries
            .iter()
            .skip((epoch + 1 - oldest) as usize)
            .any(|logged| logged.selects(&query))
    }

    /// The epoch of the newest remembered purge that may select this URL, whatever its tags (0
    /// when none), a page purge's own implicit tag left out (see [`Scope::Rewritten`]):
    /// requests agreeing on it may share one origin fetch.
    pub(super) fn generation(&self, key: &str, page: &str) -> u64 {
        let query = self.query(key, page, None);
        let log = self.lock();
        log.entries
            .iter()
            .rev()
            .find(|logged| logged.selects(&query))
            .map_or(log.newest_dropped, |logged| logged.epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purge_refuses_only_the_urls_it_selects() {
        let log = PurgeLog::default();
        let start = log.epoch();
        let tags: Vec<Box<str>> = vec!["posts".into()];
        log.record(&Selector::Page("/other"), None);
        log.record(&Selector::Page("/blog"), Some("b.example"));
        log.record(&Selector::Tag("products"), None);
        assert!(!log.selected_since(start, "a.example/blog", "/blog", Some(&tags)));
        assert!(log.selected_since(start, "b.example:8080/blog", "/blog", Some(&tags)));
        assert!(
            log.selected_since(start, "a.example/blog", "/blog", None),
            "tags unknown: the tag purge may select it"
        );
        log.record(&Selector::Tag("posts"), None);
        assert!(log.selected_since(start, "a.example/blog", "/blog", Some(&tags)));
        assert!(
            !log.selected_since(log.epoch(), "a.example/blog", "/blog", Some(&tags)),
            "nothing since now"
        );
    }

    /// A page purge's own implicit tag (reaching URLs rewritten to the page) is no tag purge of
    /// every URL: fetches of other pages keep their generation, so requests still join them.
    #[test]
    fn a_page_purge_reaching_rewritten_urls_keeps_other_urls_generation() {
        let log = PurgeLog::default();
        let start = log.epoch();
        let before = log.generation("h/deals", "/deals");
        let (own, rewritten) = (
            Selector::Page("/products/a"),
            Selector::Rewritten("_N_T_/products/a"),
        );
        log.record(&Selector::Either(&own, &rewritten), None);
        assert_eq!(log.generation("h/deals", "/deals"), before);
        assert!(!log.selected_since(start, "h/deals", "/deals", None));
        assert!(!log.selected_since(start, "h/deals", "/deals", Some(&[])));
        let tags: Vec<Box<str>> = vec!["_N_T_/products/a".into()];
        assert!(log.selected_since(start, "h/deals", "/deals", Some(&tags)));
        assert!(log.selected_since(start, "h/products/a", "/products/a", None));
        // An explicit tag purge of the same name is still one for fetches not answered yet.
        log.record(&Selector::Tag("_N_T_/products/a"), None);
        assert!(log.selected_since(start, "h/deals", "/deals", None));
    }

    #[test]
    fn subtrees_patterns_and_all() {
        let log = PurgeLog::default();
        let start = log.epoch();
        log.record(&Selector::Subtree("/docs/"), None);
        assert!(log.selected_since(start, "h/docs", "/docs", Some(&[])));
        assert!(log.selected_since(start, "h/docs/a/b", "/docs/a/b", Some(&[])));
        assert!(!log.selected_since(start, "h/docsearch", "/docsearch", Some(&[])));
        let pattern = Pattern::parse("/products/[slug]");
        let after_subtree = log.epoch();
        log.record(&Selector::Pattern(&pattern, false), None);
        assert!(log.selected_since(after_subtree, "h/products/a", "/products/a", Some(&[])));
        assert!(!log.selected_since(after_subtree, "h/products", "/products", Some(&[])));
        let after_pattern = log.epoch();
        log.record(&Selector::All, Some("h"));
        assert!(log.selected_since(after_pattern, "h/x", "/x", Some(&[])));
        assert!(!log.selected_since(after_pattern, "g/x", "/x", Some(&[])));
    }

    #[test]
    fn a_fetch_spanning_forgotten_purges_is_refused() {
        let log = PurgeLog::default();
        let start = log.epoch();
        for _ in 0..=CAPACITY {
            log.record(&Selector::Page("/other"), None);
        }
        assert!(log.selected_since(start, "h/blog", "/blog", Some(&[])));
        assert!(!log.selected_since(start + 1, "h/blog", "/blog", Some(&[])));
    }

    #[test]
    fn a_generation_never_goes_back_when_purges_are_forgotten() {
        let log = PurgeLog::default();
        log.record(&Selector::Page("/blog"), None);
        let blog = log.generation("h/blog", "/blog");
        assert_eq!(blog, 1);
        // Long host names fill the text budget long before the count is reached.
        let long_host = "h".repeat(2000);
        for _ in 0..1000 {
            log.record(&Selector::Page("/other"), Some(&long_host));
            assert!(log.generation("h/blog", "/blog") >= blog);
        }
        assert!(
            log.generation("h/blog", "/blog") > blog,
            "/blog's purge was forgotten"
        );
        // Pages are kept as hashes: a flood of long page purges forgets nothing.
        let log = PurgeLog::default();
        log.record(&Selector::Page("/blog"), None);
        let long_page = format!("/{}", "p".repeat(8000));
        for _ in 0..1000 {
            log.record(&Selector::Page(&long_page), None);
        }
        assert_eq!(log.generation("h/blog", "/blog"), 1);
        assert!(!log.selected_since(1, "h/blog", "/blog", Some(&[])));
    }

    #[test]
    fn generations_change_only_for_purges_that_may_select_the_url() {
        let log = PurgeLog::default();
        assert_eq!(log.generation("h/blog", "/blog"), 0);
        log.record(&Selector::Page("/other"), None);
        assert_eq!(log.generation("h/blog", "/blog"), 0);
        log.record(&Selector::Page("/blog"), None);
        let blog = log.epoch();
        assert_eq!(log.generation("h/blog", "/blog"), blog);
        log.record(&Selector::Page("/other"), None);
        assert_eq!(log.generation("h/blog", "/blog"), blog);
        log.record(&Selector::Tag("anything"), None);
        assert_eq!(log.generation("h/blog", "/blog"), log.epoch());
    }
}
