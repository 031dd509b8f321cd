//! End-to-end tests of [`super::rank`] on synthetic corpora where only features 3 and 7 carry
//! the label, and of the errors it raises before any work.

use super::rng::{Purpose, Rng};
use super::*;
use crate::output::OutputDir;

/// `n_spk` speakers x `per` rows x 4 classes, 12 features: feature 3 encodes bit 0 of the class,
/// feature 7 bit 1; every feature has a speaker offset and unit noise; scales differ per column.
fn corpus(name: &str, n_spk: usize, per: usize, seed: u64) -> Dataset {
    let mut rng = Rng::keyed(seed, Purpose::Bootstrap, &[777]);
    let classes = ["angry", "happy", "neutral", "sad"];
    let (mut rows, mut labels, mut speakers) = (vec![], vec![], vec![]);
    for s in 0..n_spk {
        let offset: Vec<f64> = (0..12).map(|_| 0.5 * rng.normal()).collect();
        for i in 0..per * 4 {
            let c = i % 4;
            for (j, off) in offset.iter().enumerate() {
                let signal = match j {
                    3 => 4.0 * (c & 1) as f64,
                    7 => 4.0 * (c >> 1) as f64,
                    _ => 0.0,
                };
                rows.push((signal + off + rng.normal()) * (1.0 + j as f64) + 10.0 * j as f64);
            }
            labels.push(classes[c].to_string());
            speakers.push(format!("{name}_spk{s}"));
        }
    }
    Dataset {
        meta: DatasetMeta {
            name: name.into(),
            labels,
            speakers,
        },
        x: Array2::from_shape_vec((rows.len() / 12, 12), rows).unwrap(),
    }
}

fn names() -> Vec<String> {
    (0..12).map(|j| format!("f{j}")).collect()
}

fn quick() -> RankConfig {
    RankConfig {
        l1_select: 3,
        bootstrap: 200,
        subsamples: 20,
        shap_coalitions: 128,
        permutation_repeats: 3,
        workers: 2,
        ..RankConfig::default()
    }
}

fn top2(r: &Ranking) -> Vec<usize> {
    let mut t = agreement::top_k(&r.rank, 2);
    t.sort_unstable();
    t
}

#[test]
fn informative_features_rank_first_everywhere() {
    let data = [corpus("a", 6, 10, 1), corpus("b", 4, 12, 2), corpus("c", 3, 15, 3)];
    let report = rank(&data, &names(), &quick(), |_| {}).unwrap();
    assert_eq!(report.classes, ["angry", "happy", "neutral", "sad"]);
    assert_eq!(report.rankings.len(), 9);
    for r in &report.rankings {
        assert_eq!(top2(r), vec![3, 7], "{}: {:?}", r.label(), r.importance);
        for j in 0..12 {
            assert!(r.ci_low[j] <= r.importance[j] + 1e-12 && r.importance[j] <= r.ci_high[j] + 1e-12);
        }
    }
    assert_eq!(report.datasets.iter().map(|d| d.folds).collect::<Vec<_>>(), [5, 4, 3]);
    assert!(
        report.datasets.iter().all(|d| d.cv_accuracy > 0.7),
        "{:?}",
        report.datasets
    );
    let mut top = report.consensus.top(2);
    top.sort_unstable();
    assert_eq!(top, vec![3, 7]);
    assert_eq!(
        report.consensus.rankings.len(),
        9,
        "singleton groups join the consensus"
    );
    // W per method (3) and per corpus (3), each defined.
    assert_eq!(report.agreement.kendall.len(), 6);
    assert!(
        report
            .agreement
            .kendall
            .iter()
            .all(|w| w.w.is_some_and(|w| (0.0..=1.0).contains(&w)))
    );
    assert_eq!(report.agreement.pairs.len(), 9 * 8 / 2);
    // Transfer: 3 x 3 cells x 3 feature sets; top-2-ish features keep accuracy across corpora.
    assert_eq!(report.transfer.len(), 27);
    for t in report.transfer.iter().filter(|t| t.features == "top10") {
        assert!(t.accuracy > 0.6, "{t:?}");
    }
}

#[test]
fn results_do_not_depend_on_workers_and_follow_the_seed() {
    let data = [corpus("a", 4, 8, 4), corpus("b", 3, 8, 5)];
    let one = rank(&data, &names(), &RankConfig { workers: 1, ..quick() }, |_| {}).unwrap();
    let three = rank(&data, &names(), &RankConfig { workers: 3, ..quick() }, |_| {}).unwrap();
    assert_eq!(one.rankings, three.rankings);
    assert_eq!(one.consensus, three.consensus);
    assert_eq!(one.transfer, three.transfer);
    let other = rank(&data, &names(), &RankConfig { seed: 9, ..quick() }, |_| {}).unwrap();
    assert_ne!(one.rankings[0].importance, other.rankings[0].importance);
}

#[test]
fn outputs_are_written() {
    let data = [corpus("a", 3, 6, 6), corpus("b", 3, 6, 7)];
    let cfg = RankConfig { top_k: 3, ..quick() };
    let mut stages = vec![];
    let report = rank(&data, &names(), &cfg, |p| {
        if p.done == p.total {
            stages.push(p.stage)
        }
    })
    .unwrap();
    assert_eq!(stages, [Stage::Folds, Stage::Stability, Stage::Transfer]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let out = OutputDir::create(&target, false).unwrap();
    report.write(&out).unwrap();
    out.commit().unwrap();
    let read = |f: &str| std::fs::read_to_string(target.join(f)).unwrap();
    let perm = read("ranking_permutation.csv");
    assert!(perm.starts_with("dataset,feature,importance,ci_low,ci_high,rank\n"));
    assert_eq!(perm.lines().count(), 1 + 2 * 12);
    assert!(
        read("ranking_l1_stability.csv")
            .lines()
            .next()
            .unwrap()
            .ends_with(",mean_abs_coef")
    );
    assert_eq!(read("ranking_kernelshap.csv").lines().count(), 1 + 2 * 12);
    assert_eq!(read("kernelshap_by_class.csv").lines().count(), 1 + 2 * 4 * 12);
    let agreement = read("agreement.csv");
    assert!(agreement.contains("kendall_w,datasets,permutation,a/permutation;b/permutation,"));
    assert!(agreement.contains("top3_overlap,pair,,a/permutation,b/permutation,"));
    let consensus = read("consensus.csv");
    assert!(consensus.lines().next().unwrap().contains("rank_a/l1_stability"));
    assert_eq!(consensus.lines().count(), 13);
    assert_eq!(read("transfer.csv").lines().count(), 1 + 2 * 2 * 3);
    // Every table also as Parquet, holding the same columns and values as its CSV.
    for stem in [
        "ranking_permutation",
        "ranking_l1_stability",
        "ranking_kernelshap",
        "kernelshap_by_class",
        "agreement",
        "consensus",
        "transfer",
    ] {
        let table = crate::table::Table::read_parquet(&target.join(format!("{stem}.parquet"))).unwrap();
        assert!(!table.rows().is_empty(), "{stem}");
        assert_eq!(table.to_csv(), read(&format!("{stem}.csv")), "{stem}");
    }
    let summary: serde_json::Value = serde_json::from_str(&read("summary.json")).unwrap();
    assert_eq!(summary["consensus_top"].as_array().unwrap().len(), 3);
    assert_eq!(summary["datasets"][1]["folds"], 3);
}

#[test]
fn recording_conditions_are_datasets_of_their_corpus() {
    // Corpora a and b, each clean and under condition `x` (the same speakers and labels,
    // other feature noise).
    let noisy = |name: &str, n_spk, per, seed| {
        let mut d = corpus(name, n_spk, per, seed);
        let clean = corpus(name, n_spk, per, seed + 100);
        d.meta.name = format!("{name}@x");
        assert_eq!(d.meta.labels, clean.meta.labels);
        d
    };
    let data = [
        corpus("a", 4, 8, 1),
        corpus("b", 3, 8, 2),
        noisy("a", 4, 8, 3),
        noisy("b", 3, 8, 4),
    ];
    assert_eq!((corpus_of("a@white:10"), condition_of("a@white:10")), ("a", "white:10"));
    assert_eq!((corpus_of("a"), condition_of("a")), ("a", "clean"));
    let cfg = RankConfig { top_k: 3, ..quick() };
    let metas: Vec<&DatasetMeta> = data.iter().map(|d| &d.meta).collect();
    let p = plan(&metas, &cfg).unwrap();
    assert_eq!(p.folds[0], p.folds[2], "a condition shares its corpus's folds");
    assert_eq!(p.folds[1], p.folds[3]);
    let report = rank(&data, &names(), &cfg, |_| {}).unwrap();
    let rows = |across: &str| -> Vec<String> {
        report
            .agreement
            .kendall
            .iter()
            .filter(|w| w.across == across)
            .map(|w| w.scope.clone())
            .collect()
    };
    // Across corpora within each condition; across conditions within each corpus.
    assert_eq!(
        rows("datasets"),
        [
            "permutation",
            "permutation@x",
            "l1_stability",
            "l1_stability@x",
            "kernelshap",
            "kernelshap@x"
        ]
    );
    assert_eq!(
        rows("conditions"),
        [
            "a/permutation",
            "b/permutation",
            "a/l1_stability",
            "b/l1_stability",
            "a/kernelshap",
            "b/kernelshap"
        ]
    );
    assert_eq!(rows("methods").len(), 4);
    // A corpus's informative features stay on top under both conditions.
    assert_eq!(report.consensus_by_condition.len(), 2);
    for (c, cons) in &report.consensus_by_condition {
        assert_eq!(
            cons.rankings.len(),
            6,
            "{c}: 2 corpora x 3 methods (singleton groups join)"
        );
        let mut top = cons.top(2);
        top.sort_unstable();
        assert_eq!(top, vec![3, 7], "{c}");
    }
    assert_eq!(report.consensus_by_condition[1].0, "x");
    // Transfer never pairs a corpus with itself under another condition (same speakers).
    assert!(
        report
            .transfer
            .iter()
            .all(|t| t.train == t.test || corpus_of(&t.train) != corpus_of(&t.test))
    );
    assert_eq!(report.transfer.len(), (4 + 8) * 3);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let out = OutputDir::create(&target, false).unwrap();
    report.write(&out).unwrap();
    out.commit().unwrap();
    let by_condition = std::fs::read_to_string(target.join("consensus_by_condition.csv")).unwrap();
    assert_eq!(by_condition.lines().count(), 1 + 2 * 12);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(target.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["consensus_top_by_condition"][1]["condition"], "x");
}

fn expect_corpus_error(result: Result<Plan>, needles: &[&str]) {
    match result {
        Err(Error::Config {
            field: "corpus",
            reason,
        }) => {
            for n in needles {
                assert!(reason.contains(n), "`{reason}` lacks `{n}`");
            }
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_corpora_are_refused_before_work() {
    let good = corpus("good", 3, 4, 8);
    let cfg = RankConfig::default();
    // A class missing.
    let mut missing = corpus("nosad", 3, 4, 9);
    let keep: Vec<usize> = (0..missing.meta.labels.len())
        .filter(|&i| missing.meta.labels[i] != "sad")
        .collect();
    missing.meta.labels = keep.iter().map(|&i| missing.meta.labels[i].clone()).collect();
    missing.meta.speakers = keep.iter().map(|&i| missing.meta.speakers[i].clone()).collect();
    expect_corpus_error(plan(&[&good.meta, &missing.meta], &cfg), &["`nosad`", "`sad`"]);
    // A single speaker.
    let single = corpus("solo", 1, 4, 10);
    expect_corpus_error(plan(&[&good.meta, &single.meta], &cfg), &["`solo`", "single speaker"]);
    // Fewer speakers than the folds asked for (the default caps instead).
    let five = RankConfig {
        folds: Some(5),
        ..cfg.clone()
    };
    expect_corpus_error(plan(&[&good.meta], &five), &["`good`", "3 speakers", "--folds 5"]);
    assert_eq!(plan(&[&good.meta], &cfg).unwrap().folds[0].len(), 3);
    // Duplicates, nothing, one class only.
    expect_corpus_error(plan(&[&good.meta, &good.meta], &cfg), &["twice"]);
    expect_corpus_error(plan(&[], &cfg), &["no corpus"]);
    let mut one_class = good.meta.clone();
    one_class.labels.iter_mut().for_each(|l| *l = "sad".into());
    expect_corpus_error(plan(&[&one_class], &cfg), &["at least 2 classes"]);
    // A fold whose training speakers lack a class.
    let mut lopsided = corpus("lop", 3, 4, 11);
    for (l, s) in lopsided.meta.labels.iter_mut().zip(&lopsided.meta.speakers) {
        if s != "lop_spk0" && l == "sad" {
            *l = "happy".into();
        }
    }
    expect_corpus_error(plan(&[&lopsided.meta], &cfg), &["`lop`", "without a `sad`"]);

    // Data-dependent errors of rank().
    let mut nan = corpus("nan", 3, 4, 12);
    nan.x[[5, 2]] = f64::INFINITY;
    match rank(&[nan], &names(), &cfg, |_| {}) {
        Err(Error::Config {
            field: "corpus",
            reason,
        }) => assert!(reason.contains("`nan`") && reason.contains("`f2`")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        rank(std::slice::from_ref(&good), &names()[..11], &cfg, |_| {}),
        Err(Error::Shape { .. })
    ));
    let big_k = RankConfig {
        top_k: 13,
        ..cfg.clone()
    };
    assert!(matches!(
        rank(std::slice::from_ref(&good), &names(), &big_k, |_| {}),
        Err(Error::Config { field: "top-k", .. })
    ));
    let few = RankConfig {
        shap_coalitions: 10,
        ..cfg
    };
    assert!(matches!(
        rank(&[good], &names(), &few, |_| {}),
        Err(Error::Config {
            field: "shap-coalitions",
            ..
        })
    ));
}

#[test]
fn config_validation_and_items() {
    assert!(RankConfig::default().validate().is_ok());
    for bad in [
        RankConfig {
            folds: Some(1),
            ..RankConfig::default()
        },
        RankConfig {
            top_k: 0,
            ..RankConfig::default()
        },
        RankConfig {
            bootstrap: 1,
            ..RankConfig::default()
        },
        RankConfig {
            subsamples: 1,
            ..RankConfig::default()
        },
        RankConfig {
            l1_select: 0,
            ..RankConfig::default()
        },
        RankConfig {
            permutation_repeats: 0,
            ..RankConfig::default()
        },
    ] {
        assert!(matches!(bad.validate(), Err(Error::Config { .. })), "{bad:?}");
    }
    assert_eq!(
        RankConfig::default().methods(),
        [Method::Permutation, Method::L1Stability, Method::KernelShap]
    );
    assert_eq!(
        RankConfig {
            shap_coalitions: 0,
            ..RankConfig::default()
        }
        .methods()
        .len(),
        2
    );
    assert_eq!("accuracy".parse::<Metric>().unwrap(), Metric::Accuracy);
    assert!("f1".parse::<Metric>().is_err());

    let item = |speaker: Option<&str>| InputItem {
        path: "x.wav".into(),
        id: "x.wav".into(),
        label: Some("sad".into()),
        speaker: speaker.map(String::from),
        dataset: None,
        gender: None,
        ..Default::default()
    };
    let meta = DatasetMeta::from_items("c", &[item(Some("s1")), item(Some("s2"))]).unwrap();
    assert_eq!(meta.speakers, ["s1", "s2"]);
    match DatasetMeta::from_items("c", &[item(None)]) {
        Err(Error::Config { reason, .. }) => assert!(reason.contains("corpus `c`") && reason.contains("speaker")),
        other => panic!("{other:?}"),
    }
    let results = vec![
        Ok(Array2::from_elem((1, 3), 1.0)),
        Err(Error::BadAudio {
            path: "x.wav".into(),
            reason: "silent".into(),
        }),
    ];
    let (ds, failed) = Dataset::from_extraction("c", &[item(Some("s1")), item(Some("s2"))], results).unwrap();
    assert_eq!(ds.x.dim(), (1, 3));
    assert_eq!(ds.meta.speakers, ["s1"]);
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains("corpus `c`"));
}

#[test]
fn permutation_importance_on_a_device_matches_the_host() {
    let data = corpus("a", 4, 8, 11);
    let labels: Vec<usize> = data
        .meta
        .labels
        .iter()
        .map(|l| {
            ["angry", "happy", "neutral", "sad"]
                .iter()
                .position(|c| c == l)
                .unwrap()
        })
        .collect();
    let classes: Vec<String> = ["angry", "happy", "neutral", "sad"].map(String::from).to_vec();
    let test: Vec<usize> = (0..labels.len()).filter(|i| (i / 4) % 3 == 0).collect();
    let fold = folds::Fold {
        train: (0..labels.len()).filter(|i| !test.contains(i)).collect(),
        test,
        speakers: vec![],
    };
    let device = crate::device::ComputeDevice::cpu("test");
    let cfg = quick();
    let feature_names = names();
    let groups = feature_groups(&feature_names);
    for kind in [HeadKind::LogReg, HeadKind::Svm, HeadKind::Mlp] {
        let head = HeadConfig {
            kind,
            epochs: 30,
            ..cfg.head_config()
        };
        let job = |device, block_values| permutation::FoldJob {
            x: data.x.view(),
            labels: &labels,
            fold: &fold,
            classes: &classes,
            feature_names: &feature_names,
            head: &head,
            cfg: &cfg,
            groups: &groups,
            task: [0, 0],
            device,
            block_values,
        };
        let host = permutation::run_fold(&job(None, 0)).unwrap();
        let n = fold.test.len();
        // Every feature (and every KernelSHAP row) in one call, then blocks of 3 rows' coalitions
        // and of a few features (the columns of one block must be restored before the next).
        let m = cfg.shap_coalitions;
        for block_values in [1 << 22, (5 * cfg.permutation_repeats * n * 12).min(3 * m * 12)] {
            let dev = permutation::run_fold(&job(Some(&device.burn), block_values)).unwrap();
            let flipped = host.pred.iter().zip(&dev.pred).filter(|(a, b)| a != b).count();
            assert!(flipped <= 1, "{kind}: {flipped} of {n} predictions differ");
            let differ = (&host.drop - &dev.drop).iter().filter(|v| v.abs() > 1e-12).count();
            assert!(
                differ <= 2,
                "{kind}, {block_values} values per call: {differ} of {} drops differ",
                host.drop.len()
            );
            let shap = (&host.shap_abs - &dev.shap_abs)
                .iter()
                .fold(0.0f64, |a, v| a.max(v.abs()));
            assert!(shap < 1e-4, "{kind}: KernelSHAP values differ by {shap}");
        }
        assert!(host.drop.iter().any(|v| v.abs() > 0.0), "{kind}: no feature matters");
        assert!(host.shap_abs.iter().any(|v| *v > 1e-3), "{kind}: no group matters");
    }
}
