//! When the frontier of this process's ingest operators passed each value (wall clock):
//! the start of the batch and window latencies.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use crate::event::Millis;

/// The frontier every local worker's ingest operator has reached, and when (wall clock)
/// their least frontier first reached each value.
///
/// Each worker reports its frontier (`None` once its partitions are all done) after every
/// activation. The process's *input frontier* is the least of them, once every expected
/// worker has reported. Each time it moves, the clock keeps `(frontier, now)`, so
/// [`FrontierClock::reached`] answers "since when is the frontier at or past `t`".
///
/// # Examples
/// ```
/// use diffmill::observe::FrontierClock;
///
/// let mut clock = FrontierClock::new(2);
/// clock.report(0, Some(10));
/// assert_eq!(clock.frontier(), None); // worker 1 has not reported yet
/// clock.report(1, Some(20));
/// assert_eq!(clock.frontier(), Some(10));
/// clock.report(0, None); // worker 0 is done: the least is worker 1's
/// assert_eq!(clock.frontier(), Some(20));
/// assert!(clock.reached(15).is_some());
/// assert!(clock.reached(21).is_none());
/// ```
#[derive(Debug)]
pub struct FrontierClock {
    expected: usize,
    workers: BTreeMap<usize, Millis>,
    current: Option<Millis>,
    /// `(frontier, when it was first reached)`, ascending in both.
    samples: VecDeque<(Millis, Instant)>,
}

impl FrontierClock {
    /// A clock over `expected` local workers (at least 1).
    pub fn new(expected: usize) -> FrontierClock {
        FrontierClock {
            expected: expected.max(1),
            workers: BTreeMap::new(),
            current: None,
            samples: VecDeque::new(),
        }
    }

    /// Sets how many workers must report before the clock runs (at least 1).
    pub fn expect(&mut self, workers: usize) {
        self.expected = workers.max(1);
    }

    /// Worker `worker` is at `frontier` (`None`: done, every window complete there).
    /// Returns the input frontier when this report moved it.
    pub fn report(&mut self, worker: usize, frontier: Option<Millis>) -> Option<Millis> {
        self.workers.insert(worker, frontier.unwrap_or(Millis::MAX));
        if self.workers.len() < self.expected {
            return None;
        }
        let least = self.workers.values().copied().min().unwrap_or(Millis::MAX);
        if self.current.is_some_and(|c| c >= least) {
            return None;
        }
        self.current = Some(least);
        self.samples.push_back((least, Instant::now()));
        Some(least)
    }

    /// The input frontier: the least over the workers (`Millis::MAX` once all are done),
    /// `None` until every worker has reported.
    pub fn frontier(&self) -> Option<Millis> {
        self.current
    }

    /// When the input frontier first reached `time` or beyond (`None`: not yet).
    pub fn reached(&self, time: Millis) -> Option<Instant> {
        let index = self
            .samples
            .partition_point(|(frontier, _)| *frontier < time);
        self.samples.get(index).map(|(_, when)| *when)
    }

    /// Forgets the samples below `time`: nothing will ask about earlier times (a batch
    /// up to `time` is committed, and windows that close later end after it).
    pub fn forget_below(&mut self, time: Millis) {
        while self.samples.len() > 1 && self.samples.front().is_some_and(|(f, _)| *f < time) {
            self.samples.pop_front();
        }
    }
}
