//! A plain HTTP/1.1 GET over a TCP socket, and a running process's stderr read line by
//! line: what the observe tests need to talk to a run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `GET path` from `address`: the status code and the body. `None` when nothing answers.
pub fn get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Some((
        status,
        if chunked {
            unchunk(body)
        } else {
            body.to_owned()
        },
    ))
}

/// The body of a chunked response.
fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Polls `check` every 50 ms until it gives a value, or panics with `what` at `deadline`.
pub fn wait_until<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines a child process writes to its stderr, collected by a thread as they come.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    /// Collects the stderr of `child` (spawned with `Stdio::piped()` stderr).
    pub fn of(child: &mut Child) -> Lines {
        let lines = Lines::default();
        let stderr = child.stderr.take().expect("stderr is piped");
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                collected.0.lock().expect("lines").push(line);
            }
        });
        lines
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().expect("lines").clone()
    }

    /// Waits for the first line containing `text`; returns it.
    pub fn wait_for(&self, text: &str, deadline: Duration) -> String {
        wait_until(&format!("a stderr line with `{text}`"), deadline, || {
            self.all().into_iter().find(|line| line.contains(text))
        })
    }

    /// The address from the `observe: metrics at http://ADDR/metrics` line.
    pub fn metrics_address(&self) -> SocketAddr {
        let line = self.wait_for("observe: metrics at http://", Duration::from_secs(60));
        let start = line.find("http://").expect("a URL") + "http://".len();
        let end = line[start..].find('/').expect("a path") + start;
        line[start..end].parse().expect("a socket address")
    }
}
