//! Making a file appear atomically: write it under a hidden name, fsync, rename, fsync
//! the folder.
//!
//! A reader (or a restart) sees a file whole or not at all: a crash leaves at most a
//! hidden temporary file, which the next run removes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::layout::temporary_name;

/// How the sink's Parquet files are written: zstd, row groups of at most
/// `row_group_size` rows, statistics for readers to skip by.
pub fn writer_properties(row_group_size: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(row_group_size.max(1)))
        .set_created_by(format!("diffmill {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Creates `dir` (and its parents) if missing, making each new folder durable in its
/// parent.
///
/// # Errors
/// An I/O error creating or syncing a folder.
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        ensure_dir(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Makes the entries of `dir` (renames, new files) durable.
///
/// # Errors
/// An I/O error opening or syncing the folder.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `contents` into a hidden temporary file of `dir`, syncs it and renames it to
/// `name`. The caller syncs `dir` (once for all the files it publishes together).
fn publish_with(
    dir: &Path,
    name: &str,
    contents: impl FnOnce(File) -> std::io::Result<File>,
) -> std::io::Result<()> {
    let temporary = dir.join(temporary_name(name));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)?;
    let file = contents(file)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, dir.join(name))
}

/// Publishes `batches` as the Parquet file `dir/name` (see the module doc).
///
/// # Errors
/// An I/O or Parquet error; the temporary file may be left behind.
pub fn publish_parquet(
    dir: &Path,
    name: &str,
    batches: &[RecordBatch],
    properties: &WriterProperties,
) -> std::io::Result<()> {
    let Some(first) = batches.first() else {
        return Ok(());
    };
    publish_with(dir, name, |file| {
        let mut writer = ArrowWriter::try_new(file, first.schema(), Some(properties.clone()))
            .map_err(std::io::Error::other)?;
        for batch in batches {
            writer.write(batch).map_err(std::io::Error::other)?;
        }
        writer.into_inner().map_err(std::io::Error::other)
    })
}

/// Publishes `bytes` as the file `dir/name` (see the module doc).
///
/// # Errors
/// An I/O error; the temporary file may be left behind.
pub fn publish_bytes(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    publish_with(dir, name, |mut file| {
        file.write_all(bytes)?;
        Ok(file)
    })
}
