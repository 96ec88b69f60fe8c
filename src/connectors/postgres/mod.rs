//! PostgreSQL sink: a serving table of aggregate totals that readers can trust.
//!
//! - [`config`]: the `[[sink]] kind = "postgres"` settings;
//! - [`layout`]: the tables and the SQL;
//! - [`retry`]: transient or permanent errors, backoff;
//! - [`session`]: one connection, one transaction per batch;
//! - [`sink`]: the [`crate::connectors::Sink`], exactly once across restarts.

pub mod config;
pub mod layout;
pub mod retry;
pub mod session;
pub mod sink;

pub use config::{target, PostgresConfig, TlsMode, DEFAULT_URL_ENV};
pub use sink::PostgresSink;
