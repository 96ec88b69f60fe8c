//! A live source the test feeds record by record: one partition, read by worker 0, idle
//! while nothing is queued, done when the test says so.

use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::Mutex;

use diffmill::connectors::{Arrival, Partition, Poll, Source};
use diffmill::event::Event;

/// The test's end of a [`FeedSource`].
pub struct Feeder {
    sender: Sender<Option<Arrival>>,
    position: u64,
}

impl Feeder {
    /// Queues `event` for the partition.
    pub fn push(&mut self, event: Event) {
        self.position += 1;
        let arrival = Arrival::Event {
            record: event.into(),
            position: self.position,
        };
        self.sender
            .send(Some(arrival))
            .expect("the run reads the feed");
    }

    /// Ends the partition: its watermark completes every window.
    pub fn end(&self) {
        let _ = self.sender.send(None);
    }
}

/// A source of one partition fed through a [`Feeder`].
pub struct FeedSource {
    receiver: Mutex<Option<Receiver<Option<Arrival>>>>,
}

/// A source and the feeder that fills it.
pub fn feed() -> (FeedSource, Feeder) {
    let (sender, receiver) = channel();
    (
        FeedSource {
            receiver: Mutex::new(Some(receiver)),
        },
        Feeder {
            sender,
            position: 0,
        },
    )
}

struct FeedPartition {
    receiver: Receiver<Option<Arrival>>,
}

impl Source for FeedSource {
    fn partitions(
        &self,
        worker: usize,
        _workers: usize,
    ) -> Result<Vec<Box<dyn Partition>>, std::io::Error> {
        let receiver = match worker {
            0 => self.receiver.lock().expect("the feed").take(),
            _ => None,
        };
        Ok(receiver
            .map(|receiver| Box::new(FeedPartition { receiver }) as Box<dyn Partition>)
            .into_iter()
            .collect())
    }
}

impl Partition for FeedPartition {
    fn name(&self) -> &str {
        "feed/0"
    }

    fn poll(&mut self, out: &mut Vec<Arrival>, max: usize) -> Result<Poll, std::io::Error> {
        for _ in 0..max {
            match self.receiver.try_recv() {
                Ok(Some(arrival)) => out.push(arrival),
                Ok(None) | Err(TryRecvError::Disconnected) => return Ok(Poll::Done),
                Err(TryRecvError::Empty) => break,
            }
        }
        Ok(if out.is_empty() {
            Poll::Idle
        } else {
            Poll::Ready
        })
    }
}
