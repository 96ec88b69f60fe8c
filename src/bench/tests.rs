use std::time::Duration;

use super::*;
use crate::declare::{Declaration, DurationText, FunnelSpec};

fn frame() -> Frame {
    Frame {
        start: 0,
        measure_from: 0,
        measure_until: 100,
        deadline: 100,
        window: 10,
        max_disorder: 2,
    }
}

/// Within hdrhistogram's 3 significant digits.
fn near(value: u64, expected: u64) -> bool {
    value.abs_diff(expected) <= expected / 500 + 1
}

#[test]
fn a_record_is_settled_by_the_first_batch_beyond_its_entry() {
    let tracker = Tracker::new(frame());
    tracker.handed(&mut vec![(20, 15), (10, 5), (20, 16)], 3, 16);
    // Frontier 15: only the record entered at 10 is in; it was due at 5 ms.
    tracker.written(0, Some(15), 30_000);
    let measured = tracker.measured();
    assert_eq!(measured.handed, 3);
    assert_eq!(measured.processing.len(), 1);
    assert!(near(measured.processing.max(), 25_000));
    // Window [0, 10) could be complete at 12 ms.
    assert_eq!(measured.window.len(), 1);
    assert!(near(measured.window.max(), 18_000));

    tracker.written(15, Some(21), 40_000);
    let measured = tracker.measured();
    assert_eq!(measured.processing.len(), 3);
    assert!(near(measured.processing.max(), 25_000));
    assert!(near(measured.processing.min(), 24_000));
    assert_eq!(measured.window.len(), 2);
    assert_eq!(measured.batches, 2);
}

#[test]
fn warm_up_and_cool_down_are_not_measured() {
    let tracker = Tracker::new(Frame {
        measure_from: 50,
        measure_until: 90,
        ..frame()
    });
    tracker.handed(&mut vec![(40, 40), (60, 60), (95, 95)], 3, 95);
    tracker.written(0, None, 100_000);
    let measured = tracker.measured();
    assert_eq!(measured.processing.len(), 1);
    assert!(near(measured.processing.max(), 40_000));
    // The input-complete batch closes no window by the clock.
    assert_eq!(measured.window.len(), 0);
}

#[test]
fn a_short_open_loop_run_measures_every_record_it_sends() {
    let ms = DurationText::from_millis;
    let funnel = FunnelSpec {
        window: Some(ms(100)),
        allowed_lateness: ms(1_000),
        bid_retention: ms(5_000),
        click_retention: ms(5_000),
        max_disorder: ms(10),
        emit_interval: ms(0),
        ..FunnelSpec::default()
    };
    let settings = Declaration::default().funnel(funnel).resolve().unwrap();
    let config = BenchConfig {
        rate: 20_000,
        duration: Duration::from_millis(1_500),
        warmup: Duration::from_millis(300),
        cooldown: Duration::from_millis(200),
        workers: 2,
        settings,
        generator: GeneratorConfig {
            partitions: 2,
            ..GeneratorConfig::default()
        },
        checkpoint_interval: Some(Duration::from_millis(300)),
    };
    let report = run_bench(&config).unwrap();
    let checkpoint = report.checkpoint.clone().expect("checkpoints were written");
    assert!(
        checkpoint.count >= 1 && checkpoint.bytes > 0,
        "{checkpoint:?}"
    );
    // About 30,000 records over 1.5 s (children due after the deadline are not sent).
    assert!(
        (24_000..=33_000).contains(&report.handed),
        "{}",
        report.handed
    );
    assert!(report.processing.count > 15_000, "{:?}", report.processing);
    assert!(report.processing.count < report.handed);
    let wall_us = report.wall.as_micros() as u64;
    assert!(report.processing.max <= wall_us);
    assert!(report.halves[0].count > 0 && report.halves[1].count > 0);
    // Windows ending between 0.4 s and 1.49 s: about 11 of them.
    assert!(
        (8..=12).contains(&report.window.count),
        "{:?}",
        report.window
    );
    assert!(report.window.max <= wall_us);
    assert!(report.batches > 10);
    assert!(report.held_max >= 0);
}
