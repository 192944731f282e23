//! The partitioner's tests: groups round-trip, ranges agree with their splitters, heavy
//! customers are found, and every record lands where its customer's others do.
use super::group::*;
use super::router::*;
use super::*;
use crate::parse::Record;
use crate::products::ProductDict;
use crate::spill::SpillDir;

#[test]
fn groups_round_trip() {
    let mut buf = Vec::new();
    let long = [b'x'; 255];
    let texts: Vec<Box<[u8]>> = vec![Box::from(&b"ID0"[..]), Box::from(&b"PURA250"[..])];
    let products: [(&[u8], i64); 4] = [
        (b"PURA250", -5),
        (&long, i64::MAX),
        (b"p", i64::MIN),
        (b"ID0", 7),
    ];
    let coded = [
        (Product::Id(1), -5),
        (Product::Text(&long), i64::MAX),
        (Product::Text(b"p"), i64::MIN),
        (Product::Id(0), 7),
    ];
    encode_group(
        &mut buf,
        b"0023938",
        coded.iter().copied(),
        &[15_000, i32::MIN],
    );
    encode_record(&mut buf, &Record::new(&long, b"q", 1, 300));
    let groups: Vec<Group> = EncodedGroups::new(&buf).collect();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].customer, b"0023938");
    assert_eq!(groups[0].products(&texts), products);
    assert_eq!(groups[0].days(), [15_000, i32::MIN]);
    assert_eq!(groups[1].customer, &long);
    assert_eq!(groups[1].products(&texts), [(&b"q"[..], 300)]);
}

/// The bytes one writer makes of `records` in a single partition, with a dictionary of at
/// most `cap` product codes; and the codes it holds.
fn one_partition(records: &[Record<'_>], cap: usize) -> (Vec<u8>, Vec<Box<[u8]>>) {
    let parent = tempfile::tempdir().unwrap();
    let dir = SpillDir::create(parent.path()).unwrap();
    let store = PartitionStore::new(1, usize::MAX, &dir);
    let products = ProductDict::new(cap);
    let mut writer = PartitionWriter::new(&store, Partitioner::new(1), 1 << 20, &products);
    for record in records {
        writer.push(record).unwrap();
    }
    writer.finish().unwrap();
    let mut blocks = store
        .into_partitions()
        .pop()
        .unwrap()
        .into_blocks(&dir)
        .unwrap();
    assert_eq!(blocks.len(), 1);
    (blocks.pop().unwrap(), products.into_texts())
}

#[test]
fn consecutive_records_of_a_customer_fold_into_one_group() {
    let record = |customer: &'static str, product: &'static str, day, units| {
        Record::new(customer.as_bytes(), product.as_bytes(), day, units)
    };
    let mut records = vec![
        record("a", "P", 1, 5),
        record("a", "Q", 1, 1),
        record("a", "P", 2, i32::MAX),
        record("b", "P", 1, 1),
        record("a", "P", 3, 1),
    ];
    // 300 distinct days: the group is split at 255.
    records.extend((0..300).map(|day| record("c", "P", day, 1)));
    let (block, texts) = one_partition(&records, 1);
    // "P" got an id, "Q" found the dictionary full.
    assert_eq!(texts, [Box::from(&b"P"[..])]);
    let groups: Vec<Group> = EncodedGroups::new(&block).collect();
    type Summary<'a> = (&'a [u8], Vec<(&'a [u8], i64)>, usize);
    let summary: Vec<Summary> = groups
        .iter()
        .map(|g| (g.customer, g.products(&texts), g.days().len()))
        .collect();
    assert_eq!(
        summary[0],
        (
            &b"a"[..],
            vec![(&b"P"[..], 5 + i64::from(i32::MAX)), (&b"Q"[..], 1)],
            2
        )
    );
    assert_eq!(summary[1], (&b"b"[..], vec![(&b"P"[..], 1)], 1));
    assert_eq!(summary[2], (&b"a"[..], vec![(&b"P"[..], 1)], 1));
    assert_eq!(summary[3].2, 255);
    assert_eq!(summary[4].2, 45);
    assert_eq!(summary.len(), 5);
}

#[test]
fn groups_of_long_products_split_before_their_body_outgrows_its_length() {
    let codes: Vec<Vec<u8>> = (0..200u8)
        .map(|i| vec![b'a' + i % 26; 200 + usize::from(i % 50)])
        .collect();
    let records: Vec<Record> = (0..200)
        .map(|i| Record::new(b"c", &codes[i], i as i32, -1))
        .collect();
    let (block, _) = one_partition(&records, 0); // every code as text
    let groups: Vec<Group> = EncodedGroups::new(&block).collect();
    assert!(groups.len() > 1);
    let (mut seen, mut days) = (0, 0);
    for g in &groups {
        seen += g.products(&[]).iter().map(|(_, total)| total).sum::<i64>();
        days += g.days().len();
    }
    assert_eq!((seen, days), (-200, 200));
}

#[test]
fn partitions_are_stable_and_spread() {
    let p = Partitioner::new(16);
    let mut seen = [0usize; 16];
    for i in 0..16_000 {
        let c = format!("{i:07}");
        let a = p.partition_of(c.as_bytes());
        assert_eq!(a, p.partition_of(c.as_bytes()));
        seen[a] += 1;
    }
    assert!(seen.iter().all(|&n| (700..1300).contains(&n)), "{seen:?}");
}

/// Customer-like texts: short and long, many sharing their first eight bytes or being
/// prefixes of each other, so that splitters and customers share keys.
fn customer_text() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    (
        prop::sample::select(vec![&b""[..], b"0", b"00123", b"CUSTOMER", b"CUSTOMER-0"]),
        prop::collection::vec(
            prop::sample::select(vec![b'0', b'1', b'9', b'-', b'z']),
            0..6,
        ),
    )
        .prop_map(|(head, tail)| [head, &tail].concat())
        .prop_filter("non-empty", |t| !t.is_empty())
}

/// Whether a range partitioner puts each of `texts` where the reference does: after as
/// many splitters as are at or below it, by bytes.
fn agrees_with_the_splitters<'t>(
    p: &Partitioner,
    texts: impl IntoIterator<Item = &'t Vec<u8>>,
) -> Result<(), proptest::test_runner::TestCaseError> {
    if let Kind::Ranges { splitters, .. } = &p.kind {
        for t in texts {
            let expected = splitters.iter().filter(|s| ***s <= t[..]).count();
            proptest::prop_assert_eq!(p.partition_of(t), expected, "{:?}", t);
            if t.len() <= 8 {
                // As the writer finds a short customer's partition: by its key alone.
                let short = p.partition_of_short(crate::key::prefix_key(t));
                proptest::prop_assert_eq!(short, expected, "{:?} by its key", t);
            }
        }
    }
    Ok(())
}

proptest::proptest! {
    #[test]
    fn ranges_keep_byte_order_and_agree_with_the_splitters(
        sample in proptest::collection::vec(customer_text(), 0..60),
        probes in proptest::collection::vec(customer_text(), 1..60),
        count in 1usize..20,
    ) {
        let p = Partitioner::ranges(count, sample.iter().map(|s| s.clone().into()).collect());
        proptest::prop_assert!(p.count() <= count);
        agrees_with_the_splitters(&p, &probes)?;
        let mut sorted = probes.clone();
        sorted.sort();
        let parts: Vec<usize> = sorted.iter().map(|t| p.partition_of(t)).collect();
        proptest::prop_assert!(
            !p.is_ordered() || parts.windows(2).all(|w| w[0] <= w[1]),
            "{:?}",
            parts
        );
        proptest::prop_assert_eq!(p.is_ordered(), !sample.is_empty());
        proptest::prop_assert!(parts.iter().all(|&i| i < p.count()));
    }
}

proptest::proptest! {
    #[test]
    fn ranges_of_ids_sharing_their_first_bytes_agree_with_the_splitters(
        // Zero-padded ids whose splitters share 8 or more bytes (keys then come from the bytes
        // after them), many sharing the next eight bytes too (`a` followed by zeros and a small
        // `b`), probes of every kind around them.
        width in 8usize..30,
        sample in proptest::collection::vec((0u64..30, 0u64..1000), 1..400),
        padded in proptest::collection::vec((0u64..40, 0u64..2000), 1..100),
        others in proptest::collection::vec(customer_text(), 0..30),
        count in 2usize..40,
    ) {
        let id = |&(a, b): &(u64, u64)| format!("{:0width$}", a * 1_000_000_000 + b).into_bytes();
        let p = Partitioner::ranges(count, sample.iter().map(|n| id(n).into()).collect());
        let zeros = b"0".repeat(width.max(9));
        let near = [&zeros[..width.max(9) - 1], &zeros[..8], b"00000000/", b"1"];
        let probes: Vec<Vec<u8>> = padded
            .iter()
            .map(id)
            .chain(others)
            .chain(near.iter().map(|t| t.to_vec()))
            .collect();
        agrees_with_the_splitters(&p, probes.iter())?;
    }
}

/// Ids as files hold them: decimal, mostly of one width with leading zeros, now and then
/// shorter or longer than eight bytes; and a few of any bytes but NUL and 0xFF.
fn decimal_id() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    prop_oneof![
        8 => (0u64..10_000_000).prop_map(|n| format!("{n:07}").into_bytes()),
        1 => (0u64..100_000).prop_map(|n| n.to_string().into_bytes()),
        1 => (0u64..1 << 40).prop_map(|n| format!("{n:011}").into_bytes()),
        1 => prop::collection::vec(1u8..=254, 1..10),
    ]
}

proptest::proptest! {
    #[test]
    fn ranges_of_many_partitions_agree_with_the_splitters(
        sample in proptest::collection::vec(decimal_id(), 1..3000),
        probes in proptest::collection::vec(decimal_id(), 1..300),
        count in 2usize..300,
    ) {
        let p = Partitioner::ranges(count, sample.iter().map(|s| s.clone().into()).collect());
        proptest::prop_assert!(p.is_ordered());
        agrees_with_the_splitters(&p, probes.iter().chain(&sample))?;
    }
}

#[test]
fn ranges_are_balanced_by_the_sample() {
    let ids: Vec<Box<[u8]>> = (0..64_000)
        .map(|i| format!("{:07}", i * 7919 % 64_000).into_bytes().into())
        .collect();
    let sample = ids.iter().step_by(16).cloned().collect();
    let p = Partitioner::ranges(16, sample);
    assert!(p.is_ordered());
    assert_eq!(p.count(), 16);
    assert!(
        matches!(
            &p.kind,
            Kind::Ranges {
                lookup: Some(_),
                ..
            }
        ),
        "decimal ids are looked up by their bucket"
    );
    let mut seen = [0usize; 16];
    for id in &ids {
        seen[p.partition_of(id)] += 1;
    }
    assert!(
        seen.iter().all(|&n| (3_000..5_000).contains(&n)),
        "{seen:?}"
    );
    assert!(!Partitioner::ranges(16, Vec::new()).is_ordered());
    assert!(p.heavy().is_empty(), "no customer is a partition's worth");
}

#[test]
fn customers_of_a_partition_s_worth_of_the_sample_are_heavy() {
    let guest: Box<[u8]> = Box::from(&b"0000000"[..]);
    let long_guest: Box<[u8]> = Box::from(&b"WALK-IN-CUSTOMER"[..]);
    let mut sample: Vec<Box<[u8]>> = (0..3_000)
        .map(|i| format!("{:07}", 10_000 + i).into_bytes().into())
        .collect();
    sample.extend(std::iter::repeat_n(guest.clone(), 1_000));
    sample.extend(std::iter::repeat_n(long_guest.clone(), 300));
    // One of the ordinary customers drawn 15 times: under the floor of 16 draws.
    sample.extend(std::iter::repeat_n(sample[5].clone(), 14));
    assert_eq!(
        Partitioner::ranges(16, sample.clone()).heavy(),
        [guest.clone(), long_guest]
    );
    assert!(
        Partitioner::ranges(1, sample.clone()).heavy().is_empty(),
        "one partition holds all"
    );
    assert!(Partitioner::new(16).heavy().is_empty());
    // The ranges are cut among the others, evenly.
    let p = Partitioner::ranges(16, sample.clone());
    assert_eq!(p.count(), 16);
    let mut seen = [0usize; 16];
    for id in sample
        .iter()
        .filter(|s| s[0].is_ascii_digit() && **s != guest)
    {
        seen[p.partition_of(id)] += 1;
    }
    assert!(seen.iter().all(|&n| (150..250).contains(&n)), "{seen:?}");
    // Only heavy customers: a hash partitioner that still knows them.
    let p = Partitioner::ranges(16, vec![guest.clone(); 100]);
    assert!(!p.is_ordered());
    assert_eq!(p.heavy(), [guest]);
}

/// Of the groups in `store` whose customer is `customer`: how many, the totals of the
/// products of `codes` (id `i` is `codes[i]`; codes without an id must be `codes[2]`), and
/// the days, sorted.
fn groups_of(
    customer: &[u8],
    store: PartitionStore<'_>,
    dir: &SpillDir,
    codes: &[&[u8]; 3],
) -> (usize, [i64; 3], Vec<i32>) {
    let (mut groups, mut totals, mut days) = (0, [0i64; 3], Vec::new());
    for part in store.into_partitions() {
        for block in part.into_blocks(dir).unwrap() {
            for group in EncodedGroups::new(&block).filter(|g| g.customer == customer) {
                groups += 1;
                group.visit(
                    |product, total| {
                        let i = match product {
                            Product::Id(id) => id as usize,
                            Product::Text(text) => {
                                assert_eq!(text, codes[2]);
                                2
                            }
                        };
                        totals[i] += total;
                    },
                    |day| days.push(day),
                );
            }
        }
    }
    days.sort_unstable();
    (groups, totals, days)
}

/// `visits` visits of the guest, on 400 days, with 3 products (one of them beyond a
/// dictionary of two), each followed by a visit of one of 100 other customers.
fn write_guest_among_others(
    writer: &mut PartitionWriter<'_, '_>,
    codes: &[&[u8]; 3],
    visits: usize,
) {
    for i in 0..visits {
        let record = Record::new(b"guest", codes[i % 3], (i % 400) as i32, 2);
        writer.push(&record).unwrap();
        let other = format!("c{:03}", i % 100);
        writer
            .push(&Record::new(other.as_bytes(), b"A", 1, 1))
            .unwrap();
    }
}

#[test]
fn a_heavy_customer_is_summed_into_a_few_groups() {
    let dir = SpillDir::create(&std::env::temp_dir()).unwrap();
    let store = PartitionStore::new(4, usize::MAX, &dir);
    let mut sample: Vec<Box<[u8]>> = (0..100)
        .map(|i| format!("c{i:03}").into_bytes().into())
        .collect();
    sample.extend(std::iter::repeat_n(Box::from(&b"guest"[..]), 100));
    let partitioner = Partitioner::ranges(4, sample);
    let products = ProductDict::new(2);
    let mut writer = PartitionWriter::new(&store, partitioner, 1 << 10, &products);
    let codes = [&b"A"[..], b"B", b"A-LONG-PRODUCT-CODE"];
    write_guest_among_others(&mut writer, &codes, 600);
    writer.finish().unwrap();
    let (groups, totals, days) = groups_of(b"guest", store, &dir, &codes);
    assert_eq!(groups, 2, "400 days: 255 and 145");
    assert_eq!(totals, [400, 400, 400]);
    assert_eq!(days, (0..400).collect::<Vec<i32>>());
}

#[test]
fn a_customer_who_turns_out_heavy_is_summed_from_then_on() {
    let dir = SpillDir::create(&std::env::temp_dir()).unwrap();
    let products = ProductDict::new(2);
    let codes = [&b"A"[..], b"B", b"A-LONG-PRODUCT-CODE"];
    // Nothing known ahead (a stream's hash partitions): half the groups are the guest's.
    let store = PartitionStore::new(4, usize::MAX, &dir);
    let mut writer = PartitionWriter::new(&store, Partitioner::new(4), 1 << 10, &products);
    write_guest_among_others(&mut writer, &codes, 30_000);
    writer.finish().unwrap();
    let (groups, totals, mut days) = groups_of(b"guest", store, &dir, &codes);
    assert!(groups < 3_000, "{groups} of the guest's 30,000 groups kept");
    assert_eq!(totals, [20_000; 3]);
    days.dedup(); // the groups before it turned out heavy, and the sums after
    assert_eq!(days, (0..400).collect::<Vec<i32>>());
    // The others, one group in 100 each, stay groups.
    let store = PartitionStore::new(4, usize::MAX, &dir);
    let mut writer = PartitionWriter::new(&store, Partitioner::new(4), 1 << 10, &products);
    write_guest_among_others(&mut writer, &codes, 30_000);
    writer.finish().unwrap();
    let (groups, _, _) = groups_of(b"c042", store, &dir, &[b"A", b"B", b"C"]);
    assert_eq!(groups, 300);
    // One partition holds every customer anyway.
    let store = PartitionStore::new(1, usize::MAX, &dir);
    let mut writer = PartitionWriter::new(&store, Partitioner::new(1), 1 << 10, &products);
    write_guest_among_others(&mut writer, &codes, 3_000);
    writer.finish().unwrap();
    assert_eq!(groups_of(b"guest", store, &dir, &codes).0, 3_000);
}

#[test]
fn store_spills_beyond_budget() {
    let parent = tempfile::tempdir().unwrap();
    let dir = SpillDir::create(parent.path()).unwrap();
    let store = PartitionStore::new(2, 10, &dir);
    store.accept(0, vec![1; 6]).unwrap();
    store.accept(1, vec![2; 6]).unwrap(); // over budget: partition 1 goes to disk
    store.accept(0, vec![3; 4]).unwrap();
    assert_eq!(store.spilled_bytes(), 6);
    let parts = store.into_partitions();
    assert_eq!(parts[0].memory_bytes(), 10);
    assert_eq!(parts[1].file_bytes(), 6);
}
