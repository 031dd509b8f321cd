//! Contour smoothing and the statistics eGeMAPS takes over a contour: openSMILE's
//! `cContourSmoother` (`sma3`, `sma3nz`) and the `Moments`, `Percentiles`, `Peaks2`,
//! `Segments` and `Means` functionals, with openSMILE's conventions kept where they matter for
//! agreement (documented on each function).

/// Frame period of every eGeMAPS contour, in seconds.
pub const FRAME_PERIOD_S: f64 = 0.01;

/// Three-point moving average with the edge frames repeated (`smaWin = 3`).
///
/// With `skip_zeros` (`noZeroSma = 1`, the `_sma3nz` contours) a zero frame stays zero and
/// zero neighbours are left out of the average, so unvoiced frames neither move nor are moved.
///
/// # Shapes
/// `x`: `[T]`, returns `[T]`.
pub fn smooth3(x: &[f64], skip_zeros: bool) -> Vec<f64> {
    let n = x.len();
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let prev = x[i.saturating_sub(1)];
        let next = x[(i + 1).min(n - 1)];
        let c = x[i];
        if !skip_zeros {
            y.push((prev + c + next) / 3.0);
        } else if c == 0.0 {
            y.push(0.0);
        } else {
            let (mut sum, mut count) = (c, 1.0);
            for v in [prev, next] {
                if v != 0.0 {
                    sum += v;
                    count += 1.0;
                }
            }
            y.push(sum / count);
        }
    }
    y
}

/// The values a functional sees: all of `x`, or (`nonZeroFuncts = 1`) those not exactly 0.
pub fn non_zero(x: &[f64]) -> Vec<f64> {
    x.iter().copied().filter(|v| *v != 0.0).collect()
}

/// Arithmetic mean and openSMILE's `stddevNorm`: population standard deviation over the signed
/// mean (over 1 when the mean is 0). Both are 0 for an empty contour, as in openSMILE.
pub fn mean_stddev_norm(x: &[f64]) -> (f64, f64) {
    if x.is_empty() {
        return (0.0, 0.0);
    }
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let sd_norm = if var > 0.0 {
        var.sqrt() / if mean != 0.0 { mean } else { 1.0 }
    } else {
        0.0
    };
    (mean, sd_norm)
}

/// Arithmetic mean, 0 for an empty contour.
pub fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        0.0
    } else {
        x.iter().sum::<f64>() / x.len() as f64
    }
}

/// The 20th, 50th and 80th percentiles (linear interpolation between order statistics, as
/// `numpy.percentile`'s default) and the 20-80 range `|p80 - p20|`; zeros when empty.
pub fn percentiles_20_50_80(x: &[f64]) -> [f64; 4] {
    if x.is_empty() {
        return [0.0; 4];
    }
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let idx = p * (s.len() - 1) as f64;
        let (lo, hi) = (idx.floor() as usize, idx.ceil() as usize);
        if lo == hi {
            s[lo]
        } else {
            s[lo] * (hi as f64 - idx) + s[hi] * (idx - lo as f64)
        }
    };
    let (p20, p50, p80) = (at(0.2), at(0.5), at(0.8));
    [p20, p50, p80, (p80 - p20).abs()]
}

/// What `Peaks2` gives eGeMAPS: peaks per second and the rising and falling slopes between
/// consecutive extrema, in units per second.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PeakStats {
    /// Peaks (maxima kept after openSMILE's pruning) per second of contour.
    pub peaks_per_s: f64,
    /// Mean slope from a minimum to the next maximum.
    pub mean_rising_slope: f64,
    /// Standard deviation of the rising slopes.
    pub stddev_rising_slope: f64,
    /// Mean slope from a maximum to the next minimum.
    pub mean_falling_slope: f64,
    /// Standard deviation of the falling slopes.
    pub stddev_falling_slope: f64,
}

#[derive(Clone, Copy)]
struct Extremum {
    is_max: bool,
    y: f64,
    pos: usize,
    alive: bool,
}

/// openSMILE's `Peaks2` with `relThresh = 0.1`: local extrema, pruned in three passes so that
/// only swings larger than 10 % of the contour's range remain, then slopes between them.
///
/// Kept as openSMILE has it: the slope added at the end of the contour counts in the mean but
/// not in the sum of squares of the standard deviation, and a contour without extrema gets one
/// slope `(x[T-1] - x[0]) / T` that is not divided by the frame period.
pub fn peaks2(x: &[f64]) -> PeakStats {
    let n = x.len();
    if n == 0 {
        return PeakStats::default();
    }
    let t = FRAME_PERIOD_S;
    let (lo, hi) = x
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let thresh = 0.1 * (hi - lo);
    let below = |d: f64| d < thresh;
    let mut ext: Vec<Extremum> = (2..n.saturating_sub(2))
        .filter_map(|i| {
            let (p, c, q) = (x[i - 1], x[i], x[i + 1]);
            if c > p && c > q {
                Some(Extremum {
                    is_max: true,
                    y: c,
                    pos: i,
                    alive: true,
                })
            } else if c < p && c < q {
                Some(Extremum {
                    is_max: false,
                    y: c,
                    pos: i,
                    alive: true,
                })
            } else {
                None
            }
        })
        .collect();

    // Pass 1: drop maxima that rise too little over the last value and the last minimum.
    let (mut last_val, mut last_min, mut last_max) = (x[0], x[0], x[0]);
    let mut min_flag = false;
    let mut last_max_idx: Option<usize> = None;
    for i in 0..ext.len() {
        let e = ext[i];
        if e.is_max {
            if below((e.y - last_val).abs()) {
                if below(e.y - last_min) {
                    ext[i].alive = false;
                } else {
                    if e.y > last_max * 1.05 {
                        if let Some(j) = last_max_idx {
                            ext[j].alive = false;
                        }
                        last_max = e.y;
                        last_max_idx = Some(i);
                    } else if min_flag {
                        last_max = e.y;
                        last_max_idx = Some(i);
                    } else {
                        ext[i].alive = false;
                    }
                    min_flag = false;
                }
            } else {
                min_flag = false;
                last_max = e.y;
                last_max_idx = Some(i);
            }
        } else if !below((e.y - last_val).abs()) {
            min_flag = true;
            last_min = e.y;
        }
        last_val = e.y;
    }
    ext.retain(|e| e.alive);

    // Pass 2: drop minima too close below the last maximum.
    let mut last_max = x[0];
    for e in ext.iter_mut() {
        if e.is_max {
            last_max = e.y;
        } else if below(last_max - e.y) {
            e.alive = false;
        }
    }
    ext.retain(|e| e.alive);

    // Pass 3: alternate minima and maxima, keeping the more extreme of a run of one kind.
    let (mut min_flag, mut init) = (false, true);
    let (mut last_min, mut last_max) = (x[0], x[0]);
    let (mut last_min_idx, mut last_max_idx) = (0usize, 0usize);
    for i in 0..ext.len() {
        let e = ext[i];
        if !e.is_max {
            if !min_flag || init {
                (last_min, last_min_idx, min_flag, init) = (e.y, i, true, false);
            } else if e.y >= last_min {
                ext[i].alive = false;
            } else {
                ext[last_min_idx].alive = false;
                (last_min, last_min_idx) = (e.y, i);
            }
        } else if min_flag || init {
            (last_max, last_max_idx, min_flag, init) = (e.y, i, false, false);
        } else if e.y <= last_max {
            ext[i].alive = false;
        } else {
            ext[last_max_idx].alive = false;
            (last_max, last_max_idx) = (e.y, i);
        }
    }
    ext.retain(|e| e.alive);

    let n_peaks = ext.iter().filter(|e| e.is_max).count();
    let (mut rise, mut fall) = (Vec::new(), Vec::new());
    let (mut last_max, mut last_min) = (x[0], x[0]);
    let (mut max_pos, mut min_pos) = (0usize, 0usize);
    let mut last_is_max: Option<bool> = None;
    for e in &ext {
        if e.is_max {
            (last_max, max_pos) = (e.y, e.pos);
            if max_pos > min_pos {
                rise.push((last_max - last_min) / ((max_pos - min_pos) as f64 * t));
                last_is_max = Some(true);
            }
        } else {
            (last_min, min_pos) = (e.y, e.pos);
            if min_pos > max_pos {
                fall.push((last_max - last_min) / ((min_pos - max_pos) as f64 * t));
                last_is_max = Some(false);
            }
        }
    }
    let (inner_rise, inner_fall) = (rise.len(), fall.len());
    match last_is_max {
        Some(true) if n - 1 > max_pos => fall.push((x[n - 1] - last_max) / ((n - 1 - max_pos) as f64 * t)),
        Some(false) if n - 1 > min_pos => rise.push((x[n - 1] - last_min) / ((n - 1 - min_pos) as f64 * t)),
        None => {
            let s = (x[n - 1] - x[0]) / n as f64;
            if s > 0.0 {
                rise = vec![s];
            } else if s < 0.0 {
                fall = vec![s];
            }
        }
        _ => {}
    }
    let spread = |all: &[f64], inner: usize, m: f64| {
        let inner = inner.min(all.len());
        let mut ss: f64 = all[..inner].iter().map(|v| (v - m) * (v - m)).sum();
        if all.len() > 1 {
            ss /= all.len() as f64;
        }
        if ss > 0.0 { ss.sqrt() } else { 0.0 }
    };
    let (mr, mf) = (mean(&rise), mean(&fall));
    // With no extrema the one slope replaced the lists: nothing counts as "inner" then.
    let (inner_rise, inner_fall) = if last_is_max.is_none() {
        (0, 0)
    } else {
        (inner_rise, inner_fall)
    };
    PeakStats {
        peaks_per_s: n_peaks as f64 / (n as f64 * t),
        mean_rising_slope: mr,
        stddev_rising_slope: spread(&rise, inner_rise, mr),
        mean_falling_slope: mf,
        stddev_falling_slope: spread(&fall, inner_fall, mf),
    }
}

/// Segments per second, mean and standard deviation of segment length in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SegmentStats {
    /// Segments per second of contour.
    pub per_s: f64,
    /// Mean segment length, seconds.
    pub mean_len_s: f64,
    /// Population standard deviation of the segment lengths, seconds.
    pub stddev_len_s: f64,
}

/// openSMILE's `Segments` with `X = 0`: segments of frames that are non-zero (`zero = false`,
/// `nonX`) or zero (`zero = true`, `eqX`). A segment starts after 3 such frames in a row and
/// ends after 2 frames of the other kind, so single-frame gaps are bridged; its length is
/// counted as openSMILE does, last frame minus first (one frame short). At most 1000 segments.
pub fn segments(x: &[f64], zero: bool) -> SegmentStats {
    let n = x.len();
    if n == 0 {
        return SegmentStats::default();
    }
    let inside = |v: f64| if zero { v == 0.0 } else { v != 0.0 };
    let mut lens: Vec<usize> = Vec::new();
    let (mut state, mut seg_start, mut seg_end, mut start) = (0u8, 0usize, 0usize, 0usize);
    for (i, v) in x.iter().enumerate() {
        if inside(*v) {
            match state {
                1 => {
                    seg_end = 0;
                    seg_start += 1;
                    if seg_start >= 3 {
                        seg_start = 0;
                        state = 2;
                    }
                }
                0 => {
                    seg_start += 1;
                    start = i;
                    state = 1;
                }
                _ => seg_end = 0,
            }
        } else if state == 2 {
            seg_start = 0;
            seg_end += 1;
            if seg_end >= 2 {
                state = 0;
                if lens.len() < 1000 {
                    lens.push(i - seg_end - start);
                }
                seg_end = 0;
            }
        } else if state == 1 {
            seg_end += 1;
            if seg_end >= 2 {
                state = 0;
                seg_end = 0;
                seg_start = 0;
            }
        }
    }
    if state == 2 && lens.len() < 1000 {
        seg_end += 1;
        lens.push(n - seg_end - start);
    }
    let k = lens.len() as f64;
    let total: f64 = lens.iter().map(|l| *l as f64).sum();
    let m = if lens.len() > 1 { total / k } else { total };
    let sd = if lens.len() > 1 {
        (lens.iter().map(|l| (*l as f64 - m).powi(2)).sum::<f64>() / k).sqrt()
    } else {
        0.0
    };
    SegmentStats {
        per_s: k / (n as f64 * FRAME_PERIOD_S),
        mean_len_s: m * FRAME_PERIOD_S,
        stddev_len_s: sd * FRAME_PERIOD_S,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_keeps_zeros_apart() {
        assert_eq!(smooth3(&[3.0, 6.0, 9.0], false), vec![4.0, 6.0, 8.0]);
        assert_eq!(smooth3(&[0.0, 4.0, 8.0, 0.0], true), vec![0.0, 6.0, 6.0, 0.0]);
    }

    #[test]
    fn moments_and_percentiles() {
        let (m, sd) = mean_stddev_norm(&[1.0, 3.0]);
        assert_eq!((m, sd), (2.0, 0.5));
        assert_eq!(mean_stddev_norm(&[]), (0.0, 0.0));
        let p = percentiles_20_50_80(&[4.0, 0.0, 1.0, 2.0, 3.0]);
        for (got, want) in p.iter().zip([0.8, 2.0, 3.2, 2.4]) {
            assert!((got - want).abs() < 1e-12, "{p:?}");
        }
    }

    #[test]
    fn segments_count_frames_minus_one() {
        // Two voiced runs of 5 and 4 frames, a 1-frame gap inside the first (bridged).
        let x = [0., 1., 1., 0., 1., 1., 0., 0., 0., 1., 1., 1., 1., 0., 0.];
        let s = segments(&x, false);
        assert_eq!(s.per_s, 2.0 / 0.15);
        assert!((s.mean_len_s - 0.035).abs() < 1e-12);
    }

    #[test]
    fn one_peak_in_a_triangle() {
        let x: Vec<f64> = (0..21).map(|i| 10.0 - (i as f64 - 10.0).abs()).collect();
        let p = peaks2(&x);
        assert_eq!(p.peaks_per_s, 1.0 / 0.21);
        assert!((p.mean_rising_slope - 100.0).abs() < 1e-9);
        assert!((p.mean_falling_slope + 100.0).abs() < 1e-9);
    }
}
