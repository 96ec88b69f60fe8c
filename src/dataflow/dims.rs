//! Group-by dimensions: which of a bid's dimensions an aggregate is keyed by.

use serde::{Deserialize, Serialize};

use crate::event::{Bid, Label};

/// One dimension of a bid that aggregates can be grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Dim {
    /// `campaign_id`
    #[serde(rename = "campaign_id")]
    Campaign,
    /// `ad_id`
    #[serde(rename = "ad_id")]
    Ad,
    /// `publisher_id`
    #[serde(rename = "publisher_id")]
    Publisher,
    /// `region`
    #[serde(rename = "region")]
    Region,
    /// `device`
    #[serde(rename = "device")]
    Device,
}

impl Dim {
    /// Every dimension, in column order.
    pub const ALL: [Dim; 5] = [
        Dim::Campaign,
        Dim::Ad,
        Dim::Publisher,
        Dim::Region,
        Dim::Device,
    ];

    /// The dimension's column name.
    pub fn name(self) -> &'static str {
        match self {
            Dim::Campaign => "campaign_id",
            Dim::Ad => "ad_id",
            Dim::Publisher => "publisher_id",
            Dim::Region => "region",
            Dim::Device => "device",
        }
    }

    /// Parses a column name.
    pub fn from_name(name: &str) -> Option<Dim> {
        Dim::ALL.into_iter().find(|dim| dim.name() == name)
    }

    /// This dimension's value in a bid, as text.
    pub fn value_of(self, bid: &Bid) -> String {
        match self {
            Dim::Campaign => bid.campaign_id.to_string(),
            Dim::Ad => bid.ad_id.to_string(),
            Dim::Publisher => bid.publisher_id.to_string(),
            Dim::Region => bid.region.to_string(),
            Dim::Device => bid.device.to_string(),
        }
    }
}

/// The values of the grouped dimensions of one bid; dimensions not grouped by are `None`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct DimValues {
    /// `campaign_id`, when grouped by.
    pub campaign_id: Option<u64>,
    /// `ad_id`, when grouped by.
    pub ad_id: Option<u64>,
    /// `publisher_id`, when grouped by.
    pub publisher_id: Option<u64>,
    /// `region`, when grouped by.
    pub region: Option<Label>,
    /// `device`, when grouped by.
    pub device: Option<Label>,
}

/// The dimension key of an aggregate row.
///
/// *Unattributed*: the value under which a child (impression, click, conversion) is
/// counted while its parent has not arrived, or when it has no parent within the match
/// bound. When the parent arrives, the contribution moves to the parent's dims: a
/// retraction under `Unattributed` and an insertion under `Dims` in the same batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Attribution {
    /// The parent is missing.
    Unattributed,
    /// The grouped dimensions of the bid the event descends from.
    Dims(DimValues),
}

/// The text written for every dim of an unattributed row.
pub const UNATTRIBUTED: &str = "unattributed";

impl Attribution {
    /// The value of one dim as written to sinks: its value, `unattributed`, or empty for
    /// a dim that is not grouped by.
    pub fn value(&self, dim: Dim) -> String {
        match self {
            Attribution::Unattributed => UNATTRIBUTED.to_owned(),
            Attribution::Dims(values) => match dim {
                Dim::Campaign => values.campaign_id.map(|v| v.to_string()),
                Dim::Ad => values.ad_id.map(|v| v.to_string()),
                Dim::Publisher => values.publisher_id.map(|v| v.to_string()),
                Dim::Region => values.region.map(|v| v.to_string()),
                Dim::Device => values.device.map(|v| v.to_string()),
            }
            .unwrap_or_default(),
        }
    }
}

/// A set of dimensions to group by (any subset of the bid's dimensions).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupBy {
    dims: Vec<Dim>,
}

impl GroupBy {
    /// Groups by `dims` (duplicates removed, kept in column order).
    pub fn new(dims: impl IntoIterator<Item = Dim>) -> GroupBy {
        let mut dims: Vec<Dim> = dims.into_iter().collect();
        dims.sort();
        dims.dedup();
        GroupBy { dims }
    }

    /// The grouped dimensions, in column order.
    pub fn dims(&self) -> &[Dim] {
        &self.dims
    }

    /// Projects a bid onto the grouped dimensions.
    pub fn project(&self, bid: &Bid) -> DimValues {
        let mut values = DimValues::default();
        for dim in &self.dims {
            match dim {
                Dim::Campaign => values.campaign_id = Some(bid.campaign_id),
                Dim::Ad => values.ad_id = Some(bid.ad_id),
                Dim::Publisher => values.publisher_id = Some(bid.publisher_id),
                Dim::Region => values.region = Some(bid.region),
                Dim::Device => values.device = Some(bid.device),
            }
        }
        values
    }
}
