//! Declared aggregates: a window, the bid fields to group by, and named measures, each a
//! count, a sum or an exact count of distinct values over one stream, optionally filtered.

use serde::{Deserialize, Serialize};

use super::{DeclError, DurationText, Filter, KeyLayout, Projection, Schema, Window};
use crate::event::StreamKind;

/// A measure as written in a graph file (`[[aggregate.measure]]`) or built in Rust:
/// exactly one of `count`, `sum` and `count_distinct`.
///
/// # Examples
/// ```
/// use diffmill::declare::MeasureSpec;
/// use diffmill::event::StreamKind;
///
/// let orders = MeasureSpec::count("orders", StreamKind::Conversion).filter("type = 'order'");
/// assert_eq!(orders.count.as_deref(), Some("conversion"));
/// let paid = MeasureSpec::sum("paid_micros", StreamKind::Conversion, "value_micros");
/// assert_eq!(paid.sum.as_deref(), Some("conversion.value_micros"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureSpec {
    /// The measure's name: its column in every sink.
    pub name: String,
    /// Count the records of this stream (`bid`, `impression`, `click`, `conversion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<String>,
    /// Sum this `int` or `money` field, written `<stream>.<field>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<String>,
    /// Count the distinct values of this field, written `<stream>.<field>`: exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_distinct: Option<String>,
    /// Only the records for which this condition on the stream's fields holds, in SQL
    /// (e.g. `type = 'order' AND value_micros > 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

impl MeasureSpec {
    fn new(name: impl Into<String>) -> MeasureSpec {
        MeasureSpec {
            name: name.into(),
            count: None,
            sum: None,
            count_distinct: None,
            filter: None,
        }
    }

    /// `name` counts the records of `stream`.
    pub fn count(name: impl Into<String>, stream: StreamKind) -> MeasureSpec {
        MeasureSpec {
            count: Some(stream.name().to_owned()),
            ..MeasureSpec::new(name)
        }
    }

    /// `name` sums `field` of `stream`.
    pub fn sum(name: impl Into<String>, stream: StreamKind, field: &str) -> MeasureSpec {
        MeasureSpec {
            sum: Some(format!("{}.{field}", stream.name())),
            ..MeasureSpec::new(name)
        }
    }

    /// `name` counts the distinct values of `field` of `stream`.
    pub fn count_distinct(name: impl Into<String>, stream: StreamKind, field: &str) -> MeasureSpec {
        MeasureSpec {
            count_distinct: Some(format!("{}.{field}", stream.name())),
            ..MeasureSpec::new(name)
        }
    }

    /// Only the records for which `condition` (SQL) holds.
    pub fn filter(mut self, condition: impl Into<String>) -> MeasureSpec {
        self.filter = Some(condition.into());
        self
    }

    /// The default declaration's six measures.
    pub fn defaults() -> Vec<MeasureSpec> {
        vec![
            MeasureSpec::count("bids", StreamKind::Bid),
            MeasureSpec::count("impressions", StreamKind::Impression),
            MeasureSpec::count("clicks", StreamKind::Click),
            MeasureSpec::count("conversions", StreamKind::Conversion),
            MeasureSpec::sum("spend_micros", StreamKind::Impression, "cost_micros"),
            MeasureSpec::sum("revenue_micros", StreamKind::Conversion, "value_micros"),
        ]
    }

    /// Checks the measure against the declared streams; `at` is its key path.
    fn resolve(&self, schema: &Schema, at: &str) -> Result<Measure, DeclError> {
        let given: Vec<(&str, &String)> = [
            ("count", &self.count),
            ("sum", &self.sum),
            ("count_distinct", &self.count_distinct),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| (key, v)))
        .collect();
        let (key, target) = match given.as_slice() {
            [one] => *one,
            [] => {
                return Err(DeclError::at(
                    at,
                    "give one of `count`, `sum` or `count_distinct`",
                ))
            }
            _ => {
                return Err(DeclError::at(
                    &format!("{at}.{}", given[1].0),
                    "give only one of `count`, `sum` or `count_distinct`",
                ))
            }
        };
        let here = format!("{at}.{key}");
        let (stream, field) = match key {
            "count" => (stream_named(target, &here)?, None),
            _ => {
                let Some((stream, field)) = target.split_once('.') else {
                    return Err(DeclError::at(
                        &here,
                        format!(
                            "`{target}`: write `<stream>.<field>`, e.g. `conversion.value_micros`"
                        ),
                    ));
                };
                (stream_named(stream, &here)?, Some(field))
            }
        };
        let stream_schema = schema.stream(stream);
        let field = match field {
            None => None,
            Some(name) => Some(stream_schema.index(name).ok_or_else(|| {
                DeclError::at(
                    &here,
                    format!(
                        "`{name}` is not a field of the {stream} stream (its fields: {})",
                        stream_schema.names()
                    ),
                )
            })?),
        };
        let kind = match (key, field) {
            ("sum", Some(field)) => {
                let ty = stream_schema.fields()[field].ty;
                if !ty.summable() {
                    return Err(DeclError::at(
                        &here,
                        format!(
                            "`{target}` is a {ty} field: only int and money fields can be summed"
                        ),
                    ));
                }
                MeasureKind::Sum { field }
            }
            ("count_distinct", Some(field)) => MeasureKind::CountDistinct { field },
            _ => MeasureKind::Count,
        };
        let filter = match &self.filter {
            None => None,
            Some(text) => Some(
                Filter::parse(stream_schema, text)
                    .map_err(|problem| DeclError::at(&format!("{at}.filter"), problem))?,
            ),
        };
        Ok(Measure {
            name: self.name.clone(),
            stream,
            kind,
            filter,
        })
    }
}

fn stream_named(name: &str, at: &str) -> Result<StreamKind, DeclError> {
    StreamKind::from_name(name.trim()).ok_or_else(|| {
        DeclError::at(
            at,
            format!("`{name}` is not a stream: one of bid, impression, click, conversion"),
        )
    })
}

/// What a measure adds up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MeasureKind {
    /// One per record.
    Count,
    /// The value of the field at this position of the stream.
    Sum {
        /// The field's position.
        field: usize,
    },
    /// One per distinct value of the field at this position, within a `(window, dims)`.
    CountDistinct {
        /// The field's position.
        field: usize,
    },
}

/// A resolved measure: named, over one stream, optionally filtered.
#[derive(Clone, Debug, PartialEq)]
pub struct Measure {
    /// Its name (its column in sinks).
    pub name: String,
    /// The stream it reads.
    pub stream: StreamKind,
    /// What it adds up.
    pub kind: MeasureKind,
    /// The records it reads; `None`: all of them.
    pub filter: Option<Filter>,
}

/// An aggregate as declared (`[[aggregate]]`, without its sinks), or built in Rust.
///
/// # Examples
/// ```
/// use diffmill::declare::{AggregateSpec, MeasureSpec};
/// use diffmill::event::StreamKind;
///
/// let hourly = AggregateSpec::new("hourly", "1h")
///     .group_by(["campaign_id", "device"])
///     .measure(MeasureSpec::count("clicks", StreamKind::Click));
/// assert_eq!(hourly.window.millis(), 3_600_000);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    /// The aggregate's name, for messages and sinks.
    pub name: String,
    /// Tumbling window length, aligned to the epoch.
    pub window: DurationText,
    /// How long after its end a window takes corrections (default: the `[funnel]`
    /// `allowed_lateness`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_lateness: Option<DurationText>,
    /// Bid fields to group by (columns in the bid's field order).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// The measures, in column order.
    #[serde(default, rename = "measure")]
    pub measures: Vec<MeasureSpec>,
}

impl AggregateSpec {
    /// An aggregate named `name` over windows of `window` (a duration such as `15m`;
    /// an unreadable one becomes 0, which `resolve` rejects), with no dims and no
    /// measures yet.
    pub fn new(name: impl Into<String>, window: &str) -> AggregateSpec {
        AggregateSpec {
            name: name.into(),
            window: window.parse().unwrap_or(DurationText::from_millis(0)),
            allowed_lateness: None,
            group_by: Vec::new(),
            measures: Vec::new(),
        }
    }

    /// Groups by these bid fields.
    pub fn group_by<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        self.group_by = fields.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a measure.
    pub fn measure(mut self, measure: MeasureSpec) -> AggregateSpec {
        self.measures.push(measure);
        self
    }

    /// Sets the allowed lateness.
    pub fn allowed_lateness(mut self, lateness: DurationText) -> AggregateSpec {
        self.allowed_lateness = Some(lateness);
        self
    }

    /// Checks the aggregate; `at` is its key path, `lateness` the default allowed
    /// lateness, `bounded` the dimensions with a bound.
    pub(super) fn resolve(
        &self,
        schema: &Schema,
        at: &str,
        group_by_at: &str,
        lateness: DurationText,
        bounded: &[String],
    ) -> Result<Aggregate, DeclError> {
        check_window(self.window, &format!("{at}.window"))?;
        if !is_identifier(&self.name) {
            return Err(DeclError::at(
                &format!("{at}.name"),
                format!("`{}`: a name is letters, digits and `_`", self.name),
            ));
        }
        let bids = schema.stream(StreamKind::Bid);
        let dims = KeyLayout::new(bids, &self.group_by, bounded)
            .map_err(|(i, problem)| DeclError::at(&format!("{group_by_at}[{i}]"), problem))?;
        if let Some(slot) = dims.slots().iter().find(|s| !is_identifier(&s.name)) {
            return Err(DeclError::at(
                group_by_at,
                format!(
                    "`{}`: a grouped field's name is letters, digits and `_`",
                    slot.name
                ),
            ));
        }
        if self.measures.is_empty() || self.measures.len() > super::MAX_MEASURES {
            return Err(DeclError::at(
                &format!("{at}.measure"),
                format!(
                    "{} measures: declare 1 to {}",
                    self.measures.len(),
                    super::MAX_MEASURES
                ),
            ));
        }
        let mut measures = Vec::with_capacity(self.measures.len());
        for (j, spec) in self.measures.iter().enumerate() {
            let here = format!("{at}.measure[{j}]");
            let name = spec.name.as_str();
            let clash = if !is_identifier(name) {
                Some("a name is letters, digits and `_`".to_owned())
            } else if self.measures[..j].iter().any(|m| m.name == name) {
                Some("another measure of the aggregate has this name".to_owned())
            } else if dims.names().contains(&name) || RESERVED.contains(&name) {
                Some("the aggregate has a column of this name already".to_owned())
            } else {
                None
            };
            if let Some(problem) = clash {
                return Err(DeclError::at(
                    &format!("{here}.name"),
                    format!("`{name}`: {problem}"),
                ));
            }
            measures.push(spec.resolve(schema, &here)?);
        }
        let allowed_lateness = self.allowed_lateness.unwrap_or(lateness);
        Ok(Aggregate {
            name: self.name.clone(),
            window: Window {
                length: self.window.millis(),
                allowed_lateness: allowed_lateness.millis(),
            },
            dims,
            projection: Projection::default(),
            measures,
        })
    }
}

/// Column names every aggregate has besides its dims and measures.
const RESERVED: [&str; 4] = ["window_start", "window_end", "frontier", "status"];

/// Whether `name` can be a column: letters, digits and `_`, not starting with a digit.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a window length.
pub(super) fn check_window(window: DurationText, at: &str) -> Result<(), DeclError> {
    if window.millis() == 0 {
        return Err(DeclError::at(at, "must be longer than 0"));
    }
    if window.millis() > 366 * 86_400_000 {
        return Err(DeclError::at(at, "must be at most 366 days"));
    }
    Ok(())
}

/// A resolved aggregate.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    /// Its name.
    pub name: String,
    /// Its windows.
    pub window: Window,
    /// Its dims, in column order.
    pub dims: KeyLayout,
    /// How its dims are cut out of the dims of all aggregates.
    pub projection: Projection,
    /// Its measures, in column order.
    pub measures: Vec<Measure>,
}

impl Aggregate {
    /// The measure column names.
    pub fn measure_names(&self) -> Vec<&str> {
        self.measures.iter().map(|m| m.name.as_str()).collect()
    }
}
