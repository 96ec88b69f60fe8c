//! Loading a graph file: parse, then validate, with errors that name the file and key.

use std::path::{Path, PathBuf};

use super::GraphSpec;
use crate::declare::{DeclError, FunnelSettings, Segment};

/// A graph file that cannot be used: which file, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {}{problem}", line.map(|l| format!(":{l}")).unwrap_or_default(), key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
pub struct GraphError {
    /// The graph file.
    pub file: PathBuf,
    /// The 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// The dotted key of the problem (e.g. `funnel.window`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub problem: String,
}

impl GraphError {
    /// An error about `key` of `file`.
    pub fn at_key(file: &Path, key: impl Into<String>, problem: impl Into<String>) -> GraphError {
        GraphError {
            file: file.to_owned(),
            line: None,
            key: Some(key.into()),
            problem: problem.into(),
        }
    }
}

impl GraphSpec {
    /// Reads and parses a graph file (unknown keys are errors), then validates its
    /// declaration.
    ///
    /// # Errors
    /// A [`GraphError`] naming the file, and the line and key where they are known.
    pub fn load(file: &Path) -> Result<GraphSpec, GraphError> {
        let text = std::fs::read_to_string(file).map_err(|e| GraphError {
            file: file.to_owned(),
            line: None,
            key: None,
            problem: format!("cannot read the graph file: {e}"),
        })?;
        GraphSpec::parse(file, &text)
    }

    /// Parses and validates graph text; `file` is used in messages.
    ///
    /// # Errors
    /// A [`GraphError`] naming the file, and the line and key where they are known.
    pub fn parse(file: &Path, text: &str) -> Result<GraphSpec, GraphError> {
        let spec: GraphSpec = toml::from_str(text).map_err(|e| {
            let (line, key) = e
                .span()
                .map(|span| locate(text, span.start))
                .unwrap_or((None, None));
            // The TOML parser gives an empty message for some syntax errors, e.g. a
            // key without a value at the end of the text (found by fuzzing).
            let problem = match e.message().trim() {
                "" if e.span().is_some_and(|span| span.start >= text.len()) => {
                    "unexpected end of the file: a value or bracket is missing".to_owned()
                }
                "" => "invalid TOML syntax".to_owned(),
                message => message.to_owned(),
            };
            GraphError {
                file: file.to_owned(),
                line,
                key,
                problem,
            }
        })?;
        if !spec.aggregates.is_empty() && !spec.sinks.is_empty() {
            let error = DeclError::at(
                "sink",
                "with [[aggregate]] tables, each sink belongs to an aggregate: write it as \
                 [[aggregate.sink]] after its aggregate",
            );
            return Err(GraphError::declared(file, text, error));
        }
        spec.settings_in(file, text)?;
        if let Some(state) = &spec.state {
            if state.dir.as_os_str().is_empty() {
                return Err(GraphError::at_key(
                    file,
                    "state.dir",
                    "empty: give a folder",
                ));
            }
            if state.checkpoint_interval.millis() == 0 {
                return Err(GraphError::at_key(
                    file,
                    "state.checkpoint_interval",
                    "must be longer than 0",
                ));
            }
            if state.keep < 2 {
                return Err(GraphError::at_key(
                    file,
                    "state.keep",
                    "must be at least 2 (a damaged newest checkpoint needs one to fall back to)",
                ));
            }
        }
        Ok(spec)
    }

    /// The settings the graph declares; `text` is the graph file's text (for the line of
    /// an error).
    ///
    /// # Errors
    /// A [`GraphError`] naming the file, line and key of a declaration that cannot work.
    pub fn settings_in(&self, file: &Path, text: &str) -> Result<FunnelSettings, GraphError> {
        self.declaration()
            .resolve()
            .map_err(|e| GraphError::declared(file, text, e))
    }
}

impl GraphError {
    /// The error of a declaration of `file` (whose text is `text`), at the line of its key.
    pub fn declared(file: &Path, text: &str, error: DeclError) -> GraphError {
        GraphError {
            file: file.to_owned(),
            line: line_of(text, &error.path),
            key: Some(error.key()),
            problem: error.problem,
        }
    }
}

/// The line of the deepest item of `path` found in the TOML `text`.
fn line_of(text: &str, path: &[Segment]) -> Option<usize> {
    let document = toml_edit::ImDocument::parse(text).ok()?;
    let mut item = document.as_item();
    let mut span = None;
    for segment in path {
        let next = match segment {
            Segment::Key(key) => item.get(key.as_str()),
            Segment::Index(i) => item.get(*i),
        };
        let Some(next) = next else {
            break;
        };
        item = next;
        span = item.span().or(span);
    }
    span.map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
}

/// The line number and dotted key at byte `offset` of a TOML text.
fn locate(text: &str, offset: usize) -> (Option<usize>, Option<String>) {
    let before = &text[..offset.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let mut table = String::new();
    // The table headers up to and including the line of the offset: an error reported at a
    // header (e.g. a bad `[[sink]]` table) belongs to that table, not to the one before.
    for previous in before.lines().take(line_no - 1).chain([line]) {
        let trimmed = previous.trim();
        if trimmed.starts_with('[') {
            table = trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned();
        }
    }
    let key = line
        .split_once('=')
        .map(|(key, _)| key.trim().to_owned())
        .filter(|key| !key.is_empty() && !key.starts_with('['));
    let dotted = match (key, table.is_empty()) {
        (Some(key), true) => Some(key),
        (Some(key), false) => Some(format!("{table}.{key}")),
        (None, false) => Some(table),
        (None, true) => None,
    };
    (Some(line_no), dotted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        GraphSpec::parse(Path::new("g.toml"), text)
            .unwrap_err()
            .to_string()
    }

    const SOURCE: &str =
        "name = \"t\"\n[source]\nkind = \"files\"\nformat = \"csv\"\npath = \"data\"\n";

    #[test]
    fn names_file_line_and_key() {
        let unknown = error(&format!("{SOURCE}[funnel]\nwindw = \"15m\"\n"));
        assert!(
            unknown.starts_with("g.toml:7: key `funnel.windw`"),
            "{unknown}"
        );
        assert!(unknown.contains("unknown field `windw`"), "{unknown}");
        let duration = error(&format!("{SOURCE}[funnel]\nwindow = \"15x\"\n"));
        assert!(
            duration.contains("key `funnel.window`: bad duration `15x`"),
            "{duration}"
        );
        let dim = error(&format!("{SOURCE}[funnel]\ngroup_by = [\"campain_id\"]\n"));
        assert!(
            dim.starts_with("g.toml:7: key `funnel.group_by[0]`"),
            "{dim}"
        );
        assert!(dim.contains("campain_id"), "{dim}");
        let zero = error(&format!("{SOURCE}[funnel]\nwindow = \"0s\"\n"));
        assert_eq!(zero, "g.toml:7: key `funnel.window`: must be longer than 0");
    }

    #[test]
    fn a_missing_value_at_the_end_is_named() {
        let end = error(&format!("{SOURCE}[funnel]\nwindow = "));
        assert_eq!(
            end,
            "g.toml:7: key `funnel.window`: unexpected end of the file: a value or bracket is missing"
        );
    }

    #[test]
    fn an_error_at_a_table_header_names_that_table() {
        let sink = error(&format!(
            "{SOURCE}[[sink]]\nkind = \"stdout\"\nmax_rows = -1\n"
        ));
        assert!(sink.starts_with("g.toml:6: key `sink`: "), "{sink}");
    }

    #[test]
    fn defaults_fill_the_funnel() {
        let spec = GraphSpec::parse(Path::new("g.toml"), SOURCE).unwrap();
        assert_eq!(
            spec.settings_in(Path::new("g.toml"), SOURCE).unwrap(),
            FunnelSettings::default()
        );
    }

    #[test]
    fn bad_declarations_name_file_line_and_key() {
        let aggregate = "[[aggregate]]\nname = \"hourly\"\nwindow = \"1h\"\n";
        let cases = [
            (
                format!("{aggregate}group_by = [\"campaign_id\", \"gender\"]\n[[aggregate.measure]]\nname = \"n\"\ncount = \"bid\"\n"),
                "g.toml:9: key `aggregate[0].group_by[1]`: `gender` is not a bid field",
            ),
            (
                format!("{aggregate}[[aggregate.measure]]\nname = \"n\"\nsum = \"bid.region\"\n"),
                "g.toml:11: key `aggregate[0].measure[0].sum`: `bid.region` is a string field",
            ),
            (
                format!("{aggregate}[[aggregate.measure]]\nname = \"n\"\ncount = \"conversion\"\nfilter = \"type = 'order'\"\n"),
                "g.toml:12: key `aggregate[0].measure[0].filter`: filter `type = 'order'`: `type` is not a field",
            ),
            (
                format!("{aggregate}[[aggregate.measure]]\nname = \"n\"\ncount = \"bid\"\n[[aggregate.measure]]\nname = \"n\"\ncount = \"click\"\n"),
                "g.toml:13: key `aggregate[0].measure[1].name`: `n`: another measure",
            ),
            (
                "[stream.bid]\nid = \"bid_id\"\ntime = \"ts\"\n[stream.bid.fields]\nbid_id = \"id\"\nts = \"float\"\n".to_owned(),
                "g.toml:11: key `stream.bid.fields.ts`: unknown field type `float`",
            ),
        ];
        for (text, expected) in cases {
            let message = error(&format!("{SOURCE}{text}"));
            assert!(
                message.starts_with(expected),
                "{message}\nexpected: {expected}"
            );
        }
    }
}
