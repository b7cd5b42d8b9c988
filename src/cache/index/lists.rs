//! The small containers the index is built from: a record's tag links, a page's or tag's member
//! list, and page names that borrow their key's bytes. Each is sized for the common case (one
//! URL per page, at most two tags per URL) so that case needs no allocation of its own.

use std::sync::Arc;

use super::Key;

/// Membership in one tag: the tag id and the position in its member list.
#[derive(Clone, Copy)]
pub(super) struct Link {
    pub(super) tag: u32,
    pub(super) pos: u32,
}

/// A record's tag links: up to two live inline, without an allocation of their own.
pub(super) enum Links {
    Inline(u8, [Link; 2]),
    Heap(Box<[Link]>),
}

/// The slot ids of one page or tag. Most pages have a single URL, which then needs no
/// allocation; positions are what [`Record::page_pos`] and [`Link::pos`] point at. The list is
/// boxed because every page pays for the size of this value and few pages need one.
#[expect(
    clippy::box_collection,
    reason = "the box keeps every page's value at 16 bytes instead of 24"
)]
pub(super) enum Members {
    Empty,
    One(u32),
    Many(Box<Vec<u32>>),
}

/// A page path, usually a slice of the key of the first URL stored for it: most keys end with
/// their page (`host/blog/post` is page `/blog/post`), and the key is allocated for moka
/// anyway, so most pages cost no allocation of their own. The key is kept alive while its page
/// has URLs, even after its own URL goes: at most one key per page.
#[derive(Clone)]
pub(super) struct PageName {
    pub(super) text: Arc<str>,
    pub(super) start: u32,
}

impl PageName {
    pub(super) fn new(key: &Key, page: &str) -> PageName {
        let start = key
            .len()
            .checked_sub(page.len())
            .filter(|_| key.ends_with(page));
        match start.and_then(|start| u32::try_from(start).ok()) {
            Some(start) => PageName {
                text: key.clone(),
                start,
            },
            None => PageName {
                text: page.into(),
                start: 0,
            },
        }
    }

    pub(super) fn as_str(&self) -> &str {
        // `start` is where a suffix begins, so a char boundary: never the empty fallback.
        self.text.get(self.start as usize..).unwrap_or_default()
    }
}

// Ordered, compared and borrowed as the path it names, so the map is searched by `&str`.
impl std::borrow::Borrow<str> for PageName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for PageName {
    fn eq(&self, other: &PageName) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for PageName {}

impl PartialOrd for PageName {
    fn partial_cmp(&self, other: &PageName) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PageName {
    fn cmp(&self, other: &PageName) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Links {
    pub(super) fn new(mut links: Vec<Link>) -> Links {
        match links.len() {
            0..=2 => {
                let none = Link { tag: 0, pos: 0 };
                let first = links.first().copied().unwrap_or(none);
                let second = links.get(1).copied().unwrap_or(none);
                Links::Inline(links.len() as u8, [first, second])
            }
            _ => {
                links.shrink_to_fit();
                Links::Heap(links.into_boxed_slice())
            }
        }
    }

    pub(super) fn as_slice(&self) -> &[Link] {
        match self {
            Links::Inline(len, links) => &links[..*len as usize],
            Links::Heap(links) => links,
        }
    }

    pub(super) fn find_mut(&mut self, tag: u32) -> Option<&mut Link> {
        let links = match self {
            Links::Inline(len, links) => &mut links[..*len as usize],
            Links::Heap(links) => links,
        };
        links.iter_mut().find(|link| link.tag == tag)
    }
}

impl Members {
    pub(super) fn as_slice(&self) -> &[u32] {
        match self {
            Members::Empty => &[],
            Members::One(slot) => std::slice::from_ref(slot),
            Members::Many(slots) => slots,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Adds `slot`; returns its position.
    pub(super) fn push(&mut self, slot: u32) -> u32 {
        match self {
            Members::Empty => {
                *self = Members::One(slot);
                0
            }
            Members::One(first) => {
                *self = Members::Many(Box::new(vec![*first, slot]));
                1
            }
            Members::Many(slots) => {
                slots.push(slot);
                // Positions are `u32` like slot ids: a list never holds more than the slots.
                (slots.len() - 1) as u32
            }
        }
    }

    /// Removes `slot`, expected at `pos`. Returns the member that moved and its new position:
    /// the caller updates that member's record.
    pub(super) fn remove(&mut self, slot: u32, pos: u32) -> Option<(u32, u32)> {
        let slots = match self {
            Members::One(only) if *only == slot => {
                *self = Members::Empty;
                return None;
            }
            Members::Empty | Members::One(_) => return None,
            Members::Many(slots) => slots,
        };
        // The position is always right (tests check it); should a bug make it wrong, searching
        // keeps a release build from unlinking a stranger.
        debug_assert_eq!(
            slots.get(pos as usize),
            Some(&slot),
            "stale member position"
        );
        let pos = match slots.get(pos as usize) {
            Some(&at) if at == slot => pos as usize,
            _ => slots.iter().position(|&s| s == slot)?,
        };
        slots.swap_remove(pos);
        match slots.len() {
            1 => {
                let last = slots[0];
                *self = Members::One(last);
                Some((last, 0))
            }
            len => {
                // A tag that once listed a million URLs should not keep their room for ever.
                if slots.capacity() > 4 * len.max(4) {
                    slots.shrink_to(2 * len);
                }
                slots.get(pos).map(|&moved| (moved, pos as u32))
            }
        }
    }
}
