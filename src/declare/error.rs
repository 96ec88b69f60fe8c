//! A declaration that cannot work: where in the declaration, and what is wrong.

use std::fmt;

/// One step of the path to a key: a table key or an index into an array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A key of a table.
    Key(String),
    /// A position in an array (of tables or of values), from 0.
    Index(usize),
}

/// A declaration that cannot work, with the path of the key at fault as written in a
/// graph file (e.g. `aggregate[1].measure[0].sum`), so the graph loader can name the
/// file, line and key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key `{}`: {problem}", self.key())]
pub struct DeclError {
    /// The path of the key.
    pub path: Vec<Segment>,
    /// What is wrong.
    pub problem: String,
}

impl DeclError {
    /// An error at the dotted `path` (`[n]` for indexes, e.g. `aggregate[1].window`).
    pub fn at(path: &str, problem: impl Into<String>) -> DeclError {
        let mut segments = Vec::new();
        for part in path.split('.') {
            let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
            if !key.is_empty() {
                segments.push(Segment::Key(key.to_owned()));
            }
            for index in indexes.split('[') {
                if let Ok(n) = index.trim_end_matches(']').parse() {
                    segments.push(Segment::Index(n));
                }
            }
        }
        DeclError {
            path: segments,
            problem: problem.into(),
        }
    }

    /// The key as written in messages: `aggregate[1].measure[0].sum`.
    pub fn key(&self) -> String {
        let mut text = String::new();
        for segment in &self.path {
            match segment {
                Segment::Key(key) if text.is_empty() => text.push_str(key),
                Segment::Key(key) => {
                    text.push('.');
                    text.push_str(key);
                }
                Segment::Index(i) => text.push_str(&format!("[{i}]")),
            }
        }
        text
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Key(key) => f.write_str(key),
            Segment::Index(i) => write!(f, "[{i}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let error = DeclError::at("aggregate[1].measure[0].sum", "bad");
        assert_eq!(
            error.path,
            vec![
                Segment::Key("aggregate".into()),
                Segment::Index(1),
                Segment::Key("measure".into()),
                Segment::Index(0),
                Segment::Key("sum".into())
            ]
        );
        assert_eq!(error.to_string(), "key `aggregate[1].measure[0].sum`: bad");
    }
}
