//! The PostgreSQL sink's settings, as written in a graph's `[[sink]]` table.

use postgres::config::Host;
use serde::{Deserialize, Serialize};

use super::layout::{DEAD_LETTERS_SUFFIX, TOO_LATE_SUFFIX};
use crate::declare::DurationText;

/// The environment variable read for the connection string when a graph gives neither
/// `url` nor `url_env`.
pub const DEFAULT_URL_ENV: &str = "DIFFMILL_POSTGRES_URL";

/// Whether the connection uses TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, plain otherwise.
    Prefer,
    /// TLS or no connection; the server's certificate must be valid for its host.
    Require,
}

/// `kind = "postgres"`: the aggregates as a serving table, one transaction per batch.
///
/// The connection string comes from `url`, or from the environment variable named by
/// `url_env` (default `DIFFMILL_POSTGRES_URL`), so that no password need be written in a
/// graph file. It is a libpq-style URL or key-value string, e.g.
/// `postgresql://diffmill@db.example:5432/reports`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// The connection string. Prefer `url_env`: a graph file is no place for a password.
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable holding the connection string (default
    /// `DIFFMILL_POSTGRES_URL`); not allowed together with `url`.
    #[serde(default)]
    pub url_env: Option<String>,
    /// TLS: `disable`, `prefer` or `require`. Unset, the connection string's `sslmode`
    /// decides (`prefer` when it has none).
    #[serde(default)]
    pub tls: Option<TlsMode>,
    /// The schema of the tables, created if missing (default `public`).
    #[serde(default = "default_schema")]
    pub schema: String,
    /// The aggregates table, created if missing (default `diffmill_aggregates`).
    #[serde(default = "default_table")]
    pub table: String,
    /// The progress table, created if missing, shared by sinks (default
    /// `diffmill_progress`).
    #[serde(default = "default_progress_table")]
    pub progress_table: String,
    /// A change-log table to which every batch's aggregate diffs are also appended
    /// (default: none).
    #[serde(default)]
    pub change_log_table: Option<String>,
    /// The sink's key in the progress table (default `<schema>.<table>`). Two runs with
    /// the same name continue each other: the second skips what the first applied.
    #[serde(default)]
    pub name: Option<String>,
    /// How long one batch is retried on transient errors (lost connection, server
    /// restarting) before the run stops (default `60s`).
    #[serde(default = "default_retry_for")]
    pub retry_for: DurationText,
}

fn default_schema() -> String {
    "public".to_owned()
}

fn default_table() -> String {
    "diffmill_aggregates".to_owned()
}

fn default_progress_table() -> String {
    "diffmill_progress".to_owned()
}

fn default_retry_for() -> DurationText {
    DurationText::from_millis(60_000)
}

/// A setting that cannot be used: the key (relative to the sink's table) and the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The key, e.g. `url_env`.
    pub key: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl PostgresConfig {
    /// A config reading the connection string from `DIFFMILL_POSTGRES_URL`, with the
    /// default table names.
    pub fn from_env() -> PostgresConfig {
        PostgresConfig {
            url: None,
            url_env: None,
            tls: None,
            schema: default_schema(),
            table: default_table(),
            progress_table: default_progress_table(),
            change_log_table: None,
            name: None,
            retry_for: default_retry_for(),
        }
    }

    /// A config with the connection string `url` and the default table names.
    pub fn with_url(url: impl Into<String>) -> PostgresConfig {
        PostgresConfig {
            url: Some(url.into()),
            ..PostgresConfig::from_env()
        }
    }

    /// The sink's key in the progress table.
    pub fn sink_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}.{}", self.schema, self.table))
    }

    /// Checks the names and resolves the connection string.
    ///
    /// # Errors
    /// A [`ConfigProblem`] naming the key: a table or schema name that is not a plain
    /// lower-case SQL identifier, both `url` and `url_env`, an unset variable.
    pub fn resolve_url(&self) -> Result<String, ConfigProblem> {
        self.check_names()?;
        match (&self.url, &self.url_env) {
            (Some(_), Some(_)) => Err(ConfigProblem {
                key: "url",
                problem: "give `url` or `url_env`, not both".to_owned(),
            }),
            (Some(url), None) => Ok(url.clone()),
            (None, env) => {
                let (key, var) = match env {
                    Some(var) => ("url_env", var.as_str()),
                    None => ("url", DEFAULT_URL_ENV),
                };
                match std::env::var(var) {
                    Ok(url) if !url.trim().is_empty() => Ok(url),
                    _ => Err(ConfigProblem {
                        key,
                        problem: format!(
                            "the environment variable {var} (the connection string) is not set"
                        ),
                    }),
                }
            }
        }
    }

    fn check_names(&self) -> Result<(), ConfigProblem> {
        let mut names = vec![
            ("schema", &self.schema),
            ("table", &self.table),
            ("progress_table", &self.progress_table),
        ];
        if let Some(change_log) = &self.change_log_table {
            names.push(("change_log_table", change_log));
        }
        for (key, name) in names {
            if !is_identifier(name) {
                return Err(ConfigProblem {
                    key,
                    problem: format!(
                        "`{name}` is not a plain SQL name: use 1 to 63 lower-case letters, \
                         digits and `_`, not starting with a digit"
                    ),
                });
            }
        }
        let dead_letters = format!("{}{DEAD_LETTERS_SUFFIX}", self.table);
        let too_late = format!("{}{TOO_LATE_SUFFIX}", self.table);
        if !is_identifier(&dead_letters) || !is_identifier(&too_late) {
            return Err(ConfigProblem {
                key: "table",
                problem: format!(
                    "`{}` is too long: the dead-letter and too-late tables `{dead_letters}` and \
                     `{too_late}` must fit in 63 characters",
                    self.table
                ),
            });
        }
        let mut tables: Vec<&str> =
            vec![&self.table, &self.progress_table, &dead_letters, &too_late];
        tables.extend(self.change_log_table.as_deref());
        let distinct: std::collections::BTreeSet<&str> = tables.iter().copied().collect();
        if distinct.len() != tables.len() {
            return Err(ConfigProblem {
                key: "table",
                problem: format!(
                    "`table`, `progress_table`, `change_log_table` and the tables `{dead_letters}` \
                     and `{too_late}` must differ"
                ),
            });
        }
        Ok(())
    }
}

/// Where a connection string points, for messages: each host as `host:port` (port 5432
/// unless given) and the database; never the user's password.
///
/// # Examples
/// ```
/// use diffmill::connectors::postgres::target;
///
/// assert_eq!(
///     target("postgresql://diffmill:secret@db.example:6432/reports"),
///     "db.example:6432 (database reports)"
/// );
/// assert_eq!(target("host=a,b port=5433 dbname=r"), "a:5433, b:5433 (database r)");
/// ```
pub fn target(url: &str) -> String {
    let Ok(config) = url.parse::<postgres::Config>() else {
        return "a connection string that cannot be read".to_owned();
    };
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(folder) => format!("{}/.s.PGSQL.{port}", folder.display()),
            }
        })
        .collect();
    let mut text = match hosts.is_empty() {
        true => "no host".to_owned(),
        false => hosts.join(", "),
    };
    if let Some(database) = config.get_dbname() {
        text.push_str(&format!(" (database {database})"));
    }
    text
}

/// True for a name that needs no quoting in SQL: `[a-z_][a-z0-9_]{0,62}`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && name.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_plain_identifiers() {
        assert!(is_identifier("diffmill_aggregates"));
        assert!(is_identifier("_t1"));
        for bad in ["", "1t", "Aggregates", "a-b", "a;drop", &"x".repeat(64)] {
            assert!(!is_identifier(bad), "{bad:?}");
        }
        let mut config = PostgresConfig::with_url("postgresql://x@localhost/db");
        config.table = "Bad Name".into();
        assert_eq!(config.resolve_url().unwrap_err().key, "table");
    }

    #[test]
    fn the_url_comes_from_one_place() {
        let mut config = PostgresConfig::with_url("postgresql://x@localhost/db");
        assert_eq!(config.resolve_url().unwrap(), "postgresql://x@localhost/db");
        config.url_env = Some("DIFFMILL_TEST_UNSET_VARIABLE".into());
        assert_eq!(config.resolve_url().unwrap_err().key, "url");
        config.url = None;
        let problem = config.resolve_url().unwrap_err();
        assert_eq!(problem.key, "url_env");
        assert!(problem.problem.contains("DIFFMILL_TEST_UNSET_VARIABLE"));
        config.change_log_table = Some(config.table.clone());
        config.url = Some("postgresql://x@localhost/db".into());
        config.url_env = None;
        assert_eq!(config.resolve_url().unwrap_err().key, "table");
    }

    #[test]
    fn the_reject_tables_are_named_after_the_table_and_must_fit() {
        let mut config = PostgresConfig::with_url("postgresql://x@localhost/db");
        config.change_log_table = Some("diffmill_aggregates_too_late".into());
        assert_eq!(config.resolve_url().unwrap_err().key, "table");
        config.change_log_table = None;
        config.table = "a".repeat(55);
        let problem = config.resolve_url().unwrap_err();
        assert_eq!(problem.key, "table");
        assert!(
            problem.problem.contains("63 characters"),
            "{}",
            problem.problem
        );
        config.table = "a".repeat(50);
        assert!(config.resolve_url().is_ok());
    }
}
