//! Liveness and readiness: what `/health` and `/ready` answer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::connectors::SinkHealth;

/// What the run has told about its readiness.
///
/// Ready means: the cluster has formed (timely starts no worker before every process
/// is connected) and every worker of this process has its source partitions assigned;
/// no sink is failing and retrying a batch; and the run has not failed.
#[derive(Debug, Default)]
pub struct Health {
    expected_workers: AtomicUsize,
    assigned_workers: AtomicUsize,
    failed: AtomicBool,
    sinks: Mutex<Vec<(String, Arc<SinkHealth>)>>,
}

/// The answer of `/ready`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// True when ready.
    pub ready: bool,
    /// Why not, one sentence each (empty when ready).
    pub reasons: Vec<String>,
}

impl Health {
    /// A worker of this process (of `threads`) has its source partitions.
    pub fn worker_assigned(&self, threads: usize) {
        self.expected_workers.store(threads, Ordering::Relaxed);
        self.assigned_workers.fetch_add(1, Ordering::Relaxed);
    }

    /// Workers of this process with their partitions assigned.
    pub fn assigned(&self) -> usize {
        self.assigned_workers.load(Ordering::Relaxed)
    }

    /// Watches a sink's own report of its health.
    pub fn watch_sink(&self, name: &str, health: Arc<SinkHealth>) {
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.push((name.to_owned(), health));
        }
    }

    /// The sinks watched, with their health.
    pub fn sinks(&self) -> Vec<(String, Arc<SinkHealth>)> {
        self.sinks.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The run failed (a source or sink error): never ready again.
    pub fn failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// Ready or not, and why not.
    pub fn readiness(&self) -> Readiness {
        let mut reasons = Vec::new();
        let (expected, assigned) = (
            self.expected_workers.load(Ordering::Relaxed),
            self.assigned_workers.load(Ordering::Relaxed),
        );
        if assigned == 0 {
            reasons.push("the cluster has not formed: no worker has started".to_owned());
        } else if assigned < expected {
            reasons.push(format!(
                "{assigned} of {expected} workers have their source partitions assigned"
            ));
        }
        for (name, sink) in self.sinks() {
            if sink.is_failing() {
                reasons.push(format!("sink `{name}` is failing and retrying a batch"));
            }
        }
        if self.failed.load(Ordering::Relaxed) {
            reasons.push("the run failed".to_owned());
        }
        Readiness {
            ready: reasons.is_empty(),
            reasons,
        }
    }
}
