//! DuckDB (its Python package) as the reader of the Parquet sink's files: the tests ask
//! it what a warehouse would see.
//!
//! `.ci/services/duckdb.sh` installs the package and exports
//! `DIFFMILL_TEST_DUCKDB_PYTHON`; a test without it is skipped or fails as
//! [`super::services::service`] decides.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable naming the Python interpreter that has the `duckdb` package.
pub const PYTHON_VAR: &str = "DIFFMILL_TEST_DUCKDB_PYTHON";

/// The interpreter with DuckDB, or `None` (with a visible `SKIPPED` line) outside CI when
/// none is configured.
///
/// # Panics
/// Under `CI=true` when the variable is unset: CI must exercise what the test checks.
pub fn python(test: &str) -> Option<PathBuf> {
    super::services::service(test, PYTHON_VAR).map(PathBuf::from)
}

/// Runs `sql` in DuckDB with `cwd` as working directory and returns the rows, each value
/// as text (`NULL` for a null).
///
/// # Panics
/// When DuckDB fails, with its message.
pub fn query(python: &Path, cwd: &Path, sql: &str) -> Vec<Vec<String>> {
    const SCRIPT: &str = "import duckdb, sys\n\
        for row in duckdb.sql(sys.argv[1]).fetchall():\n    \
        print('\\t'.join('NULL' if v is None else str(v) for v in row))\n";
    let output = Command::new(python)
        .current_dir(cwd)
        .args(["-c", SCRIPT, sql])
        .output()
        .expect("the DuckDB python starts");
    assert!(
        output.status.success(),
        "DuckDB failed on `{sql}`:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("DuckDB prints UTF-8")
        .lines()
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect()
}

/// The `read_parquet` call over every Parquet file of `table` under the sink folder
/// `sink`, with Hive partitioning.
pub fn table(sink: &Path, table: &str) -> String {
    format!(
        "read_parquet('{}/{table}/**/*.parquet', hive_partitioning = true)",
        sink.display()
    )
}
