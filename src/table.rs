//! Parquet tables (arrow-rs): explanations, one row per utterance and class, band weights and
//! probabilities as list columns, the band layout and the settings in the file's metadata; and
//! extracted eGeMAPS features ([`write_features_parquet`]).

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
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(BATCH_ROWS))
            .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
                METADATA_KEY.to_string(),
                metadata_json.to_string(),
            )]))
            .build();
        let file = AtomicFile::create(path)?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| parquet_err(path, &e))?;
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
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(BATCH_ROWS))
        .build();
    let file = AtomicFile::create(path)?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| parquet_err(path, &e))?;
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
