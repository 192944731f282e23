//! Calendar dates as day numbers.
//!
//! A streak is a run of consecutive calendar days, so dates are turned into a plain day count
//! (days since 1970-01-01) once, at parse time; "consecutive" is then `b == a + 1`, which is right
//! across month and year borders and leap days without any calendar logic in the reducer.
//! The conversion is Howard Hinnant's `days_from_civil`, exact for the proleptic Gregorian calendar.

/// Why a `transactionDate` value is not a date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateError {
    /// Not of the shape `YYYY-MM-DD` (ten bytes, digits and two dashes).
    Shape,
    /// The shape is right but there is no such day (month 13, February 30, year 0).
    NoSuchDay,
}

/// Parses `YYYY-MM-DD` into days since 1970-01-01. Years 0001 to 9999.
pub fn parse_date(text: &[u8]) -> Result<i32, DateError> {
    let &[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = text else {
        return Err(DateError::Shape);
    };
    let digits = [y0, y1, y2, y3, m0, m1, d0, d1];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(DateError::Shape);
    }
    let n = |hi: &[u8]| {
        hi.iter()
            .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'))
    };
    let (year, month, day) = (n(&digits[..4]), n(&digits[4..6]), n(&digits[6..]));
    if year == 0 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(DateError::NoSuchDay);
    }
    Ok(days_from_civil(year as i32, month, day))
}

/// Formats a day number as `YYYY-MM-DD`. The inverse of [`parse_date`].
pub fn format_date(days: i32) -> [u8; 10] {
    let (y, m, d) = civil_from_days(days);
    let mut out = *b"0000-00-00";
    let y = y as u32;
    out[0] = b'0' + (y / 1000 % 10) as u8;
    out[1] = b'0' + (y / 100 % 10) as u8;
    out[2] = b'0' + (y / 10 % 10) as u8;
    out[3] = b'0' + (y % 10) as u8;
    out[5] = b'0' + (m / 10) as u8;
    out[6] = b'0' + (m % 10) as u8;
    out[8] = b'0' + (d / 10) as u8;
    out[9] = b'0' + (d % 10) as u8;
    out
}

/// Whether `year` has a February 29.
pub fn is_leap_year(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// Days in `month` (1 to 12) of `year`.
pub fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a valid civil date.
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400) as u32; // [0, 399]
    let mp = (month + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + day - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe as i32 - 719_468
}

/// The civil date (year, month, day) of a day number.
pub fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe as i32 + era * 400 + i32::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_is_day_zero() {
        assert_eq!(parse_date(b"1970-01-01"), Ok(0));
        assert_eq!(parse_date(b"1969-12-31"), Ok(-1));
        assert_eq!(parse_date(b"2000-03-01"), Ok(11_017));
    }

    #[test]
    fn consecutive_across_month_year_and_leap_borders() {
        let pairs: [(&[u8], &[u8]); 6] = [
            (b"2011-01-31", b"2011-02-01"),
            (b"2011-02-28", b"2011-03-01"),
            (b"2012-02-28", b"2012-02-29"),
            (b"2012-02-29", b"2012-03-01"),
            (b"2011-12-31", b"2012-01-01"),
            (b"2000-02-29", b"2000-03-01"),
        ];
        for (a, b) in pairs {
            assert_eq!(
                parse_date(a).unwrap() + 1,
                parse_date(b).unwrap(),
                "{a:?} {b:?}"
            );
        }
        // 2011 is not a leap year: Feb 28 and Mar 1 are adjacent.
        assert_eq!(
            parse_date(b"2011-03-01").unwrap() - parse_date(b"2011-02-28").unwrap(),
            1
        );
    }

    #[test]
    fn leap_years() {
        assert!(parse_date(b"2012-02-29").is_ok());
        assert!(parse_date(b"2000-02-29").is_ok());
        assert_eq!(parse_date(b"1900-02-29"), Err(DateError::NoSuchDay));
        assert_eq!(parse_date(b"2011-02-29"), Err(DateError::NoSuchDay));
        assert!(is_leap_year(2400) && !is_leap_year(2100));
    }

    #[test]
    fn impossible_days() {
        for bad in [
            &b"2011-02-30"[..],
            b"2011-04-31",
            b"2011-13-01",
            b"2011-00-10",
            b"2011-01-00",
            b"0000-01-01",
        ] {
            assert_eq!(parse_date(bad), Err(DateError::NoSuchDay), "{bad:?}");
        }
    }

    #[test]
    fn wrong_shapes() {
        for bad in [
            &b"2011/02/03"[..],
            b"2011-2-3",
            b"20110203",
            b"",
            b"2011-02-03 ",
            b" 2011-02-03",
            b"2011-02-0x",
            b"+011-02-03",
            b"2011-02-03T00:00",
        ] {
            assert_eq!(parse_date(bad), Err(DateError::Shape), "{bad:?}");
        }
    }

    #[test]
    fn format_round_trips_every_day_of_four_centuries() {
        let start = parse_date(b"1800-01-01").unwrap();
        let end = parse_date(b"2200-12-31").unwrap();
        for day in start..=end {
            let text = format_date(day);
            assert_eq!(
                parse_date(&text),
                Ok(day),
                "{}",
                String::from_utf8_lossy(&text)
            );
        }
        assert_eq!(
            end - start + 1,
            146_097 + 365,
            "400 Gregorian years plus 2200 (not leap)"
        );
    }
}
