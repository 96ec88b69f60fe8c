//! Reaching the brokers before the first real request: say which brokers are tried, say
//! so while they do not answer, and name them when giving up.

use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};

/// Longest wait for one answer, and least time between two attempts: a warning at most
/// this often while the brokers do not answer.
const ATTEMPT: Duration = Duration::from_secs(5);

/// Waits until `brokers` answer a metadata request, for at most `timeout`; `who` names
/// the client in messages (e.g. "kafka sink `funnel_aggregates`").
///
/// # Errors
/// The brokers did not answer within `timeout`: a message naming them and the last
/// error.
pub(super) fn reach<C: ClientContext>(
    client: &Client<C>,
    who: &str,
    brokers: &str,
    timeout: Duration,
) -> Result<(), String> {
    tracing::info!("{who}: connecting to the Kafka brokers {brokers}");
    let started = Instant::now();
    let mut failed = false;
    // At least four attempts within the timeout, so a failing attempt is said before the
    // run gives up, however long librdkafka waits for one answer.
    let step = ATTEMPT.min(timeout / 4).max(Duration::from_millis(1));
    loop {
        let attempt = Instant::now();
        let left = timeout.saturating_sub(started.elapsed());
        let answer = client.fetch_metadata(None, step.min(left).max(Duration::from_millis(1)));
        let error = match answer {
            Ok(_) => {
                if failed {
                    tracing::info!("{who}: the Kafka brokers {brokers} answered");
                }
                return Ok(());
            }
            Err(error) => error,
        };
        if started.elapsed() >= timeout {
            return Err(format!(
                "cannot reach the Kafka brokers {brokers} within {:.0}s: {error}",
                timeout.as_secs_f64()
            ));
        }
        tracing::warn!(
            "{who}: no answer from the Kafka brokers {brokers} yet ({error}); retrying for \
             up to {:.0}s",
            timeout.as_secs_f64()
        );
        failed = true;
        let pause = step.saturating_sub(attempt.elapsed());
        std::thread::sleep(pause.min(timeout.saturating_sub(started.elapsed())));
    }
}
