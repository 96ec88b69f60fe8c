//! Which database errors are worth retrying, and how long to wait between attempts.

use std::time::{Duration, Instant};

/// What a failed database call means for the batch being written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The connection was lost or the server is briefly unavailable: reconnect and try
    /// again. The transaction did not commit, or committed (the progress row tells).
    Transient(String),
    /// Retrying cannot help (authentication, a table of another shape, a constraint): the
    /// run stops. The transaction did not commit.
    Permanent(String),
}

impl Failure {
    /// The description.
    pub fn message(&self) -> &str {
        match self {
            Failure::Transient(message) | Failure::Permanent(message) => message,
        }
    }
}

/// SQLSTATE codes that mean "try again later": connection exceptions (class 08), the
/// server shutting down or starting (57P01-57P03), too many connections, serialization
/// failures and deadlocks.
fn transient_code(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
        )
}

/// Classifies a database error: transient when the server said so by its SQLSTATE, or
/// when there is no SQLSTATE and the connection is closed or failed on I/O (refused,
/// reset, timed out); permanent otherwise.
pub fn classify(error: &postgres::Error) -> Failure {
    let message = match error.as_db_error() {
        Some(db) => {
            let mut message = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                message.push_str(&format!("; {detail}"));
            }
            if let Some(hint) = db.hint() {
                message.push_str(&format!("; hint: {hint}"));
            }
            format!("{message} (SQLSTATE {})", db.code().code())
        }
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    };
    let transient = match error.code() {
        Some(code) => transient_code(code.code()),
        None => {
            error.is_closed()
                || std::error::Error::source(error).is_some_and(|s| s.is::<std::io::Error>())
        }
    };
    if transient {
        Failure::Transient(message)
    } else {
        Failure::Permanent(message)
    }
}

/// Waits between attempts: 100 ms, doubling up to 5 s, until `retry_for` has passed
/// since the first failure.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    deadline: Instant,
}

impl Backoff {
    /// Starts the clock at the first failure.
    pub fn new(retry_for: Duration) -> Backoff {
        Backoff {
            next: Duration::from_millis(100),
            deadline: Instant::now() + retry_for,
        }
    }

    /// Sleeps before the next attempt; `false` (without sleeping) when time is up.
    pub fn wait(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        std::thread::sleep(self.next.min(self.deadline - now));
        self.next = (self.next * 2).min(Duration::from_secs(5));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_shutdown_codes_are_transient() {
        for code in ["08006", "08001", "57P01", "53300", "40001"] {
            assert!(transient_code(code), "{code}");
        }
        for code in ["28P01", "28000", "42P01", "42703", "23505", "3D000"] {
            assert!(!transient_code(code), "{code}");
        }
    }

    #[test]
    fn backoff_gives_up_at_the_deadline() {
        let mut backoff = Backoff::new(Duration::from_millis(250));
        let started = Instant::now();
        let mut attempts = 0;
        while backoff.wait() {
            attempts += 1;
        }
        assert!((2..=3).contains(&attempts), "{attempts} attempts");
        assert!(started.elapsed() >= Duration::from_millis(250));
    }
}
