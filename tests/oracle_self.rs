//! The oracle checked against small cases computed by hand from docs/semantics.md.
//!
//! Unless a test says otherwise the settings are `W = 1000`, `L = 1500`, `Bb = Bc = 2000`,
//! `d = 100`, grouped by campaign. So `final_at(ts) = start(ts) + 2500`, and the release
//! times are `final_at(ts)` for impressions and conversions, `final_at(ts + 2000)` for
//! clicks and `final_at(ts + 4000)` for bids.

mod support;

use diffmill::connectors::Arrival;
use diffmill::declare::{Attribution, FunnelSettings, Measures};
use diffmill::event::{DeadLetter, Origin, StreamKind};
use diffmill::runtime::StreamCounts;

use support::oracle::{Aggregates, Fate, Oracle};
use support::{bid, campaign, click, conversion, impression, measures, partitions, settings};

fn usual() -> FunnelSettings {
    settings(1_000, 1_500, 2_000, 2_000, 100)
}

/// The oracle's aggregates (of the single aggregate, grouped by campaign) from
/// `((window start, dims), measures)` entries.
fn aggregates<const N: usize>(entries: [((u64, Attribution), Measures); N]) -> Aggregates {
    let dims = usual().aggregates[0].dims.clone();
    entries
        .into_iter()
        .map(|((start, attribution), m)| ((0, start, dims.texts(&attribution)), support::values(m)))
        .collect()
}

fn counts(read: u64, applied: u64, duplicate: u64, too_late: u64) -> StreamCounts {
    StreamCounts {
        read,
        applied,
        duplicate,
        too_late,
        ..StreamCounts::default()
    }
}

/// Impression ts 1050, then its bid ts 1000. After the impression `w = 1050 − 100 = 950`;
/// the bid's 1000 ≥ 950, so it is on time and enters at 1000, before the impression
/// (1050): the impression is never unattributed.
#[test]
fn disorder_within_the_bound_is_not_late() {
    let input = partitions(vec![vec![impression(1, 1, 1_050, 10), bid(1, 1_000, 7)]]);
    let oracle = Oracle::new(&usual(), &input);
    assert_eq!(oracle.watermarks, vec![vec![950, 950]]);
    assert_eq!(oracle.records[1].watermark, 950);
    assert_eq!(
        oracle.records[1].fate,
        Fate::Entered {
            entry: 1_000,
            late: false,
            attribution_only: false
        }
    );
    assert_eq!(oracle.value_at(999), Aggregates::new());
    assert_eq!(
        oracle.value_at(1_000),
        aggregates([((1_000, campaign(7)), measures(1, 0, 0, 0, 0, 0))])
    );
    for t in [1_050, 3_499] {
        assert_eq!(
            oracle.value_at(t),
            aggregates([((1_000, campaign(7)), measures(1, 1, 0, 0, 10, 0))])
        );
    }
    // The impression is released at 3500, the bid only at final_at(5000) = 7500 (which
    // changes nothing visible: window 1000 is final from 3500).
    assert_eq!(
        oracle.value_at(3_500),
        aggregates([((1_000, campaign(7)), measures(1, 0, 0, 0, 0, 0))])
    );
    assert_eq!(
        oracle.expected_prefix(Some(1_001)),
        aggregates([((1_000, campaign(7)), measures(1, 0, 0, 0, 0, 0))])
    );
    // At a frontier past 3500 the window is final: its value at 3499 stands.
    assert_eq!(
        oracle.expected_prefix(Some(9_000)),
        aggregates([((1_000, campaign(7)), measures(1, 1, 0, 0, 10, 0))])
    );
    assert_eq!(oracle.final_values(), oracle.expected_prefix(Some(9_000)));
    let accounting = oracle.accounting();
    assert_eq!(*accounting.stream(StreamKind::Bid), counts(1, 1, 0, 0));
    assert_eq!(
        *accounting.stream(StreamKind::Impression),
        counts(1, 1, 0, 0)
    );
}

/// Bid ts 3000 (`w` becomes 2900), then an impression ts 2500 < 2900: late. Its release is
/// final_at(2500) = 4500 > 2900, so it enters at 2900, in window 2000. The bid enters at
/// its own 3000, so over [2900, 3000) the impression is unattributed.
#[test]
fn a_late_record_enters_at_the_watermark() {
    let input = partitions(vec![vec![bid(1, 3_000, 1), impression(4, 1, 2_500, 20)]]);
    let oracle = Oracle::new(&usual(), &input);
    assert_eq!(
        oracle.records[1].fate,
        Fate::Entered {
            entry: 2_900,
            late: true,
            attribution_only: false
        }
    );
    assert_eq!(oracle.value_at(2_899), Aggregates::new());
    let imp = ((2_000, campaign(1)), measures(0, 1, 0, 0, 20, 0));
    let orphan = (
        (2_000, Attribution::Unattributed),
        measures(0, 1, 0, 0, 20, 0),
    );
    let own = ((3_000, campaign(1)), measures(1, 0, 0, 0, 0, 0));
    assert_eq!(oracle.value_at(2_900), aggregates([orphan]));
    assert_eq!(oracle.value_at(3_000), aggregates([imp, own]));
    // A frontier of 2900 has not seen the late impression yet; 2901 has, unattributed.
    assert_eq!(oracle.expected_prefix(Some(2_900)), Aggregates::new());
    assert_eq!(oracle.expected_prefix(Some(2_901)), aggregates([orphan]));
    assert_eq!(oracle.final_values(), aggregates([imp, own]));
    let impressions = oracle.accounting().streams[StreamKind::Impression.index()];
    assert_eq!(
        impressions,
        StreamCounts {
            late: 1,
            ..counts(1, 1, 0, 0)
        }
    );
}

/// Bid ts 9000 (`w` becomes 8900). An impression ts 2000 has release 4500 ≤ 8900: too
/// late. A bid ts 3000 has release final_at(7000) = 9500 > 8900: it enters at 8900, and as
/// its own window is final (final_at(3000) = 5500 ≤ 8900) it is attribution-only, so its
/// own count never shows (the value of window 3000 at 5499 is empty).
#[test]
fn too_late_and_attribution_only() {
    let input = partitions(vec![vec![
        bid(1, 9_000, 1),
        impression(2, 5, 2_000, 10),
        bid(3, 3_000, 2),
    ]]);
    let oracle = Oracle::new(&usual(), &input);
    assert_eq!(oracle.records[1].fate, Fate::TooLate);
    assert_eq!(
        oracle.records[2].fate,
        Fate::Entered {
            entry: 8_900,
            late: true,
            attribution_only: true
        }
    );
    let too_late = oracle.too_late();
    assert_eq!(too_late.len(), 1);
    assert_eq!(too_late[0].stream, StreamKind::Impression);
    assert_eq!(
        too_late[0].origin,
        Origin {
            source: "memory/0".into(),
            position: 2
        }
    );
    assert_eq!(
        (too_late[0].id, too_late[0].ts, too_late[0].watermark),
        (2, 2_000, 8_900)
    );
    assert_eq!(
        oracle.final_values(),
        aggregates([((9_000, campaign(1)), measures(1, 0, 0, 0, 0, 0))])
    );
    let accounting = oracle.accounting();
    assert_eq!(
        *accounting.stream(StreamKind::Bid),
        StreamCounts {
            late: 1,
            attribution_only: 1,
            ..counts(2, 2, 0, 0)
        }
    );
    assert_eq!(
        *accounting.stream(StreamKind::Impression),
        counts(1, 0, 0, 1)
    );
    assert!(accounting.balances());
}

/// Four impressions with id 5 and an orphan bid id: (ts 1000, cost 10) twice, (1000, 30),
/// (1050, 5). Watermarks before them: 0, 900, 900, 900; none is late. Entries 1000, 1000,
/// 1000, 1050. One group: 1 applied, 3 duplicates, distinct payloads {c10, c30, 1050/c5}
/// so 2 conflicting. At 1000 the winner is (1000, cost 30) (payload order: cost 30 >
/// cost 10); from 1050 it is (1050, cost 5), the greatest ts.
#[test]
fn identical_and_conflicting_duplicates() {
    let input = partitions(vec![vec![
        impression(5, 9, 1_000, 10),
        impression(5, 9, 1_000, 10),
        impression(5, 9, 1_000, 30),
        impression(5, 9, 1_050, 5),
    ]]);
    let oracle = Oracle::new(&usual(), &input);
    assert_eq!(oracle.groups.len(), 1);
    let window = (1_000, Attribution::Unattributed);
    assert_eq!(
        oracle.value_at(1_000),
        aggregates([(window, measures(0, 1, 0, 0, 30, 0))])
    );
    assert_eq!(
        oracle.value_at(1_050),
        aggregates([(window, measures(0, 1, 0, 0, 5, 0))])
    );
    assert_eq!(
        oracle.final_values(),
        aggregates([(window, measures(0, 1, 0, 0, 5, 0))])
    );
    assert_eq!(
        *oracle.accounting().stream(StreamKind::Impression),
        StreamCounts {
            conflicting: 2,
            ..counts(4, 1, 3, 0)
        }
    );
}

/// A bid id 1 ts 0 (release final_at(4000) = 6500), a bid ts 10000 (`w` = 9900), then bid
/// id 1 again with ts 9950: not late (9950 ≥ 9900), it enters at 9950 ≥ 6500, after the
/// first group was released, so it starts a new group: 3 applied, no duplicate.
#[test]
fn a_released_group_is_not_joined_again() {
    let input = partitions(vec![vec![
        bid(1, 0, 1),
        bid(2, 10_000, 1),
        bid(1, 9_950, 2),
    ]]);
    let oracle = Oracle::new(&usual(), &input);
    assert_eq!(oracle.groups.len(), 3);
    assert_eq!(
        *oracle.accounting().stream(StreamKind::Bid),
        counts(3, 3, 0, 0)
    );
    assert_eq!(
        oracle.final_values(),
        aggregates([
            ((0, campaign(1)), measures(1, 0, 0, 0, 0, 0)),
            ((9_000, campaign(2)), measures(1, 0, 0, 0, 0, 0)),
            ((10_000, campaign(1)), measures(1, 0, 0, 0, 0, 0)),
        ])
    );
}

/// An impression of a bid that never comes stays unattributed; a dead letter does not move
/// the watermark and is counted on its stream.
#[test]
fn orphan_impression_and_dead_letter() {
    let dead = DeadLetter {
        stream: StreamKind::Click,
        origin: Origin {
            source: "memory/0".into(),
            position: 1,
        },
        raw: "x".into(),
        reason: "bad".into(),
    };
    let mut input = partitions(vec![vec![impression(1, 42, 500, 7)]]);
    input[0].insert(0, Arrival::DeadLetter(dead.clone()));
    let oracle = Oracle::new(&usual(), &input);
    // ts 500 − 100 = 400 after the impression; 0 after the dead letter.
    assert_eq!(oracle.watermarks, vec![vec![0, 400]]);
    assert_eq!(
        oracle.final_values(),
        aggregates([((0, Attribution::Unattributed), measures(0, 1, 0, 0, 7, 0))])
    );
    assert_eq!(oracle.dead_letters(), vec![dead]);
    let accounting = oracle.accounting();
    assert_eq!(
        *accounting.stream(StreamKind::Click),
        StreamCounts {
            read: 1,
            dead_lettered: 1,
            ..StreamCounts::default()
        }
    );
    assert!(accounting.balances());
}

/// Partition 0: impression ts 1200 of bid 1. Partition 1: an orphan click ts 2000 (`w1` =
/// 1900), then bid 1 ts 1100: late in its partition, enters at 1900 (its window is final
/// at 3500, so it is not attribution-only). Before 1900 the impression is unattributed;
/// from 1900 it is under campaign 3.
#[test]
fn a_late_bid_moves_its_impression_out_of_unattributed() {
    let input = partitions(vec![
        vec![impression(1, 1, 1_200, 10)],
        vec![click(9, 77, 2_000), bid(1, 1_100, 3)],
    ]);
    let oracle = Oracle::new(&usual(), &input);
    let orphan_click = (
        (2_000, Attribution::Unattributed),
        measures(0, 0, 1, 0, 0, 0),
    );
    assert_eq!(
        oracle.value_at(1_899),
        aggregates([(
            (1_000, Attribution::Unattributed),
            measures(0, 1, 0, 0, 10, 0)
        )])
    );
    assert_eq!(
        oracle.value_at(1_900),
        aggregates([((1_000, campaign(3)), measures(1, 1, 0, 0, 10, 0))])
    );
    assert_eq!(
        oracle.expected_prefix(Some(1_900)),
        aggregates([(
            (1_000, Attribution::Unattributed),
            measures(0, 1, 0, 0, 10, 0)
        )])
    );
    assert_eq!(
        oracle.final_values(),
        aggregates([
            ((1_000, campaign(3)), measures(1, 1, 0, 0, 10, 0)),
            orphan_click
        ])
    );
    let bids = oracle.accounting().streams[StreamKind::Bid.index()];
    assert_eq!(
        bids,
        StreamCounts {
            late: 1,
            ..counts(1, 1, 0, 0)
        }
    );
}

/// Conversion ts 1500 of click 4 (`w` = 1400), click 4 ts 1600 of bid 1 (on time, `w` =
/// 1500), bid 1 ts 1000: late, enters at 1500. The conversion matches the click although
/// it is earlier (1500 ≤ 1600 + 2000), the click matches the bid (1600 ≤ 1000 + 2000).
/// At 1500 the bid and conversion are present but not the click: the conversion is
/// unattributed. From 1600 everything is under campaign 2.
#[test]
fn a_conversion_before_its_click() {
    let input = partitions(vec![vec![
        conversion(1, 4, 1_500, 100),
        click(4, 1, 1_600),
        bid(1, 1_000, 2),
    ]]);
    let oracle = Oracle::new(&usual(), &input);
    assert_eq!(
        oracle.value_at(1_500),
        aggregates([
            (
                (1_000, Attribution::Unattributed),
                measures(0, 0, 0, 1, 0, 100)
            ),
            ((1_000, campaign(2)), measures(1, 0, 0, 0, 0, 0)),
        ])
    );
    assert_eq!(
        oracle.value_at(1_600),
        aggregates([((1_000, campaign(2)), measures(1, 0, 1, 1, 0, 100))])
    );
    assert_eq!(
        oracle.final_values(),
        aggregates([((1_000, campaign(2)), measures(1, 0, 1, 1, 0, 100))])
    );
}

/// Bid ts 0; impressions ts 2000 (= 0 + Bb: matches) and 2001 (beyond the bound:
/// unattributed); click ts 100 of the bid, conversions ts 2100 (= 100 + Bc: matches) and
/// 2101 (unattributed). With `d = 0` nothing here is late.
#[test]
fn children_beyond_the_match_bound_are_unattributed() {
    let input = partitions(vec![vec![
        bid(1, 0, 1),
        click(1, 1, 100),
        impression(1, 1, 2_000, 10),
        impression(2, 1, 2_001, 20),
        conversion(1, 1, 2_100, 100),
        conversion(2, 1, 2_101, 200),
    ]]);
    let oracle = Oracle::new(&settings(1_000, 1_500, 2_000, 2_000, 0), &input);
    assert_eq!(
        oracle.final_values(),
        aggregates([
            ((0, campaign(1)), measures(1, 0, 1, 0, 0, 0)),
            ((2_000, campaign(1)), measures(0, 1, 0, 1, 10, 100)),
            (
                (2_000, Attribution::Unattributed),
                measures(0, 1, 0, 1, 20, 200)
            ),
        ])
    );
}

/// `d = 100` and a first record at ts 50: the watermark saturates at 0.
#[test]
fn the_watermark_saturates_at_zero() {
    let input = partitions(vec![vec![bid(1, 50, 1), bid(2, 20, 1)]]);
    let oracle = Oracle::new(&usual(), &input);
    assert_eq!(oracle.watermarks, vec![vec![0, 0]]);
    assert!(matches!(
        oracle.records[1].fate,
        Fate::Entered { late: false, .. }
    ));
}
