//! Times as people read them: ISO-8601 UTC next to the raw milliseconds, and spans.

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

/// A span of time as people read it: `250ms`, `3.2s`, `45s`, `4m 10s`, `15m`, `1h 07m`,
/// `2h`: the two largest units, the second only when it is not zero.
///
/// # Examples
/// ```
/// use diffmill::event::span_text;
///
/// assert_eq!(span_text(500), "500ms");
/// assert_eq!(span_text(3_200), "3.2s");
/// assert_eq!(span_text(250_342), "4m 10s");
/// assert_eq!(span_text(7_200_000), "2h");
/// ```
pub fn span_text(millis: Millis) -> String {
    const MINUTE: Millis = 60_000;
    const HOUR: Millis = 60 * MINUTE;
    let pair = |big: Millis, big_unit: &str, small: Millis, small_unit: &str| match small {
        0 => format!("{big}{big_unit}"),
        _ => format!("{big}{big_unit} {small:02}{small_unit}"),
    };
    match millis {
        0..1_000 => format!("{millis}ms"),
        1_000..MINUTE if millis.is_multiple_of(1_000) => format!("{}s", millis / 1_000),
        1_000..MINUTE => format!("{:.1}s", millis as f64 / 1_000.0),
        MINUTE..HOUR => pair(millis / MINUTE, "m", millis % MINUTE / 1_000, "s"),
        _ => pair(millis / HOUR, "h", millis % HOUR / MINUTE, "m"),
    }
}

#[cfg(test)]
mod tests {
    use super::{span_text, utc};

    #[test]
    fn spans_read_in_their_two_largest_units() {
        assert_eq!(span_text(0), "0ms");
        assert_eq!(span_text(45_000), "45s");
        assert_eq!(span_text(900_000), "15m");
        assert_eq!(span_text(4_020_000), "1h 07m");
        assert_eq!(span_text(92_008_092_600), "25557h 48m");
    }

    #[test]
    fn formats_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
    }
}
