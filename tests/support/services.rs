//! Tests that need a service (a Kafka broker, a PostgreSQL server) find it through an
//! environment variable, and all decide the same way when it is unset: under `CI=true`
//! they fail, since CI starts every service (`.ci/services/*.sh`) and a test must never
//! pass there by doing nothing; elsewhere they print one `SKIPPED` line and return.

use std::io::Write;

/// The value of `var`, the address of a service that `test` needs; `None` after printing
/// `SKIPPED <test> (set <var> to run)` on stderr when it is unset or empty.
///
/// # Panics
/// When `var` is unset or empty and `CI` is `true`.
pub fn service(test: &str, var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ if under_ci() => panic!(
            "{test} needs {var}, which is not set: under CI=true a test that needs a \
             service fails instead of skipping (.ci/run sources .ci/services/*.sh, which \
             start the services and set their variables)"
        ),
        _ => {
            // Straight to the process's stderr, past the test harness's capture, so the
            // skip shows in a passing run.
            let _ = writeln!(std::io::stderr(), "SKIPPED {test} (set {var} to run)");
            None
        }
    }
}

/// True when the `CI` variable says `true` (as CI systems set it).
fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true"))
}
