// The diffmill dashboard: reads /api/events (server-sent events: `funnel` at every batch,
// `stats` every second) and draws the funnel of the recent windows of the chosen
// aggregate (its declared measures, and the ratios they allow), the charts, the
// partitions and the sinks. Plain DOM and SVG: no library, no network beyond the run.
"use strict";

const SHOWN_GROUPS = 12;
const CHART_POINTS = 120;

const state = { funnels: null, aggregate: 0, lastStats: null, dimension: "*", series: { throughput: [], lag: [], batch: [], window: [] } };

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
};
const count = (n) => Number(n).toLocaleString("en-US");
const money = (micros) => (micros / 1e6).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const percent = (num, den) => (den > 0 ? (100 * num / den).toFixed(2) + " %" : "–");
const utc = (ms) => new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
const hhmm = (ms) => new Date(ms).toISOString().slice(11, 16);

// The ratios shown when the measures they need are declared: [header, key, numerator,
// denominator, as money].
const RATIOS = [
  ["CTR", "ctr", "clicks", "impressions", false],
  ["CVR", "cvr", "conversions", "clicks", false],
  ["CPA", "cpa", "spend_micros", "conversions", true],
];
// The funnel's steps, drawn as bars when declared.
const STEPS = ["bids", "impressions", "clicks", "conversions"];

function cell(funnel, i, value) {
  const text = funnel.money[i] ? money(value) : count(value);
  return el("td", { "data-measure": funnel.measures[i], "data-value": String(value), class: value < 0 ? "negative" : "" }, text);
}

// The ratios the aggregate's measures allow.
function ratios(funnel) {
  return RATIOS.filter(([, , num, den]) => funnel.measures.includes(num) && funnel.measures.includes(den));
}

// Rows of a window grouped by the chosen dimension: the biggest groups (by the first
// measures), the rest summed as "other", unattributed kept apart, and the window's total.
function groups(funnel, window) {
  const dims = funnel.dims;
  const width = funnel.measures.length;
  const index = state.dimension === "*" ? -1 : Number(state.dimension);
  const byKey = new Map();
  let unattributed = null;
  const zero = () => new Array(width).fill(0);
  const total = { key: "__total__", label: "total", totals: zero(), corrected_in: null };
  for (const row of window.rows) {
    row.totals.forEach((v, i) => { total.totals[i] += v; });
    const isUnattributed = row.dims.length > 0 && row.dims.every((d) => d === "unattributed");
    const key = isUnattributed ? "unattributed" : index < 0 ? row.dims.join(" · ") : row.dims[index];
    let group = isUnattributed ? unattributed : byKey.get(key);
    if (!group) {
      group = { key, label: key, totals: zero(), corrected_in: null };
      if (isUnattributed) unattributed = group; else byKey.set(key, group);
    }
    row.totals.forEach((v, i) => { group.totals[i] += v; });
    if (row.corrected_in !== null && (group.corrected_in === null || row.corrected_in > group.corrected_in)) {
      group.corrected_in = row.corrected_in;
    }
  }
  const order = (a, b) => { for (const i of [1, 0, 2]) { if (i < width && b.totals[i] !== a.totals[i]) return b.totals[i] - a.totals[i]; } return 0; };
  const sorted = [...byKey.values()].sort(order);
  const shown = sorted.slice(0, SHOWN_GROUPS);
  const rest = sorted.slice(SHOWN_GROUPS);
  if (rest.length > 0) {
    const other = { key: "__other__", label: `other (${rest.length} ${index < 0 ? "groups" : dims[index] + " values"})`, totals: zero(), corrected_in: null };
    for (const g of rest) g.totals.forEach((v, i) => { other.totals[i] += v; });
    shown.push(other);
  }
  if (unattributed) shown.push(unattributed);
  return { shown, total };
}

function row(funnel, group, latestBatch, extraClass) {
  const value = (name) => group.totals[funnel.measures.indexOf(name)];
  const classes = [extraClass];
  if (group.key === "unattributed") classes.push("unattributed");
  if (group.corrected_in !== null) classes.push("corrected");
  if (group.corrected_in !== null && group.corrected_in === latestBatch) classes.push("fresh");
  return el("tr", { "data-key": group.key, class: classes.join(" ").trim() },
    el("td", {}, group.label),
    ...group.totals.map((v, i) => cell(funnel, i, v)),
    ...ratios(funnel).map(([, key, num, den, asMoney]) => el("td", { "data-measure": key },
      asMoney ? (value(den) > 0 ? money(value(num) / value(den)) : "–") : percent(value(num), value(den)))));
}

function funnelBars(funnel, total) {
  const steps = STEPS.filter((name) => funnel.measures.includes(name));
  const values = steps.map((name) => total.totals[funnel.measures.indexOf(name)]);
  const top = Math.max(...values, 1);
  const bars = el("div", { class: "bars" });
  steps.forEach((name, i) => {
    const bar = el("div", { class: "bar" });
    bar.style.width = `${Math.max(0, 100 * values[i] / top)}%`;
    bars.append(el("span", {}, name), bar, el("span", {}, count(values[i])));
  });
  return bars;
}

function renderFunnel() {
  if (!state.funnels || state.funnels.length === 0) return;
  const choice = $("aggregate");
  if (choice.options.length === 0) {
    state.funnels.forEach((f, i) => choice.append(el("option", { value: String(i) }, f.aggregate)));
    choice.value = String(state.aggregate);
    choice.hidden = state.funnels.length < 2;
  }
  const funnel = state.funnels[Math.min(state.aggregate, state.funnels.length - 1)];
  const select = $("dimension");
  if (select.options.length === 0) {
    select.append(el("option", { value: "*" }, funnel.dims.length ? funnel.dims.join(" × ") : "all"));
    funnel.dims.forEach((d, i) => select.append(el("option", { value: String(i) }, d)));
    select.value = state.dimension;
  }
  $("batch").textContent = (funnel.batch === null ? "no batch yet"
    : `batch ${funnel.batch} · ${funnel.complete ? "input complete" : "frontier " + utc(funnel.frontier)}`)
    + (funnel.resumed_at === null ? "" : ` · resumed from a checkpoint at ${utc(funnel.resumed_at)}: earlier windows are not shown`);
  const windows = $("windows");
  windows.replaceChildren();
  if (funnel.windows.length === 0) windows.append(el("p", { class: "muted" }, "No rows yet."));
  for (const window of funnel.windows) {
    const { shown, total } = groups(funnel, window);
    const head = el("tr", {}, el("th", {}, state.dimension === "*" ? funnel.dims.join(" · ") : funnel.dims[Number(state.dimension)]),
      ...funnel.measures.map((h) => el("th", {}, h)), ...ratios(funnel).map(([h]) => el("th", {}, h)));
    const body = el("tbody", {}, ...shown.map((g) => row(funnel, g, funnel.batch, "")), row(funnel, total, null, "total"));
    windows.append(el("article", { class: `window ${window.phase}`, "data-window-start": String(window.start), "data-phase": window.phase },
      el("h3", {}, `${utc(window.start)} – ${hhmm(window.end)} UTC`, el("span", { class: `phase ${window.phase}` }, window.phase),
        el("span", { class: "muted" }, ` updated in batch ${window.updated_in}`)),
      funnelBars(funnel, total),
      el("table", {}, el("thead", {}, head), body)));
  }
  const corrections = $("corrections");
  corrections.tHead.replaceChildren(el("tr", {}, ...["batch", "window", "dims", ...funnel.measures.map((m) => `Δ ${m}`)].map((h) => el("th", {}, h))));
  corrections.tBodies[0].replaceChildren(...funnel.corrections.map((c) => el("tr", { class: c.batch === funnel.batch ? "fresh" : "" },
    el("td", {}, c.batch), el("td", {}, utc(c.window_start)), el("td", {}, c.dims.join(" · ")),
    ...c.delta.map((v, i) => cell(funnel, i, v)))));
}

function push(series, value) {
  series.push(value);
  if (series.length > CHART_POINTS) series.shift();
}

function chart(id, lines) {
  const svg = $(id);
  const values = lines.flat().filter((v) => v !== null && Number.isFinite(v));
  const top = Math.max(...values, 0) * 1.1 || 1;
  const ns = "http://www.w3.org/2000/svg";
  const node = (tag, attrs) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    return n;
  };
  svg.replaceChildren();
  for (const y of [0, 60, 119]) svg.append(node("line", { x1: 0, x2: 360, y1: y, y2: y, class: "grid" }));
  const label = node("text", { x: 2, y: 10 });
  label.textContent = top >= 100 ? count(Math.round(top)) : top.toFixed(2);
  svg.append(label);
  lines.forEach((series, s) => {
    const points = series.map((v, i) => (v === null || !Number.isFinite(v) ? null
      : `${(360 * i / (CHART_POINTS - 1)).toFixed(1)},${(119 - 118 * v / top).toFixed(1)}`)).filter(Boolean);
    if (points.length > 0) svg.append(node("polyline", { points: points.join(" "), class: `series s${s}` }));
  });
}

function renderStats(stats) {
  const previous = state.lastStats;
  const read = Object.values(stats.read).reduce((a, b) => a + b, 0);
  if (previous) {
    const before = Object.values(previous.read).reduce((a, b) => a + b, 0);
    push(state.series.throughput, (read - before) / Math.max(0.001, (stats.now - previous.now) / 1000));
  }
  const lag = stats.complete ? 0 : stats.frontier === null ? null : (stats.now - stats.frontier) / 1000;
  push(state.series.lag, lag);
  push(state.series.batch, stats.batch_latency);
  push(state.series.window, stats.window_latency);
  state.lastStats = stats;
  chart("chart-throughput", [state.series.throughput]);
  chart("chart-lag", [state.series.lag]);
  chart("chart-latency", [state.series.batch, state.series.window]);
  const last = (series) => series.length ? series[series.length - 1] : null;
  $("last-throughput").textContent = last(state.series.throughput) === null ? "" : `${count(Math.round(last(state.series.throughput)))} records/s`;
  $("last-lag").textContent = lag === null ? "frontier not yet advanced" : `${lag.toFixed(1)} s`;
  $("last-latency").textContent = `batch ${stats.batch_latency === null ? "–" : stats.batch_latency.toFixed(3)} s · window ${stats.window_latency === null ? "–" : stats.window_latency.toFixed(3)} s`;

  $("graph").textContent = stats.info.graph;
  $("run").textContent = `process ${stats.info.process} of ${stats.info.processes} · ${stats.info.workers} workers per process`;
  const ready = $("readiness");
  ready.className = `pill ${stats.readiness.ready ? "ready" : "not-ready"}`;
  ready.textContent = stats.readiness.ready ? "ready" : `not ready: ${stats.readiness.reasons.join("; ")}`;
  const numbers = [
    ["records read", count(read)], ...Object.entries(stats.read).map(([s, n]) => [`${s} read`, count(n)]),
    ["late", count(stats.rejected.late)], ["too late", count(stats.rejected.too_late)],
    ["dead-lettered", count(stats.rejected.dead_lettered)], ["duplicates", count(stats.rejected.duplicate)],
    ["frontier", stats.complete ? "complete" : stats.frontier === null ? "–" : utc(stats.frontier)],
    ["batches", count(stats.batches)], ["held in state", count(stats.state_records)],
  ];
  $("numbers").replaceChildren(...numbers.map(([name, value]) => el("div", { class: "number" }, name, el("b", {}, value))));

  const open = stats.partitions.filter((p) => !p.done);
  const lead = Math.max(...open.map((p) => p.watermark), 0);
  const least = Math.min(...open.map((p) => p.watermark));
  const span = Math.max(1, ...open.map((p) => lead - p.watermark));
  $("partitions").tBodies[0].replaceChildren(...stats.partitions.map((p) => {
    const behind = p.done ? null : (lead - p.watermark) / 1000;
    const bar = el("span", { class: "lagbar" });
    bar.style.width = behind === null ? "0" : `${(6 * (lead - p.watermark) / span).toFixed(2)}em`;
    return el("tr", { "data-partition": p.name },
      el("td", {}, p.name), el("td", {}, p.done ? "done" : p.watermark === 0 ? "–" : utc(p.watermark)),
      el("td", {}, behind === null ? "" : bar, behind === null ? "" : `${behind.toFixed(1)} s${p.watermark === least && open.length > 1 ? " · holds the frontier" : ""}`));
  }));
  $("sinks").tBodies[0].replaceChildren(...stats.sinks.map((s) => el("tr", {},
    el("td", {}, s.name), el("td", { class: s.failing ? "failing" : "" }, s.failing ? "failing, retrying" : "ok"), el("td", {}, count(s.retries)))));
}

$("aggregate").addEventListener("change", (event) => {
  state.aggregate = Number(event.target.value);
  state.dimension = "*";
  $("dimension").replaceChildren();
  renderFunnel();
});

$("dimension").addEventListener("change", (event) => {
  state.dimension = event.target.value;
  renderFunnel();
});

const events = new EventSource("/api/events");
events.addEventListener("funnel", (event) => {
  state.funnels = JSON.parse(event.data);
  renderFunnel();
  const first = state.funnels[0];
  document.body.dataset.batch = !first || first.batch === null ? "" : String(first.batch);
});
events.addEventListener("stats", (event) => renderStats(JSON.parse(event.data)));
events.addEventListener("error", () => {
  const ready = $("readiness");
  ready.className = "pill not-ready";
  ready.textContent = "reconnecting: the run may have ended";
});
