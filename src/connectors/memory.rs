//! In-memory source and sink, for tests and examples.

use std::sync::{Arc, Mutex};

use super::{
    owner, positioned, Arrival, Batch, Partition, PartitionPosition, Poll, Sink, SinkError, Source,
};
use crate::event::Record;

/// A source whose partitions are vectors of arrivals held in memory.
///
/// Partition `p` belongs to worker `p % workers`. Each poll returns at most `chunk`
/// arrivals, so tests can vary how input is batched.
///
/// # Examples
/// ```
/// use diffmill::connectors::{MemorySource, Source};
/// use diffmill::event::{Click, Event};
///
/// let click = Event::Click(Click { click_id: 1, bid_id: 2, ts: 3 });
/// let source = MemorySource::from_events(vec![vec![click], vec![]]);
/// assert_eq!(source.partitions(0, 2).unwrap().len(), 1);
/// assert_eq!(source.partitions(1, 2).unwrap().len(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemorySource {
    partitions: Vec<Vec<Arrival>>,
    chunk: usize,
}

impl MemorySource {
    /// A source with the given partitions of arrivals.
    pub fn new(partitions: Vec<Vec<Arrival>>) -> MemorySource {
        MemorySource {
            partitions,
            chunk: 1024,
        }
    }

    /// A source of valid records (or events of the default declaration), each at its
    /// index as position.
    pub fn from_events<R: Into<Record>>(partitions: Vec<Vec<R>>) -> MemorySource {
        MemorySource::new(partitions.into_iter().map(positioned).collect())
    }

    /// Sets the most arrivals a single poll returns (at least 1).
    pub fn with_chunk(mut self, chunk: usize) -> MemorySource {
        self.chunk = chunk.max(1);
        self
    }
}

impl Source for MemorySource {
    fn partitions(
        &self,
        worker: usize,
        workers: usize,
    ) -> Result<Vec<Box<dyn Partition>>, std::io::Error> {
        Ok(self
            .partitions
            .iter()
            .enumerate()
            .filter(|(p, _)| owner(*p, workers) == worker)
            .map(|(p, arrivals)| {
                Box::new(MemoryPartition {
                    name: format!("memory/{p}"),
                    arrivals: arrivals.clone().into_iter(),
                    chunk: self.chunk,
                    read: 0,
                }) as Box<dyn Partition>
            })
            .collect())
    }
}

struct MemoryPartition {
    name: String,
    arrivals: std::vec::IntoIter<Arrival>,
    chunk: usize,
    /// Arrivals returned so far.
    read: u64,
}

impl Partition for MemoryPartition {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll(&mut self, out: &mut Vec<Arrival>, max: usize) -> Result<Poll, std::io::Error> {
        let before = out.len();
        out.extend(self.arrivals.by_ref().take(max.min(self.chunk)));
        self.read += (out.len() - before) as u64;
        Ok(if self.arrivals.len() == 0 {
            Poll::Done
        } else {
            Poll::Ready
        })
    }

    fn position(&self) -> Option<PartitionPosition> {
        Some(PartitionPosition {
            offset: self.read,
            line: self.read,
        })
    }

    fn seek(&mut self, position: PartitionPosition) -> Result<(), std::io::Error> {
        while self.read < position.offset {
            if self.arrivals.next().is_none() {
                break;
            }
            self.read += 1;
        }
        Ok(())
    }
}

/// A sink that keeps every batch in memory; clones share the same batches.
#[derive(Clone, Debug, Default)]
pub struct MemorySink {
    batches: Arc<Mutex<Vec<Batch>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> MemorySink {
        MemorySink::default()
    }

    /// The batches written so far, in order.
    pub fn batches(&self) -> Vec<Batch> {
        self.batches.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl Sink for MemorySink {
    fn name(&self) -> &str {
        "memory"
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.batches
            .lock()
            .map_err(|_| SinkError::Other {
                sink: "memory".into(),
                message: "lock poisoned".into(),
            })?
            .push(batch.clone());
        Ok(())
    }
}
