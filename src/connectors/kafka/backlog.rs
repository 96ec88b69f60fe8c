//! A partition's high watermark, fetched off the worker's thread, for its consumer lag.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

/// How often the watcher asks the broker for the partition's high watermark.
const EVERY: Duration = Duration::from_secs(2);
/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The high watermark of one partition, kept fresh by a thread of its own, started on
/// first use (a run that does not ask sends no request). The thread ends with the
/// consumer, so it never outlives the run. The worker only reads an atomic: it never
/// waits for the broker.
#[derive(Debug)]
pub struct HighWatermark {
    /// `-1` until the first answer.
    high: Arc<AtomicI64>,
    started: AtomicBool,
}

impl Default for HighWatermark {
    fn default() -> Self {
        HighWatermark {
            high: Arc::new(AtomicI64::new(-1)),
            started: AtomicBool::new(false),
        }
    }
}

impl HighWatermark {
    /// The last high watermark fetched (`None` before the first answer), starting the
    /// watcher of `topic`/`partition` through `consumer` on the first call.
    pub fn get(&self, consumer: &Arc<BaseConsumer>, topic: &str, partition: i32) -> Option<i64> {
        if !self.started.swap(true, Ordering::Relaxed) {
            let (consumer, high) = (Arc::downgrade(consumer), Arc::clone(&self.high));
            let topic = topic.to_owned();
            std::thread::spawn(move || watch(&consumer, &topic, partition, &high));
        }
        let high = self.high.load(Ordering::Relaxed);
        (high >= 0).then_some(high)
    }
}

fn watch(consumer: &Weak<BaseConsumer>, topic: &str, partition: i32, high: &AtomicI64) {
    while let Some(consumer) = consumer.upgrade() {
        match consumer.fetch_watermarks(topic, partition, TIMEOUT) {
            Ok((_, fetched)) => high.store(fetched, Ordering::Relaxed),
            Err(error) => tracing::debug!(topic, partition, %error, "no high watermark"),
        }
        drop(consumer);
        std::thread::sleep(EVERY);
    }
}
