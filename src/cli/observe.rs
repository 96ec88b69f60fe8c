//! `diffmill run --metrics-addr`: start the observer's server, say where it is, and keep
//! serving after the run while asked to.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::CliError;
use crate::declare::DurationText;
use crate::declare::FunnelSettings;
use crate::graph::ObserveSpec;
use crate::observe::server::Server;
use crate::observe::{ListenAddress, Observer, RunInfo};

/// How long to keep serving after the run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linger {
    /// Exit at once.
    No,
    /// This long, or until SIGINT / SIGTERM.
    For(Duration),
    /// Until SIGINT / SIGTERM.
    UntilSignal,
}

/// An observed run's observer and server (or neither when no address is given).
pub struct Observed {
    /// The observer to hand the funnel (disabled without a server).
    pub observer: Observer,
    server: Option<Server>,
    linger: Linger,
}

impl Observed {
    /// Starts serving when an address is given (`--metrics-addr` first, then the graph's
    /// `[observe] metrics_addr`), and says where on stderr.
    ///
    /// # Errors
    /// [`CliError::Runtime`] when the address cannot be bound.
    pub fn start(
        address: Option<ListenAddress>,
        linger: Option<DurationText>,
        spec: &ObserveSpec,
        info: RunInfo,
        settings: &FunnelSettings,
    ) -> Result<Observed, CliError> {
        let Some(address) = address.or(spec.metrics_addr) else {
            return Ok(Observed {
                observer: Observer::disabled(),
                server: None,
                linger: Linger::No,
            });
        };
        let process = info.process;
        let observer = Observer::new(info, settings);
        let server = Server::start(address.socket(), observer.clone())
            .map_err(|e| CliError::Runtime(format!("cannot serve metrics on {address}: {e}")))?;
        let served = server.address();
        let dashboard = match process {
            0 => format!(", dashboard at http://{served}/"),
            _ => " (process 0 serves the dashboard)".to_owned(),
        };
        eprintln!(
            "observe: metrics at http://{served}/metrics, health at /health and /ready{dashboard}"
        );
        let linger = match linger.or(spec.linger) {
            Some(d) if d.millis() == 0 => Linger::No,
            Some(d) => Linger::For(d.to_std()),
            None if std::io::stderr().is_terminal() => Linger::UntilSignal,
            None => Linger::No,
        };
        Ok(Observed {
            observer,
            server: Some(server),
            linger,
        })
    }

    /// After the run: marks a failed run not ready; keeps serving while asked to after
    /// a run that `ended` by itself (complete, or failed), then stops the server.
    pub fn finish(self, failed: bool, ended: bool) {
        if failed {
            self.observer.run_failed();
        }
        let Some(server) = self.server else {
            return;
        };
        let deadline = match self.linger {
            _ if !ended && !failed => return,
            Linger::No => return,
            Linger::For(d) => Some(Instant::now() + d),
            Linger::UntilSignal => None,
        };
        let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) else {
            return;
        };
        eprintln!(
            "the run has ended; still serving http://{}/ {} (Ctrl-C to exit)",
            server.address(),
            match deadline {
                Some(_) => "for the --linger time",
                None => "until interrupted",
            }
        );
        while deadline.is_none_or(|d| Instant::now() < d) {
            if signals.pending().next().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(server);
    }
}
