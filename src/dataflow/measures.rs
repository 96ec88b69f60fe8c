//! The six measures of a window, kept as a differential difference type.

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Multiply, Semigroup};
use serde::{Deserialize, Serialize};

use crate::event::Micros;

/// The measures of one `(window, dims)` aggregate, or a change to them.
///
/// Measures form a commutative group under addition, which is what lets differential
/// dataflow carry them as the *difference* of an update: the aggregate of a key is the sum
/// of its updates, a retraction is a negation, and summing diffs is the whole serving-layer
/// merge (docs/design.md §7).
///
/// # Examples
/// ```
/// use differential_dataflow::difference::{IsZero, Semigroup};
/// use diffmill::dataflow::Measures;
///
/// let mut total = Measures::impression(250);
/// total.plus_equals(&Measures::click());
/// total.plus_equals(&Measures::impression(250).negated());
/// assert_eq!(total, Measures { clicks: 1, ..Measures::default() });
/// assert!(!total.is_zero());
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Measures {
    /// Number of bids.
    pub bids: i64,
    /// Number of impressions.
    pub impressions: i64,
    /// Number of clicks.
    pub clicks: i64,
    /// Number of conversions.
    pub conversions: i64,
    /// Sum of impression cost, in micros.
    pub spend_micros: Micros,
    /// Sum of conversion value, in micros.
    pub revenue_micros: Micros,
}

impl Measures {
    /// The names of the six measures, in field order: the measure columns of every sink.
    pub const NAMES: [&'static str; 6] = [
        "bids",
        "impressions",
        "clicks",
        "conversions",
        "spend_micros",
        "revenue_micros",
    ];

    /// The six values, in the order of [`Measures::NAMES`].
    pub fn values(&self) -> [i64; 6] {
        [
            self.bids,
            self.impressions,
            self.clicks,
            self.conversions,
            self.spend_micros,
            self.revenue_micros,
        ]
    }

    /// The contribution of one bid.
    pub fn bid() -> Measures {
        Measures {
            bids: 1,
            ..Measures::default()
        }
    }

    /// The contribution of one impression costing `cost_micros`.
    pub fn impression(cost_micros: Micros) -> Measures {
        Measures {
            impressions: 1,
            spend_micros: cost_micros,
            ..Measures::default()
        }
    }

    /// The contribution of one click.
    pub fn click() -> Measures {
        Measures {
            clicks: 1,
            ..Measures::default()
        }
    }

    /// The contribution of one conversion worth `value_micros`.
    pub fn conversion(value_micros: Micros) -> Measures {
        Measures {
            conversions: 1,
            revenue_micros: value_micros,
            ..Measures::default()
        }
    }

    /// The negation of these measures (a retraction).
    pub fn negated(mut self) -> Measures {
        self.negate();
        self
    }

    /// The measures scaled by an integer multiplicity.
    pub fn times(self, n: i64) -> Measures {
        Measures {
            bids: self.bids * n,
            impressions: self.impressions * n,
            clicks: self.clicks * n,
            conversions: self.conversions * n,
            spend_micros: self.spend_micros * n,
            revenue_micros: self.revenue_micros * n,
        }
    }
}

impl IsZero for Measures {
    fn is_zero(&self) -> bool {
        *self == Measures::default()
    }
}

impl Semigroup for Measures {
    fn plus_equals(&mut self, rhs: &Self) {
        self.bids += rhs.bids;
        self.impressions += rhs.impressions;
        self.clicks += rhs.clicks;
        self.conversions += rhs.conversions;
        self.spend_micros += rhs.spend_micros;
        self.revenue_micros += rhs.revenue_micros;
    }
}

impl Monoid for Measures {
    fn zero() -> Self {
        Measures::default()
    }
}

impl Abelian for Measures {
    fn negate(&mut self) {
        *self = self.times(-1);
    }
}

impl Multiply<isize> for Measures {
    type Output = Measures;
    fn multiply(self, rhs: &isize) -> Measures {
        self.times(*rhs as i64)
    }
}
