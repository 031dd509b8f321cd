//! Subband layouts: which mel rows form each interpretable component, and its edges in Hz.

use crate::audio::{MelScale, mel_frequencies_hz};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// How the frequency axis is cut into interpretable bands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "edges_hz")]
pub enum BandKind {
    /// Equal groups of mel rows (the EmoLIME default: 128 rows in 8 bands of 16).
    EqualMel,
    /// Equal widths in Hz between `fmin_hz` and `fmax_hz`.
    LinearHz,
    /// Equal widths on the ERB-rate scale (Glasberg & Moore).
    Erb,
    /// Caller-given band edges in Hz, ascending (`B + 1` values).
    Custom(Vec<f32>),
}

/// Band layout settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BandConfig {
    /// How bands are placed.
    pub kind: BandKind,
    /// Number of bands `B` (2..=64); ignored for [`BandKind::Custom`], which has `edges - 1`.
    pub n_bands: usize,
}

impl Default for BandConfig {
    fn default() -> Self {
        BandConfig {
            kind: BandKind::EqualMel,
            n_bands: 8,
        }
    }
}

/// Smallest and largest band counts.
pub const MIN_BANDS: usize = 2;
/// Largest band count (masks are stored as one bit per band in a `u64`).
pub const MAX_BANDS: usize = 64;

impl BandConfig {
    /// Number of bands this config yields.
    pub fn band_count(&self) -> usize {
        match &self.kind {
            BandKind::Custom(edges) => edges.len().saturating_sub(1),
            _ => self.n_bands,
        }
    }

    /// Checks the band count and, for custom edges, that they ascend.
    pub fn validate(&self) -> Result<()> {
        let b = self.band_count();
        if !(MIN_BANDS..=MAX_BANDS).contains(&b) {
            return Err(Error::config("bands", format!("band count must be 2..=64, got {b}")));
        }
        if let BandKind::Custom(edges) = &self.kind {
            if edges.iter().any(|e| !e.is_finite() || *e < 0.0) {
                return Err(Error::config("band-edges-hz", "edges must be finite and >= 0"));
            }
            if edges.windows(2).any(|w| w[1] <= w[0]) {
                return Err(Error::config("band-edges-hz", "edges must be strictly ascending"));
            }
        }
        Ok(())
    }
}

/// A concrete band layout over a mel spectrogram; stored with every explanation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BandLayout {
    /// The settings it was built from.
    pub config: BandConfig,
    /// Band edges in Hz, `B + 1` ascending values.
    pub edges_hz: Vec<f32>,
    /// Band index of each mel row. // [M]
    pub row_band: Vec<u32>,
}

impl BandLayout {
    /// Builds the layout for a mel spectrogram of `n_mels` rows between `fmin_hz` and `fmax_hz`.
    ///
    /// For [`BandKind::EqualMel`] band `b` holds rows `floor(b*M/B)..floor((b+1)*M/B)` and its
    /// edges are the mel-scale points between those rows. For the other kinds, each row goes to
    /// the band that holds its centre frequency; a band that would hold no row is an error.
    pub fn new(config: &BandConfig, n_mels: usize, fmin_hz: f32, fmax_hz: f32, scale: MelScale) -> Result<Self> {
        config.validate()?;
        let b = config.band_count();
        if n_mels < b {
            return Err(Error::config(
                "bands",
                format!("{b} bands need at least {b} mel rows, have {n_mels}"),
            ));
        }
        // n_mels + 2 points: row m spans points m..m+2 and peaks at m+1.
        let points = mel_frequencies_hz(n_mels + 2, fmin_hz, fmax_hz, scale);
        let centres = &points[1..=n_mels];
        let (edges_hz, row_band) = match &config.kind {
            BandKind::EqualMel => {
                let starts: Vec<usize> = (0..=b).map(|i| i * n_mels / b).collect();
                let mut edges: Vec<f32> = starts.iter().map(|&s| points[s]).collect();
                edges[0] = fmin_hz;
                edges[b] = fmax_hz;
                let mut rows = vec![0u32; n_mels];
                for band in 0..b {
                    for r in &mut rows[starts[band]..starts[band + 1]] {
                        *r = band as u32;
                    }
                }
                (edges, rows)
            }
            kind => {
                let edges = match kind {
                    BandKind::LinearHz => (0..=b)
                        .map(|i| fmin_hz + (fmax_hz - fmin_hz) * i as f32 / b as f32)
                        .collect(),
                    BandKind::Erb => {
                        let (lo, hi) = (erb_rate(fmin_hz), erb_rate(fmax_hz));
                        (0..=b)
                            .map(|i| erb_rate_to_hz(lo + (hi - lo) * i as f32 / b as f32))
                            .collect()
                    }
                    BandKind::Custom(e) => {
                        let (lo, hi) = (e[0], e[e.len() - 1]);
                        if lo < fmin_hz - 0.5 || hi > fmax_hz + 0.5 {
                            return Err(Error::config(
                                "band-edges-hz",
                                format!(
                                    "edges {lo:.0}-{hi:.0} Hz reach outside the model's analysed range \
                                     {fmin_hz:.0}-{fmax_hz:.0} Hz"
                                ),
                            ));
                        }
                        e.clone()
                    }
                    BandKind::EqualMel => unreachable!("handled above"),
                };
                let rows = assign_rows(centres, &edges)?;
                (edges, rows)
            }
        };
        let layout = BandLayout {
            // The count actually used (a custom layout's `n_bands` field is ignored otherwise).
            config: BandConfig {
                kind: config.kind.clone(),
                n_bands: b,
            },
            edges_hz,
            row_band,
        };
        for band in 0..b {
            if !layout.row_band.contains(&(band as u32)) {
                return Err(Error::config(
                    "bands",
                    format!(
                        "band {band} ({:.0}-{:.0} Hz) holds no mel row; use fewer bands or more mel bins",
                        layout.edges_hz[band],
                        layout.edges_hz[band + 1]
                    ),
                ));
            }
        }
        Ok(layout)
    }

    /// Number of bands `B`.
    pub fn n_bands(&self) -> usize {
        self.edges_hz.len() - 1
    }

    /// Number of mel rows `M`.
    pub fn n_mels(&self) -> usize {
        self.row_band.len()
    }

    /// Width in Hz of the overlap between `band` and the range `lo_hz..hi_hz`.
    pub fn band_overlap_hz(&self, band: usize, lo_hz: f32, hi_hz: f32) -> f32 {
        let (a, b) = (self.edges_hz[band], self.edges_hz[band + 1]);
        (b.min(hi_hz) - a.max(lo_hz)).max(0.0)
    }
}

/// Assigns each centre frequency to the band `[edges[i], edges[i+1])` holding it.
///
/// # Shapes
/// `centres_hz` [M], `edges_hz` [B + 1] -> [M]
fn assign_rows(centres_hz: &[f32], edges_hz: &[f32]) -> Result<Vec<u32>> {
    let b = edges_hz.len() - 1;
    centres_hz
        .iter()
        .map(|&c| {
            if c < edges_hz[0] || c > edges_hz[b] {
                return Err(Error::config(
                    "band-edges-hz",
                    format!(
                        "mel row centred at {c:.0} Hz lies outside the band edges {:.0}-{:.0} Hz",
                        edges_hz[0], edges_hz[b]
                    ),
                ));
            }
            let i = edges_hz[1..].iter().position(|&e| c < e).unwrap_or(b - 1);
            Ok(i as u32)
        })
        .collect()
}

/// ERB-rate (number of ERBs below `hz`), Glasberg & Moore 1990.
pub fn erb_rate(hz: f32) -> f32 {
    21.4 * (1.0 + 0.00437 * hz).log10()
}

/// Inverse of [`erb_rate`].
pub fn erb_rate_to_hz(erb: f32) -> f32 {
    (10f32.powf(erb / 21.4) - 1.0) / 0.00437
}
