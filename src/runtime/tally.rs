//! The cluster's accounting: each process's counters summed on worker 0 at the end.
//!
//! A record is counted *read* and *dead-lettered* or *too late* by the worker that reads
//! it, but *applied* or *duplicate* by the worker that owns its id in dedup, which may be
//! in another process. A process's own counts therefore need not balance; the cluster's
//! sum does.

use std::cell::RefCell;
use std::rc::Rc;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Input;
use timely::worker::Worker;

use super::Accounting;

/// Sums, on worker 0 of the cluster, the accounting each process's first worker sends
/// (`Some` on those workers, `None` on the others). Call on every worker after the funnel
/// is done. Returns the sum on worker 0, `None` elsewhere.
pub fn tally(worker: &mut Worker, process_accounting: Option<Accounting>) -> Option<Accounting> {
    let sum: Rc<RefCell<Option<Accounting>>> = Rc::default();
    let is_first = worker.index() == 0;
    let mut input = worker.dataflow::<u64, _, _>(|scope| {
        let (input, stream) = scope.new_input::<Accounting>();
        let sum = Rc::clone(&sum);
        stream.sink(
            Exchange::new(|_: &Accounting| 0u64),
            "Tally",
            move |(data, _)| {
                data.for_each(|_, accountings| {
                    let mut slot = sum.borrow_mut();
                    let total = slot.get_or_insert_with(Accounting::default);
                    for accounting in accountings.drain(..) {
                        total.add(&accounting);
                    }
                });
            },
        );
        input
    });
    if let Some(accounting) = process_accounting {
        input.send(accounting);
    }
    drop(input);
    while worker.step_or_park(None) {}
    if is_first {
        Some(sum.borrow_mut().take().unwrap_or_default())
    } else {
        None
    }
}
