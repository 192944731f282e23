//! The reduce's tests: streaks, ties, and partitions reduced against a plain sum.
use super::*;
use crate::date::parse_date;
use crate::parse::Record;
use crate::partition::encode_record;

fn day(s: &str) -> i32 {
    parse_date(s.as_bytes()).unwrap()
}

#[test]
fn streak_of_the_spec_example() {
    let mut days = [
        day("2011-08-10"),
        day("2011-08-11"),
        day("2011-08-14"),
        day("2011-08-15"),
        day("2011-08-16"),
    ];
    assert_eq!(longest_streak(&mut days), 3);
}

#[test]
fn streak_ignores_repeats_and_order_and_crosses_borders() {
    let mut days = [
        day("2012-03-01"),
        day("2012-02-28"),
        day("2012-02-29"),
        day("2012-02-29"),
        day("2012-02-28"),
    ];
    assert_eq!(longest_streak(&mut days), 3);
    let mut days = [day("2011-12-31"), day("2012-01-01"), day("2011-12-30")];
    assert_eq!(longest_streak(&mut days), 3);
    let mut days = [day("2011-02-28"), day("2011-03-01")];
    assert_eq!(longest_streak(&mut days), 2);
    let mut days = [day("2011-02-28"), day("2011-03-02")];
    assert_eq!(longest_streak(&mut days), 1);
    let mut days = [5, 5, 5];
    assert_eq!(longest_streak(&mut days), 1);
}

#[test]
fn favourite_ties_go_to_the_smallest_code() {
    let favourite = |totals: &[(&'static [u8], i64)]| favourite_product(totals.iter().copied());
    assert_eq!(favourite(&[(b"B", 5), (b"A", 5), (b"C", 4)]), b"A");
    assert_eq!(favourite(&[(b"B", 6), (b"A", 5)]), b"B");
    assert_eq!(favourite(&[(b"b", -1), (b"a", -2)]), b"b");
    assert_eq!(
        favourite(&[(b"a", 0), (b"B", 0)]),
        b"B",
        "byte order: 'B' < 'a'"
    );
}

#[test]
fn sums_go_beyond_i32() {
    let mut block = Vec::new();
    for d in 0..3 {
        let r = Record::new(b"c", b"big", d, i32::MAX);
        encode_record(&mut block, &r);
    }
    let r = Record::new(b"c", b"small", 0, i32::MAX);
    encode_record(&mut block, &r);
    let run = reduce_partition(&[block], &Catalogue::default()).unwrap();
    let rows: Vec<_> = RunRows::new(&run.bytes).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].favourite_product, b"big");
    assert_eq!(rows[0].longest_streak, 3);
}

#[test]
fn a_total_beyond_i64_is_an_error_not_a_wrapped_sum() {
    use crate::partition::{Product, encode_group};
    let texts: Vec<Box<[u8]>> = vec![Box::from(&b"big"[..])];
    let catalogue = Catalogue::new(texts);
    for product in [Product::Id(0), Product::Text(b"small")] {
        let mut block = Vec::new();
        for total in [i64::MAX - 1, 1] {
            encode_group(&mut block, b"c", [(product, total)].into_iter(), &[1]);
        }
        let run = reduce_partition(std::slice::from_ref(&block), &catalogue).unwrap();
        assert_eq!(RunRows::new(&run.bytes).count(), 1, "i64::MAX itself fits");
        encode_group(&mut block, b"c", [(product, 1)].into_iter(), &[2]);
        let error = reduce_partition(&[block], &catalogue).err();
        assert!(
            matches!(error, Some(Error::Overflow { ref customer, .. }) if customer == "c"),
            "{product:?}: {error:?}"
        );
    }
}

#[test]
fn products_by_id_and_by_text_are_summed_apart() {
    use crate::partition::{Product, encode_group};
    // "big" has dictionary id 0; "small" came when the dictionary was full.
    let texts: Vec<Box<[u8]>> = vec![Box::from(&b"big"[..])];
    let mut block = Vec::new();
    let group = |block: &mut Vec<u8>, big, small, day| {
        let products = [(Product::Id(0), big), (Product::Text(b"small"), small)];
        encode_group(block, b"c", products.into_iter(), &[day]);
    };
    group(&mut block, 5, 3, 10);
    group(&mut block, 1, 4, 11);
    let run = reduce_partition(&[block], &Catalogue::new(texts)).unwrap();
    let rows: Vec<_> = RunRows::new(&run.bytes).collect();
    assert_eq!(rows[0].favourite_product, b"small", "7 units against 6");
    assert_eq!(rows[0].longest_streak, 2);
}

#[test]
fn a_reused_scratch_carries_nothing_from_one_partition_to_the_next() {
    use crate::partition::{Product, encode_group};
    let texts: Vec<Box<[u8]>> = (0..300)
        .map(|i| format!("P{i:03}").into_bytes().into())
        .collect();
    let catalogue = Catalogue::new(texts);
    // Partitions whose customers buy the same ids with different totals.
    let partitions: Vec<Vec<u8>> = (0..40)
        .map(|p: u32| {
            let mut block = Vec::new();
            for c in 0..50 {
                let products = (0..4).map(|k| {
                    let id = (c * 3 + k * 11) % 300;
                    (Product::Id(id), i64::from((p + c * k) % 5))
                });
                let customer = format!("c{c:02}");
                encode_group(&mut block, customer.as_bytes(), products, &[c as i32]);
            }
            block
        })
        .collect();
    let mut scratch = Scratch::default();
    for block in &partitions {
        let blocks = std::slice::from_ref(block);
        let reused = reduce_partition_with(blocks, &catalogue, &mut scratch, Emit::Rows).unwrap();
        let fresh = reduce_partition(blocks, &catalogue).unwrap();
        assert_eq!(reused.bytes, fresh.bytes);
    }
    // Stamps that wrap around start over cleanly.
    scratch.stamp = u32::MAX - 3;
    let blocks = std::slice::from_ref(&partitions[0]);
    let wrapped = reduce_partition_with(blocks, &catalogue, &mut scratch, Emit::Rows).unwrap();
    assert_eq!(
        wrapped.bytes,
        reduce_partition(blocks, &catalogue).unwrap().bytes
    );
}

#[test]
fn ties_go_to_the_smallest_code_whatever_its_id() {
    use crate::partition::{Product, encode_group};
    // Ids in the opposite of byte order, and codes kept as text between and around them.
    let texts: Vec<Box<[u8]>> = vec![Box::from(&b"d"[..]), Box::from(&b"b"[..])];
    let catalogue = Catalogue::new(texts);
    let favourite = |products: &[(Product<'_>, i64)]| {
        let mut block = Vec::new();
        encode_group(&mut block, b"c", products.iter().copied(), &[1]);
        let run = reduce_partition(&[block], &catalogue).unwrap();
        let row = RunRows::new(&run.bytes).next().unwrap();
        String::from_utf8(row.favourite_product.to_vec()).unwrap()
    };
    use Product::{Id, Text};
    assert_eq!(favourite(&[(Id(0), 5), (Id(1), 5)]), "b");
    assert_eq!(favourite(&[(Id(1), 5), (Id(0), 5)]), "b");
    assert_eq!(favourite(&[(Id(0), 5), (Text(b"c"), 5)]), "c");
    assert_eq!(favourite(&[(Text(b"e"), 5), (Id(0), 5)]), "d");
    assert_eq!(
        favourite(&[(Text(b"e"), 5), (Text(b"a"), 5), (Id(1), 5)]),
        "a"
    );
    assert_eq!(favourite(&[(Id(0), 6), (Text(b"a"), 5), (Id(1), 5)]), "d");
}

#[test]
fn rows_come_out_sorted_by_customer_bytes() {
    let mut block = Vec::new();
    let ids = [
        "b",
        "a",
        "B",
        "0023938",
        "a",
        "ABCDEFGHb",
        "ABCDEFGH",
        "ABCDEFGHa",
        "ABCDEFGHb",
        "ABCDEFGH",
        "ABCDEFGHa",
    ];
    for c in ids {
        let r = Record::new(c.as_bytes(), b"p", 1, 1);
        encode_record(&mut block, &r);
    }
    let run = reduce_partition(&[block], &Catalogue::default()).unwrap();
    let ids: Vec<&[u8]> = RunRows::new(&run.bytes).map(|r| r.customer_id).collect();
    let expected: [&[u8]; 7] = [
        b"0023938",
        b"ABCDEFGH",
        b"ABCDEFGHa",
        b"ABCDEFGHb",
        b"B",
        b"a",
        b"b",
    ];
    assert_eq!(ids, expected);
    assert_eq!(run.rows, 7);
}

proptest::proptest! {
    #[test]
    fn customers_sharing_their_first_bytes_come_out_in_byte_order(
        head in 0usize..20,
        tails in proptest::collection::vec("[01]{0,12}", 1..80),
    ) {
        // Ids behind a shared head of any length, some a prefix of others, some repeated.
        let ids: Vec<String> = tails
            .iter()
            .map(|t| format!("{}{t}", "0".repeat(head)))
            .filter(|c| !c.is_empty())
            .collect();
        let mut block = Vec::new();
        for c in &ids {
            encode_record(&mut block, &Record::new(c.as_bytes(), b"p", 1, 1));
        }
        let run = reduce_partition(&[block], &Catalogue::default()).unwrap();
        let got: Vec<&[u8]> = RunRows::new(&run.bytes).map(|r| r.customer_id).collect();
        let mut expected: Vec<&[u8]> = ids.iter().map(|c| c.as_bytes()).collect();
        expected.sort_unstable();
        expected.dedup();
        proptest::prop_assert_eq!(got, expected);
    }
}
