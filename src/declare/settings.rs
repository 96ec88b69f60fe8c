//! The declaration of a graph (its `[funnel]` settings, streams, bounded dimensions and
//! aggregates, as written or built in Rust) and the validated settings it resolves to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tick::resolve_tick;
use super::{
    Aggregate, AggregateSpec, DeclError, DurationText, KeyLayout, Lateness, MeasureKind,
    MeasureSpec, Schema, StreamSpec, Tick, MAX_AGGREGATES,
};
use crate::event::{Millis, StreamKind};

const SECOND: Millis = 1_000;
const MINUTE: Millis = 60 * SECOND;
const HOUR: Millis = 60 * MINUTE;

/// Most distinct fields of one stream that the measures of all aggregates sum.
pub const MAX_SUMMED_FIELDS: usize = 3;

/// Most distinct filters over one stream among the counts and sums of all aggregates.
pub const MAX_FILTERS: usize = 32;

/// Most dimensions that may have a bound on distinct values.
pub const MAX_BOUNDED_DIMS: usize = 8;

/// The `[funnel]` table: settings shared by every aggregate, and the window and dims of
/// the single aggregate of a graph that declares no `[[aggregate]]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunnelSpec {
    /// Tumbling window of the default aggregate (default `15m`); not with `[[aggregate]]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<DurationText>,
    /// Bid fields the default aggregate groups by (default `["campaign_id", "region"]`);
    /// not with `[[aggregate]]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Vec<String>>,
    /// A partition's watermark is `max ts seen − max_disorder` (default `5s`).
    pub max_disorder: DurationText,
    /// A record more than this ahead of its partition's watermark is dead-lettered, so
    /// it cannot drag the watermark forward (default `24h`).
    pub max_future_skew: DurationText,
    /// How long after its end a window takes corrections before it is final, for every
    /// aggregate that does not set its own (default `1h`).
    pub allowed_lateness: DurationText,
    /// Match bound of bids: impressions and clicks up to this much later than their bid
    /// are attributed to it; bid state is kept accordingly (default `36h`).
    pub bid_retention: DurationText,
    /// Match bound of clicks: conversions up to this much later than their click are
    /// attributed to it (default `36h`).
    pub click_retention: DurationText,
    /// Least wall-clock time between two batches (default `1s`; `0ms` = every frontier
    /// move).
    pub emit_interval: DurationText,
    /// The step in which entry times and the frontier move ([`Tick`]); it must divide
    /// every window length and allowed lateness. Default: the largest such step of at
    /// most `100ms` and at most a tenth of `max_disorder`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tick: Option<DurationText>,
}

impl Default for FunnelSpec {
    fn default() -> Self {
        FunnelSpec {
            window: None,
            group_by: None,
            max_disorder: DurationText::from_millis(5 * SECOND),
            max_future_skew: DurationText::from_millis(24 * HOUR),
            allowed_lateness: DurationText::from_millis(HOUR),
            bid_retention: DurationText::from_millis(36 * HOUR),
            click_retention: DurationText::from_millis(36 * HOUR),
            emit_interval: DurationText::from_millis(SECOND),
            tick: None,
        }
    }
}

/// What happens to a dimension value beyond its bound on distinct values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Beyond {
    /// The bid is counted under the value `other` (the default).
    #[default]
    Other,
    /// The bid is dead-lettered.
    DeadLetter,
}

/// A bound on the distinct values of one dimension (`[dimensions.<field>]`), counted per
/// source partition in arrival order: the first `max_values` distinct values of a
/// partition are kept, later new ones are `other` or dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DimensionSpec {
    /// Most distinct values kept per partition.
    pub max_values: usize,
    /// What happens beyond: `other` (default) or `dead_letter`.
    #[serde(default)]
    pub beyond: Beyond,
}

/// A bounded dimension, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DimensionBound {
    /// The bid field.
    pub name: String,
    /// Its position among the bid's fields.
    pub field: usize,
    /// Most distinct values kept per partition.
    pub max_values: usize,
    /// What happens beyond.
    pub beyond: Beyond,
}

/// Everything a graph declares about what it computes, as written in a graph file or
/// built in Rust: the two are the same value.
///
/// # Examples
/// ```
/// use diffmill::declare::{AggregateSpec, Declaration, MeasureSpec};
/// use diffmill::event::StreamKind;
///
/// // Today's funnel: one aggregate, 15 minutes by campaign and region, six measures.
/// let funnel = Declaration::default().resolve().unwrap();
/// assert_eq!(funnel.aggregates[0].measure_names().len(), 6);
///
/// // Two rollups over the same ingestion, dedup and attribution.
/// let rollups = Declaration::default()
///     .aggregate(AggregateSpec::new("hourly", "1h").group_by(["device"])
///         .measure(MeasureSpec::count("clicks", StreamKind::Click)))
///     .aggregate(AggregateSpec::new("daily", "1d")
///         .measure(MeasureSpec::sum("spend_micros", StreamKind::Impression, "cost_micros")))
///     .resolve()
///     .unwrap();
/// assert_eq!(rollups.aggregates.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    /// Shared settings, and the single aggregate of the old form.
    #[serde(default)]
    pub funnel: FunnelSpec,
    /// Declared streams; the others keep today's fields.
    #[serde(default, rename = "stream")]
    pub streams: BTreeMap<StreamKind, StreamSpec>,
    /// Bounds on distinct values, by bid field.
    #[serde(default)]
    pub dimensions: BTreeMap<String, DimensionSpec>,
    /// The aggregates; none: the `[funnel]` window and group_by with today's six measures.
    #[serde(default, rename = "aggregate")]
    pub aggregates: Vec<AggregateSpec>,
}

impl Declaration {
    /// Declares stream `kind`.
    pub fn stream(mut self, kind: StreamKind, spec: StreamSpec) -> Declaration {
        self.streams.insert(kind, spec);
        self
    }

    /// Adds an aggregate.
    pub fn aggregate(mut self, aggregate: AggregateSpec) -> Declaration {
        self.aggregates.push(aggregate);
        self
    }

    /// Bounds the distinct values of a bid field.
    pub fn dimension(mut self, field: impl Into<String>, bound: DimensionSpec) -> Declaration {
        self.dimensions.insert(field.into(), bound);
        self
    }

    /// Sets the `[funnel]` settings.
    pub fn funnel(mut self, funnel: FunnelSpec) -> Declaration {
        self.funnel = funnel;
        self
    }

    /// The aggregates, the single default one when none is declared.
    pub fn aggregate_specs(&self) -> Vec<AggregateSpec> {
        if !self.aggregates.is_empty() {
            return self.aggregates.clone();
        }
        let f = &self.funnel;
        vec![AggregateSpec {
            name: "funnel".to_owned(),
            window: f.window.unwrap_or(DurationText::from_millis(15 * MINUTE)),
            allowed_lateness: None,
            group_by: f
                .group_by
                .clone()
                .unwrap_or_else(|| vec!["campaign_id".to_owned(), "region".to_owned()]),
            measures: MeasureSpec::defaults(),
        }]
    }

    /// Checks the declaration and resolves it into the settings the dataflow runs.
    ///
    /// # Errors
    /// The first problem, with the path of its key (`aggregate[0].group_by[1]`, ...).
    pub fn resolve(&self) -> Result<FunnelSettings, DeclError> {
        let f = &self.funnel;
        let schema = Schema::resolve(&self.streams)?;
        let bids = schema.stream(StreamKind::Bid);
        if self.dimensions.len() > MAX_BOUNDED_DIMS {
            return Err(DeclError::at(
                "dimensions",
                format!("at most {MAX_BOUNDED_DIMS} bounded dimensions"),
            ));
        }
        let mut bounds = Vec::new();
        for (name, spec) in &self.dimensions {
            let at = format!("dimensions.{name}");
            let field = bids.index(name).ok_or_else(|| {
                DeclError::at(
                    &at,
                    format!("`{name}` is not a bid field (bid fields: {})", bids.names()),
                )
            })?;
            if spec.max_values == 0 {
                return Err(DeclError::at(
                    &format!("{at}.max_values"),
                    "must be at least 1",
                ));
            }
            bounds.push(DimensionBound {
                name: name.clone(),
                field,
                max_values: spec.max_values,
                beyond: spec.beyond,
            });
        }
        let bounded: Vec<String> = bounds.iter().map(|b| b.name.clone()).collect();
        if !self.aggregates.is_empty() {
            if f.window.is_some() {
                return Err(DeclError::at(
                    "funnel.window",
                    "with [[aggregate]] tables, each aggregate sets its own window",
                ));
            }
            if f.group_by.is_some() {
                return Err(DeclError::at(
                    "funnel.group_by",
                    "with [[aggregate]] tables, each aggregate sets its own group_by",
                ));
            }
        }
        let specs = self.aggregate_specs();
        if specs.len() > MAX_AGGREGATES {
            return Err(DeclError::at(
                "aggregate",
                format!("{} aggregates, at most {MAX_AGGREGATES}", specs.len()),
            ));
        }
        let mut aggregates: Vec<Aggregate> = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let (at, group_by_at) = if self.aggregates.is_empty() {
                ("funnel".to_owned(), "funnel.group_by".to_owned())
            } else {
                (
                    format!("aggregate[{i}]"),
                    format!("aggregate[{i}].group_by"),
                )
            };
            if aggregates.iter().any(|a| a.name == spec.name) {
                return Err(DeclError::at(
                    &format!("{at}.name"),
                    format!("another aggregate is named `{}`", spec.name),
                ));
            }
            let aggregate = spec
                .resolve(&schema, &at, &group_by_at, f.allowed_lateness, &bounded)
                .map_err(|e| default_measure_error(self, e))?;
            aggregates.push(aggregate);
        }
        let union: Vec<String> = aggregates
            .iter()
            .flat_map(|a| a.dims.names().into_iter().map(str::to_owned))
            .collect();
        let dims = KeyLayout::new(bids, &union, &bounded).map_err(|(_, problem)| {
            DeclError::at(
                if self.aggregates.is_empty() {
                    "funnel.group_by"
                } else {
                    "aggregate"
                },
                format!("the dims of all aggregates together: {problem}"),
            )
        })?;
        for aggregate in &mut aggregates {
            aggregate.projection = aggregate.dims.projection_from(&dims);
        }
        check_fact_capacity(&aggregates, self.aggregates.is_empty())?;
        let windows: Vec<_> = aggregates.iter().map(|a| a.window).collect();
        let tick = resolve_tick(
            f.tick.map(DurationText::millis),
            &windows,
            f.max_disorder.millis(),
        )?;
        Ok(FunnelSettings {
            lateness: Lateness::new(
                &windows,
                f.bid_retention.millis(),
                f.click_retention.millis(),
            ),
            schema: Arc::new(schema),
            aggregates: Arc::new(aggregates),
            dims,
            bounds,
            max_disorder: f.max_disorder.millis(),
            max_future_skew: f.max_future_skew.millis(),
            emit_interval: f.emit_interval.to_std(),
            tick: Tick::new(tick),
        })
    }
}

/// Checks that each stream's summed fields and filters fit in a compact fact.
fn check_fact_capacity(aggregates: &[Aggregate], old_form: bool) -> Result<(), DeclError> {
    for kind in StreamKind::ALL {
        let mut summed = Vec::new();
        let mut filters = Vec::new();
        for aggregate in aggregates {
            for measure in aggregate.measures.iter().filter(|m| m.stream == kind) {
                match measure.kind {
                    MeasureKind::Sum { field } if !summed.contains(&field) => summed.push(field),
                    MeasureKind::CountDistinct { .. } => continue,
                    _ => {}
                }
                if let Some(filter) = &measure.filter {
                    if !filters.contains(&filter.text()) {
                        filters.push(filter.text());
                    }
                }
            }
        }
        let at = if old_form { "funnel" } else { "aggregate" };
        if summed.len() > MAX_SUMMED_FIELDS {
            return Err(DeclError::at(
                at,
                format!(
                    "the measures sum {} fields of the {kind} stream, at most {MAX_SUMMED_FIELDS}",
                    summed.len()
                ),
            ));
        }
        if filters.len() > MAX_FILTERS {
            return Err(DeclError::at(
                at,
                format!(
                    "the measures filter the {kind} stream {} ways, at most {MAX_FILTERS}",
                    filters.len()
                ),
            ));
        }
    }
    Ok(())
}

/// A problem with one of the default measures, in a graph without `[[aggregate]]`, comes
/// from a declared stream that lacks today's fields: say so.
fn default_measure_error(declaration: &Declaration, error: DeclError) -> DeclError {
    if !declaration.aggregates.is_empty() || !error.key().starts_with("funnel.measure") {
        return error;
    }
    DeclError::at(
        "aggregate",
        format!(
            "the default measures (bids, impressions, clicks, conversions, spend_micros, \
             revenue_micros) do not fit the declared streams ({}): declare [[aggregate]] \
             tables with their own measures",
            error.problem
        ),
    )
}

/// A setting that cannot work, with the setting's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct SettingsError {
    /// The setting's key, as in graph files.
    pub setting: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// Everything that decides what the funnel computes (and nothing about where data comes
/// from or goes): the resolved [`Declaration`]. Two runs with equal settings over the
/// same partitions produce the same output, whatever the cluster shape.
#[derive(Clone, Debug, PartialEq)]
pub struct FunnelSettings {
    /// The windows of every aggregate and the match bounds.
    pub lateness: Lateness,
    /// The declared streams.
    pub schema: Arc<Schema>,
    /// The aggregates, in declaration order.
    pub aggregates: Arc<Vec<Aggregate>>,
    /// The dims of all aggregates together: what a parent passes on to its children.
    pub dims: KeyLayout,
    /// The dimensions with a bound on distinct values; a record's mark bit `i` is
    /// `bounds[i]`.
    pub bounds: Vec<DimensionBound>,
    /// *Max disorder*: a partition's watermark is `max ts seen − max_disorder`. Records at
    /// most this much older than the newest record of their partition are not late.
    pub max_disorder: Millis,
    /// *Max future skew*: a record whose `ts` is more than this ahead of its partition's
    /// watermark is dead-lettered instead of applied, so one far-future timestamp cannot
    /// drag the watermark forward and make the rest of the partition too late. Not
    /// applied to a partition's first record, which has no watermark to compare with.
    pub max_future_skew: Millis,
    /// Least wall-clock time between two emitted batches (zero: at every frontier move).
    pub emit_interval: Duration,
    /// The step in which entry times and the frontier move.
    pub tick: Tick,
}

impl Default for FunnelSettings {
    /// 15-minute windows by campaign and region with today's six measures, 5 s disorder,
    /// 24 h max future skew, 1 h allowed lateness, 36 h match bounds for bids and clicks,
    /// a batch at most every second.
    fn default() -> Self {
        Declaration::default()
            .resolve()
            .expect("the default declaration is valid")
    }
}
