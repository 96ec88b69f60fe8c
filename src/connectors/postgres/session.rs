//! One connection to the database: creating and checking the tables, reading the sink's
//! progress, and applying a batch in one transaction.

use std::io::Write;

use postgres::config::SslMode;
use postgres::{Client, Statement};
use postgres_native_tls::MakeTlsConnector;

use super::config::TlsMode;
use super::layout::{copy_text, dead_letters_text, too_late_text, Layout};
use super::retry::{classify, Failure};
use crate::connectors::Batch;
use crate::event::Millis;

/// What the progress table says about one sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The frontier of the last batch applied (0 before the first).
    pub frontier: Millis,
    /// How many batches were applied, over all runs.
    pub batches: u64,
    /// Whether the batch of a complete input was applied: nothing more will be.
    pub complete: bool,
}

/// A connection with the sink's statements prepared.
pub struct Session {
    client: Client,
    layout: Layout,
    lock_progress: Statement,
    record_progress: Statement,
    upsert: Statement,
    delete_zeros: Statement,
    finalize: Statement,
    change_log: Option<Statement>,
    dead_letters: Statement,
    too_late: Statement,
}

fn db(error: postgres::Error) -> Failure {
    classify(&error)
}

impl Session {
    /// Connects to `url` (TLS per `tls`, or the URL's `sslmode`), creates the tables if
    /// missing, checks that existing ones have this layout's columns, adds the sink's
    /// progress row if missing and prepares the statements.
    ///
    /// # Errors
    /// A [`Failure`]: transient when the server cannot be reached, permanent for a bad
    /// connection string, a refused login or a table of another shape.
    pub fn open(
        url: &str,
        tls: Option<TlsMode>,
        layout: &Layout,
        sink: &str,
    ) -> Result<Session, Failure> {
        let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| {
            Failure::Permanent(format!("the connection string cannot be used: {e}"))
        })?;
        match tls {
            Some(TlsMode::Disable) => config.ssl_mode(SslMode::Disable),
            Some(TlsMode::Prefer) => config.ssl_mode(SslMode::Prefer),
            Some(TlsMode::Require) => config.ssl_mode(SslMode::Require),
            None => &mut config,
        };
        if config.get_application_name().is_none() {
            config.application_name("diffmill");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        let connector = native_tls::TlsConnector::new()
            .map_err(|e| Failure::Permanent(format!("TLS cannot be set up: {e}")))?;
        let mut client = config
            .connect(MakeTlsConnector::new(connector))
            .map_err(db)?;

        let mut transaction = client.transaction().map_err(db)?;
        transaction.batch_execute(&layout.create()).map_err(db)?;
        let mut tables = vec![
            (&layout.aggregates, layout.aggregate_columns()),
            (&layout.progress, Layout::progress_columns()),
            (&layout.dead_letters, Layout::dead_letter_columns()),
            (&layout.too_late, Layout::too_late_columns()),
        ];
        if let Some(change_log) = &layout.change_log {
            tables.push((change_log, layout.change_log_columns()));
        }
        for (table, expected) in tables {
            let (schema, name) = table.split_once('.').unwrap_or(("public", table));
            let found: Vec<(String, String)> = transaction
                .query(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                    &[&schema, &name],
                )
                .map_err(db)?
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            let expected: Vec<(String, String)> = expected
                .into_iter()
                .map(|(c, t)| (c, t.to_owned()))
                .collect();
            if found != expected {
                let show = |columns: &[(String, String)]| {
                    columns
                        .iter()
                        .map(|(c, t)| format!("{c} {t}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(Failure::Permanent(format!(
                    "table {table} exists with other columns than this graph writes \
                     (another graph's dims?): it has ({}), the sink needs ({}); drop it or \
                     choose another `table`",
                    show(&found),
                    show(&expected)
                )));
            }
        }
        transaction
            .execute(&layout.init_progress(), &[&sink])
            .map_err(db)?;
        transaction.commit().map_err(db)?;

        client.batch_execute(&layout.create_staging()).map_err(db)?;
        Ok(Session {
            lock_progress: client.prepare(&layout.lock_progress()).map_err(db)?,
            record_progress: client.prepare(&layout.record_progress()).map_err(db)?,
            upsert: client.prepare(&layout.upsert()).map_err(db)?,
            delete_zeros: client.prepare(&layout.delete_zeros()).map_err(db)?,
            finalize: client.prepare(&layout.finalize()).map_err(db)?,
            change_log: match layout.append_change_log() {
                Some(sql) => Some(client.prepare(&sql).map_err(db)?),
                None => None,
            },
            dead_letters: client.prepare(&layout.append_dead_letters()).map_err(db)?,
            too_late: client.prepare(&layout.append_too_late()).map_err(db)?,
            layout: layout.clone(),
            client,
        })
    }

    /// The sink's progress as recorded.
    ///
    /// # Errors
    /// A [`Failure`] when it cannot be read.
    pub fn applied(&mut self, sink: &str) -> Result<Applied, Failure> {
        let row = self
            .client
            .query_one(&self.lock_progress, &[&sink])
            .map_err(db)?;
        Ok(applied(&row))
    }

    /// Applies `batch` in one transaction: locks the sink's progress row and checks it
    /// still says `before` (else another writer is at work), copies the rows into the
    /// staging table, adds them to the totals, deletes totals that became zero, appends
    /// them to the change log, appends the dead letters and too-late records to their
    /// tables, marks the finalized windows and records the progress.
    /// Returns the progress after the batch.
    ///
    /// # Errors
    /// A [`Failure`]; the transaction is then rolled back: nothing of the batch is
    /// visible.
    pub fn apply(
        &mut self,
        sink: &str,
        before: Applied,
        batch: &Batch,
    ) -> Result<Applied, Failure> {
        let after = Applied {
            frontier: batch.frontier.unwrap_or(before.frontier),
            batches: before.batches + 1,
            complete: batch.frontier.is_none(),
        };
        let frontier: Option<i64> = batch.frontier.map(|f| f as i64);
        // The batch's number over all runs of this sink (batches applied before it).
        let seq = before.batches as i64;
        let mut transaction = self.client.transaction().map_err(db)?;
        let found = applied(
            &transaction
                .query_one(&self.lock_progress, &[&sink])
                .map_err(db)?,
        );
        if found != before {
            return Err(Failure::Permanent(format!(
                "the progress of sink `{sink}` in {} changed under it (from {before:?} to \
                 {found:?}): another writer uses the same sink name",
                self.layout.progress
            )));
        }
        if !batch.rows.is_empty() {
            let mut copy = transaction.copy_in(&self.layout.copy()).map_err(db)?;
            copy.write_all(copy_text(&self.layout, batch).as_bytes())
                .map_err(|e| Failure::Transient(format!("copying the batch: {e}")))?;
            copy.finish().map_err(db)?;
            transaction
                .execute(&self.upsert, &[&frontier])
                .map_err(db)?;
            transaction.execute(&self.delete_zeros, &[]).map_err(db)?;
            if let Some(change_log) = &self.change_log {
                transaction
                    .execute(change_log, &[&seq, &frontier])
                    .map_err(db)?;
            }
        }
        for (records, text, copy, append) in [
            (
                batch.dead_letters.len(),
                dead_letters_text as fn(&Batch) -> String,
                self.layout.copy_dead_letters(),
                &self.dead_letters,
            ),
            (
                batch.too_late.len(),
                too_late_text,
                self.layout.copy_too_late(),
                &self.too_late,
            ),
        ] {
            if records == 0 {
                continue;
            }
            let mut writer = transaction.copy_in(&copy).map_err(db)?;
            writer
                .write_all(text(batch).as_bytes())
                .map_err(|e| Failure::Transient(format!("copying the rejected records: {e}")))?;
            writer.finish().map_err(db)?;
            transaction
                .execute(append, &[&seq, &frontier])
                .map_err(db)?;
        }
        if !batch.finalized.is_empty() {
            let starts: Vec<i64> = batch.finalized.iter().map(|s| *s as i64).collect();
            transaction
                .execute(&self.finalize, &[&starts, &frontier])
                .map_err(db)?;
        }
        transaction
            .execute(
                &self.record_progress,
                &[
                    &sink,
                    &(after.frontier as i64),
                    &(after.batches as i64),
                    &after.complete,
                ],
            )
            .map_err(db)?;
        transaction.commit().map_err(db)?;
        Ok(after)
    }
}

fn applied(row: &postgres::Row) -> Applied {
    let frontier: i64 = row.get(0);
    let batches: i64 = row.get(1);
    Applied {
        frontier: frontier.max(0) as Millis,
        batches: batches.max(0) as u64,
        complete: row.get(2),
    }
}
