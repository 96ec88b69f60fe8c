//! What a checkpoint must match to be used: the graph and the settings that decide state.

use serde::{Deserialize, Serialize};

use crate::dataflow::FunnelSettings;
use crate::graph::DurationText;

/// The graph and the settings whose change would make a checkpoint's state wrong: window,
/// dims, lateness, match bounds, disorder and skew. (The emit interval, the number of
/// workers or processes and the sinks may change between runs.)
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
    /// use diffmill::dataflow::FunnelSettings;
    /// use diffmill::runtime::checkpoint::Identity;
    ///
    /// let before = Identity::of("ad_funnel", &FunnelSettings::default());
    /// let mut hourly = FunnelSettings::default();
    /// hourly.lateness.window = 3_600_000;
    /// let after = Identity::of("ad_funnel", &hourly);
    /// assert_eq!(after.differences(&before), vec!["funnel.window is 1h here, 15m in the state".to_owned()]);
    /// ```
    pub fn of(graph: &str, settings: &FunnelSettings) -> Identity {
        let d = |ms| DurationText::from_millis(ms).to_string();
        let l = settings.lateness;
        let dims: Vec<&str> = settings.group_by.dims().iter().map(|d| d.name()).collect();
        let settings = vec![
            ("funnel.window", d(l.window)),
            ("funnel.group_by", format!("[{}]", dims.join(", "))),
            ("funnel.allowed_lateness", d(l.allowed_lateness)),
            ("funnel.bid_retention", d(l.bid_bound)),
            ("funnel.click_retention", d(l.click_bound)),
            ("funnel.max_disorder", d(settings.max_disorder)),
            ("funnel.max_future_skew", d(settings.max_future_skew)),
        ];
        Identity {
            graph: graph.to_owned(),
            settings: settings
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
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
