//! Every example runs through cargo with `-w 2`; click_fraud's answer is checked against
//! a from-scratch computation over the same generated input.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use diffmill::connectors::generator::{Generated, Generator, GeneratorConfig};
use diffmill::declare::{Declaration, DurationText, FunnelSettings, FunnelSpec};
use diffmill::event::{Bid, Click, Event, EventId, Keyed, Millis};

/// Runs `cargo run --example <name> -- -w 2`, asserts it succeeded, returns its stdout.
fn run_example(name: &str) -> String {
    let output = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", name, "--", "-w", "2"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "example {name} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn ad_funnel_prints_top_rows_and_balanced_accounting() {
    let stdout = run_example("ad_funnel");
    assert!(
        stdout.contains("top 10 (window, campaign_id, device) by revenue:"),
        "{stdout}"
    );
    assert!(stdout.contains("accounting balances: true"), "{stdout}");
}

#[test]
fn click_fraud_matches_a_from_scratch_count() {
    let stdout = run_example("click_fraud");
    let mut printed = BTreeMap::new();
    for line in stdout.lines().filter(|l| l.starts_with("fraud ")) {
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("no {key} in `{line}`"))
                .to_owned()
        };
        let window: Millis = field("window").parse().expect("window is a number");
        let count: i64 = field("clicks_without_impression").parse().expect("a count");
        assert!(
            printed
                .insert((window, field("publisher")), count)
                .is_none(),
            "repeated line `{line}`"
        );
    }
    let expected = click_fraud_from_scratch();
    assert!(
        expected.len() > 5,
        "the input has too little fraud to check"
    );
    assert_eq!(printed, expected, "stdout:\n{stdout}");
    let total: i64 = expected.values().sum();
    assert!(
        stdout.contains(&format!("found {total} clicks without an impression")),
        "{stdout}"
    );
}

/// The input of `examples/click_fraud.rs`, recomputed: the same generator configuration
/// and window, and its forged clicks.
const WINDOW: Millis = 5 * 60_000;

fn click_fraud_generator() -> Generator {
    let funnel = FunnelSpec {
        window: Some(DurationText::from_millis(WINDOW)),
        ..FunnelSpec::default()
    };
    let settings = Declaration::default()
        .funnel(funnel)
        .resolve()
        .expect("valid settings");
    let config = GeneratorConfig {
        bids: 20_000,
        rate: 20,
        too_late: 0.0,
        ..GeneratorConfig::default()
    };
    Generator::new(config, &settings).expect("valid settings")
}

fn forged_click(bid: &Bid) -> Option<Click> {
    let farmed = bid.publisher_id == 3 && bid.bid_id.is_multiple_of(2);
    (farmed || bid.bid_id.is_multiple_of(500)).then_some(Click {
        click_id: (1 << 40) + bid.bid_id,
        bid_id: bid.bid_id,
        ts: bid.ts + 500,
    })
}

/// Keeps the record with the greatest `(ts, payload)` per id (the dedup rule).
fn keep_winner<R: Keyed>(winners: &mut BTreeMap<EventId, R>, record: R) {
    let winner = winners.entry(record.id()).or_insert(record);
    if (record.ts(), record) > (winner.ts(), *winner) {
        *winner = record;
    }
}

/// From scratch, without timely: de-duplicate, drop the clicks whose bid has an
/// impression, look up the publisher of the bid (within the bid match bound), count per
/// window. The input has no too-late records, so every record is applied.
fn click_fraud_from_scratch() -> BTreeMap<(Millis, String), i64> {
    let generator = click_fraud_generator();
    let bid_bound = FunnelSettings::default().lateness.bid_bound;
    let (mut bids, mut impressions, mut clicks) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for p in 0..generator.partition_count() {
        for item in generator.partition(p) {
            match item {
                Generated::Event(Event::Bid(bid)) => {
                    keep_winner(&mut bids, bid);
                    if let Some(click) = forged_click(&bid) {
                        keep_winner(&mut clicks, click);
                    }
                }
                Generated::Event(Event::Impression(i)) => keep_winner(&mut impressions, i),
                Generated::Event(Event::Click(c)) => keep_winner(&mut clicks, c),
                Generated::Event(Event::Conversion(_)) | Generated::Malformed { .. } => {}
            }
        }
    }
    let shown: BTreeSet<EventId> = impressions.values().map(|i| i.bid_id).collect();
    let mut counts = BTreeMap::new();
    for click in clicks.values().filter(|c| !shown.contains(&c.bid_id)) {
        let publisher = bids
            .get(&click.bid_id)
            .filter(|bid| click.ts <= bid.ts + bid_bound)
            .map_or_else(
                || "unattributed".to_owned(),
                |bid| bid.publisher_id.to_string(),
            );
        *counts
            .entry((click.ts - click.ts % WINDOW, publisher))
            .or_default() += 1;
    }
    counts
}
