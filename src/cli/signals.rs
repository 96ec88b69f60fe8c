//! SIGINT and SIGTERM during `diffmill run`: the first stops the run cleanly, a second
//! exits at once.

use std::thread::JoinHandle;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::runtime::{Stop, StopReason};

/// The exit code for a run stopped by `signal`: 128 + its number, as a shell reports it.
pub fn exit_code(signal: &str) -> i32 {
    match signal {
        "SIGTERM" => 128 + SIGTERM,
        _ => 128 + SIGINT,
    }
}

/// Listens for SIGINT and SIGTERM while a run is on.
///
/// The first signal requests a stop of the whole cluster (`stop`): sources stop reading
/// and the sinks get one last consistent batch. A second signal exits the process at once
/// with 128 + its number, like an unhandled signal; a sink write in progress is then cut
/// as by a crash.
pub struct SignalGuard {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalGuard {
    /// Installs the handlers; `process` is this process's index, for the stop reason.
    ///
    /// # Errors
    /// The OS error when the handlers cannot be installed.
    pub fn install(stop: Stop, process: usize) -> std::io::Result<SignalGuard> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            let mut received = 0;
            for signal in signals.forever() {
                let name = if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                received += 1;
                if received > 1 {
                    eprintln!("{name} again: exiting at once");
                    std::process::exit(exit_code(name));
                }
                eprintln!(
                    "{name}: stopping the cluster; the sinks get one last consistent batch \
                     (send again to exit at once)"
                );
                stop.request(StopReason::Signal {
                    process,
                    signal: name.to_owned(),
                });
            }
        });
        Ok(SignalGuard {
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Turns the loss of a cluster peer into a clear error and exit code 1.
///
/// Timely's network threads panic when a peer process goes away (killed, crashed, or the
/// network failed), and its workers follow with panics of their own. For a run with more
/// than one process this hook reports the first such panic in one line, waits for a sink
/// write in progress to finish (so no batch is cut in half), and exits 1. Other panics
/// keep the default report.
pub fn exit_on_lost_peer(process: usize, progress: std::sync::Arc<crate::runtime::Progress>) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        let thread = std::thread::current();
        let from_timely = thread.name().is_some_and(|name| name.starts_with("timely"));
        if !from_timely || !is_lost_peer(message) {
            default(info);
            return;
        }
        eprintln!(
            "error: process {process} lost its connection to the cluster ({message}): \
             another process stopped or the network failed; exiting"
        );
        let started = std::time::Instant::now();
        while progress.writing.load(std::sync::atomic::Ordering::SeqCst)
            && started.elapsed() < std::time::Duration::from_secs(30)
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::process::exit(1);
    }));
}

/// Whether a panic message is timely's report of a broken connection (or its aftermath).
fn is_lost_peer(message: &str) -> bool {
    message.contains("timely communication error") || message.contains("poisoned")
}
