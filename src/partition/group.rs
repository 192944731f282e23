//! The group encoding: a customer, its product totals and its distinct days, as partitions
//! hold, spill and hand them to the reduce. Varints throughout, product codes as dictionary ids
//! where they have one, so a group of a basket's rows takes a few bytes a row.

use crate::parse::Record;

/// Most products or days one group holds before a new group is started.
pub(super) const GROUP_LIMIT: usize = 255;

/// Most bytes of a group's body (products and days), so that its length fits a `u16`.
pub(super) const GROUP_BODY_LIMIT: usize = 16 << 10;

/// Appends a group in the partition encoding:
/// `len u8, customer, body_len u16 LE, body` where the body is
/// `n u8, m u8, n × (product, total), m × day`: the first day as a zigzag LEB128 varint
/// and each further one as the zigzag varint of its difference from the one before (a byte each
/// when days come sorted); a product as the varint `id + 1` of its [`ProductDict`] id, or 0 and
/// `len u8, text` when it has none; totals as zigzag varints. Text fields are at most 255 bytes
/// (checked by the parser), so one length byte suffices; the body's length lets a reader step
/// over a group without decoding it.
///
/// [`ProductDict`]: crate::products::ProductDict
pub fn encode_group<'p>(
    buf: &mut Vec<u8>,
    customer: &[u8],
    products: impl ExactSizeIterator<Item = (Product<'p>, i64)>,
    days: &[i32],
) {
    buf.push(customer.len() as u8);
    buf.extend_from_slice(customer);
    let body_at = buf.len();
    buf.extend_from_slice(&[0, 0]);
    buf.push(products.len() as u8);
    buf.push(days.len() as u8);
    for (product, total) in products {
        match product {
            Product::Id(id) => put_varint(buf, u64::from(id) + 1),
            Product::Text(text) => {
                buf.push(0);
                buf.push(text.len() as u8);
                buf.extend_from_slice(text);
            }
        }
        put_varint(buf, zigzag(total));
    }
    let mut previous = 0i64;
    for &day in days {
        put_varint(buf, zigzag(i64::from(day) - previous));
        previous = i64::from(day);
    }
    let body = u16::try_from(buf.len() - body_at - 2).expect("group bodies are limited");
    buf[body_at..body_at + 2].copy_from_slice(&body.to_le_bytes());
}

/// A product code as a group holds it.
#[derive(Clone, Copy, Debug)]
pub enum Product<'p> {
    /// An id of the run's product dictionary.
    Id(u32),
    /// The code itself.
    Text(&'p [u8]),
}

/// `v` as an unsigned number, small for small magnitudes of either sign.
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends `v` as LEB128: seven bits a byte, low first, high bit set on all but the last.
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads a LEB128 varint from the front of `bytes`; returns it and the rest.
#[inline]
fn get_varint(bytes: &[u8]) -> (u64, &[u8]) {
    if let Some((&b, rest)) = bytes.split_first()
        && b < 0x80
    {
        return (u64::from(b), rest); // most values here take one byte
    }
    let (mut v, mut shift) = (0u64, 0);
    for (i, &b) in bytes.iter().enumerate() {
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return (v, &bytes[i + 1..]);
        }
        shift += 7;
    }
    panic!("whole groups end their varints")
}

/// Appends one record as a group of its own.
pub fn encode_record(buf: &mut Vec<u8>, record: &Record<'_>) {
    encode_group(
        buf,
        record.customer,
        std::iter::once((Product::Text(record.product), i64::from(record.units))),
        &[record.day],
    );
}

/// One decoded group: a customer, product totals and days, borrowed from a block.
#[derive(Clone, Copy, Debug)]
pub struct Group<'a> {
    /// The customer.
    pub customer: &'a [u8],
    product_count: u8,
    day_count: u8,
    /// The body after its two counts: products, then days.
    rest: &'a [u8],
}

impl<'a> Group<'a> {
    /// Hands each product as the group holds it, with its summed units, to `product`, and then
    /// each distinct day to `day`: one pass over the bytes.
    #[inline]
    pub fn visit(&self, mut product: impl FnMut(Product<'a>, i64), mut day: impl FnMut(i32)) {
        let mut bytes = self.rest;
        for _ in 0..self.product_count {
            let (tag, rest) = get_varint(bytes);
            let (code, rest) = match tag {
                0 => {
                    let (&len, rest) = rest.split_first().expect("whole groups");
                    let (text, rest) = rest.split_at(usize::from(len));
                    (Product::Text(text), rest)
                }
                id => (Product::Id(id as u32 - 1), rest),
            };
            let (total, rest) = get_varint(rest);
            bytes = rest;
            product(code, unzigzag(total));
        }
        let mut previous = 0i64;
        for _ in 0..self.day_count {
            let (delta, rest) = get_varint(bytes);
            bytes = rest;
            previous += unzigzag(delta);
            day(previous as i32);
        }
    }

    /// The distinct days (for tests; the reduce uses [`Group::visit`]).
    #[cfg(test)]
    pub fn days(&self) -> Vec<i32> {
        let mut days = Vec::new();
        self.visit(|_, _| {}, |d| days.push(d));
        days
    }

    /// The products with their summed units; `texts` are the run's product codes by id (for
    /// tests; the reduce uses [`Group::visit`]).
    #[cfg(test)]
    pub fn products(&self, texts: &'a [Box<[u8]>]) -> Vec<(&'a [u8], i64)> {
        let mut products = Vec::new();
        self.visit(
            |product, total| {
                products.push(match product {
                    Product::Id(id) => (&*texts[id as usize], total),
                    Product::Text(text) => (text, total),
                })
            },
            |_| {},
        );
        products
    }
}

/// Iterates the groups of a block written by [`encode_group`].
pub struct EncodedGroups<'a> {
    bytes: &'a [u8],
}

impl<'a> EncodedGroups<'a> {
    /// Groups of `bytes`, which holds whole groups.
    pub fn new(bytes: &'a [u8]) -> Self {
        EncodedGroups { bytes }
    }

    /// Bytes not yet iterated.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }
}

impl<'a> Iterator for EncodedGroups<'a> {
    type Item = Group<'a>;

    #[inline]
    fn next(&mut self) -> Option<Group<'a>> {
        let (&clen, rest) = self.bytes.split_first()?;
        let (customer, rest) = rest.split_at(usize::from(clen));
        let (body_len, rest) = rest.split_first_chunk::<2>().expect("whole groups");
        let (body, rest) = rest.split_at(usize::from(u16::from_le_bytes(*body_len)));
        self.bytes = rest;
        let (&[product_count, day_count], rest) =
            body.split_first_chunk::<2>().expect("whole groups");
        Some(Group {
            customer,
            product_count,
            day_count,
            rest,
        })
    }
}
