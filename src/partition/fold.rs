//! The fold: consecutive records of one customer summed into a pending group (units per
//! product, distinct days) before it is encoded. Transaction files list a basket's rows
//! together, so a group usually stands for several rows: less to place, store, spill and reduce.

use super::group::{GROUP_BODY_LIMIT, GROUP_LIMIT, Product, encode_group};
use crate::products::ProductIds;

/// The records of one customer seen in a row, being folded into a group.
///
/// Texts of up to eight bytes are held by their [`prefix_key`] and length alone (the key's
/// big-endian bytes are the text); only longer ones are copied.
#[derive(Default)]
pub(super) struct PendingGroup {
    /// The customer's prefix key and length (length 0: no group is pending).
    pub(super) customer_key: u64,
    pub(super) customer_len: usize,
    /// The customer's text, when it is longer than eight bytes.
    pub(super) long_customer: Vec<u8>,
    products: Vec<PendingProduct>,
    /// Texts of the products that are longer than eight bytes or have no id, back to back.
    product_bytes: Vec<u8>,
    pub(super) days: Vec<i32>,
}

/// A product of a pending group: its prefix key and length, its text in `product_bytes` when it
/// is longer than eight bytes or has no id, its dictionary id if it has one, its total.
struct PendingProduct {
    key: u64,
    len: u32,
    start: u32,
    id: Option<u32>,
    total: i64,
}

/// Whether a text held by its prefix key `key` and length `len` (and, when longer than eight
/// bytes, its bytes from `long`) is `text` with key `text_key`: texts of up to eight bytes are
/// equal exactly when their keys and lengths are.
#[inline]
fn is_held_text<'a>(
    key: u64,
    len: usize,
    long: impl FnOnce() -> &'a [u8],
    text_key: u64,
    text: &[u8],
) -> bool {
    key == text_key && len == text.len() && (len <= 8 || long() == text)
}

/// A text as a pending group holds it: up to eight bytes in its key, longer ones in `long`.
#[inline]
pub(super) fn held_text<'a>(
    key: u64,
    len: usize,
    long: &'a [u8],
    short: &'a mut [u8; 8],
) -> &'a [u8] {
    if len > 8 {
        long
    } else {
        *short = key.to_be_bytes();
        &short[..len]
    }
}

impl PendingGroup {
    /// Whether `customer` (with prefix key `key`) is this group's customer.
    #[inline]
    pub(super) fn is_of(&self, key: u64, customer: &[u8]) -> bool {
        let (held, len) = (self.customer_key, self.customer_len);
        is_held_text(held, len, || &self.long_customer, key, customer)
    }

    /// Starts the group of `customer`.
    #[inline]
    pub(super) fn start(&mut self, key: u64, customer: &[u8]) {
        self.customer_key = key;
        self.customer_len = customer.len();
        if customer.len() > 8 {
            self.long_customer.extend_from_slice(customer);
        }
    }

    /// Folds a record of this group's customer in (`key` is the product's prefix key); false
    /// when the group is full or a total would overflow (the caller then starts a new group).
    #[inline]
    pub(super) fn add(
        &mut self,
        key: u64,
        product: &[u8],
        units: i32,
        day: i32,
        ids: &mut ProductIds<'_>,
    ) -> bool {
        if self.products.len() == GROUP_LIMIT || self.days.len() == GROUP_LIMIT {
            return false;
        }
        let len = product.len();
        let bytes = &self.product_bytes;
        match self.products.iter_mut().find(|p| {
            let long = || &bytes[p.start as usize..(p.start + p.len) as usize];
            is_held_text(p.key, p.len as usize, long, key, product)
        }) {
            Some(p) => match p.total.checked_add(i64::from(units)) {
                Some(sum) => p.total = sum,
                None => return false,
            },
            None => {
                // An upper bound of the body with this product and one more day: a product is
                // at most a 5-byte id (or a tag, a length and its text) and a 10-byte total, a
                // day at most 5 bytes.
                let body = 2
                    + self.product_bytes.len()
                    + len
                    + 17 * (self.products.len() + 1)
                    + 5 * (self.days.len() + 1);
                if body > GROUP_BODY_LIMIT {
                    return false;
                }
                let id = ids.id_keyed(key, product);
                self.products.push(PendingProduct {
                    key,
                    len: len as u32,
                    start: self.product_bytes.len() as u32,
                    id,
                    total: i64::from(units),
                });
                if len > 8 || id.is_none() {
                    self.product_bytes.extend_from_slice(product);
                }
            }
        }
        if !self.days.contains(&day) {
            self.days.push(day);
        }
        true
    }

    pub(super) fn encode(&self, buf: &mut Vec<u8>) {
        let mut short = [0; 8];
        let customer = held_text(
            self.customer_key,
            self.customer_len,
            &self.long_customer,
            &mut short,
        );
        encode_group(buf, customer, self.products(), &self.days);
    }

    /// The group's products, each by its id or else its text, with its total.
    pub(super) fn products(&self) -> impl ExactSizeIterator<Item = (Product<'_>, i64)> {
        self.products.iter().map(|p| {
            let product = match p.id {
                Some(id) => Product::Id(id),
                None => {
                    Product::Text(&self.product_bytes[p.start as usize..(p.start + p.len) as usize])
                }
            };
            (product, p.total)
        })
    }

    pub(super) fn clear(&mut self) {
        self.customer_key = 0;
        self.customer_len = 0;
        self.long_customer.clear();
        self.product_bytes.clear();
        self.products.clear();
        self.days.clear();
    }
}
