//! What a checkpoint must match to be used: the graph and the settings that decide state.

use serde::{Deserialize, Serialize};

use crate::declare::{
    Aggregate, Beyond, DurationText, FunnelSettings, Measure, MeasureKind, Schema,
};
use crate::event::StreamKind;

/// The graph and the settings whose change would make a checkpoint's state wrong: the
/// declaration (each stream's fields and roles, the bounded dimensions, every aggregate's
/// window, lateness, dims and measures, in order), the match bounds, disorder and skew.
/// (The emit interval, what a stream does with undeclared columns, the number of workers
/// or processes and the sinks may change between runs.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The graph's name.
    pub graph: String,
    /// Each setting as `(key, value)`, keys as in graph files.
    pub settings: Vec<(String, String)>,
}

impl Identity {
    /// The identity of graph `graph` with `settings`.
    ///
    /// # Examples
    /// ```
    /// use diffmill::declare::{Declaration, FunnelSpec};
    /// use diffmill::runtime::checkpoint::Identity;
    ///
    /// let before = Identity::of("ad_funnel", &Declaration::default().resolve().unwrap());
    /// let hourly = FunnelSpec { window: Some("1h".parse().unwrap()), ..FunnelSpec::default() };
    /// let hourly = Declaration::default().funnel(hourly).resolve().unwrap();
    /// let after = Identity::of("ad_funnel", &hourly);
    /// assert_eq!(
    ///     after.differences(&before),
    ///     vec!["aggregate.funnel.window is 1h here, 15m in the state".to_owned()]
    /// );
    /// ```
    pub fn of(graph: &str, settings: &FunnelSettings) -> Identity {
        let d = |ms| DurationText::from_millis(ms).to_string();
        let l = settings.lateness;
        let mut keys = vec![
            ("funnel.bid_retention".to_owned(), d(l.bid_bound)),
            ("funnel.click_retention".to_owned(), d(l.click_bound)),
            ("funnel.max_disorder".to_owned(), d(settings.max_disorder)),
            (
                "funnel.max_future_skew".to_owned(),
                d(settings.max_future_skew),
            ),
        ];
        keys.extend(streams(&settings.schema));
        for bound in &settings.bounds {
            let beyond = match bound.beyond {
                Beyond::Other => "other",
                Beyond::DeadLetter => "dead_letter",
            };
            keys.push((
                format!("dimensions.{}", bound.name),
                format!("max_values {}, beyond {beyond}", bound.max_values),
            ));
        }
        let names: Vec<&str> = settings
            .aggregates
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        keys.push(("aggregate".to_owned(), format!("[{}]", names.join(", "))));
        for aggregate in settings.aggregates.iter() {
            keys.extend(aggregate_keys(aggregate, &settings.schema));
        }
        Identity {
            graph: graph.to_owned(),
            settings: keys,
        }
    }

    /// What differs between this identity (the graph being run) and `stored` (the one
    /// a checkpoint was written by), one sentence each; empty when they match.
    pub fn differences(&self, stored: &Identity) -> Vec<String> {
        let mut differences = Vec::new();
        if self.graph != stored.graph {
            differences.push(format!(
                "the graph is `{}` here, `{}` in the state",
                self.graph, stored.graph
            ));
        }
        let value = |list: &[(String, String)], key: &str| {
            list.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        };
        let mut keys: Vec<&String> = self
            .settings
            .iter()
            .chain(stored.settings.iter())
            .map(|(k, _)| k)
            .collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let (here, there) = (value(&self.settings, key), value(&stored.settings, key));
            if here != there {
                let show = |v: Option<String>| v.unwrap_or_else(|| "not set".to_owned());
                differences.push(format!(
                    "{key} is {} here, {} in the state",
                    show(here),
                    show(there)
                ));
            }
        }
        differences
    }
}

/// Each stream's fields (names and types, in order) and roles.
fn streams(schema: &Schema) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    for kind in StreamKind::ALL {
        let stream = schema.stream(kind);
        let fields: Vec<String> = stream
            .fields()
            .iter()
            .map(|f| format!("{} = {}", f.name, f.ty))
            .collect();
        let name = |index: usize| stream.fields()[index].name.clone();
        let at = |key: &str| format!("stream.{kind}.{key}");
        keys.push((at("fields"), format!("[{}]", fields.join(", "))));
        keys.push((at("id"), name(stream.id_index())));
        keys.push((at("time"), name(stream.time_index())));
        if let Some(parent) = stream.parent_index() {
            keys.push((at("parent"), name(parent)));
        }
    }
    keys
}

/// An aggregate's window, lateness, dims and measures.
fn aggregate_keys(aggregate: &Aggregate, schema: &Schema) -> Vec<(String, String)> {
    let d = |ms| DurationText::from_millis(ms).to_string();
    let at = |key: &str| format!("aggregate.{}.{key}", aggregate.name);
    let measures: Vec<String> = aggregate
        .measures
        .iter()
        .map(|m| measure_text(m, schema))
        .collect();
    vec![
        (at("window"), d(aggregate.window.length)),
        (at("allowed_lateness"), d(aggregate.window.allowed_lateness)),
        (
            at("group_by"),
            format!("[{}]", aggregate.dims.names().join(", ")),
        ),
        (at("measure"), format!("[{}]", measures.join("; "))),
    ]
}

/// A measure as `name = count stream`, `name = sum stream.field`, with ` where filter`.
fn measure_text(measure: &Measure, schema: &Schema) -> String {
    let stream = measure.stream;
    let field = |index: usize| &schema.stream(stream).fields()[index].name;
    let what = match measure.kind {
        MeasureKind::Count => format!("count {stream}"),
        MeasureKind::Sum { field: f } => format!("sum {stream}.{}", field(f)),
        MeasureKind::CountDistinct { field: f } => format!("count_distinct {stream}.{}", field(f)),
    };
    match &measure.filter {
        Some(filter) => format!("{} = {what} where {}", measure.name, filter.text()),
        None => format!("{} = {what}", measure.name),
    }
}
