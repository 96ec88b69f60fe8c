//! Event times as people read them: ISO-8601 UTC, next to the raw milliseconds.

use super::Millis;

/// Formats ms since the epoch as ISO-8601 UTC, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
///
/// # Examples
/// ```
/// use diffmill::event::utc;
///
/// assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
/// assert_eq!(utc(1_704_068_374_342), "2024-01-01T00:19:34.342Z");
/// ```
pub fn utc(millis: Millis) -> String {
    let secs = millis / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (H. Hinnant), valid for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        millis % 1000
    )
}

/// A time (frontier, watermark, event time) as messages print it: ISO-8601 UTC and the
/// raw milliseconds, which are what the output files and tables hold.
///
/// # Examples
/// ```
/// use diffmill::event::time_text;
///
/// assert_eq!(time_text(1_704_068_374_342), "2024-01-01T00:19:34.342Z (1704068374342 ms)");
/// ```
pub fn time_text(millis: Millis) -> String {
    format!("{} ({millis} ms)", utc(millis))
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn formats_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
    }
}
