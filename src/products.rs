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

use crate::key::prefix_key;

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

/// One worker's way into the dictionary, in three steps:
///
/// 1. direct-mapped caches of the latest answers, one for codes of up to eight bytes (their
///    [`prefix_key`] is the whole code) and one for longer codes (by a hash, checked against the
///    code) — a few instructions for the few dozen codes of a typical file;
/// 2. every id this worker has been given, in its own maps — so that a catalogue of tens of
///    thousands of codes, which the caches cannot hold, still takes the shared lock only the first
///    time a worker meets a code;
/// 3. the shared dictionary. Once it is full, the worker copies all of it into its maps, once:
///    from then on a code it does not know has no id, and is answered without the lock — most
///    such codes by a filter of the codes with ids, before step 1.
///
/// The maps hold at most the dictionary's capacity of codes, like the dictionary itself.
pub struct ProductIds<'d> {
    dict: &'d ProductDict,
    /// (prefix key, answer) per slot; key 0 marks an empty slot (codes are never empty).
    short: Box<[(u64, Answer)]>,
    /// Per slot; an empty code marks an empty slot.
    long: Box<[LongSlot]>,
    hasher: ahash::RandomState,
    /// Ids given to this worker: by prefix key for codes of up to eight bytes, by the code
    /// padded with NULs (which codes never hold) for codes of up to [`INLINE`] bytes — no pointer
    /// to follow —, and by the code itself for longer ones.
    known_short: HashMap<u64, u32, ahash::RandomState>,
    known_inline: HashMap<[u8; INLINE], u32, ahash::RandomState>,
    known_long: HashMap<Box<[u8]>, u32, ahash::RandomState>,
    /// Whether the known maps hold every id of the dictionary, which is full.
    complete: bool,
    /// Once complete: a bit set for every code with an id, by [`filter_bit`] of its hash. A
    /// code whose bit is clear has no id, which is answered before the caches are read: with a
    /// catalogue far beyond the dictionary, most codes are such, and they would only evict the
    /// caches' entries for the codes that have one.
    filter: Box<[u64]>,
}

impl<'d> ProductIds<'d> {
    /// A cache in front of `dict`.
    pub fn new(dict: &'d ProductDict) -> Self {
        ProductIds {
            dict,
            short: vec![(0, None); SLOTS].into_boxed_slice(),
            long: vec![LongSlot::default(); SLOTS].into_boxed_slice(),
            hasher: ahash::RandomState::with_seeds(5, 6, 7, 8),
            known_short: HashMap::default(),
            known_inline: HashMap::default(),
            known_long: HashMap::default(),
            complete: false,
            filter: Box::default(),
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
        let hash = self.hash_of(key, text);
        if self.complete && !has_bit(&self.filter, filter_bit(hash)) {
            return None;
        }
        if text.len() <= 8 {
            let slot = slot_of(key);
            if self.short[slot].0 != key {
                self.short[slot] = (key, self.look_up(key, text));
            }
            return self.short[slot].1;
        }
        let slot = slot_of(hash);
        let held = &self.long[slot];
        if held.hash != hash || *held.code != *text {
            let answer = self.look_up(key, text);
            let held = &mut self.long[slot];
            held.hash = hash;
            if held.code.len() == text.len() {
                held.code.copy_from_slice(text); // codes of one length are common: no allocation
            } else {
                held.code = text.into();
            }
            held.answer = answer;
        }
        self.long[slot].answer
    }

    /// What the long codes' cache and the filter know `text` (prefix key `key`) by: the key
    /// itself when the code is up to eight bytes long (the key is then the code), else a hash.
    #[inline]
    fn hash_of(&self, key: u64, text: &[u8]) -> u64 {
        if text.len() <= 8 {
            key
        } else {
            self.hasher.hash_one(text)
        }
    }

    /// Steps 2 and 3 of the look-up: this worker's ids, then the dictionary.
    #[cold]
    fn look_up(&mut self, key: u64, text: &[u8]) -> Answer {
        if let Some(id) = self.known(key, text) {
            return Some(id);
        }
        if self.complete {
            return None;
        }
        let answer = self.dict.id(text);
        match answer {
            Some(id) => self.learn(key, text, id),
            None => {
                // Full: no code gets an id any more; learn the ones that have.
                let ids = self.dict.ids.lock().expect("no panics while locked");
                let mut filter = vec![0u64; FILTER_BITS / 64];
                for (code, &id) in ids.iter() {
                    let key = prefix_key(code);
                    self.learn(key, code, id);
                    let bit = filter_bit(self.hash_of(key, code));
                    filter[bit / 64] |= 1 << (bit % 64);
                }
                self.filter = filter.into_boxed_slice();
                self.complete = true;
            }
        }
        answer
    }

    /// The id this worker was given for `text` (prefix key `key`), if any.
    #[inline]
    fn known(&self, key: u64, text: &[u8]) -> Option<u32> {
        match text.len() {
            0..=8 => self.known_short.get(&key),
            9..=INLINE => self.known_inline.get(&padded(text)),
            _ => self.known_long.get(text),
        }
        .copied()
    }

    fn learn(&mut self, key: u64, text: &[u8], id: u32) {
        match text.len() {
            0..=8 => _ = self.known_short.insert(key, id),
            9..=INLINE => _ = self.known_inline.insert(padded(text), id),
            _ => _ = self.known_long.insert(text.into(), id),
        }
    }
}

/// A slot of the cache of codes longer than eight bytes. The hash is compared first, so that a
/// code meeting another in its slot is told apart without reading the other's text.
#[derive(Clone, Default)]
struct LongSlot {
    hash: u64,
    code: Box<[u8]>,
    answer: Answer,
}

/// Bits of a worker's filter of the codes with ids (a power of two): 64 KB, in which a full
/// dictionary of 8,192 codes sets about one bit in 64, so that 1.6 % of the codes without an id
/// pass it and go on to the caches and the maps. (At 8 KB one bit in eight was set: the
/// 100,000-code shape ran 4-5 % slower with two threads, `scripts/ab.sh 7` in both orders.)
const FILTER_BITS: usize = 1 << 19;

/// The filter bit of a code whose hash is `hash` (for a code of up to eight bytes, its key,
/// mixed here by a multiply).
#[inline]
fn filter_bit(hash: u64) -> usize {
    (hash.wrapping_mul(0xd6e8_feb8_6659_fd93) >> (64 - FILTER_BITS.ilog2())) as usize
}

#[inline]
fn has_bit(bits: &[u64], bit: usize) -> bool {
    bits[bit / 64] >> (bit % 64) & 1 == 1
}

/// Codes up to this long are kept by value in a worker's map of ids.
const INLINE: usize = 24;

/// `text` (at most [`INLINE`] bytes, no NUL) padded with NULs: equal exactly when the texts are.
fn padded(text: &[u8]) -> [u8; INLINE] {
    let mut bytes = [0; INLINE];
    bytes[..text.len()].copy_from_slice(text);
    bytes
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
    fn a_worker_that_finds_the_dictionary_full_learns_every_id_in_it() {
        let dict = ProductDict::new(3);
        let (short, medium, long) = (
            &b"SHORT"[..],
            &b"MEDIUM-LENGTH-CODE"[..],
            &b"A-CODE-TOO-LONG-TO-BE-HELD-BY-VALUE"[..],
        );
        let mut a = ProductIds::new(&dict);
        assert_eq!(
            [a.id(short), a.id(medium), a.id(long)],
            [Some(0), Some(1), Some(2)]
        );
        let mut b = ProductIds::new(&dict);
        assert_eq!(b.id(b"OTHER"), None, "full");
        assert!(b.complete);
        // Known without asking, and others refused, however often the caches lose them.
        for round in 0..3 {
            assert_eq!(
                [b.id(long), b.id(medium), b.id(short)],
                [Some(2), Some(1), Some(0)]
            );
            for i in 0..3 * SLOTS {
                let code = format!("CODE-{round}-{i:020}");
                assert_eq!(b.id(code.as_bytes()), None);
                assert_eq!(b.id(&code.as_bytes()[..8]), None);
            }
        }
        assert_eq!(dict.into_texts().len(), 3);
    }

    #[test]
    fn a_full_dictionary_filters_codes_without_ids_and_answers_every_id() {
        let dict = ProductDict::new(3_000);
        let code = |i: usize| match i % 3 {
            0 => format!("P{i}"),
            1 => format!("MEDIUM-{i:012}"),
            _ => format!("A-LONG-CODE-BEYOND-THE-INLINE-LENGTH-{i}"),
        };
        let mut first = ProductIds::new(&dict);
        for i in 0..3_000 {
            assert_eq!(first.id(code(i).as_bytes()), Some(i as u32));
        }
        let mut ids = ProductIds::new(&dict);
        assert_eq!(ids.id(b"NEW"), None, "full");
        assert!(ids.complete);
        // Codes with ids and codes without, interleaved, more than the caches and the filter's
        // bits tell apart.
        for round in 0..2 {
            for i in 0..3_000 {
                assert_eq!(ids.id(code(i).as_bytes()), Some(i as u32), "round {round}");
                assert_eq!(ids.id(code(3_000 + i).as_bytes()), None);
                assert_eq!(ids.id(code(7 * i + 100_000).as_bytes()), None);
            }
        }
    }

    #[test]
    fn codes_of_every_length_keep_their_ids_past_the_caches() {
        let dict = ProductDict::new(1 << 20);
        let mut ids = ProductIds::new(&dict);
        let codes: Vec<String> = (0..30_000)
            .map(|i| match i % 3 {
                0 => format!("P{i}"),
                1 => format!("MEDIUM-{i:012}"),
                _ => format!("A-LONG-CODE-BEYOND-THE-INLINE-LENGTH-{i}"),
            })
            .collect();
        let first: Vec<Option<u32>> = codes.iter().map(|c| ids.id(c.as_bytes())).collect();
        let again: Vec<Option<u32>> = codes.iter().rev().map(|c| ids.id(c.as_bytes())).collect();
        assert_eq!(first, again.into_iter().rev().collect::<Vec<_>>());
        assert_eq!(first[29_999], Some(29_999));
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
