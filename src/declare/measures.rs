//! The measures of an aggregate, kept as a differential difference type: a fixed-capacity
//! array of integers, one per declared measure.

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Multiply, Semigroup};
use serde::{Deserialize, Serialize};

/// Most measures one aggregate may declare (validated when the declaration is loaded).
pub const MAX_MEASURES: usize = 8;

/// The measures of one `(window, dims)` aggregate, or a change to them: the value of the
/// aggregate's `j`-th declared measure at position `j`, zero beyond the declared ones.
///
/// Measures form a commutative group under addition, which is what lets differential
/// dataflow carry them as the *difference* of an update: the aggregate of a key is the sum
/// of its updates, a retraction is a negation, and summing diffs is the whole serving-layer
/// merge (docs/design.md §7). Addition wraps: the group is the integers modulo 2^64, so the order
/// in which differential adds updates never matters, and a value is exact whenever it fits
/// in an `i64`, which ingestion guarantees (a record that could make a sum leave that range
/// is dead-lettered, docs/semantics.md §1).
///
/// The default declaration's six measures are, in order: `bids`, `impressions`, `clicks`,
/// `conversions`, `spend_micros`, `revenue_micros`; the constructors [`Measures::bid`] etc.
/// give its contributions.
///
/// # Examples
/// ```
/// use differential_dataflow::difference::{IsZero, Semigroup};
/// use diffmill::declare::Measures;
///
/// let mut total = Measures::impression(250);
/// total.plus_equals(&Measures::click());
/// total.plus_equals(&Measures::impression(250).negated());
/// assert_eq!(total, Measures::from_values(&[0, 0, 1]));
/// assert_eq!(total.values(6), [0, 0, 1, 0, 0, 0]);
/// assert!(!total.is_zero());
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Measures([i64; MAX_MEASURES]);

impl Measures {
    /// The names of the default declaration's six measures, in order.
    pub const DEFAULT_NAMES: [&'static str; 6] = [
        "bids",
        "impressions",
        "clicks",
        "conversions",
        "spend_micros",
        "revenue_micros",
    ];

    /// Measures with the given leading values (at most [`MAX_MEASURES`]; the rest are 0).
    pub fn from_values(values: &[i64]) -> Measures {
        let mut measures = Measures::default();
        for (slot, value) in measures.0.iter_mut().zip(values) {
            *slot = *value;
        }
        measures
    }

    /// The first `count` values: those of an aggregate with `count` measures.
    pub fn values(&self, count: usize) -> &[i64] {
        &self.0[..count.min(MAX_MEASURES)]
    }

    /// The value of measure `j`.
    pub fn get(&self, j: usize) -> i64 {
        self.0[j]
    }

    /// Sets measure `j` to `value`.
    pub fn set(&mut self, j: usize, value: i64) {
        self.0[j] = value;
    }

    /// The default declaration's contribution of one bid.
    pub fn bid() -> Measures {
        Measures::from_values(&[1])
    }

    /// The default declaration's contribution of one impression costing `cost_micros`.
    pub fn impression(cost_micros: i64) -> Measures {
        Measures::from_values(&[0, 1, 0, 0, cost_micros])
    }

    /// The default declaration's contribution of one click.
    pub fn click() -> Measures {
        Measures::from_values(&[0, 0, 1])
    }

    /// The default declaration's contribution of one conversion worth `value_micros`.
    pub fn conversion(value_micros: i64) -> Measures {
        Measures::from_values(&[0, 0, 0, 1, 0, value_micros])
    }

    /// The negation of these measures (a retraction).
    pub fn negated(mut self) -> Measures {
        self.negate();
        self
    }

    /// The measures scaled by an integer multiplicity.
    pub fn times(mut self, n: i64) -> Measures {
        for value in &mut self.0 {
            *value = value.wrapping_mul(n);
        }
        self
    }
}

impl IsZero for Measures {
    fn is_zero(&self) -> bool {
        self.0 == [0; MAX_MEASURES]
    }
}

impl Semigroup for Measures {
    fn plus_equals(&mut self, rhs: &Self) {
        for (value, other) in self.0.iter_mut().zip(rhs.0) {
            *value = value.wrapping_add(other);
        }
    }
}

impl Monoid for Measures {
    fn zero() -> Self {
        Measures::default()
    }
}

impl Abelian for Measures {
    fn negate(&mut self) {
        for value in &mut self.0 {
            *value = value.wrapping_neg();
        }
    }
}

impl Multiply<isize> for Measures {
    type Output = Measures;
    fn multiply(self, rhs: &isize) -> Measures {
        self.times(*rhs as i64)
    }
}
