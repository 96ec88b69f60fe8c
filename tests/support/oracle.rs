//! A from-scratch model of the funnel, written from `docs/semantics.md` alone.
//!
//! Nothing here uses timely, differential or the dataflow's operators, projections or
//! measure types: the oracle replays each partition to classify its records (§1, with the
//! bounds on dimensions and the overflow budget), forms the dedup groups (§2), and computes
//! the value of every aggregate at any time by brute force (§3-4), reading the declared
//! fields of each record by name, grouping by their text, evaluating filters it parses
//! itself with `sqlparser`, and adding measures as `i128`. It is meant to be obviously
//! correct on small inputs, not fast.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use diffmill::connectors::Arrival;
use diffmill::declare::{Beyond, FunnelSettings, MeasureKind, StreamSchema, Value};
use diffmill::event::{DeadLetter, EventId, Invalid, Millis, Origin, Record, StreamKind, TooLate};
use diffmill::format::csv_line;
use diffmill::runtime::Accounting;
use sqlparser::ast::{BinaryOperator, Expr, InTarget, UnaryOperator, Value as Literal};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// The overflow budget of docs/semantics.md §1.
pub const OVERFLOW_BUDGET: u128 = 1 << 46;

/// An aggregate row's identity: the aggregate's position, the window start, and the text
/// of each dim (`unattributed` for all dims of an unattributed row, `other` for a value
/// beyond its dimension's bound).
pub type RowKey = (usize, Millis, Vec<String>);

/// The aggregates at one time: the measures of every row, in the aggregate's order.
pub type Aggregates = BTreeMap<RowKey, Vec<i128>>;

/// What §1 decides for one valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// The partition watermark had reached the record's release time: it never enters.
    TooLate,
    /// The record enters the dataflow at `entry`.
    Entered {
        /// `max(ts, watermark)`.
        entry: Millis,
        /// `ts < watermark`.
        late: bool,
        /// A parent whose own windows were all final when it arrived.
        attribution_only: bool,
    },
}

/// One valid record of a partition, with what §1 decides for it.
#[derive(Clone, Debug)]
pub struct Classified {
    /// Index of its partition.
    pub partition: usize,
    /// Its position in the partition, as given by the arrival.
    pub position: u64,
    /// The record.
    pub record: Record,
    /// Bit `i`: the record's (a bid's) value of bounded dimension `i` is beyond its bound,
    /// so it counts as `other`.
    pub others: u8,
    /// The partition's watermark just before the record.
    pub watermark: Millis,
    /// Too late, or entered.
    pub fate: Fate,
}

/// A dedup group: records of one stream with one id, present over one span of time.
#[derive(Clone, Debug)]
pub struct Group {
    /// The stream.
    pub kind: StreamKind,
    /// The shared id.
    pub id: EventId,
    /// Indices into [`Oracle::records`], in the order they were considered.
    pub members: Vec<usize>,
}

/// The oracle's view of one run: every record's fate, the dedup groups, the accounting.
pub struct Oracle {
    settings: FunnelSettings,
    filters: Vec<Vec<Option<Condition>>>,
    /// Every valid record, partition by partition, in arrival order.
    pub records: Vec<Classified>,
    /// The watermark of each partition after each of its arrivals (dead letters included).
    pub watermarks: Vec<Vec<Millis>>,
    /// The dedup groups of all streams.
    pub groups: Vec<Group>,
    dead_letters: Vec<DeadLetter>,
    accounting: Accounting,
}

impl Oracle {
    /// Replays `partitions` under `settings`.
    pub fn new(settings: &FunnelSettings, partitions: &[Vec<Arrival>]) -> Oracle {
        let filters = settings
            .aggregates
            .iter()
            .map(|a| {
                a.measures
                    .iter()
                    .map(|m| {
                        m.filter
                            .as_ref()
                            .map(|f| Condition::parse(f.text()).expect("the filter parses"))
                    })
                    .collect()
            })
            .collect();
        let mut oracle = Oracle {
            settings: settings.clone(),
            filters,
            records: Vec::new(),
            watermarks: Vec::new(),
            groups: Vec::new(),
            dead_letters: Vec::new(),
            accounting: Accounting::default(),
        };
        for (partition, arrivals) in partitions.iter().enumerate() {
            oracle.replay_partition(partition, arrivals);
        }
        oracle.form_groups();
        oracle
    }

    fn schema(&self, kind: StreamKind) -> &StreamSchema {
        self.settings.schema.stream(kind)
    }

    /// `(W, L)` of aggregate `a`.
    fn window(&self, a: usize) -> (Millis, Millis) {
        let w = self.settings.aggregates[a].window;
        (w.length, w.allowed_lateness)
    }

    /// `start(ts)` in aggregate `a`.
    pub fn start(&self, a: usize, ts: Millis) -> Millis {
        ts - ts % self.window(a).0
    }

    /// `final_at(ts)` in aggregate `a`: `start + W + L`.
    pub fn final_at_in(&self, a: usize, ts: Millis) -> Millis {
        let (w, l) = self.window(a);
        self.start(a, ts).saturating_add(w).saturating_add(l)
    }

    /// The first time at which every window holding `ts` is final.
    pub fn final_at(&self, ts: Millis) -> Millis {
        (0..self.settings.aggregates.len())
            .map(|a| self.final_at_in(a, ts))
            .max()
            .unwrap_or(ts)
    }

    /// `release(r) = final_at(reach(r))`.
    pub fn release(&self, record: &Record) -> Millis {
        let (bb, bc) = (
            self.settings.lateness.bid_bound,
            self.settings.lateness.click_bound,
        );
        let reach = match record.stream {
            StreamKind::Impression | StreamKind::Conversion => record.ts,
            StreamKind::Click => record.ts.saturating_add(bc),
            StreamKind::Bid => record.ts.saturating_add(bb).saturating_add(bc),
        };
        self.final_at(reach)
    }

    fn dead_letter(&mut self, partition: usize, position: u64, record: &Record, reason: Invalid) {
        let counts = self.accounting.stream_mut(record.stream);
        counts.read += 1;
        counts.dead_lettered += 1;
        let raw = csv_line(self.schema(record.stream), record);
        self.dead_letters.push(DeadLetter {
            stream: record.stream,
            origin: Origin {
                source: format!("memory/{partition}"),
                position,
            },
            raw,
            reason: reason.to_string(),
        });
    }

    fn replay_partition(&mut self, partition: usize, arrivals: &[Arrival]) {
        let mut watermark: Millis = 0;
        let mut entered_any = false;
        let mut after = Vec::with_capacity(arrivals.len());
        // Per bounded dimension: the values this partition kept (§1 step 2a).
        let mut kept: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        // |sum| per (stream, field, window start of the longest aggregate) (§1 step 2b).
        let mut spent: BTreeMap<(StreamKind, String, Millis), u128> = BTreeMap::new();
        let longest = (0..self.settings.aggregates.len())
            .max_by_key(|&a| self.window(a).0)
            .unwrap_or(0);
        for arrival in arrivals {
            match arrival {
                Arrival::DeadLetter(dead) => {
                    let counts = self.accounting.stream_mut(dead.stream);
                    counts.read += 1;
                    counts.dead_lettered += 1;
                    self.dead_letters.push(dead.clone());
                }
                Arrival::Event { record, position } => {
                    let ts = record.ts;
                    // Step 0: too far ahead of the watermark.
                    let ahead_ms = ts.saturating_sub(watermark);
                    if entered_any && ahead_ms > self.settings.max_future_skew {
                        let schema = self.schema(record.stream);
                        let field = schema.fields()[schema.time_index()].name.clone();
                        let reason = Invalid::TooFarInFuture {
                            field,
                            ts,
                            ahead_ms,
                        };
                        self.dead_letter(partition, *position, record, reason);
                        after.push(watermark);
                        continue;
                    }
                    let fate = self.classify(record, watermark);
                    let mut others = 0u8;
                    if let Fate::Entered {
                        attribution_only, ..
                    } = fate
                    {
                        let mut rejected = None;
                        let mut fresh = Vec::new();
                        if record.stream == StreamKind::Bid {
                            for (i, bound) in self.settings.bounds.iter().enumerate() {
                                let value = self.text(record, &bound.name);
                                let set = kept.entry(bound.name.clone()).or_default();
                                if set.contains(&value) {
                                    continue;
                                }
                                if set.len() < bound.max_values {
                                    fresh.push((bound.name.clone(), value));
                                } else if bound.beyond == Beyond::Other {
                                    others |= 1 << i;
                                } else {
                                    rejected.get_or_insert(Invalid::TooManyValues {
                                        field: bound.name.clone(),
                                        value,
                                        max: bound.max_values,
                                    });
                                }
                            }
                        }
                        let mut spend = Vec::new();
                        if rejected.is_none() && !attribution_only {
                            let start = self.start(longest, ts);
                            for field in self.summed(record.stream) {
                                let value = self.int(record, &field);
                                let key = (record.stream, field.clone(), start);
                                let total =
                                    spent.get(&key).copied().unwrap_or(0) + value.unsigned_abs();
                                if total > OVERFLOW_BUDGET {
                                    rejected = Some(Invalid::SumOverflow {
                                        field,
                                        value: value as i64,
                                        window_start: start,
                                        budget: OVERFLOW_BUDGET as u64,
                                    });
                                    break;
                                }
                                spend.push((key, total));
                            }
                        }
                        if let Some(reason) = rejected {
                            self.dead_letter(partition, *position, record, reason);
                            after.push(watermark);
                            continue;
                        }
                        for (name, value) in fresh {
                            kept.entry(name).or_default().insert(value);
                        }
                        spent.extend(spend);
                    }
                    entered_any |= matches!(fate, Fate::Entered { .. });
                    let counts = self.accounting.stream_mut(record.stream);
                    counts.read += 1;
                    match fate {
                        Fate::TooLate => counts.too_late += 1,
                        Fate::Entered {
                            late,
                            attribution_only,
                            ..
                        } => {
                            counts.late += u64::from(late);
                            counts.attribution_only += u64::from(attribution_only);
                        }
                    }
                    self.records.push(Classified {
                        partition,
                        position: *position,
                        record: *record,
                        others,
                        watermark,
                        fate,
                    });
                    if matches!(fate, Fate::Entered { .. }) {
                        watermark = watermark.max(ts.saturating_sub(self.settings.max_disorder));
                    }
                }
            }
            after.push(watermark);
        }
        self.watermarks.push(after);
    }

    /// The names of the fields of `kind` that some sum measure adds up.
    fn summed(&self, kind: StreamKind) -> Vec<String> {
        let mut fields = Vec::new();
        for aggregate in self.settings.aggregates.iter() {
            for measure in aggregate.measures.iter().filter(|m| m.stream == kind) {
                if let MeasureKind::Sum { field } = measure.kind {
                    let name = self.schema(kind).fields()[field].name.clone();
                    if !fields.contains(&name) {
                        fields.push(name);
                    }
                }
            }
        }
        fields
    }

    fn classify(&self, record: &Record, watermark: Millis) -> Fate {
        if watermark >= self.release(record) {
            return Fate::TooLate;
        }
        let is_parent = matches!(record.stream, StreamKind::Bid | StreamKind::Click);
        Fate::Entered {
            entry: record.ts.max(watermark),
            late: record.ts < watermark,
            attribution_only: is_parent && watermark >= self.final_at(record.ts),
        }
    }

    /// The value of the field `name` of `record`.
    fn value(&self, record: &Record, name: &str) -> Value {
        let schema = self.schema(record.stream);
        let index = schema.index(name).expect("a declared field");
        schema.get(record, index)
    }

    /// The text of the field `name` of `record`.
    fn text(&self, record: &Record, name: &str) -> String {
        self.value(record, name).to_string()
    }

    /// The field `name` of `record` as an integer.
    fn int(&self, record: &Record, name: &str) -> i128 {
        match self.value(record, name) {
            Value::Id(v) | Value::Timestamp(v) => i128::from(v),
            Value::Int(v) | Value::Money(v) => i128::from(v),
            other => panic!("{name} is not a number: {other:?}"),
        }
    }

    /// The parent's id of a child record.
    fn parent(&self, record: &Record) -> EventId {
        let schema = self.schema(record.stream);
        let index = schema.parent_index().expect("a child stream");
        match schema.get(record, index) {
            Value::Id(id) => id,
            other => panic!("a parent id: {other:?}"),
        }
    }

    /// Groups the entered records of each stream by id, considering them in order of entry
    /// time then payload; a record entering at or after the release time of its id's
    /// current group starts a new group.
    fn form_groups(&mut self) {
        let mut entered: Vec<(Millis, Record, usize)> = self
            .records
            .iter()
            .enumerate()
            .filter_map(|(index, r)| self.entry(index).map(|entry| (entry, r.record, index)))
            .collect();
        entered.sort();
        let mut current: BTreeMap<(StreamKind, EventId), usize> = BTreeMap::new();
        for (entry, record, index) in entered {
            let key = (record.stream, record.id);
            let joins = current.get(&key).copied().filter(|&g| {
                let winner = self.winner(&self.groups[g], Millis::MAX);
                winner.is_some_and(|w| self.release(&self.records[w].record) > entry)
            });
            match joins {
                Some(g) => {
                    self.groups[g].members.push(index);
                    self.accounting.stream_mut(record.stream).duplicate += 1;
                }
                None => {
                    current.insert(key, self.groups.len());
                    self.groups.push(Group {
                        kind: record.stream,
                        id: record.id,
                        members: vec![index],
                    });
                    self.accounting.stream_mut(record.stream).applied += 1;
                }
            }
        }
        for group in &self.groups {
            let payloads: BTreeSet<(Record, u8)> = group
                .members
                .iter()
                .map(|&m| (self.records[m].record, self.records[m].others))
                .collect();
            self.accounting.stream_mut(group.kind).conflicting += payloads.len() as u64 - 1;
        }
    }

    /// The entry time of record `index`, or `None` when it was too late.
    pub fn entry(&self, index: usize) -> Option<Millis> {
        match self.records[index].fate {
            Fate::TooLate => None,
            Fate::Entered { entry, .. } => Some(entry),
        }
    }

    /// The winner of `group` among its members entered at or before `t`: the greatest
    /// `(ts, payload)` (payload: the fields in declaration order, then the `other` marks).
    pub fn winner(&self, group: &Group, t: Millis) -> Option<usize> {
        group
            .members
            .iter()
            .copied()
            .filter(|&m| self.entry(m).is_some_and(|entry| entry <= t))
            .max_by(|&a, &b| self.rank(a).cmp(&self.rank(b)))
    }

    fn rank(&self, index: usize) -> (Millis, Record, u8) {
        let r = &self.records[index];
        (r.record.ts, r.record, r.others)
    }

    /// The present records of stream `kind` at time `t`, by id: each group's winner among
    /// its members entered by `t`, unless that winner's release time has come.
    fn present(&self, kind: StreamKind, t: Millis) -> BTreeMap<EventId, usize> {
        let mut present = BTreeMap::new();
        for group in self.groups.iter().filter(|g| g.kind == kind) {
            if let Some(winner) = self
                .winner(group, t)
                .filter(|&w| t < self.release(&self.records[w].record))
            {
                let previous = present.insert(group.id, winner);
                assert!(
                    previous.is_none(),
                    "two groups of {kind} {} at {t}",
                    group.id
                );
            }
        }
        present
    }

    /// The texts of aggregate `a`'s dims for the bid at `bid` (in the bid's field order).
    fn dims_of(&self, a: usize, bid: usize) -> Vec<String> {
        let bids = self.schema(StreamKind::Bid);
        let classified = &self.records[bid];
        let mut grouped: Vec<(usize, String)> = self.settings.aggregates[a]
            .dims
            .names()
            .into_iter()
            .map(|name| (bids.index(name).expect("a bid field"), name.to_owned()))
            .collect();
        grouped.sort();
        grouped
            .into_iter()
            .map(|(_, name)| {
                let bound = self.settings.bounds.iter().position(|b| b.name == name);
                if bound.is_some_and(|i| classified.others & (1 << i) != 0) {
                    "other".to_owned()
                } else {
                    self.text(&classified.record, &name)
                }
            })
            .collect()
    }

    /// The value of every aggregate at time `t` (§3-4), zero entries dropped.
    pub fn value_at(&self, t: Millis) -> Aggregates {
        let bounds = &self.settings.lateness;
        let bids = self.present(StreamKind::Bid, t);
        let clicks = self.present(StreamKind::Click, t);
        // The bid (record index) a child at `child_ts` with parent `bid_id` is attributed to.
        let bid_of = |bid_id: EventId, child_ts: Millis| {
            bids.get(&bid_id)
                .copied()
                .filter(|&b| child_ts <= self.records[b].record.ts.saturating_add(bounds.bid_bound))
        };
        // (record index, attributed bid) of every present record.
        let mut attributed: Vec<(usize, Option<usize>)> = Vec::new();
        attributed.extend(bids.values().map(|&b| (b, Some(b))));
        for kind in [StreamKind::Impression, StreamKind::Click] {
            for &i in self.present(kind, t).values() {
                let r = &self.records[i].record;
                attributed.push((i, bid_of(self.parent(r), r.ts)));
            }
        }
        for &i in self.present(StreamKind::Conversion, t).values() {
            let conv = &self.records[i].record;
            let bid = clicks.get(&self.parent(conv)).copied().and_then(|c| {
                let click = &self.records[c].record;
                (conv.ts <= click.ts.saturating_add(bounds.click_bound))
                    .then(|| bid_of(self.parent(click), click.ts))
                    .flatten()
            });
            attributed.push((i, bid));
        }
        let mut aggregates = Aggregates::new();
        let mut distinct: BTreeMap<(RowKey, usize), BTreeSet<String>> = BTreeMap::new();
        for (a, aggregate) in self.settings.aggregates.iter().enumerate() {
            let n = aggregate.measures.len();
            for &(index, bid) in &attributed {
                let record = &self.records[index].record;
                let dims = match bid {
                    Some(bid) => self.dims_of(a, bid),
                    None => vec!["unattributed".to_owned(); aggregate.dims.names().len()],
                };
                let key = (a, self.start(a, record.ts), dims);
                for (j, measure) in aggregate.measures.iter().enumerate() {
                    if measure.stream != record.stream {
                        continue;
                    }
                    if let Some(condition) = &self.filters[a][j] {
                        if !condition.holds(self, record) {
                            continue;
                        }
                    }
                    let schema = self.schema(record.stream);
                    match measure.kind {
                        MeasureKind::Count => {
                            aggregates.entry(key.clone()).or_insert_with(|| vec![0; n])[j] += 1
                        }
                        MeasureKind::Sum { field } => {
                            let name = &schema.fields()[field].name;
                            let value = self.int(record, name);
                            aggregates.entry(key.clone()).or_insert_with(|| vec![0; n])[j] += value
                        }
                        MeasureKind::CountDistinct { field } => {
                            let name = &schema.fields()[field].name;
                            distinct
                                .entry((key.clone(), j))
                                .or_default()
                                .insert(self.text(record, name));
                        }
                    }
                }
            }
        }
        for ((key, j), values) in distinct {
            let n = self.settings.aggregates[key.0].measures.len();
            aggregates.entry(key).or_insert_with(|| vec![0; n])[j] += values.len() as i128;
        }
        aggregates.retain(|_, m| m.iter().any(|v| *v != 0));
        aggregates
    }

    /// Every `(aggregate, window start)` an entered record counts in.
    pub fn windows(&self) -> BTreeSet<(usize, Millis)> {
        let mut windows = BTreeSet::new();
        for i in (0..self.records.len()).filter(|&i| self.entry(i).is_some()) {
            for a in 0..self.settings.aggregates.len() {
                windows.insert((a, self.start(a, self.records[i].record.ts)));
            }
        }
        windows
    }

    /// For every window, its value at `min(frontier, end + L) − 1` (§5): what the rows of
    /// all batches up to `frontier` must sum to. `None` is the complete input.
    pub fn expected_prefix(&self, frontier: Option<Millis>) -> Aggregates {
        let mut by_time: BTreeMap<Millis, Vec<(usize, Millis)>> = BTreeMap::new();
        for (a, window) in self.windows() {
            let final_at = self.final_at_in(a, window);
            let t = frontier.map_or(final_at, |f| f.min(final_at));
            if t > 0 {
                by_time.entry(t - 1).or_default().push((a, window));
            }
        }
        let mut expected = Aggregates::new();
        for (t, windows) in by_time {
            expected.extend(
                self.value_at(t)
                    .into_iter()
                    .filter(|((a, start, _), _)| windows.contains(&(*a, *start))),
            );
        }
        expected
    }

    /// Each window's final value: its value at `end + L − 1`, zero entries dropped.
    pub fn final_values(&self) -> Aggregates {
        self.expected_prefix(None)
    }

    /// The dead letters, as read or made.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead_letters.clone()
    }

    /// The too-late records, with an empty reason (the reason's wording is the
    /// dataflow's); compare with [`too_late_key`].
    pub fn too_late(&self) -> Vec<TooLate> {
        self.records
            .iter()
            .filter(|r| r.fate == Fate::TooLate)
            .map(|r| TooLate {
                stream: r.record.stream,
                origin: Origin {
                    source: format!("memory/{}", r.partition),
                    position: r.position,
                },
                id: r.record.id,
                ts: r.record.ts,
                watermark: r.watermark,
                reason: String::new(),
            })
            .collect()
    }

    /// The per-stream counts of every record read.
    pub fn accounting(&self) -> Accounting {
        self.accounting
    }
}

/// The identity of a too-late record, leaving out the wording of its reason.
pub fn too_late_key(record: &TooLate) -> (StreamKind, Origin, EventId, Millis, Millis) {
    (
        record.stream,
        record.origin.clone(),
        record.id,
        record.ts,
        record.watermark,
    )
}

/// A measure's filter, parsed by the oracle itself from its SQL text.
#[derive(Clone, Debug)]
pub struct Condition(Expr);

impl Condition {
    /// Parses a filter's text.
    pub fn parse(text: &str) -> Result<Condition, String> {
        Parser::new(&GenericDialect {})
            .try_with_sql(text)
            .and_then(|mut p| p.parse_expr())
            .map(Condition)
            .map_err(|e| e.to_string())
    }

    fn holds(&self, oracle: &Oracle, record: &Record) -> bool {
        truth(&self.0, oracle, record)
    }
}

fn truth(expr: &Expr, oracle: &Oracle, record: &Record) -> bool {
    match expr {
        Expr::Nested(inner) => truth(inner, oracle, record),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => !truth(expr, oracle, record),
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => truth(left, oracle, record) && truth(right, oracle, record),
            BinaryOperator::Or => truth(left, oracle, record) || truth(right, oracle, record),
            _ => {
                let ordering = compare(
                    operand(left, oracle, record),
                    operand(right, oracle, record),
                );
                match op {
                    BinaryOperator::Eq => ordering == Ordering::Equal,
                    BinaryOperator::NotEq => ordering != Ordering::Equal,
                    BinaryOperator::Lt => ordering == Ordering::Less,
                    BinaryOperator::LtEq => ordering != Ordering::Greater,
                    BinaryOperator::Gt => ordering == Ordering::Greater,
                    BinaryOperator::GtEq => ordering != Ordering::Less,
                    other => panic!("operator {other}"),
                }
            }
        },
        Expr::In {
            expr,
            target: InTarget::List(list),
            negated,
            ..
        } => {
            let value = operand(expr, oracle, record);
            let found = list.iter().any(|item| {
                compare(value.clone(), operand(item, oracle, record)) == Ordering::Equal
            });
            found != *negated
        }
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let value = operand(expr, oracle, record);
            let inside = compare(value.clone(), operand(low, oracle, record)) != Ordering::Less
                && compare(value, operand(high, oracle, record)) != Ordering::Greater;
            inside != *negated
        }
        Expr::IsTrue(inner) | Expr::IsNotFalse(inner) => truth(inner, oracle, record),
        Expr::IsFalse(inner) | Expr::IsNotTrue(inner) => !truth(inner, oracle, record),
        Expr::Identifier(ident) => oracle.text(record, &ident.value) == "true",
        other => panic!("a condition the oracle does not know: {other}"),
    }
}

/// An operand: a number, or a text.
#[derive(Clone, Debug)]
enum Operand {
    Number(i128),
    Text(String),
}

fn compare(a: Operand, b: Operand) -> Ordering {
    match (a, b) {
        (Operand::Number(a), Operand::Number(b)) => a.cmp(&b),
        (Operand::Text(a), Operand::Text(b)) => a.cmp(&b),
        (a, b) => panic!("comparing {a:?} with {b:?}"),
    }
}

fn operand(expr: &Expr, oracle: &Oracle, record: &Record) -> Operand {
    match expr {
        Expr::Nested(inner) => operand(inner, oracle, record),
        Expr::Identifier(ident) => match oracle.value(record, &ident.value) {
            Value::Id(v) | Value::Timestamp(v) => Operand::Number(i128::from(v)),
            Value::Int(v) | Value::Money(v) => Operand::Number(i128::from(v)),
            Value::String(label) => Operand::Text(label.as_str().to_owned()),
            Value::Bool(b) => Operand::Text(b.to_string()),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match operand(expr, oracle, record) {
            Operand::Number(n) => Operand::Number(-n),
            other => panic!("minus {other:?}"),
        },
        Expr::Value(v) => match &v.value {
            Literal::Number(text, _) => Operand::Number(text.parse().expect("an integer")),
            Literal::SingleQuotedString(text) => Operand::Text(text.clone()),
            Literal::Boolean(b) => Operand::Text(b.to_string()),
            other => panic!("literal {other}"),
        },
        other => panic!("operand {other}"),
    }
}
