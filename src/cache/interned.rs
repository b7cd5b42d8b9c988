//! Header names and values that many stored pages repeat, kept once per process.
//!
//! Why: most of a small page's header bytes are the same on every page of a site: the
//! `Content-Type`, the browser `Cache-Control`, Next.js's 80-byte `Vary`, names such as
//! `x-nextjs-cache` or `x-powered-by`. Each page used to keep its own copy. Here each is kept
//! once and a page refers to it by a 16-bit id.
//!
//! Ids are never reused, so a table only grows; both are bounded in count and in length. Past
//! the bound a page keeps its own copy, so an origin that invents names or values pays with the
//! memory of its own pages and the tables stay small. Reading an id is one atomic load and
//! clones a `'static` `Bytes`: a hit shares no reference count between workers. Only storing a
//! page takes the table's lock.

use std::collections::HashMap;
use std::hash::Hash;
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
            table.intern(name);
        }
        table
    })
}

/// The process's table of values (of the [`shares_values`] names).
pub fn values() -> &'static Table<HeaderValue> {
    static VALUES: OnceLock<Table<HeaderValue>> = OnceLock::new();
    VALUES.get_or_init(|| Table::new(VALUE_SLOTS, VALUE_MAX_LEN))
}

/// Something a table can keep: its bytes, and a copy of it that lives as long as the process.
pub trait Internable: Clone + Eq + Hash {
    fn len(&self) -> usize;
    /// A copy whose clones share nothing (a `'static` `Bytes`), or `None` if it cannot be made.
    fn to_static(&self) -> Option<Self>;
}

impl Internable for HeaderName {
    fn len(&self) -> usize {
        self.as_str().len()
    }

    fn to_static(&self) -> Option<Self> {
        let text: &'static str = Box::leak(Box::from(self.as_str()));
        // `as_str` is always the lowercase token form `from_static` accepts, so it cannot
        // panic; checked anyway, because the name comes from an origin.
        HeaderName::from_bytes(text.as_bytes()).ok()?;
        Some(HeaderName::from_static(text))
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

/// An append-only table: ids are handed out under a lock, read without one.
pub struct Table<T> {
    slots: Box<[OnceLock<T>]>,
    ids: Mutex<HashMap<T, u16>>,
    max_len: usize,
}

impl<T: Internable> Table<T> {
    pub fn new(slots: usize, max_len: usize) -> Table<T> {
        Table {
            slots: (0..slots.min(usize::from(u16::MAX)))
                .map(|_| OnceLock::new())
                .collect(),
            ids: Mutex::new(HashMap::new()),
            max_len,
        }
    }

    /// The id of `item`, added if there is room; `None` when it is too long or the table is
    /// full, and the caller keeps its own copy.
    pub fn intern(&self, item: &T) -> Option<u16> {
        if item.len() > self.max_len {
            return None;
        }
        // A poisoned lock only means another admission panicked mid-insert; the map is
        // still a valid map, and ids already handed out stay valid.
        let mut ids = self
            .ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(&id) = ids.get(item) {
            return Some(id);
        }
        let next = ids.len();
        let slot = self.slots.get(next)?;
        let id = u16::try_from(next).ok()?;
        let kept = item.to_static()?;
        slot.set(kept.clone()).ok()?;
        ids.insert(kept, id);
        Some(id)
    }

    /// The table's own copy of `item` (cloning it shares nothing), or `None` as for
    /// [`Table::intern`].
    pub fn shared(&self, item: &T) -> Option<T> {
        self.get(self.intern(item)?).cloned()
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
        let first = table.intern(&html);
        assert_eq!(first, Some(0));
        assert_eq!(table.intern(&json), Some(1));
        assert_eq!(table.intern(&html.clone()), first);
        assert_eq!(table.get(0), Some(&html));
        assert_eq!(table.get(1), Some(&json));
        assert_eq!(table.get(2), None);
        assert_eq!(table.shared(&json), Some(json));
    }

    #[test]
    fn a_full_table_or_a_long_item_is_refused_and_nothing_else_changes() {
        let table = Table::new(2, 8);
        let a = HeaderName::from_static("x-a");
        let b = HeaderName::from_static("x-b");
        assert_eq!(table.intern(&a), Some(0));
        assert_eq!(
            table.intern(&HeaderName::from_static("x-much-too-long")),
            None
        );
        assert_eq!(table.intern(&b), Some(1));
        assert_eq!(table.intern(&HeaderName::from_static("x-c")), None);
        // Items already in keep their ids when the table is full.
        assert_eq!(table.intern(&a), Some(0));
        assert_eq!(table.get(1), Some(&b));
    }

    #[test]
    fn values_keep_opaque_bytes() {
        let table = Table::new(4, 64);
        let obs_text = HeaderValue::from_bytes(b"caf\xe9").expect("obs-text is valid");
        let id = table.intern(&obs_text).expect("room");
        assert_eq!(table.get(id).expect("interned").as_bytes(), b"caf\xe9");
    }

    #[test]
    fn standard_and_custom_names_read_back_as_the_same_names() {
        let table = Table::new(4, 64);
        for name in [
            header::CONTENT_TYPE,
            HeaderName::from_static("x-nextjs-cache"),
        ] {
            let id = table.intern(&name).expect("room");
            assert_eq!(table.get(id), Some(&name));
        }
    }
}
