//! The two rules of contract §3, in their plain form: the favourite product (greatest total,
//! ties to the smallest code in byte order) and the longest streak of consecutive days.

/// The product with the greatest total; ties go to the smallest product code in byte order.
pub fn favourite_product<'a>(totals: impl IntoIterator<Item = (&'a [u8], i64)>) -> &'a [u8] {
    totals
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(product, _)| product)
        .expect("a customer has at least one record")
}

/// The longest run of consecutive days among the distinct days (sorts `days` in place).
pub fn longest_streak(days: &mut [i32]) -> i32 {
    days.sort_unstable();
    let (mut best, mut current) = (1, 1);
    for pair in days.windows(2) {
        // The same day again keeps the streak, the next day lengthens it, any other starts a
        // new one: a select rather than branches, as which comes next is not predictable.
        let step = pair[1].wrapping_sub(pair[0]);
        current = std::hint::select_unpredictable((step as u32) < 2, current + step, 1);
        best = best.max(current);
    }
    best
}
