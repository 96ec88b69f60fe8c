//! Clusters of the real binary on 127.0.0.1: free ports, hostfiles, and processes whose
//! stderr goes to a file.

use std::ffi::OsString;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::cli::command;

/// `n` ports that were free a moment ago, on 127.0.0.1.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("an address").port())
        .collect()
}

/// A hostfile for processes on 127.0.0.1 at `ports`.
pub fn hostfile(dir: &Path, ports: &[u16]) -> PathBuf {
    let path = dir.join("hosts");
    let text: String = ports.iter().map(|p| format!("127.0.0.1:{p}\n")).collect();
    std::fs::write(&path, format!("# test cluster\n{text}")).expect("the hostfile writes");
    path
}

/// One process of a cluster, its stderr going to a file.
pub struct Process {
    /// The running process.
    pub child: Child,
    /// Where its stderr goes.
    pub stderr: PathBuf,
}

impl Process {
    /// Starts `diffmill run <args…> -n <n> -p <index> --hostfile <hosts>` in `dir`.
    pub fn start(dir: &Path, args: &[OsString], hosts: &Path, n: usize, index: usize) -> Process {
        let stderr = dir.join(format!("process-{index}.stderr"));
        let child = command(dir)
            .arg("run")
            .args(args)
            .args(["-n", &n.to_string(), "-p", &index.to_string(), "--hostfile"])
            .arg(hosts)
            .args(["--status-every", "0"])
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).expect("the stderr file"))
            .spawn()
            .expect("diffmill starts");
        Process { child, stderr }
    }

    /// Waits at most `limit` for the process to exit.
    pub fn wait_at_most(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("the process can be waited on") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The process's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits at most `limit` for the exit and returns the status and stderr; kills the
    /// process and fails the test, saying `what` was expected, when it does not exit.
    pub fn exit_within(&mut self, limit: Duration, what: &str) -> (ExitStatus, String) {
        let status = self.wait_at_most(limit);
        let stderr = self.log();
        let Some(status) = status else {
            let _ = self.child.kill();
            panic!("{what}: still running after {limit:?}:\n{stderr}");
        };
        (status, stderr)
    }

    /// Waits for the exit (at most 5 minutes) and returns the status and stderr.
    pub fn finish(mut self) -> (ExitStatus, String) {
        self.exit_within(Duration::from_secs(300), "the process exits")
    }

    /// Sends `signal` (e.g. "INT") to the process.
    pub fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} failed");
    }
}
