//! Wall-clock time as event time.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::event::Millis;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> Millis {
    now_us() / 1000
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
