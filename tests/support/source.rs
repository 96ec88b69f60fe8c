//! A test source of in-memory partitions that tells the test what each poll gave.

use std::sync::Arc;

use diffmill::connectors::{owner, Arrival, Partition, PartitionPosition, Poll, Source};

/// Called after every poll with the partition's index and the arrivals that poll gave
/// (none once the partition has given its last record).
pub type OnPoll = Arc<dyn Fn(usize, &[Arrival]) + Send + Sync>;

/// In-memory partitions, each owned by worker `owner(p, workers)`, giving at most `chunk`
/// records a poll; each poll is reported to `on_poll`, and a partition that has given its
/// last record answers `at_end` (`Poll::Done` to finish, `Poll::Idle` to stay open like a
/// live topic).
pub struct ObservedSource {
    /// The arrivals of each partition, in order.
    pub partitions: Vec<Vec<Arrival>>,
    /// Most records one poll gives.
    pub chunk: usize,
    /// What a partition with nothing left answers.
    pub at_end: Poll,
    /// Told of every poll.
    pub on_poll: OnPoll,
}

struct ObservedPartition {
    name: String,
    index: usize,
    arrivals: std::vec::IntoIter<Arrival>,
    chunk: usize,
    at_end: Poll,
    on_poll: OnPoll,
}

impl Source for ObservedSource {
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
                Box::new(ObservedPartition {
                    name: format!("memory/{p}"),
                    index: p,
                    arrivals: arrivals.clone().into_iter(),
                    chunk: self.chunk,
                    at_end: self.at_end,
                    on_poll: Arc::clone(&self.on_poll),
                }) as Box<dyn Partition>
            })
            .collect())
    }
}

impl Partition for ObservedPartition {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll(&mut self, out: &mut Vec<Arrival>, max: usize) -> Result<Poll, std::io::Error> {
        let before = out.len();
        out.extend(self.arrivals.by_ref().take(max.min(self.chunk)));
        (self.on_poll)(self.index, &out[before..]);
        Ok(if out.len() == before {
            self.at_end
        } else {
            Poll::Ready
        })
    }
}

/// The partitions of a case, giving one chunk per poll and pausing (`Idle`) after each.
pub struct Trickle {
    /// The arrivals of each partition, in order.
    pub partitions: Vec<Vec<Arrival>>,
    /// Most records one poll gives.
    pub chunk: usize,
}

struct TricklePartition {
    name: String,
    arrivals: Vec<Arrival>,
    next: usize,
    chunk: usize,
    pause: bool,
}

impl Source for Trickle {
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
                Box::new(TricklePartition {
                    name: format!("memory/{p}"),
                    arrivals: arrivals.clone(),
                    next: 0,
                    chunk: self.chunk,
                    pause: false,
                }) as Box<dyn Partition>
            })
            .collect())
    }
}

impl Partition for TricklePartition {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll(&mut self, out: &mut Vec<Arrival>, max: usize) -> Result<Poll, std::io::Error> {
        if self.pause && self.next < self.arrivals.len() {
            self.pause = false;
            return Ok(Poll::Idle);
        }
        let take = self.chunk.min(max).min(self.arrivals.len() - self.next);
        out.extend_from_slice(&self.arrivals[self.next..self.next + take]);
        self.next += take;
        self.pause = true;
        Ok(if self.next == self.arrivals.len() {
            Poll::Done
        } else {
            Poll::Ready
        })
    }

    fn position(&self) -> Option<PartitionPosition> {
        Some(PartitionPosition {
            offset: self.next as u64,
            line: self.next as u64,
        })
    }

    fn seek(&mut self, position: PartitionPosition) -> Result<(), std::io::Error> {
        self.next = (position.offset as usize).min(self.arrivals.len());
        Ok(())
    }
}
