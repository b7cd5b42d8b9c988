//! A per-worker table of recently hit URLs in front of moka. A hit on one of them skips moka's
//! `get`: its hash, its read recording and the housekeeping the recordings trigger (~1,060
//! instructions; the table takes ~350, so ~5 % of a hit: `benches/instructions.sh`).
//!
//! The table never answers what moka would not. It points at moka's values weakly (a value
//! moka dropped is gone here too, and the table keeps no page alive), and every value is marked
//! when it leaves moka: purged ([`Variants::is_live`]), or replaced, evicted or removed
//! ([`Variants::is_retired`], set by the eviction listener, which moka calls before the call
//! that replaced or removed it returns). A value past moka's own expiry, which moka stops
//! returning before it drops it, is passed by here too.
//!
//! The cache consults the table only while moka is less than half full (`Cache::lookup_at`):
//! from then on moka counts every read to decide what to evict, and a sample of the hits would
//! make the most-hit pages look as cold as pages asked for once (a crawler's), which it then
//! evicted first. Below that, one hit in [`SAMPLE`] on a remembered URL still goes through moka,
//! so its read order is roughly right by the time it fills.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use tokio::time::Instant;

use super::Variants;

/// 4,096 URLs per worker (~400 KB with their keys), so the bench's 1,000 hot pages all fit.
const SETS: usize = 1024;
const WAYS: usize = 4;
/// One hit in this many on a remembered URL is also recorded by moka.
const SAMPLE: u32 = 16;
/// Longer keys are not remembered (their hits ask moka): clients choose the URLs, and the
/// table's copies of the keys are outside `--cache-size`; this bounds them to 2 MiB a worker
/// where a request line of 32 KiB made it 128 MiB.
const MAX_KEY: usize = 512;

thread_local! {
    static TABLE: RefCell<Box<[Set]>> = RefCell::new((0..SETS).map(|_| Set::default()).collect());
}

#[derive(Default)]
struct Set {
    ways: [Option<Way>; WAYS],
    /// Bit per way: hit since the clock hand last passed it.
    used: u8,
    hand: u8,
}

struct Way {
    /// The cache it belongs to (a process may hold several: tests do).
    cache: u64,
    hash: u64,
    key: Box<str>,
    value: Weak<Variants>,
    hits: u32,
}

/// A URL of one cache as the table looks it up: hashed once for [`find`] and [`remember`].
pub(super) struct HotKey<'a> {
    cache: u64,
    key: &'a str,
    hash: u64,
}

impl HotKey<'_> {
    /// `None` for keys the table does not remember (see [`MAX_KEY`]).
    pub(super) fn of(cache: u64, key: &str) -> Option<HotKey<'_>> {
        (key.len() <= MAX_KEY).then(|| HotKey {
            cache,
            key,
            hash: hash(key),
        })
    }
}

/// The value remembered for `key`, while it is still moka's; `None`: ask moka (it is not
/// here, is gone, or this hit is one moka should record).
pub(super) fn find(key: &HotKey, now: Instant) -> Option<Arc<Variants>> {
    TABLE.with(|table| {
        let mut table = table.try_borrow_mut().ok()?;
        let set = &mut table[set_of(key.hash)];
        let way = set.way_of(key)?;
        set.used |= 1 << way;
        let remembered = set.ways[way].as_mut()?;
        remembered.hits = remembered.hits.wrapping_add(1);
        if remembered.hits % SAMPLE == 0 {
            return None;
        }
        match remembered.value.upgrade() {
            // A purged value is moka's to answer for too: it may hold a newer one by now.
            Some(value) if value.is_live() && !value.is_retired() && !value.expired(now) => {
                Some(value)
            }
            _ => {
                set.ways[way] = None;
                None
            }
        }
    })
}

/// Remembers what moka answered for `key` (or that it answered nothing).
pub(super) fn remember(key: &HotKey, value: Option<&Arc<Variants>>) {
    TABLE.with(|table| {
        let Ok(mut table) = table.try_borrow_mut() else {
            return;
        };
        let set = &mut table[set_of(key.hash)];
        match (set.way_of(key), value) {
            (Some(way), Some(value)) => {
                if let Some(remembered) = set.ways[way].as_mut() {
                    remembered.value = Arc::downgrade(value);
                }
            }
            (Some(way), None) => set.ways[way] = None,
            (None, Some(value)) => {
                let way = set.way_to_take();
                set.ways[way] = Some(Way {
                    cache: key.cache,
                    hash: key.hash,
                    key: key.key.into(),
                    value: Arc::downgrade(value),
                    hits: 0,
                });
            }
            (None, None) => {}
        }
    })
}

impl Set {
    fn way_of(&self, key: &HotKey) -> Option<usize> {
        self.ways.iter().position(|way| {
            way.as_ref()
                .is_some_and(|w| w.hash == key.hash && w.cache == key.cache && *w.key == *key.key)
        })
    }

    /// An empty way, else the first the clock hand finds not hit since it last passed (so a URL
    /// hit once, a crawler's, goes before the ones hit again and again).
    fn way_to_take(&mut self) -> usize {
        if let Some(way) = self.ways.iter().position(Option::is_none) {
            return way;
        }
        loop {
            let way = usize::from(self.hand);
            self.hand = (self.hand + 1) % WAYS as u8;
            if self.used & (1 << way) == 0 {
                return way;
            }
            self.used &= !(1 << way);
        }
    }
}

fn set_of(hash: u64) -> usize {
    (hash >> (64 - SETS.trailing_zeros())) as usize
}

/// A fast hash of the key's bytes. Keys come from clients, but a crafted set of colliding keys
/// only takes each other's ways in one worker's table: those hits then ask moka, as without the
/// table.
fn hash(key: &str) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = key.len() as u64;
    let mut chunks = key.as_bytes().chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let mut word = [0u8; 8];
    let rest = chunks.remainder();
    word[..rest.len()].copy_from_slice(rest);
    h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    // A finishing mix (MurmurHash3's), so every input bit reaches the top bits the set is read
    // from.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_keeps_urls_hit_again_over_new_ones() {
        let mut set = Set::default();
        for way in 0..WAYS {
            assert_eq!(set.way_to_take(), way, "empty ways first");
            set.ways[way] = Some(Way {
                cache: 1,
                hash: 0,
                key: "k".into(),
                value: Weak::new(),
                hits: 0,
            });
        }
        set.used = 0b1011;
        assert_eq!(set.way_to_take(), 2, "the one not hit since");
        set.used = 0b1111;
        let taken = set.way_to_take();
        assert!(
            taken < WAYS,
            "every way hit: the hand goes round once and takes one"
        );
    }

    /// Bytes of keys the calling thread's table holds.
    fn held_key_bytes() -> usize {
        TABLE.with(|table| {
            table
                .borrow()
                .iter()
                .flat_map(|set| set.ways.iter().flatten())
                .map(|way| way.key.len())
                .sum()
        })
    }

    #[test]
    fn long_urls_cannot_make_the_table_large() {
        // A client picks the URLs: a cached page under 4,096 long query strings, each asked for
        // twice, filled every way with a 16 KiB key (64 MiB a worker, outside --cache-size).
        let value = Arc::new(Variants {
            id: 1,
            entries: super::super::VariantList::Many(Box::default()),
            weight: 0,
            purged: Default::default(),
            retired: Default::default(),
        });
        let query = "q".repeat(16 << 10);
        for i in 0..SETS * WAYS {
            let key = format!("h/page?{i}&{query}");
            if let Some(key) = HotKey::of(7, &key) {
                remember(&key, Some(&value));
            }
        }
        let held = held_key_bytes();
        assert!(held <= SETS * WAYS * MAX_KEY, "{held} bytes of keys");
    }

    #[test]
    fn keys_spread_over_the_sets() {
        // The bench's keys: 1,000 pages differing in their last digits.
        let mut counts = vec![0usize; SETS];
        for i in 0..1000 {
            counts[set_of(hash(&format!("127.0.0.1:8080/kb/1/w-{i}")))] += 1;
        }
        let left_out: usize = counts.iter().map(|n| n.saturating_sub(WAYS)).sum();
        // A random hash leaves ~4 out (sets past four of a Poisson(1)); a poor one, hundreds.
        assert!(left_out <= 15, "{left_out} of 1,000 keys find no way");
    }
}
