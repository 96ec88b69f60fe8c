//! The four streams, the records read from them, and the typed records of the default
//! declaration.

use serde::{Deserialize, Serialize};

use super::Label;

/// Event time: milliseconds since the Unix epoch, UTC. It is also the timely timestamp.
pub type Millis = u64;

/// An event id. Ids are positive integers; zero is rejected as missing.
pub type EventId = u64;

/// Integer micros of a currency unit; never a float in a sum.
pub type Micros = i64;

/// A bid: the parent of impressions and clicks, and the source of every dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Bid {
    /// Unique bid id.
    pub bid_id: EventId,
    /// Event time in ms.
    pub ts: Millis,
    /// Campaign the bid was made for.
    pub campaign_id: u64,
    /// Ad (creative) the bid was made with.
    pub ad_id: u64,
    /// Publisher whose slot was bid on.
    pub publisher_id: u64,
    /// Region of the user.
    pub region: Label,
    /// Device class of the user.
    pub device: Label,
    /// Bid price in micros.
    pub bid_price_micros: Micros,
}

/// An impression: a won bid shown to a user. Child of a bid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Impression {
    /// Unique impression id.
    pub impression_id: EventId,
    /// The bid this impression won.
    pub bid_id: EventId,
    /// Event time in ms.
    pub ts: Millis,
    /// What the impression cost, in micros (summed as `spend_micros`).
    pub cost_micros: Micros,
}

/// A click on an ad. Child of a bid, parent of conversions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Click {
    /// Unique click id.
    pub click_id: EventId,
    /// The bid whose ad was clicked.
    pub bid_id: EventId,
    /// Event time in ms.
    pub ts: Millis,
}

/// A conversion (a purchase) attributed to a click. Child of a click.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Conversion {
    /// Unique conversion id.
    pub conversion_id: EventId,
    /// The click this conversion follows.
    pub click_id: EventId,
    /// Event time in ms.
    pub ts: Millis,
    /// Value of the conversion in micros (summed as `revenue_micros`).
    pub value_micros: Micros,
}

/// Which of the four streams an event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// Bids.
    Bid,
    /// Impressions.
    Impression,
    /// Clicks.
    Click,
    /// Conversions.
    Conversion,
}

impl StreamKind {
    /// All four streams, parents before children.
    pub const ALL: [StreamKind; 4] = [
        StreamKind::Bid,
        StreamKind::Impression,
        StreamKind::Click,
        StreamKind::Conversion,
    ];

    /// The stream's name as used in files, topics and counters (`bid`, `impression`, ...).
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Bid => "bid",
            StreamKind::Impression => "impression",
            StreamKind::Click => "click",
            StreamKind::Conversion => "conversion",
        }
    }

    /// Position in [`StreamKind::ALL`], for per-stream arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a stream name as written by [`StreamKind::name`].
    pub fn from_name(name: &str) -> Option<StreamKind> {
        StreamKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl std::fmt::Display for StreamKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the generic operators need of a record: its id and its event time (and serde, so
/// that dedup groups can be kept in checkpoints).
pub trait Keyed:
    Copy + Ord + std::fmt::Debug + Serialize + serde::de::DeserializeOwned + 'static
{
    /// The record's own unique id (what dedup keys on).
    fn id(&self) -> EventId;
    /// The record's event time.
    fn ts(&self) -> Millis;
}

macro_rules! record {
    ($type:ty, $id:ident) => {
        impl Keyed for $type {
            fn id(&self) -> EventId {
                self.$id
            }
            fn ts(&self) -> Millis {
                self.ts
            }
        }
    };
}

record!(Bid, bid_id);
record!(Impression, impression_id);
record!(Click, click_id);
record!(Conversion, conversion_id);

/// One event of any of the four streams, typed by the default declaration (the fields of
/// docs/design.md §2). Tests, examples and the generator build these; every source hands the
/// runtime [`Record`](super::Record)s, and `Record::from(event)` encodes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Event {
    /// A bid.
    Bid(Bid),
    /// An impression.
    Impression(Impression),
    /// A click.
    Click(Click),
    /// A conversion.
    Conversion(Conversion),
}

impl Event {
    /// The stream of this event.
    pub fn kind(&self) -> StreamKind {
        match self {
            Event::Bid(_) => StreamKind::Bid,
            Event::Impression(_) => StreamKind::Impression,
            Event::Click(_) => StreamKind::Click,
            Event::Conversion(_) => StreamKind::Conversion,
        }
    }

    /// The event's own id.
    pub fn id(&self) -> EventId {
        match self {
            Event::Bid(r) => r.id(),
            Event::Impression(r) => r.id(),
            Event::Click(r) => r.id(),
            Event::Conversion(r) => r.id(),
        }
    }

    /// The event time.
    pub fn ts(&self) -> Millis {
        match self {
            Event::Bid(r) => r.ts,
            Event::Impression(r) => r.ts,
            Event::Click(r) => r.ts,
            Event::Conversion(r) => r.ts,
        }
    }
}
