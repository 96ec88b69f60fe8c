//! The state folder: finding the checkpoint to restore, and writing new ones in the
//! background.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{file, Checkpoint, Identity};
use crate::event::Millis;

/// Where a run keeps its checkpoints and how often it writes one (the `[state]` table of
/// a graph).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateConfig {
    /// The state folder (created if missing).
    pub dir: PathBuf,
    /// Least wall-clock time between the starts of two checkpoints.
    pub interval: Duration,
    /// Checkpoint files kept; older ones are deleted once a new one is durable. At least
    /// 2, so that a damaged newest file leaves one to fall back to.
    pub keep: usize,
}

impl StateConfig {
    /// A state folder with a checkpoint every `interval`, keeping two files.
    pub fn new(dir: impl Into<PathBuf>, interval: Duration) -> StateConfig {
        StateConfig {
            dir: dir.into(),
            interval,
            keep: 2,
        }
    }
}

/// What the state folder holds for a run about to start.
#[derive(Debug)]
pub enum Loaded {
    /// No checkpoint: the run starts from the beginning.
    Fresh,
    /// The last run completed its input: this one starts from the beginning again.
    Complete {
        /// The file that says so.
        path: PathBuf,
    },
    /// A checkpoint to resume from.
    Restore {
        /// The checkpoint.
        checkpoint: Box<Checkpoint>,
        /// Its file.
        path: PathBuf,
        /// Newer files that could not be used, with why (the run fell back past them).
        skipped: Vec<(PathBuf, String)>,
    },
}

/// A state folder that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The newest usable checkpoint belongs to another graph or other settings.
    #[error("the state in {dir} was written by another graph or other settings ({}); run with --fresh (or delete the folder) to start over, or point [state] dir elsewhere", differences.join("; "))]
    Mismatch {
        /// The state folder.
        dir: PathBuf,
        /// What differs.
        differences: Vec<String>,
    },
    /// Checkpoint files exist but none can be used.
    #[error("no checkpoint in {dir} can be used: {}; delete the folder (or run with --fresh) to start over", failures.iter().map(|(p, why)| format!("{}: {why}", p.display())).collect::<Vec<_>>().join("; "))]
    Unusable {
        /// The state folder.
        dir: PathBuf,
        /// Each file and why it cannot be used.
        failures: Vec<(PathBuf, String)>,
    },
    /// The folder cannot be created or listed.
    #[error("state folder {dir}: {source}")]
    Io {
        /// The state folder.
        dir: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// The checkpoint files of `dir`, newest first, with their numbers.
fn checkpoint_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, std::io::Error> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let number = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("checkpoint-"))
            .and_then(|n| n.strip_suffix(".ckpt"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(number) = number {
            files.push((number, path));
        }
    }
    files.sort_by_key(|file| std::cmp::Reverse(file.0));
    Ok(files)
}

impl StateConfig {
    /// Finds the checkpoint a run of `identity` resumes from: the newest usable file,
    /// falling back past damaged ones.
    ///
    /// # Errors
    /// [`StateError::Mismatch`] when it belongs to another graph or other settings,
    /// [`StateError::Unusable`] when files exist but none can be read.
    pub fn load(&self, identity: &Identity) -> Result<Loaded, StateError> {
        let io = |source| StateError::Io {
            dir: self.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let files = checkpoint_files(&self.dir).map_err(io)?;
        if files.is_empty() {
            return Ok(Loaded::Fresh);
        }
        let mut skipped = Vec::new();
        for (_, path) in files {
            match file::read(&path) {
                Ok(checkpoint) => {
                    let differences = identity.differences(&checkpoint.identity);
                    if !differences.is_empty() {
                        return Err(StateError::Mismatch {
                            dir: self.dir.clone(),
                            differences,
                        });
                    }
                    if checkpoint.frontier.is_none() {
                        return Ok(Loaded::Complete { path });
                    }
                    return Ok(Loaded::Restore {
                        checkpoint: Box::new(checkpoint),
                        path,
                        skipped,
                    });
                }
                Err(why) => skipped.push((path, why.to_string())),
            }
        }
        Err(StateError::Unusable {
            dir: self.dir.clone(),
            failures: skipped,
        })
    }

    /// Deletes every checkpoint file: the next run starts from the beginning.
    ///
    /// # Errors
    /// The folder cannot be listed or a file deleted.
    pub fn clear(&self) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            dir: self.dir.clone(),
            source,
        };
        if !self.dir.exists() {
            return Ok(());
        }
        for (_, path) in checkpoint_files(&self.dir).map_err(io)? {
            std::fs::remove_file(path).map_err(io)?;
        }
        Ok(())
    }
}

/// A checkpoint made durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// Its frontier (`None`: the completion marker).
    pub frontier: Option<Millis>,
    /// Its file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// How long encoding and writing took.
    pub took: Duration,
}

/// Writes checkpoints on a thread of its own, one at a time, so that encoding and
/// syncing never hold up a worker.
pub struct CheckpointWriter {
    config: StateConfig,
    next_number: u64,
    jobs: Option<Sender<(u64, Checkpoint)>>,
    results: Receiver<Result<Written, std::io::Error>>,
    results_tx: Sender<Result<Written, std::io::Error>>,
    thread: Option<JoinHandle<()>>,
    in_flight: bool,
}

impl CheckpointWriter {
    /// A writer into `config.dir`, numbering files after the ones already there.
    ///
    /// # Errors
    /// The folder cannot be created or listed.
    pub fn new(config: StateConfig) -> Result<CheckpointWriter, std::io::Error> {
        std::fs::create_dir_all(&config.dir)?;
        // A temporary file left by a process that died while writing is never a
        // checkpoint: remove it.
        for entry in std::fs::read_dir(&config.dir)? {
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.is_some_and(|n| n.starts_with(".checkpoint-") && n.ends_with(".tmp")) {
                std::fs::remove_file(&path)?;
            }
        }
        let next_number = checkpoint_files(&config.dir)?
            .first()
            .map_or(1, |(n, _)| n + 1);
        let (results_tx, results) = channel();
        Ok(CheckpointWriter {
            config,
            next_number,
            jobs: None,
            results,
            results_tx,
            thread: None,
            in_flight: false,
        })
    }

    /// True while a checkpoint is being written.
    pub fn is_writing(&self) -> bool {
        self.in_flight
    }

    /// Starts writing `checkpoint` (after any write in flight).
    pub fn submit(&mut self, checkpoint: Checkpoint) {
        if self.jobs.is_none() {
            let (jobs, receive) = channel::<(u64, Checkpoint)>();
            let (config, results) = (self.config.clone(), self.results_tx.clone());
            self.thread = Some(std::thread::spawn(move || {
                for (number, checkpoint) in receive {
                    let _ = results.send(write_one(&config, number, &checkpoint));
                }
            }));
            self.jobs = Some(jobs);
        }
        let number = self.next_number;
        self.next_number += 1;
        self.in_flight = true;
        if let Some(jobs) = &self.jobs {
            if jobs.send((number, checkpoint)).is_err() {
                let _ = self.results_tx.send(Err(std::io::Error::other(
                    "the checkpoint writer thread is gone",
                )));
            }
        }
    }

    /// The outcome of the write in flight, once it is known.
    pub fn poll(&mut self) -> Option<Result<Written, std::io::Error>> {
        match self.results.try_recv() {
            Ok(result) => {
                self.in_flight = false;
                Some(result)
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }

    /// Waits for the write in flight, if any, and returns its outcome.
    pub fn wait(&mut self) -> Option<Result<Written, std::io::Error>> {
        if !self.in_flight {
            return None;
        }
        self.in_flight = false;
        self.results.recv().ok()
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Encodes and writes one checkpoint as file number `number`, then deletes the files
/// beyond the newest `keep`.
fn write_one(
    config: &StateConfig,
    number: u64,
    checkpoint: &Checkpoint,
) -> Result<Written, std::io::Error> {
    let started = Instant::now();
    let bytes = file::encode(checkpoint);
    let path = config.dir.join(format!("checkpoint-{number:010}.ckpt"));
    file::write_atomically(&path, &bytes)?;
    for (_, old) in checkpoint_files(&config.dir)?
        .into_iter()
        .skip(config.keep.max(2))
    {
        std::fs::remove_file(old)?;
    }
    Ok(Written {
        frontier: checkpoint.frontier,
        path,
        bytes: bytes.len() as u64,
        took: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declare::FunnelSettings;

    fn identity() -> Identity {
        Identity::of("g", &FunnelSettings::default())
    }

    #[test]
    fn writes_number_after_the_files_there_and_clears_leftovers() {
        let folder = tempfile::tempdir().unwrap();
        let config = StateConfig {
            dir: folder.path().to_owned(),
            interval: Duration::from_secs(1),
            keep: 2,
        };
        std::fs::write(folder.path().join("checkpoint-0000000007.ckpt"), b"old").unwrap();
        std::fs::write(
            folder.path().join(".checkpoint-0000000008.ckpt.tmp"),
            b"half",
        )
        .unwrap();
        let mut writer = CheckpointWriter::new(config.clone()).unwrap();
        assert!(!folder
            .path()
            .join(".checkpoint-0000000008.ckpt.tmp")
            .exists());
        let mut checkpoint = Checkpoint::complete(identity(), 3);
        checkpoint.frontier = Some(5);
        writer.submit(checkpoint.clone());
        let written = writer.wait().unwrap().unwrap();
        assert!(written.path.ends_with("checkpoint-0000000008.ckpt"));
        // The newest usable file is restored; the damaged older one is never reached.
        match config.load(&identity()).unwrap() {
            Loaded::Restore {
                checkpoint: found, ..
            } => assert_eq!(*found, checkpoint),
            other => panic!("{other:?}"),
        }
        // Two more: only the newest two are kept.
        for _ in 0..2 {
            writer.submit(checkpoint.clone());
            writer.wait().unwrap().unwrap();
        }
        let files = checkpoint_files(folder.path()).unwrap();
        assert_eq!(
            files.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            vec![10, 9]
        );
    }

    #[test]
    fn another_identity_is_refused_and_named() {
        let folder = tempfile::tempdir().unwrap();
        let config = StateConfig::new(folder.path(), Duration::from_secs(1));
        let mut writer = CheckpointWriter::new(config.clone()).unwrap();
        writer.submit(Checkpoint::complete(identity(), 0));
        writer.wait().unwrap().unwrap();
        let other = Identity::of("h", &FunnelSettings::default());
        let error = config.load(&other).unwrap_err().to_string();
        assert!(
            error.contains("the graph is `h` here, `g` in the state"),
            "{error}"
        );
    }
}
