//! The dashboard (issue #15) in a real headless Chromium, driven over WebDriver
//! (chromedriver): during a run, the page's numbers for a final window equal the sink's
//! totals for it, and a correction (a late bid moving a click out of *unattributed*)
//! shows on the page after it lands.
//!
//! Needs `DIFFMILL_TEST_CHROMIUM` and `DIFFMILL_TEST_CHROMEDRIVER` (exported by
//! `.ci/services/chromium.sh`); without them it says why and passes, except under
//! `CI=true`, where it fails.

mod support;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diffmill::connectors::MemorySink;
use diffmill::declare::{FunnelSettings, KeyLayout, Measures};
use diffmill::event::Millis;
use diffmill::observe::server::Server;
use diffmill::observe::{Observer, RunInfo};
use diffmill::runtime::Funnel;
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

use support::feed::feed;
use support::services::service;
use support::{bid, click, impression, settings};

const WINDOW: Millis = 60_000;
const DEADLINE: Duration = Duration::from_secs(60);

/// The sink's totals of window `start`, keyed as the page keys rows (the campaign, or
/// `unattributed`), plus `__total__`.
fn sink_totals(sink: &MemorySink, dims: &KeyLayout, start: Millis) -> BTreeMap<String, [i64; 6]> {
    let mut totals: BTreeMap<String, Measures> = BTreeMap::new();
    for row in sink.batches().iter().flat_map(|b| b.rows.iter()) {
        if row.window_start != start {
            continue;
        }
        let key = dims.texts(&row.dims).remove(0);
        for key in [key, "__total__".to_owned()] {
            differential_dataflow::difference::Semigroup::plus_equals(
                totals.entry(key).or_default(),
                &row.delta,
            );
        }
    }
    totals
        .into_iter()
        .map(|(k, m)| (k, <[i64; 6]>::try_from(m.values(6)).expect("six measures")))
        .collect()
}

/// What the page shows of window `start`: its phase, and each row's six measures as
/// the cells hold them, keyed by the row's `data-key`.
async fn page_window(
    client: &Client,
    start: Millis,
) -> Option<(String, BTreeMap<String, [i64; 6]>)> {
    let script = r#"
        const article = document.querySelector(`article[data-window-start="${arguments[0]}"]`);
        if (!article) return null;
        const rows = {};
        for (const tr of article.querySelectorAll("tbody tr")) {
            rows[tr.dataset.key] = [...tr.querySelectorAll("td[data-value]")].map((td) => Number(td.dataset.value));
        }
        return { phase: article.dataset.phase, rows };
    "#;
    let found = client
        .execute(script, vec![json!(start)])
        .await
        .expect("the script runs");
    let phase = found.get("phase")?.as_str()?.to_owned();
    let rows = found
        .get("rows")?
        .as_object()?
        .iter()
        .map(|(key, values)| {
            let values: Vec<i64> = values
                .as_array()
                .expect("an array")
                .iter()
                .map(|v| v.as_i64().expect("a number"))
                .collect();
            (
                key.clone(),
                <[i64; 6]>::try_from(values).expect("six measures"),
            )
        })
        .collect();
    Some((phase, rows))
}

/// Polls the page until `check` accepts window `start`, or panics with `what`.
async fn wait_for_page(
    client: &Client,
    start: Millis,
    what: &str,
    check: impl Fn(&str, &BTreeMap<String, [i64; 6]>) -> bool,
) -> BTreeMap<String, [i64; 6]> {
    let started = Instant::now();
    loop {
        if let Some((phase, rows)) = page_window(client, start).await {
            if check(&phase, &rows) {
                return rows;
            }
        }
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting for the page to show {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn wait_for_sink(sink: &MemorySink, what: &str, check: impl Fn(&MemorySink) -> bool) {
    let started = Instant::now();
    while !check(sink) {
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting for the sink: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

/// chromedriver on a free port, killed when dropped.
struct Driver(Child, u16);

impl Driver {
    fn start(chromedriver: &str) -> Driver {
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while TcpStream::connect(address).is_err() {
            assert!(started.elapsed() < DEADLINE, "chromedriver does not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver(child, port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser(chromium: &str, driver: &Driver, profile: &std::path::Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--window-size=1400,1600",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::native()
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("a WebDriver session with Chromium")
}

#[test]
fn the_page_shows_final_windows_and_corrections_as_they_land() {
    let test = "the_page_shows_final_windows_and_corrections_as_they_land";
    let (Some(chromium), Some(chromedriver)) = (
        service(test, "DIFFMILL_TEST_CHROMIUM"),
        service(test, "DIFFMILL_TEST_CHROMEDRIVER"),
    ) else {
        return;
    };
    // One-minute windows by campaign, final a minute after their end.
    let settings: FunnelSettings = settings(WINDOW, WINDOW, 10 * WINDOW, 10 * WINDOW, 0);
    let observer = Observer::new(
        RunInfo {
            graph: "dashboard_test".to_owned(),
            process: 0,
            processes: 1,
            workers: 2,
        },
        &settings,
    );
    let server = Server::start(([127, 0, 0, 1], 0).into(), observer.clone()).expect("a server");
    let (source, mut feeder) = feed();
    let sink = MemorySink::new();
    let dims = settings.aggregates[0].dims.clone();
    let funnel = Funnel::new(settings)
        .source(source)
        .sink(sink.clone())
        .workers(2)
        .observe(observer);
    let run = std::thread::spawn(move || funnel.run());

    // Window 0: three bids of campaigns 1, 1 and 2, their impressions, one click.
    // Window 1: a click whose bid has not arrived (unattributed).
    // Then a bid in window 2 moves the watermark past window 0's end + lateness.
    for (id, campaign) in [(1, 1), (2, 1), (3, 2)] {
        feeder.push(bid(id, 1_000 * id, campaign));
        feeder.push(impression(100 + id, id, 2_000 * id, 250 * id as i64));
    }
    feeder.push(click(201, 1, 5_000));
    feeder.push(click(202, 50, 70_000));
    feeder.push(bid(4, 125_000, 3));
    wait_for_sink(&sink, "window 0 final", |s| {
        s.batches().iter().any(|b| b.finalized.contains(&0))
    });

    let profile = tempfile::tempdir().expect("a browser profile");
    let driver = Driver::start(&chromedriver);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let client = browser(&chromium, &driver, profile.path()).await;
        client
            .goto(&format!("http://{}/", server.address()))
            .await
            .expect("the dashboard loads");

        // The final window: the page's numbers equal the sink's totals.
        let expected = sink_totals(&sink, &dims, 0);
        assert_eq!(expected["__total__"], [3, 3, 1, 0, 1_500, 0]);
        let shown = wait_for_page(&client, 0, "window 0 final", |phase, _| phase == "final").await;
        assert_eq!(shown, expected, "window 0 on the page and in the sink");

        // Window 1 is closed, its click unattributed.
        let before = wait_for_page(&client, WINDOW, "window 1 closed", |phase, rows| {
            phase == "closed" && rows.contains_key("unattributed")
        })
        .await;
        assert_eq!(before["unattributed"][2], 1);
        assert_eq!(before, sink_totals(&sink, &dims, WINDOW));

        // The late bid of the click arrives: a correction moves the click to campaign 7.
        feeder.push(bid(50, 65_000, 7));
        feeder.push(bid(5, 126_000, 3));
        let after = wait_for_page(&client, WINDOW, "the correction", |phase, rows| {
            phase == "correction" && rows.get("7").is_some_and(|r| r[2] == 1)
        })
        .await;
        assert_eq!(after["unattributed"][2], 0, "the click left unattributed");
        assert_eq!(after["7"], [1, 0, 1, 0, 0, 0]);
        assert_eq!(after, sink_totals(&sink, &dims, WINDOW));
        let corrected = client
            .execute(
                "return [...document.querySelectorAll('#corrections tbody tr')].length",
                vec![],
            )
            .await
            .expect("the script runs");
        assert!(corrected.as_u64().is_some_and(|n| n >= 2), "{corrected:?}");
        let marked = client
            .execute(
                "return document.querySelector(`article[data-window-start=\"60000\"] tr[data-key=\"7\"]`).classList.contains('corrected')",
                vec![],
            )
            .await
            .expect("the script runs");
        assert_eq!(marked, Value::Bool(true), "the corrected row is marked");

        let png = client.screenshot().await.expect("a screenshot");
        let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-test.png");
        std::fs::write(&shot, png).expect("the screenshot writes");
        client.close().await.expect("the browser closes");
    });

    feeder.end();
    let report = run
        .join()
        .expect("the run thread")
        .expect("the run completes");
    assert!(report.accounting.balances());
    drop(server);
}
