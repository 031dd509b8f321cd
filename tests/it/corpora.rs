//! Corpus loaders on fake trees with each corpus's exact naming (synthetic audio): labels,
//! speakers, gender, and the files left out with their reason.

use emolime::corpora::{CorpusKind, LabelSet, load_corpus, parse_corpus_arg};
use emolime::input::Inputs;
use std::path::Path;

/// Writes a 0.3 s tone as 16-bit mono WAV at `root/rel`.
fn wav(root: &Path, rel: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..4800 {
        let v = (2.0 * std::f32::consts::PI * 220.0 * i as f32 / 16000.0).sin() * 8000.0;
        w.write_sample(v as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// (id, label, speaker, gender) of every item.
fn rows(inputs: &Inputs) -> Vec<(String, String, String, String)> {
    inputs
        .items
        .iter()
        .map(|it| {
            (
                it.id.clone(),
                it.label.clone().unwrap(),
                it.speaker.clone().unwrap(),
                it.gender.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn skipped(inputs: &Inputs) -> Vec<(String, String)> {
    inputs
        .skipped
        .iter()
        .map(|s| {
            (
                s.path.file_name().unwrap().to_string_lossy().into_owned(),
                s.reason.clone(),
            )
        })
        .collect()
}

fn all() -> LabelSet {
    LabelSet::parse("all").unwrap()
}

#[test]
fn emodb_names_give_label_speaker_and_gender() {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["03a01Wa", "08b02Fc", "16a05Tb", "10a07Nd", "11b09La", "13a02Xa"] {
        wav(tmp.path(), &format!("wav/{f}.wav"));
    }
    wav(tmp.path(), "wav/readme.wav");
    let four = load_corpus(CorpusKind::EmoDb, tmp.path(), &LabelSet::default()).unwrap();
    assert_eq!(
        rows(&four),
        vec![
            (
                "wav/03a01Wa.wav".into(),
                "angry".into(),
                "emodb_03".into(),
                "male".into()
            ),
            (
                "wav/08b02Fc.wav".into(),
                "happy".into(),
                "emodb_08".into(),
                "female".into()
            ),
            (
                "wav/10a07Nd.wav".into(),
                "neutral".into(),
                "emodb_10".into(),
                "male".into()
            ),
            (
                "wav/16a05Tb.wav".into(),
                "sad".into(),
                "emodb_16".into(),
                "female".into()
            ),
        ]
    );
    assert!(four.items.iter().all(|it| it.dataset.as_deref() == Some("emodb")));
    let s = skipped(&four);
    assert_eq!(s.len(), 3, "{s:?}");
    assert!(
        s.iter()
            .any(|(f, r)| f == "11b09La.wav" && r.contains("boredom") && r.contains("not in the chosen set"))
    );
    assert!(
        s.iter()
            .any(|(f, r)| f == "13a02Xa.wav" && r.contains("emotion letter `X`"))
    );
    assert!(
        s.iter()
            .any(|(f, r)| f == "readme.wav" && r.contains("not an EmoDB name"))
    );
    let every = load_corpus(CorpusKind::EmoDb, tmp.path(), &all()).unwrap();
    assert_eq!(every.items.len(), 5);
    assert!(every.items.iter().any(|it| it.label.as_deref() == Some("boredom")));
}

#[test]
fn ravdess_keeps_speech_and_reads_actor_gender() {
    let tmp = tempfile::tempdir().unwrap();
    for (actor, f) in [
        ("Actor_01", "03-01-05-01-02-01-01"), // angry, actor 1 (male)
        ("Actor_02", "03-01-03-02-01-02-02"), // happy, actor 2 (female)
        ("Actor_02", "03-01-04-01-01-01-02"), // sad
        ("Actor_24", "03-01-01-01-01-01-24"), // neutral
        ("Actor_24", "03-01-02-01-01-01-24"), // calm: not in the four
        ("Actor_01", "03-02-05-01-01-01-01"), // song
        ("Actor_01", "03-01-09-01-01-01-01"), // no emotion 09
    ] {
        wav(tmp.path(), &format!("{actor}/{f}.wav"));
    }
    let inputs = load_corpus(CorpusKind::Ravdess, tmp.path(), &LabelSet::default()).unwrap();
    let r = rows(&inputs);
    assert_eq!(r.len(), 4, "{r:?}");
    assert_eq!(
        r[0],
        (
            "Actor_01/03-01-05-01-02-01-01.wav".into(),
            "angry".into(),
            "ravdess_01".into(),
            "male".into()
        )
    );
    assert_eq!(r[1].1, "happy");
    assert_eq!(r[1].3, "female");
    assert_eq!(
        r[3],
        (
            "Actor_24/03-01-01-01-01-01-24.wav".into(),
            "neutral".into(),
            "ravdess_24".into(),
            "female".into()
        )
    );
    let s = skipped(&inputs);
    assert!(s.iter().any(|(_, r)| r.contains("song")), "{s:?}");
    assert!(s.iter().any(|(_, r)| r.contains("calm")), "{s:?}");
    assert!(s.iter().any(|(_, r)| r.contains("emotion code 09")), "{s:?}");
}

#[test]
fn cremad_reads_demographics_when_present() {
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "1001_DFA_ANG_XX",
        "1002_IEO_HAP_HI",
        "1001_TIE_SAD_XX",
        "1091_WSI_NEU_XX",
        "1002_DFA_DIS_XX",
    ] {
        wav(tmp.path(), &format!("AudioWAV/{f}.wav"));
    }
    std::fs::write(
        tmp.path().join("VideoDemographics.csv"),
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n1002,21,Female,Caucasian,Not Hispanic\n",
    )
    .unwrap();
    let inputs = load_corpus(CorpusKind::CremaD, tmp.path(), &LabelSet::default()).unwrap();
    let r = rows(&inputs);
    assert_eq!(
        r.iter()
            .map(|x| (x.1.as_str(), x.2.as_str(), x.3.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("angry", "cremad_1001", "male"),
            ("sad", "cremad_1001", "male"),
            ("happy", "cremad_1002", "female"),
            ("neutral", "cremad_1091", ""),
        ]
    );
    assert_eq!(skipped(&inputs).len(), 1);
}

#[test]
fn tess_and_savee_names() {
    let tmp = tempfile::tempdir().unwrap();
    let tess = tmp.path().join("tess");
    for f in [
        "OAF_angry/OAF_back_angry",
        "YAF_happy/YAF_bar_happy",
        "OAF_Pleasant_surprise/OAF_base_ps",
        "YAF_sad/YAF_bath_sad",
        "YAF_neutral/YAF_bean_neutral",
    ] {
        wav(&tess, &format!("{f}.wav"));
    }
    let t = load_corpus(CorpusKind::Tess, &tess, &all()).unwrap();
    let r = rows(&t);
    assert_eq!(r.len(), 5);
    assert!(
        r.iter()
            .any(|x| x.0.ends_with("OAF_base_ps.wav") && x.1 == "surprise" && x.2 == "tess_OAF")
    );
    assert!(r.iter().all(|x| x.3 == "female"));

    let savee = tmp.path().join("savee");
    for f in [
        "AudioData/DC/a01",
        "AudioData/JK/sa03",
        "AudioData/KL/su10",
        "AudioData/JE/n15",
        "KL_h02",
    ] {
        wav(&savee, &format!("{f}.wav"));
    }
    let s = load_corpus(CorpusKind::Savee, &savee, &LabelSet::default()).unwrap();
    let r = rows(&s);
    assert_eq!(
        r.iter().map(|x| (x.1.as_str(), x.2.as_str())).collect::<Vec<_>>(),
        vec![
            ("angry", "savee_DC"),
            ("neutral", "savee_JE"),
            ("sad", "savee_JK"),
            ("happy", "savee_KL"),
        ]
    );
    assert!(skipped(&s)[0].1.contains("surprise"));
}

#[test]
fn iemocap_labels_from_emo_evaluation_with_excited_merged() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let eval = "% header\n\
        [6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n\
        C-E2:\tNeutral;\t()\n\
        [10.0100 - 11.3925]\tSes01F_impro01_M001\texc\t[3.5000, 3.5000, 3.0000]\n\
        [14.8872 - 18.0175]\tSes01F_impro01_F002\tfru\t[2.5000, 3.5000, 3.5000]\n\
        [20.0000 - 22.0000]\tSes01F_impro01_M003\txxx\t[2.5000, 3.5000, 3.5000]\n";
    std::fs::create_dir_all(root.join("Session1/dialog/EmoEvaluation")).unwrap();
    std::fs::write(root.join("Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"), eval).unwrap();
    std::fs::write(
        root.join("Session1/dialog/EmoEvaluation/Ses01M_script01_1.txt"),
        "[1.0 - 2.0]\tSes01M_script01_1_F004\tsad\t[2.0, 2.0, 2.0]\n",
    )
    .unwrap();
    for t in ["F000", "M001", "F002", "M003", "F009"] {
        wav(
            root,
            &format!("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_{t}.wav"),
        );
    }
    wav(
        root,
        "Session1/sentences/wav/Ses01M_script01_1/Ses01M_script01_1_F004.wav",
    );
    wav(root, "Session1/dialog/wav/Ses01F_impro01.wav");
    let inputs = load_corpus(CorpusKind::Iemocap, root, &LabelSet::default()).unwrap();
    let r = rows(&inputs);
    assert_eq!(
        r.iter()
            .map(|x| (x.1.as_str(), x.2.as_str(), x.3.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("neutral", "iemocap_Ses01F", "female"),
            ("happy", "iemocap_Ses01M", "male"), // excited merged into happy
            ("sad", "iemocap_Ses01F", "female"),
        ]
    );
    let s = skipped(&inputs);
    assert!(
        s.iter()
            .any(|(f, r)| f.ends_with("F002.wav") && r.contains("frustration")),
        "{s:?}"
    );
    assert!(
        s.iter().any(|(f, r)| f.ends_with("M003.wav") && r.contains("xxx")),
        "{s:?}"
    );
    assert!(
        s.iter().any(|(f, r)| f.ends_with("F009.wav") && r.contains("no label")),
        "{s:?}"
    );
    assert!(
        s.iter()
            .any(|(f, r)| f == "Ses01F_impro01.wav" && r.contains("no label")),
        "{s:?}"
    );
    // With excited kept as its own label it is not merged.
    let own = load_corpus(CorpusKind::Iemocap, root, &LabelSet::parse("happy,excited").unwrap()).unwrap();
    assert_eq!(
        rows(&own).iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
        vec!["excited"]
    );
}

#[test]
fn bad_arguments_and_empty_folders_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    wav(tmp.path(), "x/hello.wav");
    let err = load_corpus(CorpusKind::EmoDb, tmp.path(), &LabelSet::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no emodb file found"), "{err}");
    let err = load_corpus(CorpusKind::Tess, &tmp.path().join("missing"), &LabelSet::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a folder"), "{err}");
    assert!(
        LabelSet::parse("angry,grumpy")
            .unwrap_err()
            .to_string()
            .contains("grumpy")
    );
    assert_eq!(parse_corpus_arg("Crema-D=/data/c").unwrap().0, CorpusKind::CremaD);
    assert!(
        parse_corpus_arg("timit=/x")
            .unwrap_err()
            .to_string()
            .contains("unknown corpus")
    );
    assert!(parse_corpus_arg("emodb").is_err());
}

#[test]
fn commands_take_a_corpus_instead_of_an_input() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("emodb");
    for f in ["03a01Wa", "08b02Fc", "11b09La"] {
        wav(&root, &format!("wav/{f}.wav"));
    }
    let out = tmp.path().join("f.csv");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_emolime"))
        .args(["features", "--corpus"])
        .arg(format!("emodb={}", root.display()))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("emodb: left out 1 files") && stderr.contains("boredom"),
        "{stderr}"
    );
    let csv = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "header and two utterances");
    assert!(
        lines[1].starts_with("wav/03a01Wa.wav,angry,emodb_03,emodb,"),
        "{}",
        lines[1]
    );
    // --input and --corpus exclude each other.
    let both = std::process::Command::new(env!("CARGO_BIN_EXE_emolime"))
        .args(["features", "--input", "x.wav", "--corpus", "emodb=y", "--out", "z.csv"])
        .output()
        .unwrap();
    assert!(!both.status.success());
}
