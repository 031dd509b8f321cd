//! Parquet tables (arrow-rs): explanations, one row per utterance and class, band weights and
//! probabilities as list columns, the band layout and the settings in the file's metadata;
//! extracted eGeMAPS features ([`write_features_parquet`]); and the small result tables of
//! `features rank` and `features probe`, each written as CSV and Parquet alike ([`Table`]).

use crate::error::{Error, Result};
use crate::explain::ExplanationRecord;
use crate::output::AtomicFile;
use arrow_array::builder::{Float32Builder, ListBuilder};
use arrow_array::{ArrayRef, Float32Array, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per record batch and per row group: the writer holds at most this many rows, so its
/// memory does not grow with the corpus.
const BATCH_ROWS: usize = 4096;

/// The metadata key holding the run's settings as JSON (see [`ParquetSink::create`]).
pub const METADATA_KEY: &str = "emolime.run";

/// The table's columns, in order. Per-run constants (band edges, kernel, seed) are the same on
/// every row of a run and live in the metadata instead. `metadata` holds the manifest's extra
/// columns as a JSON object (null when there are none); `n_samples` varies by utterance with
/// `--samples auto`.
pub fn schema() -> Schema {
    let list = |name: &str| {
        Field::new(
            name,
            DataType::List(Arc::new(Field::new("item", DataType::Float32, false))),
            false,
        )
    };
    Schema::new(vec![
        Field::new("position", DataType::UInt64, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, true),
        Field::new("speaker", DataType::Utf8, true),
        Field::new("dataset", DataType::Utf8, true),
        Field::new("gender", DataType::Utf8, true),
        Field::new("split", DataType::Utf8, true),
        Field::new("metadata", DataType::Utf8, true),
        Field::new("class", DataType::Utf8, false),
        Field::new("class_index", DataType::UInt32, false),
        Field::new("predicted", DataType::Utf8, false),
        list("probs"),
        list("coefficients"),
        Field::new("intercept", DataType::Float32, false),
        Field::new("r2", DataType::Float32, false),
        Field::new("local_pred", DataType::Float32, false),
        Field::new("n_samples", DataType::UInt32, false),
        Field::new("n_frames", DataType::UInt32, false),
        Field::new("seconds", DataType::Float32, false),
        Field::new("cropped_from_seconds", DataType::Float32, true),
        Field::new("device", DataType::Utf8, false),
    ])
}

/// Writes explanation records to a Parquet file (Snappy) as they come, one record batch of
/// [`BATCH_ROWS`] in memory at a time; the file appears (atomically) on [`ParquetSink::finish`].
pub struct ParquetSink {
    writer: ArrowWriter<AtomicFile>,
    schema: Arc<Schema>,
    pending: Vec<ExplanationRecord>,
    path: PathBuf,
}

impl ParquetSink {
    /// Starts `path`, with `metadata_json` (the run's layout and settings) under the key
    /// [`METADATA_KEY`].
    pub fn create(path: &Path, metadata_json: &str) -> Result<Self> {
        let schema = Arc::new(schema());
        let metadata = parquet::file::metadata::KeyValue::new(METADATA_KEY.to_string(), metadata_json.to_string());
        let writer = atomic_writer(path, &schema, Some(metadata))?;
        Ok(ParquetSink {
            writer,
            schema,
            pending: Vec::with_capacity(BATCH_ROWS),
            path: path.to_path_buf(),
        })
    }

    /// Adds one row.
    pub fn push(&mut self, record: &ExplanationRecord) -> Result<()> {
        self.pending.push(record.clone());
        if self.pending.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            let batch = record_batch(&self.schema, &self.pending).map_err(|e| parquet_err(&self.path, &e))?;
            self.writer.write(&batch).map_err(|e| parquet_err(&self.path, &e))?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Writes the footer and moves the file into place.
    pub fn finish(mut self) -> Result<()> {
        self.flush()?;
        let file = self.writer.into_inner().map_err(|e| parquet_err(&self.path, &e))?;
        file.commit()
    }
}

/// A Snappy Parquet writer into `path` (atomic: the file appears on [`AtomicFile::commit`]),
/// row groups of [`BATCH_ROWS`], with one optional key-value pair in the file's metadata.
fn atomic_writer(
    path: &Path,
    schema: &Arc<Schema>,
    metadata: Option<parquet::file::metadata::KeyValue>,
) -> Result<ArrowWriter<AtomicFile>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(BATCH_ROWS))
        .set_key_value_metadata(metadata.map(|kv| vec![kv]))
        .build();
    let file = AtomicFile::create(path)?;
    ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| parquet_err(path, &e))
}

fn parquet_err(path: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::Parquet {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// One record batch of `records` in the [`schema`] order.
fn record_batch(
    schema: &Arc<Schema>,
    records: &[ExplanationRecord],
) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    let strings = |f: &dyn Fn(&ExplanationRecord) -> Option<&str>| -> ArrayRef {
        Arc::new(records.iter().map(f).collect::<StringArray>())
    };
    let floats = |f: &dyn Fn(&ExplanationRecord) -> Option<f32>| -> ArrayRef {
        Arc::new(records.iter().map(f).collect::<Float32Array>())
    };
    let lists = |f: &dyn Fn(&ExplanationRecord) -> &[f32]| -> ArrayRef {
        let mut builder =
            ListBuilder::new(Float32Builder::new()).with_field(Arc::new(Field::new("item", DataType::Float32, false)));
        for r in records {
            builder.values().append_slice(f(r));
            builder.append(true);
        }
        Arc::new(builder.finish())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(records.iter().map(|r| r.position as u64).collect::<UInt64Array>()),
        strings(&|r| Some(&r.id)),
        strings(&|r| Some(&r.path)),
        strings(&|r| r.label.as_deref()),
        strings(&|r| r.speaker.as_deref()),
        strings(&|r| r.dataset.as_deref()),
        strings(&|r| r.gender.as_deref()),
        strings(&|r| r.split.as_deref()),
        Arc::new(
            records
                .iter()
                .map(|r| (!r.metadata.is_empty()).then(|| serde_json::to_string(&r.metadata).unwrap_or_default()))
                .collect::<StringArray>(),
        ),
        strings(&|r| Some(&r.class)),
        Arc::new(records.iter().map(|r| r.class_index as u32).collect::<UInt32Array>()),
        strings(&|r| Some(&r.predicted)),
        lists(&|r| &r.probs),
        lists(&|r| &r.coefficients),
        floats(&|r| Some(r.intercept)),
        floats(&|r| Some(r.r2)),
        floats(&|r| Some(r.local_pred)),
        Arc::new(records.iter().map(|r| r.n_samples as u32).collect::<UInt32Array>()),
        Arc::new(records.iter().map(|r| r.n_frames as u32).collect::<UInt32Array>()),
        floats(&|r| Some(r.seconds)),
        floats(&|r| r.cropped_from_seconds),
        strings(&|r| Some(&r.device)),
    ];
    RecordBatch::try_new(schema.clone(), columns)
}

/// Writes extracted features as a Parquet table (Snappy), atomically: `id`, `label`, `speaker`,
/// `dataset` (strings, null when absent), with `--lld` `frame_time_s`, then one f64 column per
/// feature named as openSMILE names it, in its order: the same table as the CSV
/// (`features::corpus::write_csv`). Failed items are left out (the caller reports them); rows go
/// out in batches of [`BATCH_ROWS`].
///
/// # Shapes
/// each `results[i]` [R, F]: one row (functionals) or one per frame (LLD), F = `names.len()`
pub fn write_features_parquet(
    path: &Path,
    items: &[crate::input::InputItem],
    results: &[Result<crate::features::corpus::FileFeatures>],
    names: &[&str],
    frame_hop_s: Option<f64>,
) -> Result<()> {
    use arrow_array::Float64Array;
    let mut fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, true),
        Field::new("speaker", DataType::Utf8, true),
        Field::new("dataset", DataType::Utf8, true),
    ];
    if frame_hop_s.is_some() {
        fields.push(Field::new("frame_time_s", DataType::Float64, false));
    }
    fields.extend(names.iter().map(|n| Field::new(*n, DataType::Float64, false)));
    let schema = Arc::new(Schema::new(fields));
    let mut writer = atomic_writer(path, &schema, None)?;
    // Rows as (item, its features, frame), written a batch at a time.
    let rows: Vec<(usize, &crate::features::corpus::FileFeatures, usize)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().ok().map(|v| (i, v)))
        .flat_map(|(i, v)| (0..v.nrows()).map(move |k| (i, v, k)))
        .collect();
    for chunk in rows.chunks(BATCH_ROWS) {
        let strings = |f: &dyn Fn(&crate::input::InputItem) -> Option<&str>| -> ArrayRef {
            Arc::new(chunk.iter().map(|&(i, _, _)| f(&items[i])).collect::<StringArray>())
        };
        let mut columns: Vec<ArrayRef> = vec![
            strings(&|it| Some(&it.id)),
            strings(&|it| it.label.as_deref()),
            strings(&|it| it.speaker.as_deref()),
            strings(&|it| it.dataset.as_deref()),
        ];
        if let Some(hop) = frame_hop_s {
            columns.push(Arc::new(
                chunk.iter().map(|&(_, _, k)| k as f64 * hop).collect::<Float64Array>(),
            ));
        }
        for f in 0..names.len() {
            columns.push(Arc::new(
                chunk.iter().map(|&(_, v, k)| v[[k, f]]).collect::<Float64Array>(),
            ));
        }
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| parquet_err(path, &e))?;
        writer.write(&batch).map_err(|e| parquet_err(path, &e))?;
    }
    let file = writer.into_inner().map_err(|e| parquet_err(path, &e))?;
    file.commit()
}

/// The type of one [`Table`] column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Text (Parquet `Utf8`).
    Str,
    /// A real number (Parquet `Float64`); a non-finite value is undefined.
    F64,
    /// A count or position (Parquet `UInt64`).
    U64,
    /// `true` / `false` (Parquet `Boolean`).
    Bool,
}

/// One cell of a [`Table`] row. [`Cell::Null`] (and a non-finite [`Cell::F64`]) is an undefined
/// value: an empty CSV field, a Parquet null.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Text.
    Str(String),
    /// A real number.
    F64(f64),
    /// A count or position.
    U64(u64),
    /// A truth value.
    Bool(bool),
    /// Undefined, in a column of any kind.
    Null,
}

impl Cell {
    /// The text, or `None` for any other cell.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Cell::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The number when it is finite, else `None` (undefined).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::F64(v) if v.is_finite() => Some(*v),
            _ => None,
        }
    }

    /// The count, or `None` for any other cell.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Cell::U64(v) => Some(*v),
            _ => None,
        }
    }

    /// The truth value, or `None` for any other cell.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Cell::Bool(v) => Some(*v),
            _ => None,
        }
    }
}

impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Str(v.to_string())
    }
}
impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Str(v)
    }
}
impl From<&String> for Cell {
    fn from(v: &String) -> Self {
        Cell::Str(v.clone())
    }
}
impl From<f64> for Cell {
    fn from(v: f64) -> Self {
        Cell::F64(v)
    }
}
impl From<Option<f64>> for Cell {
    fn from(v: Option<f64>) -> Self {
        v.map_or(Cell::Null, Cell::F64)
    }
}
impl From<usize> for Cell {
    fn from(v: usize) -> Self {
        Cell::U64(v as u64)
    }
}
impl From<bool> for Cell {
    fn from(v: bool) -> Self {
        Cell::Bool(v)
    }
}

/// A small result table written both as CSV and as Parquet with the same columns and rows
/// (`features rank`, `features probe`): typed columns, rows added one at a time.
///
/// In the CSV a number is in Rust's shortest round-trip form, text is quoted only where it holds
/// a comma, a quote or a line break, and an undefined value is an empty field; in the Parquet
/// file (Snappy) every column is nullable and an undefined value is null.
#[derive(Clone, Debug)]
pub struct Table {
    columns: Vec<(String, Kind)>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table with these columns, in order.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = (S, Kind)>) -> Self {
        Table {
            columns: columns.into_iter().map(|(n, k)| (n.into(), k)).collect(),
            rows: Vec::new(),
        }
    }

    /// The column names and kinds, in order.
    pub fn columns(&self) -> &[(String, Kind)] {
        &self.columns
    }

    /// The rows added so far.
    pub fn rows(&self) -> &[Vec<Cell>] {
        &self.rows
    }

    /// Adds one row: one cell per column, each [`Cell::Null`] or of its column's kind.
    ///
    /// # Panics
    /// On a row of the wrong width or a cell of the wrong kind: the caller builds rows to match
    /// the columns it declared, so either is a bug in emolime, not bad input.
    pub fn push(&mut self, row: Vec<Cell>) {
        assert_eq!(row.len(), self.columns.len(), "row width against the table's columns");
        for (cell, (name, kind)) in row.iter().zip(&self.columns) {
            let ok = matches!(
                (cell, kind),
                (Cell::Null, _)
                    | (Cell::Str(_), Kind::Str)
                    | (Cell::F64(_), Kind::F64)
                    | (Cell::U64(_), Kind::U64)
                    | (Cell::Bool(_), Kind::Bool)
            );
            assert!(ok, "cell {cell:?} in column {name} of kind {kind:?}");
        }
        self.rows.push(row);
    }

    /// The table as CSV text: a header line, then one line per row.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let header: Vec<Cell> = self.columns.iter().map(|(n, _)| Cell::Str(n.clone())).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match cell {
                    Cell::Str(s) => crate::output::csv_field(&mut out, s),
                    Cell::F64(v) if v.is_finite() => out.push_str(&v.to_string()),
                    Cell::U64(v) => out.push_str(&v.to_string()),
                    Cell::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
                    Cell::F64(_) | Cell::Null => {}
                }
            }
            out.push('\n');
        }
        out
    }

    /// Writes the table as Parquet to `path` (atomically: the file appears complete or not at
    /// all).
    pub fn write_parquet(&self, path: &Path) -> Result<()> {
        use arrow_array::{BooleanArray, Float64Array};
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|(name, kind)| {
                let dt = match kind {
                    Kind::Str => DataType::Utf8,
                    Kind::F64 => DataType::Float64,
                    Kind::U64 => DataType::UInt64,
                    Kind::Bool => DataType::Boolean,
                };
                Field::new(name, dt, true)
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let mut writer = atomic_writer(path, &schema, None)?;
        for chunk in self.rows.chunks(BATCH_ROWS) {
            let columns: Vec<ArrayRef> = self
                .columns
                .iter()
                .enumerate()
                .map(|(c, (_, kind))| -> ArrayRef {
                    let cells = chunk.iter().map(|row| &row[c]);
                    match kind {
                        Kind::Str => Arc::new(cells.map(Cell::as_str).collect::<StringArray>()),
                        Kind::F64 => Arc::new(cells.map(Cell::as_f64).collect::<Float64Array>()),
                        Kind::U64 => Arc::new(cells.map(Cell::as_u64).collect::<UInt64Array>()),
                        Kind::Bool => Arc::new(cells.map(Cell::as_bool).collect::<BooleanArray>()),
                    }
                })
                .collect();
            let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| parquet_err(path, &e))?;
            writer.write(&batch).map_err(|e| parquet_err(path, &e))?;
        }
        let file = writer.into_inner().map_err(|e| parquet_err(path, &e))?;
        file.commit()
    }

    /// Reads a table written by [`Table::write_parquet`] (or any Parquet file whose columns are
    /// `Utf8`, `Float64`, `UInt64` or `Boolean`).
    pub fn read_parquet(path: &Path) -> Result<Table> {
        use arrow_array::{Array, BooleanArray, Float64Array};
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_err(path, &e))?;
        let mut columns = Vec::new();
        for f in builder.schema().fields() {
            let kind = match f.data_type() {
                DataType::Utf8 => Kind::Str,
                DataType::Float64 => Kind::F64,
                DataType::UInt64 => Kind::U64,
                DataType::Boolean => Kind::Bool,
                other => {
                    return Err(parquet_err(
                        path,
                        &format!("column {} is of type {other}, not text, f64, u64 or bool", f.name()),
                    ));
                }
            };
            columns.push((f.name().clone(), kind));
        }
        let mut table = Table::new(columns);
        for batch in builder.build().map_err(|e| parquet_err(path, &e))? {
            let batch = batch.map_err(|e| parquet_err(path, &e))?;
            for r in 0..batch.num_rows() {
                let row = table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(c, (_, kind))| {
                        let a = batch.column(c).as_any();
                        if batch.column(c).is_null(r) {
                            return Cell::Null;
                        }
                        match kind {
                            Kind::Str => Cell::Str(a.downcast_ref::<StringArray>().map_or("", |a| a.value(r)).into()),
                            Kind::F64 => Cell::F64(a.downcast_ref::<Float64Array>().map_or(f64::NAN, |a| a.value(r))),
                            Kind::U64 => a
                                .downcast_ref::<UInt64Array>()
                                .map_or(Cell::Null, |a| Cell::U64(a.value(r))),
                            Kind::Bool => a
                                .downcast_ref::<BooleanArray>()
                                .map_or(Cell::Null, |a| Cell::Bool(a.value(r))),
                        }
                    })
                    .collect();
                table.rows.push(row);
            }
        }
        Ok(table)
    }

    /// Writes `<stem>.csv` and `<stem>.parquet` into `out`.
    pub fn write(&self, out: &crate::output::OutputDir, stem: &str) -> Result<()> {
        crate::output::write_atomic(&out.path(&format!("{stem}.csv")), self.to_csv().as_bytes())?;
        self.write_parquet(&out.path(&format!("{stem}.parquet")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn sample(rows: usize, seed: u64) -> Table {
        let mut rng = SplitMix64::new(seed);
        let mut t = Table::new([
            ("name", Kind::Str),
            ("value", Kind::F64),
            ("count", Kind::U64),
            ("flag", Kind::Bool),
        ]);
        for i in 0..rows {
            let x = rng.range(-1.0, 1.0);
            let value = match i % 5 {
                0 => Cell::F64(f64::NAN),
                1 => Cell::Null,
                _ => Cell::F64(x * 10f64.powi((i % 7) as i32 - 3)),
            };
            let name = match i % 4 {
                0 => Cell::from(format!("a,\"b\" {i}")),
                1 => Cell::Null,
                _ => Cell::from(format!("row{i}")),
            };
            t.push(vec![name, value, Cell::from(i * 3), Cell::from(x > 0.0)]);
        }
        t
    }

    #[test]
    fn csv_quotes_text_and_leaves_undefined_values_empty() {
        let mut t = Table::new([("a", Kind::Str), ("x", Kind::F64), ("n", Kind::U64), ("b", Kind::Bool)]);
        t.push(vec!["p,q".into(), 0.1.into(), 3usize.into(), true.into()]);
        t.push(vec![Cell::Null, f64::INFINITY.into(), Cell::Null, false.into()]);
        t.push(vec!["say \"hi\"".into(), None.into(), 0usize.into(), Cell::Null]);
        assert_eq!(
            t.to_csv(),
            "a,x,n,b\n\"p,q\",0.1,3,true\n,,,false\n\"say \"\"hi\"\"\",,0,\n"
        );
    }

    #[test]
    fn parquet_round_trip_keeps_every_value() {
        let dir = tempfile::tempdir().unwrap();
        // More rows than one record batch, so the table spans row groups.
        for rows in [0, 7, BATCH_ROWS + 5] {
            let t = sample(rows, rows as u64 + 1);
            let path = dir.path().join(format!("t{rows}.parquet"));
            t.write_parquet(&path).unwrap();
            let back = Table::read_parquet(&path).unwrap();
            assert_eq!(back.columns(), t.columns());
            assert_eq!(back.rows().len(), rows);
            for (a, b) in back.rows().iter().zip(t.rows()) {
                for (x, y) in a.iter().zip(b) {
                    match (x, y) {
                        (Cell::Null, Cell::F64(v)) => assert!(!v.is_finite()),
                        (Cell::F64(p), Cell::F64(q)) => assert_eq!(p.to_bits(), q.to_bits()),
                        _ => assert_eq!(x, y),
                    }
                }
            }
            assert_eq!(back.to_csv(), t.to_csv());
        }
    }

    #[test]
    fn reading_a_missing_or_foreign_file_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.parquet");
        assert!(
            Table::read_parquet(&missing)
                .unwrap_err()
                .to_string()
                .contains("missing.parquet")
        );
        let text = dir.path().join("text.parquet");
        std::fs::write(&text, "dataset,feature\n").unwrap();
        assert!(
            Table::read_parquet(&text)
                .unwrap_err()
                .to_string()
                .contains("text.parquet")
        );
    }

    #[test]
    #[should_panic(expected = "column value")]
    fn a_cell_of_the_wrong_kind_is_a_bug() {
        let mut t = Table::new([("value", Kind::F64)]);
        t.push(vec!["text".into()]);
    }
}
