//! The reference implementation: contract §2–3 written as plainly as possible, over rows that are
//! already parsed, with its own calendar arithmetic. The engine must agree with it byte for byte.

use std::collections::{BTreeMap, BTreeSet};

/// A civil date.
pub type Date = (u32, u32, u32);

/// One transaction as the test generated it.
#[derive(Clone, Debug)]
pub struct Tx {
    pub customer: String,
    pub product: String,
    pub date: Date,
    pub units: i32,
}

pub fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

pub fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// The day after `date`.
pub fn next_day((y, m, d): Date) -> Date {
    if d < days_in_month(y, m) {
        (y, m, d + 1)
    } else if m < 12 {
        (y, m + 1, 1)
    } else {
        (y + 1, 1, 1)
    }
}

/// `count` consecutive days from `start`.
pub fn days_from(start: Date, count: usize) -> Vec<Date> {
    let mut out = vec![start];
    while out.len() < count {
        out.push(next_day(*out.last().unwrap()));
    }
    out
}

/// A CSV field as RFC 4180 wants it in the output (quoted when it holds `,`, `"`, CR or LF).
pub fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// The output file the engine must write for `rows`.
pub fn expected_csv(rows: &[Tx]) -> String {
    // String order is byte order, which is what the output is sorted by.
    let mut customers: BTreeMap<&str, (BTreeMap<&str, i128>, BTreeSet<Date>)> = BTreeMap::new();
    for tx in rows {
        let (products, dates) = customers.entry(&tx.customer).or_default();
        *products.entry(&tx.product).or_default() += i128::from(tx.units);
        dates.insert(tx.date);
    }
    let mut out = String::from("customer_id,favourite_product,longest_streak\n");
    for (customer, (products, dates)) in customers {
        // Ascending product order, and only a strictly greater total replaces: ties keep the
        // smallest code.
        let mut favourite: Option<(&str, i128)> = None;
        for (product, total) in products {
            if favourite.is_none_or(|(_, best)| total > best) {
                favourite = Some((product, total));
            }
        }
        let (mut longest, mut run, mut previous) = (0, 0, None);
        for date in dates {
            run = if previous.map(next_day) == Some(date) {
                run + 1
            } else {
                1
            };
            longest = longest.max(run);
            previous = Some(date);
        }
        out += &format!(
            "{},{},{}\n",
            csv_field(customer),
            csv_field(favourite.unwrap().0),
            longest
        );
    }
    out
}

#[test]
fn reference_calendar_and_semantics() {
    assert_eq!(next_day((2012, 2, 28)), (2012, 2, 29));
    assert_eq!(next_day((2011, 2, 28)), (2011, 3, 1));
    assert_eq!(next_day((2011, 12, 31)), (2012, 1, 1));
    let tx = |c: &str, p: &str, date, units| Tx {
        customer: c.into(),
        product: p.into(),
        date,
        units,
    };
    let rows = [
        tx("b", "Y", (2011, 8, 10), 5),
        tx("b", "X", (2011, 8, 11), 5),
        tx("b", "X", (2011, 8, 14), 0),
        tx("b", "X", (2011, 8, 15), 0),
        tx("b", "X", (2011, 8, 16), 0),
        tx("a,1", "Z", (2011, 1, 1), -1),
    ];
    assert_eq!(
        expected_csv(&rows),
        "customer_id,favourite_product,longest_streak\n\"a,1\",Z,1\nb,X,3\n"
    );
}
