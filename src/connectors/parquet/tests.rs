//! The Parquet sink's commits across reopenings, and the decoding of event columns.

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampSecondArray, UInt64Array,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::decode::{EventColumns, RecordText};
use super::layout::{file_name, temporary_name};
use super::{ParquetMode, ParquetSink, ParquetSinkSpec};
use crate::connectors::{AggregateRow, Batch, Sink, SinkError};
use crate::declare::{
    Aggregate, Attribution, Declaration, DurationText, FunnelSpec, Measures, Schema, StreamSchema,
    Value, Window, WindowStatus,
};
use crate::event::{Millis, Record, StreamKind};
use crate::format::CsvDecoder;

const MIN: Millis = 60_000;

fn lateness() -> Window {
    Window {
        length: MIN,
        allowed_lateness: MIN,
    }
}

/// The aggregate of the default measures by `dims`, in windows of a minute.
fn aggregate(dims: &[&str]) -> Aggregate {
    let ms = DurationText::from_millis;
    let funnel = FunnelSpec {
        window: Some(ms(MIN)),
        group_by: Some(dims.iter().map(|d| d.to_string()).collect()),
        allowed_lateness: ms(MIN),
        bid_retention: ms(MIN),
        click_retention: ms(MIN),
        ..FunnelSpec::default()
    };
    let settings = Declaration::default().funnel(funnel).resolve().unwrap();
    settings.aggregates[0].clone()
}

fn campaign(id: u64) -> Attribution {
    Attribution::Dims(aggregate(&["campaign_id"]).dims.key(&[Some(Value::Id(id))]))
}

fn row(window_start: Millis, dims: Attribution, clicks: i64) -> AggregateRow {
    AggregateRow {
        window_start,
        window_end: window_start + MIN,
        dims,
        delta: Measures::click().times(clicks),
        status: WindowStatus::Open,
    }
}

fn batch(seq: u64, previous: Millis, frontier: Option<Millis>, rows: Vec<AggregateRow>) -> Batch {
    let finalized = (0..10)
        .map(|w| w * MIN)
        .filter(|w| frontier.is_none_or(|f| lateness().final_at(*w) <= f))
        .filter(|w| lateness().final_at(*w) > previous)
        .collect();
    Batch {
        seq,
        previous,
        frontier,
        rows,
        finalized,
        ..Batch::default()
    }
}

fn open(dir: &Path, mode: ParquetMode) -> Result<ParquetSink, SinkError> {
    ParquetSink::open(
        &ParquetSinkSpec::new(dir, mode),
        &aggregate(&["campaign_id"]),
    )
}

/// Every `(window_start, campaign_id, clicks, batch_seq)` of the aggregates table.
fn read_aggregates(dir: &Path) -> Vec<(i64, Option<String>, i64, i64)> {
    let mut rows = Vec::new();
    let mut files = vec![dir.join("aggregates")];
    while let Some(path) = files.pop() {
        if !path.exists() {
            continue;
        }
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = |name: &str| batch.column_by_name(name).unwrap().clone();
            let starts = column("window_start");
            let starts = starts.as_primitive::<arrow_array::types::TimestampMillisecondType>();
            let campaigns = column("campaign_id");
            let campaigns = campaigns.as_string::<i32>();
            let clicks = column("clicks");
            let seqs = column("batch_seq");
            for i in 0..batch.num_rows() {
                rows.push((
                    starts.value(i),
                    (!arrow_array::Array::is_null(campaigns, i))
                        .then(|| campaigns.value(i).to_owned()),
                    clicks.as_primitive::<Int64Type>().value(i),
                    seqs.as_primitive::<Int64Type>().value(i),
                ));
            }
        }
    }
    rows.sort();
    rows
}

#[test]
fn final_mode_carries_open_totals_across_a_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(dir.path(), ParquetMode::Final).unwrap();
    // [0, 1m) is final at 2m: open after the first batch, final in the second.
    sink.write_batch(&batch(0, 0, Some(MIN), vec![row(0, campaign(1), 2)]))
        .unwrap();
    assert!(read_aggregates(dir.path()).is_empty(), "nothing final yet");
    drop(sink);

    let mut sink = open(dir.path(), ParquetMode::Final).unwrap();
    assert_eq!(sink.resume().map(|r| (r.frontier, r.seq)), Some((MIN, 0)));
    // Batches at or below the committed frontier are skipped, whatever they carry.
    sink.write_batch(&batch(0, 0, Some(MIN), vec![row(0, campaign(9), 9)]))
        .unwrap();
    sink.write_batch(&batch(
        1,
        MIN,
        Some(2 * MIN),
        vec![row(0, campaign(1), 3), row(MIN, campaign(1), 1)],
    ))
    .unwrap();
    assert_eq!(
        read_aggregates(dir.path()),
        vec![(0, Some("1".to_owned()), 5, 1)],
        "the window's total, once, in the batch that made it final"
    );
    sink.write_batch(&batch(2, 2 * MIN, None, vec![])).unwrap();
    assert_eq!(read_aggregates(dir.path()).len(), 2, "the rest at the end");
    assert!(sink.committed().complete);
    assert_eq!(sink.resume(), None);
}

#[test]
fn a_batch_that_would_count_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(dir.path(), ParquetMode::Changes).unwrap();
    sink.write_batch(&batch(0, 0, Some(MIN), vec![row(0, campaign(1), 2)]))
        .unwrap();
    let error = sink
        .write_batch(&batch(
            1,
            MIN / 2,
            Some(2 * MIN),
            vec![row(0, campaign(1), 2)],
        ))
        .unwrap_err()
        .to_string();
    assert!(error.contains("twice"), "{error}");
}

#[test]
fn a_reopening_removes_what_did_not_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(dir.path(), ParquetMode::Changes).unwrap();
    sink.write_batch(&batch(0, 0, Some(MIN), vec![row(0, campaign(1), 2)]))
        .unwrap();
    sink.write_batch(&batch(
        1,
        MIN,
        Some(2 * MIN),
        vec![row(MIN, campaign(1), 1)],
    ))
    .unwrap();
    drop(sink);
    let committed = read_aggregates(dir.path());
    // What a run killed between a batch's files and its commit leaves: a renamed file of
    // batch 2 in another partition, and a temporary file.
    let hour = dir.path().join("aggregates/date=2030-01-01/hour=5");
    std::fs::create_dir_all(&hour).unwrap();
    let first = dir.path().join("aggregates/date=1970-01-01/hour=0");
    std::fs::copy(first.join(file_name(0)), hour.join(file_name(2))).unwrap();
    std::fs::write(first.join(temporary_name(&file_name(2))), b"half a file").unwrap();

    let sink = open(dir.path(), ParquetMode::Changes).unwrap();
    assert_eq!(
        sink.resume().map(|r| (r.frontier, r.seq)),
        Some((2 * MIN, 1))
    );
    assert!(!hour.join(file_name(2)).exists());
    assert!(!first.join(temporary_name(&file_name(2))).exists());
    assert_eq!(
        read_aggregates(dir.path()),
        committed,
        "committed files kept"
    );
    assert_eq!(
        committed
            .iter()
            .filter(|(_, dims, _, _)| dims.is_none())
            .count(),
        1,
        "one announcement: [0, 1m) became final at 2m"
    );
}

#[test]
fn a_restored_run_needs_a_folder_written_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut new = open(dir.path(), ParquetMode::Final).unwrap();
    let refused = new.begin(Some(5 * MIN)).unwrap_err().to_string();
    assert!(refused.contains("--fresh"), "{refused}");
    new.write_batch(&batch(0, 0, Some(MIN), vec![row(0, campaign(1), 2)]))
        .unwrap();
    // An empty batch holds nothing: noted, not committed.
    let checkpoint = MIN + MIN / 2;
    new.write_batch(&batch(1, MIN, Some(checkpoint), vec![]))
        .unwrap();
    drop(new);

    // A checkpoint at 1.5m follows the empty batch: the folder holds everything below it.
    let mut sink = open(dir.path(), ParquetMode::Final).unwrap();
    assert_eq!(sink.resume().map(|r| (r.frontier, r.seq)), Some((MIN, 0)));
    sink.begin(Some(checkpoint)).unwrap();
    sink.write_batch(&batch(2, checkpoint, None, vec![row(MIN, campaign(1), 1)]))
        .unwrap();
    assert_eq!(
        read_aggregates(dir.path()),
        vec![
            (0, Some("1".to_owned()), 2, 2),
            (MIN as i64, Some("1".to_owned()), 1, 2)
        ],
        "the open total carried over, both windows final at the end"
    );
}

#[test]
fn tables_of_another_mode_or_dims_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(dir.path(), ParquetMode::Changes).unwrap();
    sink.write_batch(&batch(0, 0, Some(MIN), vec![row(0, campaign(1), 2)]))
        .unwrap();
    let other_mode = open(dir.path(), ParquetMode::Final)
        .err()
        .unwrap()
        .to_string();
    assert!(other_mode.contains("`changes` tables"), "{other_mode}");
    let other_dims = ParquetSink::open(
        &ParquetSinkSpec::new(dir.path(), ParquetMode::Changes),
        &aggregate(&["region"]),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        other_dims.contains("campaign_id") && other_dims.contains("region"),
        "{other_dims}"
    );
}

/// The default declaration of clicks.
fn clicks() -> Arc<StreamSchema> {
    Arc::clone(Schema::funnel().stream(StreamKind::Click))
}

/// Decodes every row of `columns` as clicks.
fn decode_clicks(columns: Vec<(&str, ArrayRef)>) -> Vec<Result<Record, String>> {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let decoder = EventColumns::new(clicks(), &batch.schema()).unwrap();
    let mut text = RecordText::default();
    decoder.start(&batch, &mut text);
    (0..batch.num_rows())
        .map(|row| {
            decoder
                .decode(row, &mut text)
                .map_err(|(reason, raw)| format!("{reason} [{raw}]"))
        })
        .collect()
}

#[test]
fn columns_decode_as_the_csv_decoder_reads_their_text() {
    let decoded = decode_clicks(vec![
        (
            "ts",
            Arc::new(TimestampSecondArray::from(vec![
                Some(2),
                Some(3),
                None,
                Some(-1),
            ])) as ArrayRef,
        ),
        (
            "extra",
            Arc::new(StringArray::from(vec!["a", "b", "c", "d"])),
        ),
        ("bid_id", Arc::new(Int32Array::from(vec![7, -7, 7, 7]))),
        ("click_id", Arc::new(UInt64Array::from(vec![1, 2, 3, 4]))),
    ]);
    let csv = |fields: &[&str]| {
        CsvDecoder::by_position(clicks())
            .decode(&csv::StringRecord::from(fields.to_vec()))
            .map_err(|reason| format!("{reason} [{}]", fields.join(",")))
    };
    assert_eq!(
        decoded,
        vec![
            csv(&["1", "7", "2000"]),
            csv(&["2", "-7", "3000"]),
            csv(&["3", "7", ""]),
            csv(&["4", "7", "-1000"]),
        ]
    );
    assert!(decoded[0].is_ok() && decoded[1..].iter().all(Result::is_err));
}

#[test]
fn timestamps_of_any_unit_read_as_milliseconds() {
    let decoded = decode_clicks(vec![
        ("click_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("bid_id", Arc::new(Int64Array::from(vec![2]))),
        (
            "ts",
            Arc::new(
                TimestampMicrosecondArray::from(vec![1_704_067_200_123_999]).with_timezone("UTC"),
            ),
        ),
    ]);
    assert_eq!(decoded[0].as_ref().map(|r| r.ts), Ok(1_704_067_200_123));
}
