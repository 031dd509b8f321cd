//! Corpus runs through the real `emolime` binary: killed runs resumed (more than once) equal an
//! uninterrupted run, shards merge into the whole run with duplicates and gaps refused, the
//! Parquet table matches the JSON lines, and lavapipe and the CPU path agree (`compare`).

use crate::common::{gpu, read_records};
use emolime::audio::FrontEndConfig;
use emolime::corpus::load_training_set;
use emolime::device::ComputeDevice;
use emolime::input::collect_inputs;
use emolime::model::{TrainConfig, train};
use emolime::synth::{SynthConfig, write_corpus};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A corpus of `n_per_class` x 4 utterances and a CNN trained one epoch on it: (manifest, model).
fn corpus_and_model(dir: &Path, n_per_class: usize) -> (PathBuf, PathBuf) {
    let synth = SynthConfig {
        n_per_class,
        duration_s: 1.0,
        ..SynthConfig::default()
    };
    let manifest = write_corpus(&synth, &dir.join("corpus")).unwrap();
    let inputs = collect_inputs(&manifest).unwrap();
    let fe = FrontEndConfig::default();
    let (examples, classes, _) = load_training_set(&inputs.items, &fe, |_| {}).unwrap();
    let cpu = ComputeDevice::cpu("test");
    let cfg = TrainConfig {
        epochs: 1,
        ..TrainConfig::default()
    };
    let (model, _) = train(&examples, classes, fe, &cfg, &cpu.burn, |_, _| {}).unwrap();
    let path = dir.join("m.emolime");
    model.save(&path).unwrap();
    (manifest, path)
}

fn emolime() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_emolime"));
    cmd.env("NODEVICE_SELECT", "1");
    cmd
}

/// `emolime explain` of `manifest` with `model` into `out`, plus `extra` flags; on the CPU with
/// 128 samples unless `extra` says otherwise.
fn explain_cmd(model: &Path, manifest: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = emolime();
    cmd.args(["explain", "--quiet"]);
    if !extra.contains(&"--device") {
        cmd.args(["--device", "cpu"]);
    }
    if !extra.contains(&"--samples") {
        cmd.args(["--samples", "128"]);
    }
    cmd.arg("--model")
        .arg(model)
        .arg("--input")
        .arg(manifest)
        .arg("--out")
        .arg(out)
        .args(extra);
    cmd
}

fn run_ok(mut cmd: Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run_err(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Complete parts in a staging folder.
fn done_parts(staging: &Path) -> usize {
    std::fs::read_dir(staging.join("parts"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".done.json"))
                .count()
        })
        .unwrap_or(0)
}

/// Starts `cmd`, waits until the staging folder holds more than `after` complete parts, then
/// kills it with SIGKILL. Returns the parts there were at the kill.
fn kill_after_parts(mut cmd: Command, staging: &Path, after: usize) -> usize {
    let mut child = cmd.stdout(std::process::Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let n = done_parts(staging);
        if n > after {
            child.kill().unwrap();
            child.wait().unwrap();
            return n;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be killed");
        }
        assert!(Instant::now() < deadline, "no part appeared in 300 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn killed_runs_resume_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, model) = corpus_and_model(tmp.path(), 6);
    let whole = tmp.path().join("whole");
    run_ok(explain_cmd(&model, &manifest, &whole, &["--part-size", "2"]));

    let out = tmp.path().join("killed");
    let staging = tmp.path().join(".killed.partial");
    let first = kill_after_parts(explain_cmd(&model, &manifest, &out, &["--part-size", "2"]), &staging, 0);
    assert!(!out.exists(), "a killed run must not appear under its name");
    // Without --resume the unfinished run is neither lost nor silently continued.
    let err = run_err(explain_cmd(&model, &manifest, &out, &["--part-size", "2"]));
    assert!(err.contains("--resume"), "{err}");
    // Other settings cannot resume it.
    let err = run_err(explain_cmd(
        &model,
        &manifest,
        &out,
        &["--part-size", "2", "--resume", "--seed", "9"],
    ));
    assert!(err.contains("cannot resume") && err.contains("settings"), "{err}");
    // Killed a second time, later on.
    let resume = ["--part-size", "2", "--resume"];
    let second = kill_after_parts(explain_cmd(&model, &manifest, &out, &resume), &staging, first);
    assert!(second > first);
    run_ok(explain_cmd(&model, &manifest, &out, &resume));
    assert!(!staging.exists(), "the staging folder is moved into place");
    for file in ["explanations.jsonl", "explanations.parquet", "failures.jsonl"] {
        let a = std::fs::read(whole.join(file)).unwrap();
        let b = std::fs::read(out.join(file)).unwrap();
        assert!(a == b, "{file} of the resumed run differs from the uninterrupted one");
    }
    let records = read_records(&out);
    assert_eq!(records.len(), 24 * 4, "every utterance once, every class");
    let mut positions: Vec<usize> = records.iter().map(|r| r.position).collect();
    positions.dedup();
    assert_eq!(positions, (0..24).collect::<Vec<_>>());
    // A finished run resumed again does nothing and succeeds.
    let again = run_ok(explain_cmd(&model, &manifest, &out, &resume));
    assert!(String::from_utf8_lossy(&again.stdout).contains("finished"));
}

#[test]
fn shards_merge_into_the_whole_run_and_gaps_or_duplicates_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, model) = corpus_and_model(tmp.path(), 5);
    let whole = tmp.path().join("whole");
    run_ok(explain_cmd(&model, &manifest, &whole, &[]));
    let shards: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("shard{i}"))).collect();
    let mut sizes = vec![];
    for (i, dir) in shards.iter().enumerate() {
        run_ok(explain_cmd(&model, &manifest, dir, &["--shard", &format!("{i}/3")]));
        sizes.push(read_records(dir).len() / 4);
    }
    assert_eq!(sizes.iter().sum::<usize>(), 20, "shards {sizes:?}");
    assert!(sizes.iter().all(|&s| s > 0), "a shard is empty: {sizes:?}");

    let merged = tmp.path().join("merged");
    let mut cmd = emolime();
    cmd.arg("merge").args(&shards).arg("--out").arg(&merged);
    run_ok(cmd);
    for file in ["explanations.jsonl", "explanations.parquet", "failures.jsonl"] {
        let a = std::fs::read(whole.join(file)).unwrap();
        let b = std::fs::read(merged.join(file)).unwrap();
        assert!(a == b, "{file} of the merged shards differs from the whole run");
    }

    let merge_err = |runs: &[&PathBuf]| {
        let mut cmd = emolime();
        cmd.arg("merge").args(runs).arg("--out").arg(tmp.path().join("never"));
        run_err(cmd)
    };
    let err = merge_err(&[&shards[0], &shards[2]]);
    assert!(err.contains("shard 1/3 is missing"), "{err}");
    let err = merge_err(&[&shards[0], &shards[1], &shards[1], &shards[2]]);
    assert!(err.contains("given twice"), "{err}");
    // A shard made with another seed is another run.
    let other = tmp.path().join("other1");
    run_ok(explain_cmd(
        &model,
        &manifest,
        &other,
        &["--shard", "1/3", "--seed", "5"],
    ));
    let err = merge_err(&[&shards[0], &other, &shards[2]]);
    assert!(err.contains("settings differs"), "{err}");
    // A gap: a shard with a part missing (as if it was never resumed).
    let gap = tmp.path().join("gap");
    run_ok(explain_cmd(&model, &manifest, &gap, &["--shard", "2/3"]));
    let lines = std::fs::read_to_string(gap.join("explanations.jsonl")).unwrap();
    let kept: Vec<&str> = lines.lines().skip(4).collect();
    std::fs::write(gap.join("explanations.jsonl"), kept.join("\n") + "\n").unwrap();
    let err = merge_err(&[&shards[0], &shards[1], &gap]);
    assert!(err.contains("not done") && err.contains("resume"), "{err}");
    assert!(!tmp.path().join("never").exists());
}

#[test]
fn parquet_table_holds_the_json_lines() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, UInt64Type};
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, model) = corpus_and_model(tmp.path(), 2);
    let out = tmp.path().join("out");
    run_ok(explain_cmd(&model, &manifest, &out, &["--bands", "6"]));
    let records = read_records(&out);
    assert!(records.iter().all(|r| r.n_samples == 128 && r.split.is_none()));
    let file = std::fs::File::open(out.join("explanations.parquet")).unwrap();
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let meta = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .find(|kv| kv.key == emolime::table::METADATA_KEY)
        .and_then(|kv| kv.value.clone())
        .unwrap();
    let settings: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(settings["n_samples"], 128);
    assert_eq!(settings["band_edges_hz"].as_array().unwrap().len(), 7);
    let mut row = 0;
    for batch in builder.build().unwrap() {
        let batch = batch.unwrap();
        let ids = batch.column_by_name("id").unwrap().as_string::<i32>();
        let positions = batch.column_by_name("position").unwrap().as_primitive::<UInt64Type>();
        let coefs = batch.column_by_name("coefficients").unwrap().as_list::<i32>();
        let r2 = batch.column_by_name("r2").unwrap().as_primitive::<Float32Type>();
        for i in 0..batch.num_rows() {
            let rec = &records[row];
            assert_eq!(ids.value(i), rec.id);
            assert_eq!(positions.value(i) as usize, rec.position);
            let c = coefs.value(i);
            assert_eq!(c.as_primitive::<Float32Type>().values().to_vec(), rec.coefficients);
            assert_eq!(r2.value(i), rec.r2);
            row += 1;
        }
    }
    assert_eq!(row, records.len());
}

#[test]
fn lavapipe_and_cpu_runs_agree_to_1e_4() {
    let Some(ctx) = gpu() else { return };
    drop(ctx);
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, model) = corpus_and_model(tmp.path(), 1);
    let index = std::env::var("EMOLIME_TEST_ADAPTER").unwrap_or_else(|_| "0".into());
    let on_gpu = tmp.path().join("gpu");
    let on_cpu = tmp.path().join("cpu");
    let device = format!("gpu:{index}");
    run_ok(explain_cmd(
        &model,
        &manifest,
        &on_gpu,
        &["--samples", "64", "--device", &device],
    ));
    run_ok(explain_cmd(&model, &manifest, &on_cpu, &["--samples", "64"]));
    let mut cmd = emolime();
    cmd.arg("compare")
        .arg(&on_gpu)
        .arg(&on_cpu)
        .args(["--tolerance", "1e-4"]);
    let out = run_ok(cmd);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("16 utterance x class pairs in both; 0 only"), "{text}");
    let devices: Vec<String> = [&on_gpu, &on_cpu]
        .iter()
        .map(|d| read_records(d)[0].device.clone())
        .collect();
    assert!(
        devices[0].starts_with("gpu:") && devices[1].starts_with("cpu"),
        "{devices:?}"
    );
    // Each ran with its device's default batch, and the explanations agree all the same.
    let batch = |d: &Path| {
        let run: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("run.json")).unwrap()).unwrap();
        run["config"]["batch_size"].as_u64().unwrap() as usize
    };
    assert_eq!(batch(&on_gpu), emolime::explain::GPU_MEL_BATCH_SIZE);
    assert_eq!(batch(&on_cpu), emolime::explain::DEFAULT_BATCH_SIZE);
}

/// `emolime bench --device cpu` on `utterances` one-second utterances at `samples` samples with
/// `extra` arguments: its stdout and its JSON record.
fn bench_cpu(utterances: usize, samples: usize, extra: &[&std::ffi::OsStr]) -> (String, serde_json::Value) {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("bench.json");
    let mut cmd = emolime();
    cmd.args(["bench", "--device", "cpu", "--seconds", "1"])
        .args([
            "--utterances",
            &utterances.to_string(),
            "--samples",
            &samples.to_string(),
        ])
        .args(extra)
        .arg("--json")
        .arg(&json);
    let out = run_ok(cmd);
    let record = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), record)
}

#[test]
fn bench_writes_a_complete_record() {
    let (text, record) = bench_cpu(3, 48, &[]);
    assert!(text.contains("end to end:"), "{text}");
    assert_eq!(record["config"]["utterances"], 3);
    assert_eq!(record["config"]["samples"], 48);
    // No --batch-size: the CPU path's default (a GPU's is 4096 for this CNN).
    assert!(record["config"]["batch_size"].is_null());
    assert_eq!(record["batch_size"], emolime::explain::DEFAULT_BATCH_SIZE);
    assert!(record["model"].as_str().unwrap().contains("cnn"), "{}", record["model"]);
    assert_eq!(record["classes"], 4);
    for stage in ["decode_stft", "scoring", "surrogate", "writing"] {
        let v = record["ms_per_utterance"][stage].as_f64().unwrap();
        assert!(v.is_finite() && v > 0.0, "{stage}: {v}");
    }
    // The CPU path scores through the row-cached forward, which builds no masked inputs.
    assert_eq!(record["config"]["row_cache"], true);
    assert_eq!(record["ms_per_utterance"]["masks"], 0.0);
    assert!(text.contains("row-cached"), "{text}");
    // 48 masks of 8 bands: some drawn twice, each distinct one counted once.
    let scored = record["scored_per_utterance"].as_u64().unwrap();
    assert!((2..=48).contains(&scored), "{scored}");
    let rate = record["scored_per_s"].as_f64().unwrap();
    let scoring_ms = record["ms_per_utterance"]["scoring"].as_f64().unwrap();
    assert!(
        (rate * scoring_ms / 1e3 / scored as f64 - 1.0).abs() < 1e-9,
        "{rate} {scoring_ms}"
    );
    assert!(
        text.contains(&format!(
            "scoring rate: {scored} masked inputs through the row-cached forward"
        )),
        "{text}"
    );
    let e2e = &record["end_to_end"];
    let (ups, sps) = (
        e2e["utterances_per_s"].as_f64().unwrap(),
        e2e["samples_per_s"].as_f64().unwrap(),
    );
    assert!(ups > 0.0 && (sps / ups - 48.0).abs() < 1e-6, "{e2e}");
    assert!(record["adapter"].is_null(), "the CPU path has no adapter");
}

#[test]
fn bench_times_a_given_model() {
    // A wav2vec 2.0 checkpoint (the tiny transformers fixture) on the same corpus and stages.
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/w2v/w2v_base_head");
    let (text, record) = bench_cpu(2, 32, &["--model".as_ref(), model.as_os_str()]);
    let described = record["model"].as_str().unwrap();
    assert!(described.to_lowercase().contains("wav2vec2"), "{described}");
    assert!(text.contains(&format!("model: {described}")), "{text}");
    assert_eq!(record["config"]["model"], model.to_str().unwrap());
    assert_eq!(record["row_cached"], false);
    let scored = record["scored_per_utterance"].as_u64().unwrap();
    assert!((2..=32).contains(&scored), "{scored}");
    assert!(
        text.contains(&format!("scoring rate: {scored} inputs scored per utterance")),
        "{text}"
    );
    for stage in ["decode_stft", "masks", "scoring", "surrogate", "writing"] {
        let v = record["ms_per_utterance"][stage].as_f64().unwrap();
        assert!(v.is_finite() && v > 0.0, "{stage}: {v}");
    }
    assert_eq!(record["config"]["precision"], "F32");
    // The same checkpoint scoring in f16, said in the record and the model's description.
    let (_, half) = bench_cpu(
        2,
        32,
        &[
            "--model".as_ref(),
            model.as_os_str(),
            "--precision".as_ref(),
            "f16".as_ref(),
        ],
    );
    assert_eq!(half["config"]["precision"], "F16");
    let described = half["model"].as_str().unwrap();
    assert!(described.contains("scoring in f16"), "{described}");
    // The built-in CNN scores in f32 only: refused before its training.
    let mut cmd = emolime();
    cmd.args(["bench", "--device", "cpu", "--utterances", "1", "--precision", "f16"]);
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("precision") && err.contains("f32 only"), "{err}");
    // A model path that is not a model: one clear error naming it.
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = emolime();
    cmd.args(["bench", "--device", "cpu", "--utterances", "1", "--model"])
        .arg(tmp.path().join("missing.emolime"));
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.emolime"), "{err}");
}

/// Opt-in (EMOLIME_SLURM_TEST=1; CI sets it): needs root to install slurm-wlm and munge and to
/// start the daemons. See scripts/slurm/test_slurm.sh.
#[test]
fn slurm_job_array_covers_the_corpus_once() {
    if std::env::var("EMOLIME_SLURM_TEST").as_deref() != Ok("1") {
        eprintln!("slurm test skipped: set EMOLIME_SLURM_TEST=1 to run it (root needed)");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm/test_slurm.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_emolime"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}:\n{stdout}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("merged = whole run"), "{stdout}");
    for task in 0..3 {
        assert!(stdout.contains(&format!("task {task}: explained")), "{stdout}");
    }
}

#[test]
fn packed_corpus_runs_equal_one_utterance_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, model) = corpus_and_model(tmp.path(), 3);
    let packed = tmp.path().join("packed");
    let single = tmp.path().join("single");
    // 48 samples per utterance, batches of 256: up to 6 utterances per model call.
    run_ok(explain_cmd(&model, &manifest, &packed, &["--samples", "48"]));
    run_ok(explain_cmd(
        &model,
        &manifest,
        &single,
        &["--samples", "48", "--pack", "1"],
    ));
    let mut cmd = emolime();
    cmd.arg("compare")
        .arg(&packed)
        .arg(&single)
        .args(["--tolerance", "1e-5"]);
    let out = run_ok(cmd);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("48 utterance x class pairs in both; 0 only"), "{text}");
    // Decoded on several threads, the explanations still come out in input order, and the
    // summary says how long the device waited for decoded audio.
    let positions: Vec<usize> = read_records(&packed).iter().map(|r| r.position).collect();
    assert!(positions.windows(2).all(|w| w[0] <= w[1]), "{positions:?}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(packed.join("summary.json")).unwrap()).unwrap();
    assert!(summary["report"]["input_wait_s"].as_f64().unwrap() >= 0.0);
}

/// `emolime faithfulness` writes every curve, the mean curves and the summary, and refuses bad
/// settings before any work starts.
#[test]
fn faithfulness_writes_curves_and_refuses_bad_fractions() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, model) = corpus_and_model(tmp.path(), 2);
    let out = tmp.path().join("faith");
    let cmd = |extra: &[&str]| {
        let mut cmd = emolime();
        cmd.args(["faithfulness", "--quiet", "--device", "cpu", "--samples", "64"])
            .arg("--model")
            .arg(&model)
            .arg("--input")
            .arg(&manifest)
            .arg("--out")
            .arg(&out)
            .args(extra);
        cmd
    };
    let err = run_err(cmd(&["--fractions", "0,1.5"]));
    assert!(err.contains("fractions") && err.contains("1.5"), "{err}");
    assert!(!out.exists());
    let stdout = String::from_utf8(run_ok(cmd(&["--every-band", "--repeats", "2"])).stdout).unwrap();
    assert!(stdout.contains("dAUC"), "{stdout}");
    let curves = std::fs::read_to_string(out.join("deletion.csv")).unwrap();
    let rows: Vec<&str> = curves.lines().collect();
    assert_eq!(rows[0], "position,id,label,class,order,removed,fraction,prob,unchanged");
    // 8 utterances x 3 orders x 9 points (0..=8 bands).
    assert_eq!(rows.len() - 1, 8 * 3 * 9);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("faithfulness.json")).unwrap()).unwrap();
    assert_eq!(summary["summary"]["n_utterances"], 8);
    assert!(summary["summary"]["dauc_prob"]["mean"].is_number());
    let means = std::fs::read_to_string(out.join("deletion_summary.csv")).unwrap();
    assert_eq!(means.lines().count(), 1 + 3 * 9);
    // Refuses to replace the folder without --force.
    let err = run_err(cmd(&[]));
    assert!(err.contains("already exists"), "{err}");
}

/// `emolime stability` writes its tables; `explain --samples auto` records the count each
/// utterance used, a multiple of 256 up to the cap.
#[test]
fn stability_and_auto_samples_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, model) = corpus_and_model(tmp.path(), 1);
    let out = tmp.path().join("stab");
    let mut cmd = emolime();
    cmd.args([
        "stability",
        "--quiet",
        "--device",
        "cpu",
        "--seeds",
        "0,1",
        "--sample-counts",
        "32,64",
    ])
    .args(["--limit", "2", "--model"])
    .arg(&model)
    .arg("--input")
    .arg(&manifest)
    .arg("--out")
    .arg(&out);
    let stdout = String::from_utf8(run_ok(cmd).stdout).unwrap();
    assert!(stdout.contains("samples needed"), "{stdout}");
    let rows = std::fs::read_to_string(out.join("stability.csv")).unwrap();
    // 2 utterances x 4 classes x 2 counts.
    assert_eq!(rows.lines().count(), 1 + 2 * 4 * 2);
    assert!(out.join("stability_summary.csv").is_file() && out.join("stability.json").is_file());

    let err = run_err(explain_cmd(
        &model,
        &manifest,
        &tmp.path().join("bad"),
        &["--samples", "auto:2"],
    ));
    assert!(err.contains("samples") && err.contains("(0, 1)"), "{err}");
    let run = tmp.path().join("auto");
    run_ok(explain_cmd(&model, &manifest, &run, &["--samples", "auto:0.9:768"]));
    for r in read_records(&run) {
        assert!(r.n_samples == 768 || r.n_samples.is_multiple_of(256), "{}", r.n_samples);
    }
}

/// A manifest's extra columns travel into both outputs: the JSON lines' `metadata` object and
/// the Parquet table's `metadata` column (JSON), with `dataset` and `split` as their own columns.
#[test]
fn manifest_metadata_reaches_the_outputs() {
    use arrow_array::cast::AsArray;
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, model) = corpus_and_model(tmp.path(), 1);
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut rows = vec!["path,label,speaker,dataset,split,session".to_string()];
    for (i, line) in text.lines().skip(1).enumerate() {
        rows.push(format!(
            "{line},synthetic,{},\"s{i}, take 1\"",
            if i % 2 == 0 { "train" } else { "test" }
        ));
    }
    let with_meta = manifest.with_file_name("with_meta.csv");
    std::fs::write(&with_meta, rows.join("\n")).unwrap();
    let out = tmp.path().join("out");
    run_ok(explain_cmd(&model, &with_meta, &out, &["--samples", "32"]));
    let records = read_records(&out);
    assert_eq!(records.len(), 4 * 4);
    for r in &records {
        assert_eq!(r.dataset.as_deref(), Some("synthetic"));
        assert_eq!(r.metadata["session"], format!("s{}, take 1", r.position));
        assert_eq!(
            r.split.as_deref(),
            Some(if r.position % 2 == 0 { "train" } else { "test" })
        );
    }
    let file = std::fs::File::open(out.join("explanations.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut row = 0;
    for batch in reader {
        let batch = batch.unwrap();
        let meta = batch.column_by_name("metadata").unwrap().as_string::<i32>();
        let split = batch.column_by_name("split").unwrap().as_string::<i32>();
        for i in 0..batch.num_rows() {
            let parsed: std::collections::BTreeMap<String, String> = serde_json::from_str(meta.value(i)).unwrap();
            assert_eq!(parsed, records[row].metadata);
            assert_eq!(Some(split.value(i)), records[row].split.as_deref());
            row += 1;
        }
    }
    assert_eq!(row, records.len());
}

/// `emolime study` runs a 2 x 2 study end to end (train, explain, faithfulness, stability,
/// robustness), writes its summary, skips every finished step on a rerun, and refuses a bad
/// study before any work.
#[test]
fn study_runs_end_to_end_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, seed) in [("d1", 1), ("d2", 2)] {
        let synth = SynthConfig {
            n_per_class: 2,
            duration_s: 1.0,
            seed,
            ..SynthConfig::default()
        };
        write_corpus(&synth, &tmp.path().join(name)).unwrap();
    }
    let study = tmp.path().join("study.toml");
    let text = r#"
out = "out"
device = "cpu"
[explain]
samples = "32"
batch_size = 64
[[dataset]]
name = "d1"
train = "d1/manifest.csv"
test = "d1/manifest.csv"
[[dataset]]
name = "d2"
train = "d2/manifest.csv"
test = "d2/manifest.csv"
[[model]]
name = "cnn"
kind = "cnn"
epochs = 1
[[model]]
name = "feat"
kind = "egemaps"
head = "logreg"
[faithfulness]
repeats = 2
[stability]
seeds = [0, 1]
sample_counts = [16, 32]
limit = 1
"#;
    std::fs::write(&study, text).unwrap();
    let run = || {
        let mut cmd = emolime();
        cmd.args(["study", "--config"]).arg(&study);
        String::from_utf8(run_ok(cmd).stdout).unwrap()
    };
    let first = run();
    assert!(first.contains("[17/17] emolime robustness"), "{first}");
    let out = tmp.path().join("out");
    let summary = std::fs::read_to_string(out.join("study_summary.csv")).unwrap();
    let rows: Vec<&str> = summary.lines().collect();
    assert_eq!(rows.len(), 1 + 4, "{summary}");
    assert!(rows[1].starts_with("d1,cnn,8,"), "{summary}");
    assert!(out.join("robustness/robustness.json").is_file());
    assert!(out.join("faithfulness/d2/feat/deletion.csv").is_file());
    assert!(out.join("stability/d1/cnn/stability.csv").is_file());
    // Figures as SVG and PNG of the expected size, and a report that embeds them.
    let png_size = |p: &Path| {
        let png = std::fs::read(p).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{}", p.display());
        (
            u32::from_be_bytes(png[16..20].try_into().unwrap()),
            u32::from_be_bytes(png[20..24].try_into().unwrap()),
        )
    };
    let figs = out.join("figures");
    assert_eq!(png_size(&figs.join("deletion.d1.cnn.png")), (640, 420));
    assert_eq!(png_size(&figs.join("stability.d2.feat.png")), (640, 420));
    assert_eq!(png_size(&figs.join("utterance.d1.feat.png")), (900, 420));
    // 4 emotions x 260 px panels + a legend of one 20 px row (4 short labels) and 16 px margin.
    assert_eq!(png_size(&figs.join("importance.png")), (900, 16 + 20 + 4 * 260));
    for f in ["deletion.d1.cnn.svg", "importance.svg", "utterance.d2.cnn.svg"] {
        assert!(
            std::fs::read_to_string(figs.join(f)).unwrap().starts_with("<svg"),
            "{f}"
        );
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(
        html.matches("data:image/png;base64,").count(),
        1 + 4 * 3,
        "every figure embedded"
    );
    assert!(html.contains("emolime robustness") && html.contains("Cliff"));
    let again = run();
    assert_eq!(again.matches("done already").count(), 17, "{again}");
    // A spectrogram whose audio is gone is left out of the report, with a note; the rest stays.
    let d1 = tmp.path().join("d1");
    let first = std::fs::read_to_string(d1.join("manifest.csv")).unwrap();
    let first = first.lines().nth(1).unwrap().split(',').next().unwrap().to_string();
    std::fs::remove_file(d1.join(&first)).unwrap();
    let mut cmd = emolime();
    cmd.args(["study", "--config"]).arg(&study);
    let rerun = run_ok(cmd);
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert_eq!(
        stderr.matches("report: left out the spectrogram of d1/").count(),
        2,
        "{stderr}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("data:image/png;base64,").count(), 1 + 4 * 3 - 2);

    // A misspelt key is refused with its line, before any work.
    std::fs::write(&study, text.replace("repeats = 2", "repeat = 2")).unwrap();
    let mut cmd = emolime();
    cmd.args(["study", "--config"])
        .arg(&study)
        .arg("--out")
        .arg(tmp.path().join("out2"));
    let err = run_err(cmd);
    assert!(
        err.contains("study.toml") && err.contains("repeat") && err.contains("line"),
        "{err}"
    );
    assert!(!tmp.path().join("out2").exists());
    // Test labels the models are not trained on are refused before any work.
    let d2 = tmp.path().join("d2/manifest.csv");
    let manifest = std::fs::read_to_string(&d2).unwrap();
    let odd = tmp.path().join("d2/odd.csv");
    std::fs::write(&odd, manifest.replacen(",angry,", ",bored,", 1)).unwrap();
    std::fs::write(
        &study,
        text.replace("test = \"d2/manifest.csv\"", "test = \"d2/odd.csv\""),
    )
    .unwrap();
    let mut cmd = emolime();
    cmd.args(["study", "--config"])
        .arg(&study)
        .arg("--out")
        .arg(tmp.path().join("out3"));
    let err = run_err(cmd);
    assert!(err.contains("bored") && err.contains("d2"), "{err}");
    assert!(!tmp.path().join("out3").exists());
}

/// Feature classifiers take the shuffled-labels control (a different model from the same
/// features) and refuse random weights, which only the CNN has.
#[test]
fn feature_classifiers_take_the_shuffled_labels_control() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, _) = corpus_and_model(tmp.path(), 3);
    let train = |head: &str, out: &str, extra: &[&str]| {
        let mut cmd = emolime();
        cmd.args([
            "train",
            "--features",
            "egemaps",
            "--head",
            head,
            "--folds",
            "0",
            "--input",
        ])
        .arg(&manifest)
        .arg("--out")
        .arg(tmp.path().join(out))
        .args(extra);
        cmd
    };
    run_ok(train("logreg", "real.json", &[]));
    run_ok(train("logreg", "shuffled.json", &["--control", "shuffled-labels"]));
    let read = |f: &str| std::fs::read_to_string(tmp.path().join(f)).unwrap();
    assert_ne!(read("real.json"), read("shuffled.json"));
    let err = run_err(train("logreg", "random.json", &["--control", "random-weights"]));
    assert!(err.contains("random-weights") && err.contains("--head mlp"), "{err}");
    assert!(!tmp.path().join("random.json").exists());
    // The mlp head keeps its seeded initial weights: no training step.
    run_ok(train("mlp", "mlp.json", &[]));
    run_ok(train("mlp", "mlp-random.json", &["--control", "random-weights"]));
    let head = |f: &str| {
        let v: serde_json::Value = serde_json::from_str(&read(f)).unwrap();
        v["head"].clone()
    };
    assert_ne!(head("mlp.json"), head("mlp-random.json"));
    assert_eq!(head("mlp-random.json")["final_loss"], 0.0);
    let reloaded = emolime::classify::FeatureClassifier::load(&tmp.path().join("mlp-random.json")).unwrap();
    assert_eq!(reloaded.classes().len(), 4);
}

/// The header of a safetensors file: {name: {dtype, shape, data_offsets}, "__metadata__": {...}},
/// after checking that the data are 8-byte aligned and the offsets tile the data exactly.
fn safetensors_header(bytes: &[u8]) -> serde_json::Map<String, serde_json::Value> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0, "data not 8-byte aligned");
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut ranges: Vec<(u64, u64)> = header
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| {
            let o = v["data_offsets"].as_array().unwrap();
            (o[0].as_u64().unwrap(), o[1].as_u64().unwrap())
        })
        .collect();
    ranges.sort();
    let mut at = 0;
    for (a, b) in ranges {
        assert_eq!(a, at, "offsets leave a gap or overlap");
        at = b;
    }
    assert_eq!(at as usize, bytes.len() - 8 - n, "offsets do not cover the data");
    header
}

/// One f32 array of a safetensors file.
fn safetensors_array(bytes: &[u8], header: &serde_json::Map<String, serde_json::Value>, name: &str) -> Vec<f32> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let o = header[name]["data_offsets"].as_array().unwrap();
    let (a, b) = (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize);
    bytes[8 + n + a..8 + n + b]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn export_writes_pytorch_layouts_and_inputs_that_reproduce_the_probabilities() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, model) = corpus_and_model(tmp.path(), 2);
    let out = tmp.path().join("export");
    let mut cmd = emolime();
    cmd.args(["export", "--device", "cpu", "--limit", "3", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(&manifest)
        .arg("--out")
        .arg(&out);
    run_ok(cmd);

    let cpu = ComputeDevice::cpu("test");
    let cnn = emolime::model::Classifier::load(&model, &cpu.burn).unwrap();
    let [c1, _, c3] = cnn.meta.channels;
    let weights = std::fs::read(out.join("weights.safetensors")).unwrap();
    let w = safetensors_header(&weights);
    let shape = |k: &str| w[k]["shape"].clone();
    assert_eq!(shape("conv1.weight"), serde_json::json!([c1, 1, 3, 3]));
    // PyTorch's Linear layout [out, in], and batch norm's weight/bias/running statistics.
    assert_eq!(
        shape("fc.weight"),
        serde_json::json!([4, c3 * emolime::model::cnn::FREQ_GROUPS])
    );
    for k in ["bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"] {
        assert_eq!(shape(k), serde_json::json!([c1]), "{k}");
    }
    let meta: emolime::model::ModelMeta =
        serde_json::from_str(w["__metadata__"]["emolime.meta"].as_str().unwrap()).unwrap();
    assert_eq!(meta, cnn.meta);

    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("inputs.json")).unwrap()).unwrap();
    let utts = info["utterances"].as_array().unwrap();
    assert_eq!(utts.len(), 3);
    let row_band = info["bands"]["row_band"].as_array().unwrap();
    assert_eq!(row_band.len(), cnn.meta.front_end.n_mels);
    assert!(row_band.iter().all(|b| b.as_u64().unwrap() < 8));
    let inputs = std::fs::read(out.join("inputs.safetensors")).unwrap();
    let h = safetensors_header(&inputs);
    for (i, u) in utts.iter().enumerate() {
        let name = format!("mel.{i}");
        let dims: Vec<usize> = serde_json::from_value(h[&name]["shape"].clone()).unwrap();
        assert_eq!(
            dims,
            [cnn.meta.front_end.n_mels, u["n_frames"].as_u64().unwrap() as usize]
        );
        let probs = cnn
            .probs_host(safetensors_array(&inputs, &h, &name), [1, dims[0], dims[1]])
            .unwrap();
        let want: Vec<f32> = serde_json::from_value(u["probs"].clone()).unwrap();
        for (p, q) in probs.iter().zip(&want) {
            assert!((p - q).abs() < 1e-5, "{name}: {probs:?} vs {want:?}");
        }
    }
    // The manifest names the same files, by absolute path, in the same order.
    let listed = collect_inputs(&out.join("manifest.csv")).unwrap();
    assert_eq!(listed.items.len(), 3);
    for (item, u) in listed.items.iter().zip(utts) {
        assert!(item.path.is_absolute());
        assert_eq!(std::fs::canonicalize(u["path"].as_str().unwrap()).unwrap(), item.path);
    }

    // One unlabelled file: its input is exported, but no manifest (a row needs a label).
    let one = tmp.path().join("one");
    let mut cmd = emolime();
    cmd.args(["export", "--device", "cpu", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(&listed.items[0].path)
        .arg("--out")
        .arg(&one);
    run_ok(cmd);
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(one.join("inputs.json")).unwrap()).unwrap();
    assert_eq!(info["utterances"].as_array().unwrap().len(), 1);
    assert!(!one.join("manifest.csv").exists());
}

#[test]
fn export_refuses_a_model_that_is_not_a_cnn() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.json");
    std::fs::write(&model, b"{}").unwrap();
    let mut cmd = emolime();
    cmd.args(["export", "--device", "cpu", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(tmp.path().join("x"));
    let err = run_err(cmd);
    assert!(err.contains("m.json"), "{err}");
    assert!(!tmp.path().join("x").exists());
}

#[test]
fn safetensors_writer_checks_shapes_and_names() {
    use emolime::output::{NamedArray, safetensors_bytes};
    let a = NamedArray {
        name: "a",
        shape: &[2, 3],
        data: &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    };
    let b = NamedArray {
        name: "b",
        shape: &[1],
        data: &[-7.5],
    };
    let meta = [("k".to_string(), "v".to_string())].into_iter().collect();
    let bytes = safetensors_bytes(&[a, b], &meta).unwrap();
    let h = safetensors_header(&bytes);
    assert_eq!(h["a"]["shape"], serde_json::json!([2, 3]));
    assert_eq!(h["__metadata__"]["k"], "v");
    assert_eq!(safetensors_array(&bytes, &h, "a"), a.data);
    assert_eq!(safetensors_array(&bytes, &h, "b"), [-7.5]);
    let short = NamedArray { shape: &[4], ..a };
    assert!(safetensors_bytes(&[short], &Default::default()).is_err());
    assert!(safetensors_bytes(&[a, a], &Default::default()).is_err());
}

/// The built-in corpus with `n_per_class` utterances of 0.6 s per class in `dir/corpus`; returns
/// its manifest (with speakers).
fn short_synth_corpus(dir: &Path, n_per_class: usize) -> PathBuf {
    let synth = emolime::synth::SynthConfig {
        n_per_class,
        duration_s: 0.6,
        ..emolime::synth::SynthConfig::default()
    };
    emolime::synth::write_corpus(&synth, &dir.join("corpus")).unwrap()
}

/// `emolime features probe` on a small synthetic corpus with the bare wav2vec 2.0 fixture: the
/// layer x feature map as CSV (one row per hidden state, one column per eGeMAPS feature), JSON
/// and a figure; a manifest without speakers stops before any work.
#[test]
fn features_probe_writes_the_layer_feature_map() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = short_synth_corpus(tmp.path(), 3);
    let model = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/w2v/w2v_base_bare");
    let out = tmp.path().join("probe");
    let mut cmd = emolime();
    cmd.args(["features", "probe", "--device", "cpu", "--folds", "3", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(&manifest)
        .arg("--out")
        .arg(&out);
    let stdout = String::from_utf8_lossy(&run_ok(cmd).stdout).into_owned();
    assert!(stdout.contains("hidden state  0: mean R^2"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("layer_feature_r2.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0].split(',').count(), 89, "layer + 88 features");
    assert!(lines[0].starts_with("layer,F0semitoneFrom27.5Hz_sma3nz_amean"));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let layers = summary["hidden_states"].as_u64().unwrap() as usize;
    assert_eq!(lines.len(), 1 + layers);
    let table = emolime::table::Table::read_parquet(&out.join("layer_feature_r2.parquet")).unwrap();
    assert_eq!(table.to_csv(), csv, "the Parquet table holds the CSV's values");
    assert_eq!(summary["utterances"], 12);
    assert_eq!(summary["folds"], 3);
    assert_eq!(summary["best_layer_per_feature"].as_array().unwrap().len(), 88);
    for ext in ["svg", "png"] {
        assert!(out.join(format!("layer_feature_map.{ext}")).is_file());
    }
    // No speaker column: a clear error naming the column, and no output folder.
    let bare = tmp.path().join("bare.csv");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let rows: Vec<String> = text
        .lines()
        .map(|l| l.split(',').take(2).collect::<Vec<_>>().join(","))
        .collect();
    std::fs::write(&bare, rows.join("\n") + "\n").unwrap();
    let wav_dir = manifest.parent().unwrap();
    let bare_in_corpus = wav_dir.join("bare.csv");
    std::fs::rename(&bare, &bare_in_corpus).unwrap();
    let mut cmd = emolime();
    cmd.args(["features", "probe", "--device", "cpu", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(&bare_in_corpus)
        .arg("--out")
        .arg(tmp.path().join("probe2"));
    let err = run_err(cmd);
    assert!(err.contains("speaker"), "{err}");
    assert!(!tmp.path().join("probe2").exists());
}

/// `emolime features rank --targets-from MODEL` ranks what explains the model's own decisions:
/// the targets are its predictions, and `targets.json` records how often they match the labels.
#[test]
fn features_rank_can_target_a_models_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = short_synth_corpus(tmp.path(), 6);
    let model = tmp.path().join("lr.json");
    let mut cmd = emolime();
    cmd.args([
        "train",
        "--features",
        "egemaps",
        "--head",
        "logreg",
        "--folds",
        "0",
        "--input",
    ])
    .arg(&manifest)
    .arg("--out")
    .arg(&model);
    run_ok(cmd);
    // `features rank` on the corpus, targets from the model, on `device`, into `out`.
    let rank = |device: &str, out: &Path| {
        let mut cmd = emolime();
        cmd.args([
            "features",
            "rank",
            "--folds",
            "2",
            "--bootstrap",
            "10",
            "--shap-coalitions",
            "0",
        ])
        .args(["--device", device, "--targets-from"])
        .arg(&model)
        .arg("--corpus")
        .arg(format!("synth={}", manifest.display()))
        .arg("--out")
        .arg(out);
        run_ok(cmd)
    };
    let out = tmp.path().join("rank");
    let stdout = String::from_utf8_lossy(&rank("cpu", &out).stdout).into_owned();
    assert!(stdout.contains("targets: the predictions of"), "{stdout}");
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("targets.json")).unwrap()).unwrap();
    let c = &t["corpora"][0];
    assert_eq!(c["corpus"], "synth");
    assert_eq!(c["utterances"], 24);
    let agreement = c["agreement"].as_f64().unwrap();
    assert!(
        (0.5..=1.0).contains(&agreement),
        "a model trained on these files agrees with their labels: {agreement}"
    );
    assert_eq!(t["classes"].as_array().unwrap().len(), 4);
    // The figures: each method's top features, and the agreement matrix.
    for stem in ["top_permutation", "top_l1_stability", "agreement"] {
        for ext in ["svg", "png"] {
            assert!(out.join(format!("{stem}.{ext}")).is_file(), "{stem}.{ext}");
        }
    }
    assert!(!out.join("top_kernelshap.svg").exists(), "KernelSHAP was skipped");

    // On a GPU, permutation importance scores its permuted rows on the device (f32): the same
    // rankings up to a near-tie prediction, and the host-only methods exactly the same.
    if gpu().is_none() {
        return;
    }
    let adapter = std::env::var("EMOLIME_TEST_ADAPTER").unwrap_or_else(|_| "0".into());
    let on_gpu = tmp.path().join("rank_gpu");
    rank(&format!("gpu:{adapter}"), &on_gpu);
    let read = |dir: &std::path::Path, name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(
        read(&out, "ranking_l1_stability.csv"),
        read(&on_gpu, "ranking_l1_stability.csv")
    );
    let importance = |dir: &std::path::Path| -> std::collections::BTreeMap<String, f64> {
        read(dir, "ranking_permutation.csv")
            .lines()
            .skip(1)
            .map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                (cells[1].to_string(), cells[2].parse().unwrap())
            })
            .collect()
    };
    let (host, device) = (importance(&out), importance(&on_gpu));
    assert_eq!(host.len(), 88);
    for (feature, h) in &host {
        let g = device[feature];
        assert!((h - g).abs() <= 0.05, "{feature}: host {h}, device {g}");
    }
}

#[test]
fn explain_scores_a_checkpoint_in_f16_and_refuses_it_for_other_models() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, cnn) = corpus_and_model(tmp.path(), 1);
    let w2v = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/w2v/w2v_base_head");
    let run = |model: &Path, out: &str, precision: &str| {
        explain_cmd(
            model,
            &manifest,
            &tmp.path().join(out),
            &["--samples", "16", "--precision", precision],
        )
        .output()
        .unwrap()
    };
    let (full, half) = (run(&w2v, "f32", "f32"), run(&w2v, "f16", "f16"));
    for out in [&full, &half] {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(String::from_utf8_lossy(&half.stdout).contains("scoring in f16"));
    assert!(!String::from_utf8_lossy(&full.stdout).contains("scoring in"));
    // The two runs agree closely but are not the same computation.
    let probs = |dir: &str| -> Vec<f32> {
        let text = std::fs::read_to_string(tmp.path().join(dir).join("explanations.jsonl")).unwrap();
        text.lines()
            .flat_map(|l| {
                let r: serde_json::Value = serde_json::from_str(l).unwrap();
                let probs = r["probs"].as_array().unwrap().clone();
                probs.into_iter().map(|v| v.as_f64().unwrap() as f32)
            })
            .collect()
    };
    let (p, q) = (probs("f32"), probs("f16"));
    assert_eq!(p.len(), q.len());
    let worst = p.iter().zip(&q).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-2 && worst > 0.0, "f16 against f32: {worst}");
    // A CNN scores in f32 only: one error naming the model file and the flag.
    let refused = run(&cnn, "cnn", "f16");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("m.emolime") && err.contains("precision"), "{err}");
}
