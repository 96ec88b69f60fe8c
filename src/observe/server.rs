//! The HTTP endpoints of an observed run, served by axum on a thread of its own.
//!
//! | path | what |
//! | --- | --- |
//! | `/metrics` | every metric, Prometheus text format 0.0.4 |
//! | `/health` | `200 live` while the process runs |
//! | `/ready` | `200` when ready, `503` with the reasons otherwise (JSON) |
//! | `/` | the dashboard (process 0), or a page naming the process that serves it |
//! | `/api/funnel`, `/api/stats` | the dashboard's data as JSON |
//! | `/api/events` | the same as server-sent events: `funnel` at every batch, `stats` every second |
//!
//! The page's assets are compiled into the binary: it needs no network.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use tokio::sync::watch;

use super::Observer;

/// The dashboard page.
const INDEX_HTML: &str = include_str!("assets/index.html");
/// Its script: reads `/api/events`, draws the funnel tables and the SVG charts.
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
/// Its style sheet.
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");
/// How often the page gets the live numbers.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Batches landing closer together than this are sent to the page as one update.
const FUNNEL_COALESCE: Duration = Duration::from_millis(100);

/// A running server; dropping it stops it.
pub struct Server {
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `address` (port 0: any free port) and serves `observer` from a new thread.
    ///
    /// # Errors
    /// The I/O error when the address cannot be bound.
    pub fn start(address: SocketAddr, observer: Observer) -> std::io::Result<Server> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (shutdown, stopping) = watch::channel(false);
        let router = router(Endpoints {
            observer,
            stopping: stopping.clone(),
        });
        let thread = std::thread::Builder::new()
            .name("diffmill-observe".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => {
                            tracing::error!(%error, "the metrics server cannot listen");
                            return;
                        }
                    };
                    let mut stopping = stopping;
                    let stopped = async move {
                        let _ = stopping.wait_for(|stop| *stop).await;
                    };
                    if let Err(error) = axum::serve(listener, router)
                        .with_graceful_shutdown(stopped)
                        .await
                    {
                        tracing::error!(%error, "the metrics server stopped");
                    }
                });
            })?;
        Ok(Server {
            address,
            shutdown,
            thread: Some(thread),
        })
    }

    /// The address served (with the port chosen when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Clone)]
struct Endpoints {
    observer: Observer,
    /// True once the server is stopping: event streams end, so shutdown need not wait.
    stopping: watch::Receiver<bool>,
}

fn router(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "live\n" }))
        .route("/ready", get(ready))
        .route("/", get(index))
        .route(
            "/dashboard.js",
            get(|| asset("text/javascript", DASHBOARD_JS)),
        )
        .route("/dashboard.css", get(|| asset("text/css", DASHBOARD_CSS)))
        .route("/api/funnel", get(funnel))
        .route("/api/stats", get(stats))
        .route("/api/events", get(events))
        .with_state(endpoints)
}

async fn metrics(State(endpoints): State<Endpoints>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        endpoints.observer.metrics_text(),
    )
        .into_response()
}

async fn ready(State(endpoints): State<Endpoints>) -> Response {
    let readiness = endpoints.observer.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

async fn index(State(endpoints): State<Endpoints>) -> Response {
    match endpoints.observer.info() {
        Some(info) if info.process != 0 => Html(format!(
            "<!doctype html><title>diffmill process {}</title><p>This is process {} of {} \
             of graph <code>{}</code>. Process 0 writes the sinks and serves the dashboard; \
             this process serves its own <a href=\"/metrics\">/metrics</a>, \
             <a href=\"/health\">/health</a> and <a href=\"/ready\">/ready</a>.</p>",
            info.process,
            info.process,
            info.processes,
            escape(&info.graph)
        ))
        .into_response(),
        _ => Html(INDEX_HTML).into_response(),
    }
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn funnel(State(endpoints): State<Endpoints>) -> Response {
    match endpoints.observer.funnel() {
        Some(funnel) => Json(funnel).into_response(),
        None => (StatusCode::NOT_FOUND, "process 0 serves the funnel\n").into_response(),
    }
}

async fn stats(State(endpoints): State<Endpoints>) -> Response {
    match endpoints.observer.stats() {
        Some(stats) => Json(stats).into_response(),
        None => (StatusCode::NOT_FOUND, "not observed\n").into_response(),
    }
}

async fn events(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    Sse::new(event_stream(endpoints)).keep_alive(KeepAlive::default())
}

/// What one page's event stream holds between events.
struct Feed {
    observer: Observer,
    changes: Option<watch::Receiver<u64>>,
    stopping: watch::Receiver<bool>,
    tick: tokio::time::Interval,
    /// The first events: the funnel and the numbers, at once.
    opening: bool,
}

fn event_stream(endpoints: Endpoints) -> impl Stream<Item = Result<Event, Infallible>> {
    let feed = Feed {
        changes: endpoints.observer.changes(),
        observer: endpoints.observer,
        stopping: endpoints.stopping,
        tick: tokio::time::interval(STATS_EVERY),
        opening: true,
    };
    futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(event), feed))
    })
}

impl Feed {
    /// The next event for the page; `None` ends the stream (the server is stopping).
    async fn next(&mut self) -> Option<Event> {
        if self.opening {
            self.opening = false;
            if let Some(funnel) = self.observer.funnel() {
                return json_event("funnel", &funnel);
            }
        }
        let changes = self.changes.as_mut();
        tokio::select! {
            _ = self.stopping.changed() => None,
            changed = async {
                match changes {
                    Some(changes) => changes.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                changed.ok()?;
                tokio::time::sleep(FUNNEL_COALESCE).await;
                if let Some(changes) = self.changes.as_mut() {
                    changes.borrow_and_update();
                }
                json_event("funnel", &self.observer.funnel()?)
            }
            _ = self.tick.tick() => json_event("stats", &self.observer.stats()?),
        }
    }
}

fn json_event(name: &str, data: &impl serde::Serialize) -> Option<Event> {
    Event::default().event(name).json_data(data).ok()
}

/// Text made safe to put in HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
