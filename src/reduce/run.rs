//! Runs: a reduced partition's rows, sorted by `customer_id` in byte order, in a compact
//! encoding that the sinks stream or merge.

/// One output row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CustomerRow<'a> {
    /// `custId` as written.
    pub customer_id: &'a [u8],
    /// The product with the greatest total units; ties go to the smallest code in byte order.
    pub favourite_product: &'a [u8],
    /// The longest run of consecutive days among the distinct purchase days.
    pub longest_streak: i32,
}

/// A reduced partition.
#[derive(Default)]
pub struct Run {
    /// Rows in the run encoding, sorted by customer.
    pub bytes: Vec<u8>,
    /// Number of rows.
    pub rows: u64,
    /// The customer and offset of every [`RUN_INDEX_EVERY`]th row, from the first: where a
    /// merge can cut the run by customer without decoding all of it.
    pub index: Vec<(Box<[u8]>, usize)>,
    /// Offset of the last row.
    last: usize,
}

/// Rows between two entries of a run's index.
pub const RUN_INDEX_EVERY: u64 = 64;

impl Run {
    /// An empty run with room for `bytes` bytes of rows.
    pub fn with_capacity(bytes: usize) -> Self {
        Run {
            bytes: Vec::with_capacity(bytes),
            ..Run::default()
        }
    }

    /// Appends `row`, which sorts after every row already in the run.
    pub fn push(&mut self, row: &CustomerRow<'_>) {
        if self.rows.is_multiple_of(RUN_INDEX_EVERY) {
            self.index.push((row.customer_id.into(), self.bytes.len()));
        }
        self.last = self.bytes.len();
        encode_row(&mut self.bytes, row);
        self.rows += 1;
    }

    /// Appends a customer's encoded [`CustomerState`](super::CustomerState), after every
    /// customer already in the run (a run holds rows or states, never both):
    /// `len(customer) u8, customer, len(state) u32 LE, state`.
    pub fn push_state(&mut self, customer_id: &[u8], state: &[u8]) {
        self.bytes.push(customer_id.len() as u8);
        self.bytes.extend_from_slice(customer_id);
        self.bytes
            .extend_from_slice(&(state.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(state);
        self.rows += 1;
    }

    /// The customers of the first and the last row, unless the run is empty.
    pub fn bounds(&self) -> Option<(&[u8], &[u8])> {
        let first = RunRows::new(&self.bytes).next()?;
        let last = RunRows::new(&self.bytes[self.last..]).next()?;
        Some((first.customer_id, last.customer_id))
    }
}

/// Appends `row` in the run encoding:
/// `len(customer) u8, customer, len(product) u8, product, streak i32 LE`.
pub fn encode_row(buf: &mut Vec<u8>, row: &CustomerRow<'_>) {
    buf.push(row.customer_id.len() as u8);
    buf.extend_from_slice(row.customer_id);
    buf.push(row.favourite_product.len() as u8);
    buf.extend_from_slice(row.favourite_product);
    buf.extend_from_slice(&row.longest_streak.to_le_bytes());
}

/// Iterates the rows of a run encoded by [`encode_row`].
pub struct RunRows<'a> {
    bytes: &'a [u8],
}

impl<'a> RunRows<'a> {
    /// The rows of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        RunRows { bytes }
    }

    /// Bytes not yet iterated.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }
}

impl<'a> Iterator for RunRows<'a> {
    type Item = CustomerRow<'a>;

    fn next(&mut self) -> Option<CustomerRow<'a>> {
        let (&clen, rest) = self.bytes.split_first()?;
        let (customer_id, rest) = rest.split_at(clen as usize);
        let (&plen, rest) = rest.split_first().expect("whole rows");
        let (favourite_product, rest) = rest.split_at(plen as usize);
        let (streak, rest) = rest.split_first_chunk::<4>().expect("whole rows");
        self.bytes = rest;
        Some(CustomerRow {
            customer_id,
            favourite_product,
            longest_streak: i32::from_le_bytes(*streak),
        })
    }
}

/// Iterates the `(customer, encoded state)` pairs of a run made by [`Run::push_state`].
pub struct StateRows<'a> {
    bytes: &'a [u8],
}

impl<'a> StateRows<'a> {
    /// The states of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        StateRows { bytes }
    }
}

impl<'a> Iterator for StateRows<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let (&clen, rest) = self.bytes.split_first()?;
        let (customer_id, rest) = rest.split_at(clen as usize);
        let (len, rest) = rest.split_first_chunk::<4>().expect("whole states");
        let (state, rest) = rest.split_at(u32::from_le_bytes(*len) as usize);
        self.bytes = rest;
        Some((customer_id, state))
    }
}
