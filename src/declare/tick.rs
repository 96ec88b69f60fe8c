//! The tick: the step in which entry times and the frontier move through the dataflow.

use super::{DeclError, Window};
use crate::event::Millis;

/// Largest default tick, ms.
const DEFAULT_MAX: Millis = 100;

/// The tick of a graph: every record enters the dataflow at its entry time rounded down
/// to a multiple of the tick, and each worker's frontier is rounded down the same way, so
/// the frontier, and every batch's, moves in whole ticks (docs/semantics.md §1, §5).
///
/// Every window length and allowed lateness is a multiple of the tick, so every window
/// end, final time and release time is one, and at a frontier that is a multiple of the
/// tick the records present are exactly those of the rule with exact entry times: each
/// batch holds what it would hold without the tick. What the tick changes is how often
/// the frontier moves: the records of one tick share one time, which the batchers, the
/// joins and the emitter handle once; a record reaches the sinks at most one tick later.
///
/// # Examples
/// ```
/// use diffmill::declare::Tick;
///
/// let tick = Tick::new(100);
/// assert_eq!(tick.floor(12_345), 12_300);
/// // A run restored from a checkpoint at 12_340 never goes below it.
/// assert_eq!(tick.from(12_340).floor(12_345), 12_340);
/// assert_eq!(tick.from(12_340).floor(12_400), 12_400);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    step: Millis,
    origin: Millis,
}

impl Tick {
    /// A tick of `step` ms (at least 1).
    pub fn new(step: Millis) -> Tick {
        Tick {
            step: step.max(1),
            origin: 0,
        }
    }

    /// The same tick in a run that starts at `origin` (a restored checkpoint's frontier,
    /// which another tick may have written): no time is rounded below it.
    pub fn from(self, origin: Millis) -> Tick {
        Tick { origin, ..self }
    }

    /// The step, ms.
    pub fn step(self) -> Millis {
        self.step
    }

    /// `time` rounded down to a multiple of the step, and not below the origin.
    pub fn floor(self, time: Millis) -> Millis {
        (time - time % self.step).max(self.origin)
    }
}

/// Resolves `[funnel] tick`: the one given, which must divide every window length and
/// allowed lateness, or by default the largest step of at most 100 ms and at most a
/// tenth of `max_disorder` (so the tick adds little to the latency the disorder bound
/// already implies) that divides them.
///
/// # Errors
/// At `funnel.tick`: a zero tick, or one that does not divide a window or lateness.
pub(super) fn resolve_tick(
    given: Option<Millis>,
    windows: &[Window],
    max_disorder: Millis,
) -> Result<Millis, DeclError> {
    let divides = |step: Millis| {
        windows
            .iter()
            .all(|w| w.length % step == 0 && w.allowed_lateness % step == 0)
    };
    match given {
        Some(0) => Err(DeclError::at("funnel.tick", "must be at least 1ms")),
        Some(step) if !divides(step) => {
            let spans: Vec<String> = windows
                .iter()
                .map(|w| format!("window {}ms, lateness {}ms", w.length, w.allowed_lateness))
                .collect();
            Err(DeclError::at(
                "funnel.tick",
                format!(
                    "{step}ms does not divide every window length and allowed lateness ({}), \
                     so window ends would fall inside a tick",
                    spans.join("; ")
                ),
            ))
        }
        Some(step) => Ok(step),
        None => {
            let most = DEFAULT_MAX.min(max_disorder / 10).max(1);
            Ok((1..=most).rev().find(|&s| divides(s)).unwrap_or(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(length: Millis, allowed_lateness: Millis) -> Window {
        Window {
            length,
            allowed_lateness,
        }
    }

    #[test]
    fn the_default_is_at_most_100ms_and_a_tenth_of_the_disorder_and_divides_every_window() {
        let quarter = [window(900_000, 3_600_000)];
        assert_eq!(resolve_tick(None, &quarter, 5_000), Ok(100));
        assert_eq!(resolve_tick(None, &quarter, 10), Ok(1));
        assert_eq!(resolve_tick(None, &quarter, 250), Ok(25));
        let odd = [window(900_000, 0), window(1_234, 70)];
        assert_eq!(resolve_tick(None, &odd, 5_000), Ok(2));
    }

    #[test]
    fn a_tick_that_does_not_divide_a_window_is_refused_at_its_key() {
        let windows = [window(1_000, 700)];
        assert_eq!(resolve_tick(Some(100), &windows, 0), Ok(100));
        let error = resolve_tick(Some(300), &windows, 0).unwrap_err();
        assert_eq!(error.key(), "funnel.tick");
        assert!(error.problem.contains("300ms does not divide"), "{error}");
        assert_eq!(
            resolve_tick(Some(0), &windows, 0).unwrap_err().key(),
            "funnel.tick"
        );
    }
}
