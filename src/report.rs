//! The study report: figures (SVG and PNG under `figures/`) made from a study folder's outputs,
//! and one self-contained `report.html` (figures embedded as PNG data) with the settings,
//! every command, the summary table and the robustness test.

use crate::audio::FrontEndConfig;
use crate::bands::BandLayout;
use crate::error::{Error, Result};
use crate::explain::ExplanationRecord;
use crate::faithfulness::FaithfulnessSummary;
use crate::figures::{Figure, deletion_figure, importance_figure, spectrogram_figure, stability_figure};
use crate::robustness::{AgreementTest, Profile};
use crate::stability::StabilitySummary;
use crate::study::{Step, StudyConfig};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Frames drawn at most in a spectrogram figure (longer utterances are averaged down).
const MAX_FRAMES: usize = 160;

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// HTML-escapes `s`.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Standard base64 of `bytes`.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A figure saved under `figures/` and its place in the report.
struct Placed {
    caption: String,
    png: Vec<u8>,
    files: (PathBuf, PathBuf),
}

fn place(dir: &Path, name: &str, fig: Figure, caption: String) -> Result<Placed> {
    let files = fig.save(&dir.join(name))?;
    Ok(Placed {
        caption,
        png: std::fs::read(&files.1).map_err(|e| Error::io(&files.1, e))?,
        files,
    })
}

/// The spectrogram figure of the first utterance of an explain run, for its predicted class,
/// computed with the default front end (the CNN's and the waveform models' analysis).
fn utterance_figure(run: &Path, title: &str) -> Result<Option<Figure>> {
    let Some(line) = std::fs::read_to_string(run.join("explanations.jsonl"))
        .ok()
        .and_then(|t| t.lines().next().map(str::to_string))
    else {
        return Ok(None);
    };
    let first: ExplanationRecord = serde_json::from_str(&line).map_err(|source| Error::Json {
        path: run.join("explanations.jsonl"),
        source,
    })?;
    // The record of the predicted class of that utterance.
    let text = std::fs::read_to_string(run.join("explanations.jsonl")).map_err(|e| Error::io(run, e))?;
    let rec: ExplanationRecord = text
        .lines()
        .filter_map(|l| serde_json::from_str::<ExplanationRecord>(l).ok())
        .find(|r| r.id == first.id && r.class == r.predicted)
        .unwrap_or(first);
    let fe = FrontEndConfig::default();
    let samples = crate::audio::load_mono(Path::new(&rec.path), fe.sample_rate_hz, fe.n_fft)?;
    let power = fe.stft()?.power(&samples)?;
    let mel = fe.mel_filterbank()?.apply(power.view())?;
    let layout = BandLayout::new(&rec.bands, fe.n_mels, fe.fmin_hz, fe.fmax_hz, fe.mel_scale)?;
    // Average frames down to at most MAX_FRAMES columns.
    let (m, t) = mel.dim();
    let step = t.div_ceil(MAX_FRAMES).max(1);
    let cols = t.div_ceil(step);
    let pooled = ndarray::Array2::from_shape_fn((m, cols), |(r, c)| {
        let span = c * step..((c + 1) * step).min(t);
        let n = span.len() as f32;
        span.map(|k| mel[[r, k]]).sum::<f32>() / n
    });
    let title = format!(
        "{title}: {} ({}, explained as {})",
        rec.id,
        rec.label.as_deref().unwrap_or("?"),
        rec.class
    );
    Ok(Some(spectrogram_figure(
        pooled.view(),
        &layout.row_band,
        &rec.coefficients,
        &layout.edges_hz,
        &title,
    )?))
}

/// What [`write_report`] made.
#[derive(Clone, Debug)]
pub struct ReportOutcome {
    /// `report.html`.
    pub path: PathBuf,
    /// Figures left out, each with the reason (an utterance whose audio cannot be read, ...).
    pub left_out: Vec<String>,
}

/// Makes every figure of the study in `out` (`figures/`) and writes `out/report.html`.
/// Figures whose inputs are missing (a step not run) are left out silently; a spectrogram
/// whose audio cannot be read is left out and named in [`ReportOutcome::left_out`].
pub fn write_report(out: &Path, cfg: &StudyConfig, steps: &[Step], command: &str) -> Result<ReportOutcome> {
    let mut left_out = vec![];
    let fig_dir = out.join("figures");
    std::fs::create_dir_all(&fig_dir).map_err(|e| Error::io(&fig_dir, e))?;
    let mut sections: Vec<(String, Vec<Placed>)> = vec![];
    let mut robustness_tests: Vec<AgreementTest> = vec![];
    // Robustness: the per-emotion importance figure.
    let robustness: Option<serde_json::Value> = read_json(&out.join("robustness/robustness.json"));
    if let Some(r) = &robustness {
        let profiles: Vec<Profile> = serde_json::from_value(r["profiles"].clone()).unwrap_or_default();
        let edges: Vec<f32> = serde_json::from_value(r["band_edges_hz"].clone()).unwrap_or_default();
        robustness_tests = serde_json::from_value(r["tests"].clone()).unwrap_or_default();
        if !profiles.is_empty() {
            let fig = importance_figure(&profiles, &edges)?;
            sections.push((
                "Band importance by emotion, dataset and model".into(),
                vec![place(
                    &fig_dir,
                    "importance",
                    fig,
                    "Mean LIME coefficient per band of each emotion's class over the utterances labelled with it; \
                     whiskers: one standard error."
                        .into(),
                )?],
            ));
        }
    }
    for d in &cfg.dataset {
        for m in &cfg.model {
            let key = format!("{}/{}", d.name, m.name);
            let stem = format!("{}.{}", d.name, m.name);
            let mut placed = vec![];
            let utterance =
                utterance_figure(&out.join("explain").join(&d.name).join(&m.name), &key).unwrap_or_else(|e| {
                    left_out.push(format!("spectrogram of {key}: {e}"));
                    None
                });
            if let Some(fig) = utterance {
                placed.push(place(
                    &fig_dir,
                    &format!("utterance.{stem}"),
                    fig,
                    "Log-mel spectrogram of the run's first utterance and the band weights of its predicted class."
                        .into(),
                )?);
            }
            let faith: Option<serde_json::Value> = read_json(
                &out.join("faithfulness")
                    .join(&d.name)
                    .join(&m.name)
                    .join("faithfulness.json"),
            );
            if let Some(summary) =
                faith.and_then(|f| serde_json::from_value::<FaithfulnessSummary>(f["summary"].clone()).ok())
            {
                placed.push(place(
                    &fig_dir,
                    &format!("deletion.{stem}"),
                    deletion_figure(&summary, &key)?,
                    "Deletion curves: bands removed most relevant first (MoRF), least relevant first (LeRF) and at random."
                        .into(),
                )?);
            }
            let stab: Option<serde_json::Value> =
                read_json(&out.join("stability").join(&d.name).join(&m.name).join("stability.json"));
            if let Some(stab) = stab {
                let target = stab["stability"]["target"].as_f64().unwrap_or(0.95);
                if let Ok(summary) = serde_json::from_value::<StabilitySummary>(stab["summary"].clone()) {
                    placed.push(place(
                        &fig_dir,
                        &format!("stability.{stem}"),
                        stability_figure(&summary, target, &key)?,
                        "Agreement of band rankings across seeds against the sample count.".into(),
                    )?);
                }
            }
            if !placed.is_empty() {
                sections.push((key, placed));
            }
        }
    }
    let mut html = String::new();
    let w = &mut html;
    let _ = write!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>emolime study</title>\n<style>\
         body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #bbb;padding:3px 6px;text-align:right}}\
         th{{background:#eee}}pre{{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}}\
         figure{{margin:1em 0}}img{{max-width:100%}}figcaption{{font-size:13px;color:#555}}.wide{{overflow-x:auto}}</style></head><body>\n\
         <h1>emolime study</h1>\n<p>Made by <code>{}</code> (emolime {}).</p>\n",
        esc(command),
        env!("CARGO_PKG_VERSION")
    );
    if let Ok(summary) = std::fs::read_to_string(out.join("study_summary.csv")) {
        let _ = writeln!(w, "<h2>Summary</h2>\n<div class=\"wide\"><table>");
        for (i, line) in summary.lines().enumerate() {
            let cell = if i == 0 { "th" } else { "td" };
            let _ = write!(w, "<tr>");
            for field in line.split(',') {
                let shown = field
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.fract() != 0.0)
                    .map_or(field.to_string(), |v| format!("{v:.3}"));
                let _ = write!(w, "<{cell}>{}</{cell}>", esc(&shown));
            }
            let _ = writeln!(w, "</tr>");
        }
        let _ = writeln!(w, "</table></div>");
    }
    if !robustness_tests.is_empty() {
        let _ = writeln!(
            w,
            "<h2>Do explanations agree more across models than across datasets?</h2>\n<table>\
             <tr><th>similarity</th><th>cross-model mean</th><th>cross-dataset mean</th><th>difference</th>\
             <th>Cliff's delta</th><th>permutation p</th><th>Wilcoxon p</th><th>pairs (model / dataset)</th></tr>"
        );
        for t in &robustness_tests {
            let _ = writeln!(
                w,
                "<tr><td>{:?}</td><td>{:.3}</td><td>{:.3}</td><td>{:+.3}</td><td>{:+.2}</td><td>{:.4}</td><td>{:.4}</td><td>{} / {}</td></tr>",
                t.similarity,
                t.mean_cross_model,
                t.mean_cross_dataset,
                t.difference,
                t.cliffs_delta,
                t.p_permutation,
                t.p_wilcoxon,
                t.n_cross_model,
                t.n_cross_dataset
            );
        }
        let _ = writeln!(w, "</table>");
    }
    for (title, figs) in &sections {
        let _ = writeln!(w, "<h2>{}</h2>", esc(title));
        for f in figs {
            let _ = writeln!(
                w,
                "<figure><img alt=\"{}\" src=\"data:image/png;base64,{}\"><figcaption>{} ({} and {})</figcaption></figure>",
                esc(&f.caption),
                base64(&f.png),
                esc(&f.caption),
                esc(&f.files.0.file_name().unwrap_or_default().to_string_lossy()),
                esc(&f.files.1.file_name().unwrap_or_default().to_string_lossy()),
            );
        }
    }
    let _ = writeln!(
        w,
        "<h2>Settings</h2>\n<pre>{}</pre>",
        esc(&serde_json::to_string_pretty(cfg).unwrap_or_default())
    );
    let _ = writeln!(w, "<h2>Commands</h2>\n<pre>");
    for s in steps {
        let _ = writeln!(w, "{}", esc(&s.command_line()));
    }
    let _ = writeln!(w, "</pre>\n</body></html>");
    let path = out.join("report.html");
    crate::output::write_atomic(&path, html.as_bytes())?;
    Ok(ReportOutcome { path, left_out })
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc_4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(input.as_bytes()), want);
        }
    }
}
