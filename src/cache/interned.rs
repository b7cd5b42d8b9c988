//! Header names and values that many stored pages repeat, kept once per process.
//!
//! Why: most of a small page's header bytes are the same on every page of a site: the
//! `Content-Type`, the browser `Cache-Control`, Next.js's 80-byte `Vary`, names such as
//! `x-nextjs-cache` or `x-powered-by`. Each page used to keep its own copy. Here each is kept
//! once and a page refers to it by a 16-bit id.
//!
//! Ids are never reused, so a table only grows; every table is bounded in count and in length,
//! and once one is full every later page keeps its own copies (correct, only larger). So that
//! one-off names and values (a request id, a `max-age` counting down, an echoed origin) do not
//! fill it, an item is kept only the second time it is seen. Reading an id is one atomic load
//! and clones a `'static` `Bytes`: a hit shares no reference count between workers. Only
//! storing a page takes the table's lock.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue};

/// Distinct names kept; a site sends a few dozen.
const NAME_SLOTS: usize = 1024;
/// Longest name kept.
const NAME_MAX_LEN: usize = 64;
/// Distinct values kept: content types, a handful of `Cache-Control`s per route rule, ...
const VALUE_SLOTS: usize = 4096;
/// Longest value kept; Next.js's `Vary` is 80 bytes, a long `Strict-Transport-Security` 60.
const VALUE_MAX_LEN: usize = 256;

/// Distinct `Vary` name lists kept; a site has a handful.
const VARY_LIST_SLOTS: usize = 256;
/// Longest list kept, counting its names' bytes.
const VARY_LIST_MAX_LEN: usize = 512;

/// Response fields whose value is usually the same on many pages. A value that differs per
/// page (`Date`, `ETag`, a CSP nonce, a request id) is left out: it would fill the table with
/// values no other page uses.
static SHARED_VALUE_NAMES: [HeaderName; 20] = [
    header::CONTENT_TYPE,
    header::CACHE_CONTROL,
    header::VARY,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::SERVER,
    header::ACCEPT_RANGES,
    header::ACCESS_CONTROL_ALLOW_ORIGIN,
    header::ALT_SVC,
    header::REFERRER_POLICY,
    header::STRICT_TRANSPORT_SECURITY,
    header::X_CONTENT_TYPE_OPTIONS,
    header::X_FRAME_OPTIONS,
    header::X_XSS_PROTECTION,
    HeaderName::from_static("x-powered-by"),
    HeaderName::from_static("x-nextjs-cache"),
    HeaderName::from_static("x-nextjs-prerender"),
    HeaderName::from_static("x-nextjs-stale-time"),
    HeaderName::from_static("permissions-policy"),
    HeaderName::from_static("cross-origin-opener-policy"),
];

/// Whether values of `name` are worth sharing between pages.
pub fn shares_values(name: &HeaderName) -> bool {
    SHARED_VALUE_NAMES.contains(name)
}

/// Names nearly every site sends, in the table from the start: an origin inventing names can
/// fill the table, but not before these are in.
static COMMON_NAMES: [HeaderName; 24] = [
    header::CONTENT_TYPE,
    header::CACHE_CONTROL,
    header::CONTENT_LENGTH,
    header::DATE,
    header::ETAG,
    header::LAST_MODIFIED,
    header::EXPIRES,
    header::VARY,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::CONTENT_DISPOSITION,
    header::CONTENT_SECURITY_POLICY,
    header::STRICT_TRANSPORT_SECURITY,
    header::X_CONTENT_TYPE_OPTIONS,
    header::X_FRAME_OPTIONS,
    header::X_XSS_PROTECTION,
    header::REFERRER_POLICY,
    header::LINK,
    header::LOCATION,
    header::SERVER,
    header::ACCEPT_RANGES,
    header::ACCESS_CONTROL_ALLOW_ORIGIN,
    header::CONTENT_RANGE,
    header::ALT_SVC,
];

/// The process's table of names.
pub fn names() -> &'static Table<HeaderName> {
    static NAMES: OnceLock<Table<HeaderName>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let table = Table::new(NAME_SLOTS, NAME_MAX_LEN);
        for name in &COMMON_NAMES {
            table.add(name, true);
        }
        table
    })
}

/// The process's table of values (of the [`shares_values`] names).
pub fn values() -> &'static Table<HeaderValue> {
    static VALUES: OnceLock<Table<HeaderValue>> = OnceLock::new();
    VALUES.get_or_init(|| Table::new(VALUE_SLOTS, VALUE_MAX_LEN))
}

/// The process's table of `Vary` name lists.
pub fn vary_lists() -> &'static Table<Box<[HeaderName]>> {
    static LISTS: OnceLock<Table<Box<[HeaderName]>>> = OnceLock::new();
    LISTS.get_or_init(|| Table::new(VARY_LIST_SLOTS, VARY_LIST_MAX_LEN))
}

/// Something a table can keep: its bytes, and a copy of it that lives as long as the process.
pub trait Internable: Clone + Eq + Hash {
    fn len(&self) -> usize;
    /// A copy whose clones share nothing (a `'static` `Bytes`), or `None` if it cannot be made.
    fn to_static(&self) -> Option<Self>;
}

/// Whether `HeaderName::from_static` accepts `text`: it panics on anything but a lowercase
/// token. A name's `as_str` always is one; checked anyway (a name parsed back unchanged is one),
/// because it comes from an origin.
fn static_name_ok(text: &str) -> bool {
    HeaderName::from_bytes(text.as_bytes()).is_ok_and(|parsed| parsed.as_str() == text)
}

impl Internable for HeaderName {
    fn len(&self) -> usize {
        self.as_str().len()
    }

    fn to_static(&self) -> Option<Self> {
        let text = self.as_str();
        static_name_ok(text).then(|| HeaderName::from_static(Box::leak(Box::from(text))))
    }
}

impl Internable for HeaderValue {
    fn len(&self) -> usize {
        self.as_bytes().len()
    }

    fn to_static(&self) -> Option<Self> {
        let bytes: &'static [u8] = Box::leak(Box::from(self.as_bytes()));
        HeaderValue::from_maybe_shared(Bytes::from_static(bytes)).ok()
    }
}

impl Internable for Box<[HeaderName]> {
    /// Counts each name's slot too, so a list of many short names cannot take a slot cheaply.
    fn len(&self) -> usize {
        self.iter()
            .map(|name| name.as_str().len() + std::mem::size_of::<HeaderName>())
            .sum()
    }

    fn to_static(&self) -> Option<Self> {
        // Every name checked before any is copied for good, so a refusal leaks nothing.
        if !self.iter().all(|name| static_name_ok(name.as_str())) {
            return None;
        }
        self.iter().map(HeaderName::to_static).collect()
    }
}

/// An append-only table: ids are handed out under a lock, read without one.
pub struct Table<T> {
    slots: Box<[OnceLock<T>]>,
    state: Mutex<Admission<T>>,
    max_len: usize,
}

struct Admission<T> {
    ids: HashMap<T, u16>,
    /// Hashes of items seen once and not kept yet; emptied when it reaches the table's size,
    /// so it stays bounded however many one-off items arrive.
    seen_once: HashSet<u64>,
    hasher: RandomState,
}

impl<T: Internable> Table<T> {
    pub fn new(slots: usize, max_len: usize) -> Table<T> {
        Table {
            slots: (0..slots.min(usize::from(u16::MAX)))
                .map(|_| OnceLock::new())
                .collect(),
            state: Mutex::new(Admission {
                ids: HashMap::new(),
                seen_once: HashSet::new(),
                hasher: RandomState::new(),
            }),
            max_len,
        }
    }

    /// The id of `item` if it is kept, or is seen for the second time and there is room;
    /// otherwise `None`, and the caller keeps its own copy.
    pub fn intern(&self, item: &T) -> Option<u16> {
        self.add(item, false)
    }

    /// The table's own copy of `item`, when [`Table::intern`] keeps it.
    pub fn shared(&self, item: &T) -> Option<&T> {
        self.get(self.intern(item)?)
    }

    fn add(&self, item: &T, at_first_sight: bool) -> Option<u16> {
        if item.len() > self.max_len {
            return None;
        }
        // A poisoned lock only means another admission panicked mid-insert; the maps are
        // still valid maps, and a slot is only ever filled before its id is handed out.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(&id) = state.ids.get(item) {
            return Some(id);
        }
        let next = state.ids.len();
        // Checked before anything is copied: after a panic between filling a slot and
        // recording its id, this slot stays taken and the table simply counts as full.
        let slot = self.slots.get(next).filter(|slot| slot.get().is_none())?;
        let id = u16::try_from(next).ok()?;
        if !at_first_sight {
            let hash = state.hasher.hash_one(item);
            if state.seen_once.len() >= self.slots.len() {
                state.seen_once.clear();
            }
            if state.seen_once.insert(hash) {
                return None;
            }
            state.seen_once.remove(&hash);
        }
        let kept = item.to_static()?;
        slot.set(kept.clone()).ok()?;
        state.ids.insert(kept, id);
        Some(id)
    }

    /// What `id` stands for; `None` only for an id this table never handed out.
    pub fn get(&self, id: u16) -> Option<&T> {
        self.slots.get(usize::from(id))?.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_value_gets_the_same_id_and_reads_back_equal() {
        let table = Table::new(8, 32);
        let html = HeaderValue::from_static("text/html; charset=utf-8");
        let json = HeaderValue::from_static("application/json");
        assert_eq!(table.intern(&html), None, "kept the second time it is seen");
        let first = table.intern(&html);
        assert_eq!(first, Some(0));
        assert_eq!(table.intern(&json), None);
        assert_eq!(table.intern(&json), Some(1));
        assert_eq!(table.intern(&html.clone()), first);
        assert_eq!(table.get(0), Some(&html));
        assert_eq!(table.get(1), Some(&json));
        assert_eq!(table.get(2), None);
    }

    #[test]
    fn one_off_items_never_fill_the_table() {
        let table = Table::new(4, 32);
        for n in 0..100 {
            let one_off = HeaderValue::from(n);
            assert_eq!(table.intern(&one_off), None);
        }
        let repeated = HeaderValue::from_static("text/html");
        table.intern(&repeated);
        assert_eq!(
            table.intern(&repeated),
            Some(0),
            "room left for what repeats"
        );
        let state = table.state.lock().expect("not poisoned");
        assert!(
            state.seen_once.len() <= 4,
            "the one-off hashes stay bounded"
        );
    }

    #[test]
    fn a_full_table_or_a_long_item_is_refused_and_nothing_else_changes() {
        let table = Table::new(2, 8);
        let a = HeaderName::from_static("x-a");
        let b = HeaderName::from_static("x-b");
        assert_eq!(table.add(&a, true), Some(0));
        assert_eq!(
            table.add(&HeaderName::from_static("x-much-too-long"), true),
            None
        );
        assert_eq!(table.add(&b, true), Some(1));
        assert_eq!(table.add(&HeaderName::from_static("x-c"), true), None);
        // Items already in keep their ids when the table is full.
        assert_eq!(table.intern(&a), Some(0));
        assert_eq!(table.get(1), Some(&b));
    }

    #[test]
    fn values_keep_opaque_bytes() {
        let table = Table::new(4, 64);
        let obs_text = HeaderValue::from_bytes(b"caf\xe9").expect("obs-text is valid");
        let id = table.add(&obs_text, true).expect("room");
        assert_eq!(table.get(id).expect("interned").as_bytes(), b"caf\xe9");
    }

    #[test]
    fn standard_and_custom_names_read_back_as_the_same_names() {
        let table = Table::new(4, 64);
        for name in [
            header::CONTENT_TYPE,
            HeaderName::from_static("x-nextjs-cache"),
        ] {
            let id = table.add(&name, true).expect("room");
            assert_eq!(table.get(id), Some(&name));
        }
    }
}
