//! The purge index: which stored keys belong to a page path, and which carry a tag.
//!
//! Why an index rather than moka's `invalidate_entries_if`: a purge must be visible to the very
//! next request and report exact counts (and dry runs), which a lazy predicate cannot do. Page
//! paths sit in a `BTreeMap`, so a `layout` or pattern purge scans only the range under its
//! literal prefix, never the whole cache. Hits never touch the index; admissions, evictions and
//! purges take its lock briefly (never while calling into moka, whose eviction listener locks
//! it too).
//!
//! Why slots: the index costs memory for every stored URL and a tag purge walks thousands of
//! records, so records live in one arena addressed by `u32` slot ids. Pages and tags list slot
//! ids (one inline id for the usual page with a single URL), each record remembers where it sits
//! in those lists so an eviction unlinks it in constant time, and a purge goes from a tag to its
//! records without hashing a single key. Nothing is stored twice: the hash tables hold slot and
//! tag ids and compare through the arenas, and a page name is usually a slice of a key moka
//! holds anyway. The tables keep std's `RandomState`, because keys and tags come from clients
//! and origins.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use hashbrown::HashTable;
use tokio::time::Instant;

use super::key::{split_key, Key};
use super::pattern::Pattern;
use super::Variants;

mod lists;
use lists::{Link, Links, Members, PageName};

/// Records whose memory a selection touches ahead of visiting them (see [`Index::visit`]).
const WARM_AHEAD: usize = 32;

#[derive(Default)]
pub struct Index {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Indexed by slot id; `None` marks a slot on the free list.
    records: Vec<Option<Record>>,
    /// Reused before the arena grows, so slot ids stay dense.
    free_records: Vec<u32>,
    /// Slot ids, found by hashing the key their record holds.
    by_key: HashTable<u32>,
    by_page: BTreeMap<PageName, Members>,
    /// Indexed by tag id; `None` marks a tag id on the free list.
    tags: Vec<Option<Tag>>,
    /// As `free_records`, for tag ids.
    free_tags: Vec<u32>,
    /// Tag ids, found by hashing the tag's name.
    by_tag: HashTable<u32>,
    hasher: RandomState,
}

struct Record {
    key: Key,
    /// Shared with the `by_page` key.
    page: PageName,
    id: u64,
    value: Weak<Variants>,
    expires_at: Instant,
    responses: u32,
    /// Position in the page's members, so unlinking needs no search.
    page_pos: u32,
    tags: Links,
}

struct Tag {
    name: Box<str>,
    members: Members,
}

/// What a purge needs of a stored value without asking moka: a lookup per selected key (and the
/// housekeeping moka may run inline on reads) was most of a 10k-URL tag purge.
#[derive(Debug, Clone)]
pub struct PurgeHandle {
    /// Id of the stored value this record describes.
    pub id: u64,
    /// The stored value, to mark it purged without asking moka; it does not keep the value
    /// alive.
    pub value: Weak<Variants>,
    /// Responses (Vary variants) the value holds.
    pub responses: usize,
    /// When moka expires the value; a record past it counts as gone.
    pub expires_at: Instant,
}

/// One selected record, lent to the visitor of [`Index::visit`].
pub struct Selected<'a> {
    pub key: &'a Key,
    /// Id of the stored value the record describes.
    pub id: u64,
    /// The stored value (see [`PurgeHandle::value`]).
    pub value: &'a Weak<Variants>,
    pub responses: usize,
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
    /// The URLs carrying this Next.js implicit tag because a middleware rewrite served another
    /// page under them (`key::rewrite_tags`): as `Tag` here; the purge log only takes it to
    /// select fetches whose tags are known (see `purge_log`).
    Rewritten(&'a str),
    All,
    /// What either selects, each URL once.
    Either(&'a Selector<'a>, &'a Selector<'a>),
}

impl Index {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain maps behind, still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records (or replaces) what the stored value `handle.id` under `key` is reachable by.
    pub fn insert(&self, key: &Key, handle: PurgeHandle, page: &str, mut tags: Vec<Box<str>>) {
        // Links are unique per tag, so a duplicate would break constant-time unlinking.
        tags.sort_unstable();
        tags.dedup();
        let mut inner = self.lock();
        let inner = &mut *inner;
        let hash = inner.hasher.hash_one(&**key);
        if let Some(slot) = inner.find_key(hash, key) {
            let Some(mut record) = inner.take(slot) else {
                return;
            };
            // A refresh of the same URL usually keeps its page and tags: then only the value
            // changes, and the lists need no update.
            if record.page.as_str() != page || !inner.same_tags(&record, &tags) {
                inner.unlink(slot, &record);
                (record.page, record.page_pos) = inner.link_page(slot, key, page);
                record.tags = inner.link_tags(slot, &tags);
            }
            record.id = handle.id;
            record.value = handle.value;
            record.expires_at = handle.expires_at;
            record.responses = u32::try_from(handle.responses).unwrap_or(u32::MAX);
            inner.records[slot as usize] = Some(record);
            return;
        }
        // Running out of slot ids takes four billion indexed keys, more than memory holds.
        let Some(slot) = inner.allocate() else {
            return;
        };
        let (page, page_pos) = inner.link_page(slot, key, page);
        let links = inner.link_tags(slot, &tags);
        inner.records[slot as usize] = Some(Record {
            key: key.clone(),
            page,
            id: handle.id,
            value: handle.value,
            expires_at: handle.expires_at,
            responses: u32::try_from(handle.responses).unwrap_or(u32::MAX),
            page_pos,
            tags: links,
        });
        let Inner {
            records,
            by_key,
            hasher,
            ..
        } = inner;
        by_key.insert_unique(hash, slot, |&s| hash_slot(hasher, records, s));
    }

    /// Forgets `key`, but only if the record still describes value `id`: an eviction notice for
    /// an old copy must not unlink the copy that replaced it.
    pub fn remove(&self, key: &Key, id: u64) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let hash = inner.hasher.hash_one(&**key);
        let Some(slot) = inner.find_key(hash, key) else {
            return;
        };
        if inner.record(slot).is_none_or(|r| r.id != id) {
            return;
        }
        if let Ok(entry) = inner.by_key.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        if let Some(record) = inner.take(slot) {
            inner.unlink(slot, &record);
        }
        inner.free_records.push(slot);
    }

    /// Calls `visit` for every record selected, restricted to `host` when given, under the
    /// index lock, so a purge marks and counts without first copying keys and handles out.
    /// `visit` must not call into the cache (moka's eviction listener takes this lock).
    pub fn visit(
        &self,
        selector: &Selector<'_>,
        host: Option<&str>,
        mut visit: impl FnMut(Selected<'_>),
    ) {
        let inner = self.lock();
        // Pages in a range are gathered first, so the warming below spans pages too.
        let mut gathered: Vec<u32> = Vec::new();
        let slots: &[u32] = match selector {
            Selector::Page(page) => inner.by_page.get(*page).map_or(&[], Members::as_slice),
            Selector::Tag(tag) | Selector::Rewritten(tag) => inner.tag_members(tag),
            Selector::Either(first, second) => {
                inner.gather(first, &mut gathered);
                inner.gather(second, &mut gathered);
                // A URL both select is visited (and counted) once.
                gathered.sort_unstable();
                gathered.dedup();
                &gathered
            }
            _ => {
                inner.gather(selector, &mut gathered);
                &gathered
            }
        };
        for chunk in slots.chunks(WARM_AHEAD) {
            // The visitor's atomic swaps and reference count updates each wait for their cache
            // miss in turn; plain loads first let the misses of a whole chunk overlap.
            let mut warm = 0usize;
            for &slot in chunk {
                if let Some(record) = inner.record(slot) {
                    warm += Arc::strong_count(&record.key) + record.value.strong_count();
                }
            }
            std::hint::black_box(warm);
            for &slot in chunk {
                let Some(record) = inner.record(slot) else {
                    continue;
                };
                if host.is_some_and(|h| !same_host(split_key(&record.key).0, h)) {
                    continue;
                }
                visit(Selected {
                    key: &record.key,
                    id: record.id,
                    value: &record.value,
                    responses: record.responses as usize,
                    expires_at: record.expires_at,
                });
            }
        }
    }

    /// Keys selected, restricted to `host` when given.
    pub fn select(&self, selector: &Selector<'_>, host: Option<&str>) -> Vec<Key> {
        let mut keys = Vec::new();
        self.visit(selector, host, |selected| keys.push(selected.key.clone()));
        keys
    }

    /// Number of keys indexed (at most the number of stored keys).
    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys reachable through the page and tag maps, counted with repetition; a consistency
    /// check for tests and metrics.
    pub fn linked_keys(&self) -> (usize, usize) {
        let inner = self.lock();
        (
            inner.by_page.values().map(Members::len).sum(),
            inner
                .tags
                .iter()
                .flatten()
                .map(|tag| tag.members.len())
                .sum(),
        )
    }
}

/// Whether `page` is `root` or below it, by path segments (`/blog` holds `/blog/a/b`, not
/// `/blogger`; `/` holds everything).
pub(super) fn in_subtree(page: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    page.strip_prefix(root)
        .is_some_and(|rest| root.is_empty() || rest.is_empty() || rest.starts_with('/'))
}

/// Whether a key's host (as requested, maybe with a port) is the purge's `host` (with or
/// without that port): `"host": "shop.example"` reaches `shop.example:8080` too.
pub(super) fn same_host(stored: &str, wanted: &str) -> bool {
    stored == wanted
        || stored.strip_prefix(wanted).is_some_and(|rest| {
            rest.strip_prefix(':')
                .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The hash `by_key` files `slot` under (a free slot is never in the table; 0 keeps this total).
fn hash_slot(hasher: &RandomState, records: &[Option<Record>], slot: u32) -> u64 {
    records
        .get(slot as usize)
        .and_then(Option::as_ref)
        .map_or(0, |record| hasher.hash_one(&*record.key))
}

/// The hash `by_tag` files tag `id` under (as [`hash_slot`]).
fn hash_tag(hasher: &RandomState, tags: &[Option<Tag>], id: u32) -> u64 {
    tags.get(id as usize)
        .and_then(Option::as_ref)
        .map_or(0, |tag| hasher.hash_one(&*tag.name))
}

impl Inner {
    fn tag_members(&self, tag: &str) -> &[u32] {
        self.find_tag(tag)
            .and_then(|t| self.tag(t))
            .map_or(&[], |t| t.members.as_slice())
    }

    /// Appends the slots `selector` selects.
    fn gather(&self, selector: &Selector<'_>, gathered: &mut Vec<u32>) {
        match selector {
            Selector::Page(page) => {
                gathered.extend_from_slice(self.by_page.get(*page).map_or(&[], Members::as_slice))
            }
            Selector::Tag(tag) | Selector::Rewritten(tag) => {
                gathered.extend_from_slice(self.tag_members(tag))
            }
            Selector::Subtree(root) => {
                for (page, members) in
                    pages_starting_with(&self.by_page, root.trim_end_matches('/'))
                {
                    if in_subtree(page, root) {
                        gathered.extend_from_slice(members.as_slice());
                    }
                }
            }
            Selector::Pattern(pattern, subtree) => {
                let prefix = pattern.literal_prefix();
                let start = prefix.trim_end_matches('/');
                for (page, members) in pages_starting_with(&self.by_page, start) {
                    if pattern.matches(page, *subtree) {
                        gathered.extend_from_slice(members.as_slice());
                    }
                }
            }
            Selector::All => {
                gathered.reserve(self.by_key.len());
                for members in self.by_page.values() {
                    gathered.extend_from_slice(members.as_slice());
                }
            }
            Selector::Either(first, second) => {
                self.gather(first, gathered);
                self.gather(second, gathered);
            }
        }
    }

    fn record(&self, slot: u32) -> Option<&Record> {
        self.records.get(slot as usize).and_then(Option::as_ref)
    }

    fn take(&mut self, slot: u32) -> Option<Record> {
        self.records.get_mut(slot as usize).and_then(Option::take)
    }

    fn tag(&self, id: u32) -> Option<&Tag> {
        self.tags.get(id as usize).and_then(Option::as_ref)
    }

    fn find_key(&self, hash: u64, key: &str) -> Option<u32> {
        self.by_key
            .find(hash, |&slot| {
                self.record(slot).is_some_and(|r| *r.key == *key)
            })
            .copied()
    }

    fn find_tag(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.by_tag
            .find(hash, |&id| self.tag(id).is_some_and(|t| *t.name == *name))
            .copied()
    }

    /// A free slot id (its record still `None`), or `None` past `u32::MAX` slots.
    fn allocate(&mut self) -> Option<u32> {
        if let Some(slot) = self.free_records.pop() {
            return Some(slot);
        }
        let slot = u32::try_from(self.records.len()).ok()?;
        self.records.push(None);
        Some(slot)
    }

    fn same_tags(&self, record: &Record, tags: &[Box<str>]) -> bool {
        let links = record.tags.as_slice();
        links.len() == tags.len()
            && links
                .iter()
                .zip(tags)
                .all(|(link, name)| self.tag(link.tag).is_some_and(|t| t.name == *name))
    }

    /// Adds `slot` (which stores `key`) to `page`'s members: the shared page name and the
    /// slot's position.
    fn link_page(&mut self, slot: u32, key: &Key, page: &str) -> (PageName, u32) {
        let found = self
            .by_page
            .range_mut::<str, _>((Bound::Included(page), Bound::Included(page)))
            .next();
        if let Some((shared, members)) = found {
            let pos = members.push(slot);
            return (shared.clone(), pos);
        }
        let name = PageName::new(key, page);
        self.by_page.insert(name.clone(), Members::One(slot));
        (name, 0)
    }

    /// Adds `slot` to each tag's members (`tags` sorted and unique).
    fn link_tags(&mut self, slot: u32, tags: &[Box<str>]) -> Links {
        let links: Vec<Link> = tags
            .iter()
            .filter_map(|name| {
                let Some(tag) = self.find_tag(name) else {
                    let tag = self.new_tag(name, slot)?;
                    return Some(Link { tag, pos: 0 });
                };
                let members = &mut self.tags.get_mut(tag as usize)?.as_mut()?.members;
                Some(Link {
                    tag,
                    pos: members.push(slot),
                })
            })
            .collect();
        Links::new(links)
    }

    fn new_tag(&mut self, name: &str, slot: u32) -> Option<u32> {
        let id = match self.free_tags.pop() {
            Some(id) => id,
            None => {
                let id = u32::try_from(self.tags.len()).ok()?;
                self.tags.push(None);
                id
            }
        };
        self.tags[id as usize] = Some(Tag {
            name: name.into(),
            members: Members::One(slot),
        });
        let hash = self.hasher.hash_one(name);
        let Inner {
            tags,
            by_tag,
            hasher,
            ..
        } = self;
        by_tag.insert_unique(hash, id, |&t| hash_tag(hasher, tags, t));
        Some(id)
    }

    /// Takes `slot` (whose record the caller holds, out of `records`) off its page's and tags'
    /// lists, fixing the position of the record each removal moves.
    fn unlink(&mut self, slot: u32, record: &Record) {
        let page = record.page.as_str();
        if let Some(members) = self.by_page.get_mut(page) {
            let moved = members.remove(slot, record.page_pos);
            if members.is_empty() {
                self.by_page.remove(page);
            }
            if let Some((other, pos)) = moved {
                if let Some(other) = self
                    .records
                    .get_mut(other as usize)
                    .and_then(Option::as_mut)
                {
                    other.page_pos = pos;
                }
            }
        }
        for link in record.tags.as_slice() {
            let Some(tag) = self
                .tags
                .get_mut(link.tag as usize)
                .and_then(Option::as_mut)
            else {
                continue;
            };
            let moved = tag.members.remove(slot, link.pos);
            if tag.members.is_empty() {
                self.drop_tag(link.tag);
            }
            if let Some((other, pos)) = moved {
                let other = self
                    .records
                    .get_mut(other as usize)
                    .and_then(Option::as_mut);
                if let Some(other) = other.and_then(|r| r.tags.find_mut(link.tag)) {
                    other.pos = pos;
                }
            }
        }
    }

    fn drop_tag(&mut self, id: u32) {
        let hash = hash_tag(&self.hasher, &self.tags, id);
        if let Ok(entry) = self.by_tag.find_entry(hash, |&t| t == id) {
            entry.remove();
        }
        if let Some(tag) = self.tags.get_mut(id as usize) {
            *tag = None;
            self.free_tags.push(id);
        }
    }
}

/// The pages whose names start with `prefix`, in order: a range scan that stops at the first
/// page past the prefix, so its cost follows the matches, not the number of pages stored.
fn pages_starting_with<'a>(
    by_page: &'a BTreeMap<PageName, Members>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a str, &'a Members)> + 'a {
    let from = if prefix.is_empty() { "/" } else { prefix };
    by_page
        .range::<str, _>((Bound::Included(from), Bound::Unbounded))
        .map(|(page, members)| (page.as_str(), members))
        .take_while(move |(page, _)| page.starts_with(prefix))
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
            value: Weak::new(),
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

    /// Every URL pays for these: growth should be a decision.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn record_sizes() {
        assert!(std::mem::size_of::<Option<Record>>() <= 104);
        assert!(std::mem::size_of::<Members>() <= 16);
        assert!(std::mem::size_of::<PageName>() <= 24);
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

    /// Churn over few pages and tags moves members around their lists all the time: every
    /// selection must still match a plain map of what was inserted.
    #[test]
    fn positions_survive_churn() {
        use std::collections::{BTreeSet, HashMap};

        let index = Index::default();
        // Per key: value id, page, unique tags.
        type Model = (u64, String, Vec<String>);
        let mut model: HashMap<String, Model> = HashMap::new();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for step in 0..20_000u64 {
            // Keys end with their page half the time, so page names borrow from keys (some of
            // which then go while their page stays).
            let path = format!("/p{}", next(40));
            let k = format!("h{}{path}?v={}", next(4), next(4)).replace("?v=0", "");
            if next(3) == 0 {
                // A stale id now and then: must change nothing.
                let id = model.get(&k).map_or(0, |m| m.0);
                let id = if next(4) == 0 { id + 1 } else { id };
                index.remove(&key(&k), id);
                if model.get(&k).is_some_and(|m| m.0 == id) {
                    model.remove(&k);
                }
            } else {
                let page = if next(2) == 0 {
                    path
                } else {
                    format!("/p{}", next(40))
                };
                let tags: Vec<String> = (0..next(5)).map(|_| format!("t{}", next(12))).collect();
                let boxed = tags.iter().map(|t| t.as_str().into()).collect();
                index.insert(&key(&k), handle(step + 1), &page, boxed);
                let mut unique = tags;
                unique.sort();
                unique.dedup();
                model.insert(k, (step + 1, page, unique));
            }
            if step % 997 != 0 {
                continue;
            }
            let keys = |filter: &dyn Fn(&Model) -> bool| {
                let mut keys: Vec<String> = model
                    .iter()
                    .filter(|(_, m)| filter(m))
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.sort();
                keys
            };
            for p in 0..40 {
                let page = format!("/p{p}");
                assert_eq!(
                    sorted(index.select(&Selector::Page(&page), None)),
                    keys(&|m| m.1 == page)
                );
            }
            for t in 0..12 {
                let tag = format!("t{t}");
                assert_eq!(
                    sorted(index.select(&Selector::Tag(&tag), None)),
                    keys(&|m| m.2.contains(&tag))
                );
            }
            let linked: BTreeSet<_> = index.select(&Selector::All, None).into_iter().collect();
            assert_eq!(linked.len(), model.len());
            let tagged = model.values().map(|m| m.2.len()).sum();
            assert_eq!(index.linked_keys(), (model.len(), tagged));
            assert_eq!(index.len(), model.len());
        }
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
