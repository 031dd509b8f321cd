//! Band layouts and mask sampling.

use crate::common::{Rng, fresh_seed};
use emolime::Error;
use emolime::audio::MelScale;
use emolime::bands::{BandConfig, BandKind, BandLayout};
use emolime::sampling::{KernelKind, MaskConfig, SampleCount, kernel_weights, random_u32, sample_masks};

#[test]
fn default_layout_is_emolimes_eight_equal_mel_bands() {
    let l = BandLayout::new(&BandConfig::default(), 128, 0.0, 8000.0, MelScale::Slaney).unwrap();
    assert_eq!(l.n_bands(), 8);
    for b in 0..8 {
        assert_eq!(l.row_band.iter().filter(|&&r| r == b as u32).count(), 16);
    }
    // Edges from the EmoLIME paper, in kHz.
    let want = [0.0, 0.37, 0.75, 1.14, 1.67, 2.45, 3.61, 5.31, 8.0];
    for (g, w) in l.edges_hz.iter().zip(want) {
        assert!((g / 1000.0 - w).abs() < 0.02, "edge {g} Hz vs {w} kHz");
    }
}

#[test]
fn other_layouts_cover_every_row_and_reject_empty_bands() {
    for kind in [
        BandKind::LinearHz,
        BandKind::Erb,
        BandKind::Custom(vec![0.0, 300.0, 1000.0, 4000.0, 8000.0]),
    ] {
        let cfg = BandConfig {
            kind: kind.clone(),
            n_bands: 6,
        };
        let l = BandLayout::new(&cfg, 128, 0.0, 8000.0, MelScale::Slaney).unwrap();
        assert_eq!(l.row_band.len(), 128);
        assert!(l.row_band.windows(2).all(|w| w[1] >= w[0]), "{kind:?}: rows ascend");
        assert_eq!(*l.row_band.last().unwrap() as usize, l.n_bands() - 1);
    }
    let narrow = BandConfig {
        kind: BandKind::Custom(vec![0.0, 1.0, 8000.0]),
        n_bands: 0,
    };
    assert!(matches!(
        BandLayout::new(&narrow, 128, 0.0, 8000.0, MelScale::Slaney),
        Err(Error::Config { .. })
    ));
    let too_many = BandConfig {
        kind: BandKind::EqualMel,
        n_bands: 65,
    };
    assert!(BandLayout::new(&too_many, 128, 0.0, 8000.0, MelScale::Slaney).is_err());
    // Edges past the analysed range are refused, not reported as given.
    let above = BandConfig {
        kind: BandKind::Custom(vec![0.0, 4000.0, 12000.0]),
        n_bands: 8,
    };
    let err = BandLayout::new(&above, 128, 0.0, 8000.0, MelScale::Slaney).unwrap_err();
    assert!(err.to_string().contains("outside the model's analysed range"), "{err}");
    // The stored config names the band count actually used.
    let two = BandConfig {
        kind: BandKind::Custom(vec![0.0, 2000.0, 8000.0]),
        n_bands: 8,
    };
    let l = BandLayout::new(&two, 128, 0.0, 8000.0, MelScale::Slaney).unwrap();
    assert_eq!(l.config.n_bands, 2);
    let descending = BandConfig {
        kind: BandKind::Custom(vec![0.0, 500.0, 400.0]),
        n_bands: 0,
    };
    assert!(descending.validate().is_err());
}

#[test]
fn masks_are_seeded_and_keep_everything_in_sample_zero() {
    let seed = fresh_seed("masks");
    let cfg = MaskConfig {
        samples: SampleCount::Random(2000),
        keep_prob: 0.3,
        seed,
    };
    let a = sample_masks(&cfg, 8, false).unwrap();
    let b = sample_masks(&cfg, 8, false).unwrap();
    assert_eq!(a, b);
    let other = sample_masks(
        &MaskConfig {
            seed: seed ^ 1,
            ..cfg.clone()
        },
        8,
        false,
    )
    .unwrap();
    assert_ne!(a, other);
    assert!(a.row(0).iter().all(|&v| v == 1.0));
    let kept = a.slice(ndarray::s![1.., ..]).iter().sum::<f32>() / (1999.0 * 8.0);
    assert!((kept - 0.3).abs() < 0.03, "keep rate {kept}");
    let with_empty = sample_masks(&cfg, 8, true).unwrap();
    assert!(with_empty.row(1).iter().all(|&v| v == 0.0));
    // The generator is a pure function of its counters.
    let mut rng = Rng(seed);
    let (s, x, y) = (rng.next_u64(), rng.next_u64() as u32, rng.next_u64() as u32);
    assert_eq!(random_u32(s, 1, x, y), random_u32(s, 1, x, y));
}

#[test]
fn exhaustive_masks_enumerate_every_subset_once() {
    let cfg = MaskConfig {
        samples: SampleCount::Exhaustive,
        ..MaskConfig::default()
    };
    let m = sample_masks(&cfg, 5, false).unwrap();
    assert_eq!(m.nrows(), 32);
    let mut seen: Vec<u32> = m
        .rows()
        .into_iter()
        .map(|r| r.iter().enumerate().map(|(j, &v)| (v as u32) << j).sum())
        .collect();
    assert_eq!(seen[0], 31, "sample 0 keeps all");
    seen.sort();
    assert_eq!(seen, (0..32).collect::<Vec<_>>());
    assert!(
        sample_masks(&cfg, 17, false).is_err(),
        "exhaustive is limited to 16 bands"
    );
    let w = kernel_weights(&m, KernelKind::Shapley).unwrap();
    assert_eq!(w[0], 0.0);
    assert!(w[1] > 0.0);
}
