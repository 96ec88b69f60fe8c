//! The shape of a run: worker threads per process, processes, and where each listens.
//!
//! A cluster is timely's own: every process runs the same graph with the same number of
//! threads, process `i` listens on the `i`-th address of the hostfile, and the processes
//! connect to each other over TCP. Sources deal their partitions over all workers of all
//! processes, and worker 0 of process 0 writes the sinks.

use std::path::{Path, PathBuf};

/// Timely's default first port when no hostfile is given: process `i` listens on
/// `localhost:2101+i`.
pub const DEFAULT_BASE_PORT: u16 = 2101;

/// Why a cluster description cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClusterError {
    /// The hostfile cannot be read.
    #[error("hostfile {path}: {problem}")]
    Unreadable {
        /// The hostfile.
        path: PathBuf,
        /// The I/O error.
        problem: String,
    },
    /// A hostfile line is not `host:port`.
    #[error("hostfile {path}:{line}: {problem}")]
    Malformed {
        /// The hostfile.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// The hostfile lists fewer addresses than processes.
    #[error("hostfile {path}: {found} address(es) for {processes} processes")]
    TooFewHosts {
        /// The hostfile.
        path: PathBuf,
        /// Addresses listed.
        found: usize,
        /// Processes asked for.
        processes: usize,
    },
    /// The process index is not below the number of processes.
    #[error("process index {process} is out of range for {processes} processes (0..{processes})")]
    ProcessOutOfRange {
        /// The index given.
        process: usize,
        /// The number of processes.
        processes: usize,
    },
    /// A count that must be at least 1 is 0.
    #[error("{what} must be at least 1")]
    Zero {
        /// What is zero.
        what: &'static str,
    },
}

/// The shape of a run: threads per process, and the processes' addresses.
///
/// # Examples
/// ```
/// use diffmill::runtime::Cluster;
///
/// let cluster = Cluster::local(4, 2, 1, 2101).unwrap();
/// assert_eq!(cluster.workers(), 8);
/// assert_eq!(cluster.first_worker(), 4);
/// assert_eq!(cluster.addresses()[1], "127.0.0.1:2102");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    threads: usize,
    process: usize,
    addresses: Vec<String>,
}

impl Cluster {
    /// One process with `threads` worker threads.
    pub fn single(threads: usize) -> Cluster {
        Cluster {
            threads: threads.max(1),
            process: 0,
            addresses: Vec::new(),
        }
    }

    /// `processes` processes on this machine, listening on `127.0.0.1:base_port + i`.
    ///
    /// # Errors
    /// A [`ClusterError`] when a count is zero or `process` is out of range.
    pub fn local(
        threads: usize,
        processes: usize,
        process: usize,
        base_port: u16,
    ) -> Result<Cluster, ClusterError> {
        let addresses = (0..processes)
            .map(|i| format!("127.0.0.1:{}", usize::from(base_port) + i))
            .collect();
        Cluster::new(threads, processes, process, addresses)
    }

    /// `processes` processes at the first `processes` addresses of a hostfile: one
    /// `host:port` per line; blank lines and lines starting with `#` are skipped.
    ///
    /// # Errors
    /// A [`ClusterError`] naming the file and line of a malformed address, or a problem
    /// with the counts.
    pub fn from_hostfile(
        path: &Path,
        threads: usize,
        processes: usize,
        process: usize,
    ) -> Result<Cluster, ClusterError> {
        let text = std::fs::read_to_string(path).map_err(|e| ClusterError::Unreadable {
            path: path.to_owned(),
            problem: e.to_string(),
        })?;
        let mut addresses: Vec<String> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = |problem: String| ClusterError::Malformed {
                path: path.to_owned(),
                line: index + 1,
                problem,
            };
            check_address(line).map_err(malformed)?;
            if let Some(first) = addresses.iter().position(|a| a == line) {
                return Err(malformed(format!(
                    "`{line}` is already the address of process {first}"
                )));
            }
            addresses.push(line.to_owned());
        }
        if addresses.len() < processes {
            return Err(ClusterError::TooFewHosts {
                path: path.to_owned(),
                found: addresses.len(),
                processes,
            });
        }
        addresses.truncate(processes);
        Cluster::new(threads, processes, process, addresses)
    }

    fn new(
        threads: usize,
        processes: usize,
        process: usize,
        addresses: Vec<String>,
    ) -> Result<Cluster, ClusterError> {
        if threads == 0 {
            return Err(ClusterError::Zero {
                what: "worker threads",
            });
        }
        if processes == 0 {
            return Err(ClusterError::Zero { what: "processes" });
        }
        if process >= processes {
            return Err(ClusterError::ProcessOutOfRange { process, processes });
        }
        let addresses = if processes == 1 {
            Vec::new()
        } else {
            addresses
        };
        Ok(Cluster {
            threads,
            process,
            addresses,
        })
    }

    /// Worker threads per process.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The number of processes.
    pub fn processes(&self) -> usize {
        self.addresses.len().max(1)
    }

    /// This process's index.
    pub fn process(&self) -> usize {
        self.process
    }

    /// Every process's address (empty for a single process).
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    /// All workers of the cluster.
    pub fn workers(&self) -> usize {
        self.threads * self.processes()
    }

    /// The cluster-wide index of this process's first worker.
    pub fn first_worker(&self) -> usize {
        self.threads * self.process
    }

    /// The timely configuration for this process.
    pub fn config(&self) -> timely::Config {
        if self.addresses.is_empty() {
            return timely::Config::process(self.threads);
        }
        timely::Config {
            communication: timely::CommunicationConfig::Cluster {
                threads: self.threads,
                process: self.process,
                addresses: self.addresses.clone(),
                report: false,
                zerocopy: false,
            },
            worker: timely::WorkerConfig::default(),
        }
    }
}

/// Checks that `address` is `host:port` with a non-empty host and a port in 1..=65535.
fn check_address(address: &str) -> Result<(), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("`{address}` is not host:port"))?;
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("`{address}` has no usable host"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{address}`: `{port}` is not a port (1-65535)")),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostfile(text: &str) -> (tempfile::NamedTempFile, PathBuf) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        let path = file.path().to_owned();
        (file, path)
    }

    #[test]
    fn a_hostfile_gives_the_first_addresses() {
        let (_file, path) = hostfile("# three machines\nhost-a:2101\n\nhost-b:2101\nhost-c:2101\n");
        let cluster = Cluster::from_hostfile(&path, 2, 2, 1).unwrap();
        assert_eq!(cluster.addresses(), ["host-a:2101", "host-b:2101"]);
        assert_eq!((cluster.workers(), cluster.first_worker()), (4, 2));
    }

    #[test]
    fn malformed_lines_are_named() {
        for (text, line, problem) in [
            ("host-a:2101\nhost-b\n", 2, "is not host:port"),
            ("host-a:99999\n", 1, "is not a port"),
            (":2101\n", 1, "no usable host"),
            (
                "host-a:2101\nhost-a:2101\n",
                2,
                "already the address of process 0",
            ),
        ] {
            let (_file, path) = hostfile(text);
            match Cluster::from_hostfile(&path, 1, 2, 0) {
                Err(ClusterError::Malformed {
                    line: l,
                    problem: p,
                    ..
                }) => {
                    assert_eq!(l, line, "{text}");
                    assert!(p.contains(problem), "{p} for {text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn counts_are_checked() {
        let (_file, path) = hostfile("a:1\nb:2\n");
        assert!(matches!(
            Cluster::from_hostfile(&path, 1, 3, 0),
            Err(ClusterError::TooFewHosts {
                found: 2,
                processes: 3,
                ..
            })
        ));
        assert_eq!(
            Cluster::local(1, 2, 2, 2101),
            Err(ClusterError::ProcessOutOfRange {
                process: 2,
                processes: 2
            })
        );
        assert!(matches!(
            Cluster::local(0, 2, 0, 2101),
            Err(ClusterError::Zero { .. })
        ));
        let missing = Cluster::from_hostfile(Path::new("/nonexistent/hosts"), 1, 1, 0);
        assert!(matches!(missing, Err(ClusterError::Unreadable { .. })));
    }
}
