//! `transactionDate` to a day number, most dates by a table look-up of their month.

use super::check::check_date;
use crate::date::parse_date;

/// Day numbers of the months seen, so that most dates cost a table look-up: the key is the
/// `YYYY-MM-` prefix as an integer, in a small direct-mapped table.
pub(super) struct DateCache {
    months: std::cell::RefCell<Vec<Month>>,
}

#[derive(Clone, Copy, Default)]
struct Month {
    /// The first eight bytes of the date (`YYYY-MM-`) as a little-endian integer; 0 when empty.
    prefix: u64,
    /// Day number of the month's day 0 (the day before the 1st).
    day_zero: i32,
    /// Days in the month.
    days: u8,
}

const DATE_CACHE_SLOTS: usize = 64;

impl Default for DateCache {
    fn default() -> Self {
        DateCache {
            months: std::cell::RefCell::new(vec![Month::default(); DATE_CACHE_SLOTS]),
        }
    }
}

impl DateCache {
    pub(super) fn day(&self, value: &[u8]) -> Result<i32, String> {
        match self.day_fast(value) {
            Some(day) => Ok(day),
            None => check_date(value),
        }
    }

    /// The day of a valid date; `None` when it is not valid (or not of the usual shape).
    #[inline(always)]
    pub(super) fn day_fast(&self, value: &[u8]) -> Option<i32> {
        let &[.., d0, d1] = value else { return None };
        let (prefix, _) = value.split_first_chunk::<8>()?;
        if value.len() != 10 || !d0.is_ascii_digit() || !d1.is_ascii_digit() {
            return None;
        }
        let prefix = u64::from_le_bytes(*prefix);
        let day_of_month = u32::from(d0 - b'0') * 10 + u32::from(d1 - b'0');
        let slot = (prefix.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize;
        let mut months = self.months.borrow_mut();
        let month = &mut months[slot];
        if month.prefix != prefix {
            // A month not seen yet (or evicted): its 1st, parsed and checked in full.
            let mut first = *b"0000-00-01";
            first[..8].copy_from_slice(&value[..8]);
            let day_one = parse_date(&first).ok()?;
            let (year, mon, _) = crate::date::civil_from_days(day_one);
            *month = Month {
                prefix,
                day_zero: day_one - 1,
                days: crate::date::days_in_month(year as u32, mon) as u8,
            };
        }
        (1..=u32::from(month.days))
            .contains(&day_of_month)
            .then(|| month.day_zero + day_of_month as i32)
    }
}
