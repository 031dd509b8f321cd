//! Explanations as a Parquet table (arrow-rs): one row per utterance and class, band weights and
//! probabilities as list columns, the band layout and the settings in the file's metadata.

use crate::error::{Error, Result};
use crate::explain::ExplanationRecord;
use crate::output::write_atomic_with;
use arrow_array::builder::{Float32Builder, ListBuilder};
use arrow_array::{ArrayRef, Float32Array, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::path::Path;
use std::sync::Arc;

/// Rows per record batch (and so at most per row group).
const BATCH_ROWS: usize = 16 * 1024;

/// The metadata key holding the run's settings as JSON (see [`write_parquet`]).
pub const METADATA_KEY: &str = "emolime.run";

/// The table's columns, in order. Per-run constants (band edges, kernel, seed, sample count)
/// are the same on every row of a run and live in the metadata instead.
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
        Field::new("class", DataType::Utf8, false),
        Field::new("class_index", DataType::UInt32, false),
        Field::new("predicted", DataType::Utf8, false),
        list("probs"),
        list("coefficients"),
        Field::new("intercept", DataType::Float32, false),
        Field::new("r2", DataType::Float32, false),
        Field::new("local_pred", DataType::Float32, false),
        Field::new("n_frames", DataType::UInt32, false),
        Field::new("seconds", DataType::Float32, false),
        Field::new("cropped_from_seconds", DataType::Float32, true),
        Field::new("device", DataType::Utf8, false),
    ])
}

/// Writes `records` as a Parquet file (Snappy), atomically, with `metadata_json` (the run's
/// layout and settings) under the key [`METADATA_KEY`].
pub fn write_parquet(path: &Path, records: &[ExplanationRecord], metadata_json: &str) -> Result<()> {
    let schema = Arc::new(schema());
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
            METADATA_KEY.to_string(),
            metadata_json.to_string(),
        )]))
        .build();
    let err = |e: &dyn std::fmt::Display| Error::Parquet {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    write_atomic_with(path, |file| {
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| err(&e))?;
        for chunk in records.chunks(BATCH_ROWS) {
            let batch = record_batch(&schema, chunk).map_err(|e| err(&e))?;
            writer.write(&batch).map_err(|e| err(&e))?;
        }
        writer.close().map_err(|e| err(&e))?;
        Ok(())
    })
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
        strings(&|r| Some(&r.class)),
        Arc::new(records.iter().map(|r| r.class_index as u32).collect::<UInt32Array>()),
        strings(&|r| Some(&r.predicted)),
        lists(&|r| &r.probs),
        lists(&|r| &r.coefficients),
        floats(&|r| Some(r.intercept)),
        floats(&|r| Some(r.r2)),
        floats(&|r| Some(r.local_pred)),
        Arc::new(records.iter().map(|r| r.n_frames as u32).collect::<UInt32Array>()),
        floats(&|r| Some(r.seconds)),
        floats(&|r| r.cropped_from_seconds),
        strings(&|r| Some(&r.device)),
    ];
    RecordBatch::try_new(schema.clone(), columns)
}
