//! Product codes interned once for the whole run: groups carry a small id instead of the text.
//!
//! A product code is repeated in nearly every group (a few dozen codes over millions of rows is
//! typical), so its text is most of what partitions hold, spill and reduce. The run's
//! [`ProductDict`] gives each code an id the first time a worker meets it; each worker asks it
//! through a [`ProductIds`] cache, so the shared lock is taken about once per code and worker.
//! The dictionary holds at most `cap` codes, which keeps memory bounded whatever the data: codes
//! met once it is full are written out as text, every time, by every worker — a code is always
//! either an id or text, so the reduce can tell equal codes apart by their text alone.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::reduce::prefix_key;

/// The run's product codes and their ids.
pub struct ProductDict {
    ids: Mutex<HashMap<Box<[u8]>, u32, ahash::RandomState>>,
    cap: usize,
}

impl ProductDict {
    /// A dictionary of at most `cap` codes.
    pub fn new(cap: usize) -> Self {
        ProductDict {
            ids: Mutex::default(),
            cap,
        }
    }

    /// The id of `text`, given now if it is new and there is room; `None` when the dictionary is
    /// full without it.
    pub fn id(&self, text: &[u8]) -> Option<u32> {
        let mut ids = self.ids.lock().expect("no panics while locked");
        if let Some(&id) = ids.get(text) {
            return Some(id);
        }
        if ids.len() >= self.cap {
            return None;
        }
        let id = ids.len() as u32;
        ids.insert(text.into(), id);
        Some(id)
    }

    /// The codes, indexed by id.
    pub fn into_texts(self) -> Vec<Box<[u8]>> {
        let ids = self.ids.into_inner().expect("no panics while locked");
        let mut texts = vec![Box::default(); ids.len()];
        for (text, id) in ids {
            texts[id as usize] = text;
        }
        texts
    }
}

/// The run's product codes by id, for the reduce, with each code's place in byte order so that
/// ties between codes with ids are broken without comparing their texts.
#[derive(Default)]
pub struct Catalogue {
    texts: Vec<Box<[u8]>>,
    ranks: Vec<u32>,
}

impl Catalogue {
    /// The catalogue of `texts`, indexed by id.
    pub fn new(texts: Vec<Box<[u8]>>) -> Self {
        let mut order: Vec<u32> = (0..texts.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| texts[a as usize].cmp(&texts[b as usize]));
        let mut ranks = vec![0; texts.len()];
        for (rank, &id) in order.iter().enumerate() {
            ranks[id as usize] = rank as u32;
        }
        Catalogue { texts, ranks }
    }

    /// The code of `id`.
    #[inline]
    pub fn text(&self, id: u32) -> &[u8] {
        &self.texts[id as usize]
    }

    /// Number of codes (ids are below it).
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether there are no codes.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// The place of `id`'s code among all the codes in byte order.
    #[inline]
    pub fn rank(&self, id: u32) -> u32 {
        self.ranks[id as usize]
    }
}

/// What the dictionary said of a code: its id, or `None` to write it as text.
type Answer = Option<u32>;

/// Slots of each of a worker's two direct-mapped caches (a power of two).
const SLOTS: usize = 1 << 12;

/// One worker's way into the dictionary: direct-mapped caches of the answers it got, one for codes
/// of up to eight bytes (their [`prefix_key`] is the whole code) and one for longer codes (by a
/// hash, checked against the code). A code that loses its slot is asked again.
pub struct ProductIds<'d> {
    dict: &'d ProductDict,
    /// (prefix key, answer) per slot; key 0 marks an empty slot (codes are never empty).
    short: Box<[(u64, Answer)]>,
    /// (code, answer) per slot; an empty code marks an empty slot.
    long: Box<[(Box<[u8]>, Answer)]>,
    hasher: ahash::RandomState,
}

impl<'d> ProductIds<'d> {
    /// A cache in front of `dict`.
    pub fn new(dict: &'d ProductDict) -> Self {
        ProductIds {
            dict,
            short: vec![(0, None); SLOTS].into_boxed_slice(),
            long: vec![(Box::default(), None); SLOTS].into_boxed_slice(),
            hasher: ahash::RandomState::with_seeds(5, 6, 7, 8),
        }
    }

    /// The id of `text`, or `None` when it is to be written as text.
    #[inline]
    pub fn id(&mut self, text: &[u8]) -> Option<u32> {
        self.id_keyed(prefix_key(text), text)
    }

    /// [`ProductIds::id`] of `text` whose [`prefix_key`] is `key`.
    #[inline]
    pub fn id_keyed(&mut self, key: u64, text: &[u8]) -> Option<u32> {
        let slot_of =
            |hash: u64| (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SLOTS.ilog2())) as usize;
        if text.len() <= 8 {
            let slot = &mut self.short[slot_of(key)];
            if slot.0 != key {
                *slot = (key, self.dict.id(text));
            }
            return slot.1;
        }
        let slot = &mut self.long[slot_of(self.hasher.hash_one(text))];
        if *slot.0 != *text {
            *slot = (text.into(), self.dict.id(text));
        }
        slot.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_shared_between_workers_and_stop_at_the_cap() {
        let dict = ProductDict::new(3);
        let mut a = ProductIds::new(&dict);
        let mut b = ProductIds::new(&dict);
        let long = b"A-PRODUCT-CODE-LONGER-THAN-EIGHT-BYTES";
        assert_eq!(a.id(b"PURA250"), Some(0));
        assert_eq!(b.id(long), Some(1));
        assert_eq!(b.id(b"PURA250"), Some(0));
        assert_eq!(a.id(long), Some(1));
        assert_eq!(a.id(b"SUPA101"), Some(2));
        assert_eq!(b.id(b"TEAX800"), None, "full: written as text");
        assert_eq!(a.id(b"TEAX800"), None);
        assert_eq!(a.id(b"SUPA101"), Some(2), "known codes keep their ids");
        let texts = dict.into_texts();
        assert_eq!(texts.len(), 3);
        assert_eq!(&*texts[1], &long[..]);
    }

    #[test]
    fn colliding_short_codes_evict_each_other_and_keep_their_ids() {
        let dict = ProductDict::new(100_000);
        let mut ids = ProductIds::new(&dict);
        let codes: Vec<String> = (0..20_000).map(|i| format!("P{i}")).collect();
        let first: Vec<Option<u32>> = codes.iter().map(|c| ids.id(c.as_bytes())).collect();
        let again: Vec<Option<u32>> = codes.iter().map(|c| ids.id(c.as_bytes())).collect();
        assert_eq!(first, again);
        assert_eq!(first[19_999], Some(19_999));
    }
}
