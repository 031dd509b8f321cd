//! Loaders of the standard emotional-speech corpora from the folder a user unpacked them to:
//! labels, speakers and gender from each corpus's own file naming, mapped to one common label
//! set, with every file that is left out and why.

use crate::error::{Error, Result};
use crate::input::{InputItem, Inputs, Skipped, walk_files};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A corpus emolime can read from its distribution folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorpusKind {
    /// Berlin EmoDB: `wav/03a01Fa.wav` (speaker, text, emotion letter, version).
    EmoDb,
    /// RAVDESS speech: `Actor_01/03-01-05-01-02-01-01.wav` (modality, channel, emotion, ...).
    Ravdess,
    /// CREMA-D: `AudioWAV/1001_DFA_ANG_XX.wav`; gender from `VideoDemographics.csv` if present.
    CremaD,
    /// TESS: `OAF_angry/OAF_back_angry.wav` (speaker OAF or YAF, both female).
    Tess,
    /// SAVEE: `AudioData/DC/a01.wav` or `DC_a01.wav` (four male speakers).
    Savee,
    /// IEMOCAP: `SessionN/dialog/EmoEvaluation/*.txt` labels, `SessionN/sentences/wav/...` audio.
    Iemocap,
}

impl CorpusKind {
    /// Every kind, in the order of [`CorpusKind::name`].
    pub const ALL: [CorpusKind; 6] = [
        CorpusKind::EmoDb,
        CorpusKind::Ravdess,
        CorpusKind::CremaD,
        CorpusKind::Tess,
        CorpusKind::Savee,
        CorpusKind::Iemocap,
    ];

    /// The name used on the command line (`--corpus emodb=PATH`) and in the `dataset` column.
    pub fn name(self) -> &'static str {
        match self {
            CorpusKind::EmoDb => "emodb",
            CorpusKind::Ravdess => "ravdess",
            CorpusKind::CremaD => "cremad",
            CorpusKind::Tess => "tess",
            CorpusKind::Savee => "savee",
            CorpusKind::Iemocap => "iemocap",
        }
    }

    /// The kind called `name` (case-insensitive; `crema-d` and `crema_d` too).
    pub fn parse(name: &str) -> Option<Self> {
        let n = name.trim().to_ascii_lowercase().replace(['-', '_'], "");
        CorpusKind::ALL.into_iter().find(|k| k.name() == n)
    }
}

/// Which common labels to keep, and which to merge into another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelSet {
    /// Labels kept (common names: angry, happy, sad, neutral, fear, disgust, surprise, calm,
    /// boredom, frustration, excited, other); `None` keeps every one.
    pub keep: Option<Vec<String>>,
    /// `(from, to)`: utterances labelled `from` are relabelled `to` before the filter.
    pub merge: Vec<(String, String)>,
}

impl Default for LabelSet {
    /// The EmoLIME paper's four classes, IEMOCAP's excited merged into happy.
    fn default() -> Self {
        LabelSet {
            keep: Some(["angry", "happy", "sad", "neutral"].map(String::from).to_vec()),
            merge: vec![("excited".into(), "happy".into())],
        }
    }
}

/// The common label names every corpus maps to.
pub const COMMON_LABELS: [&str; 12] = [
    "angry",
    "happy",
    "sad",
    "neutral",
    "fear",
    "disgust",
    "surprise",
    "calm",
    "boredom",
    "frustration",
    "excited",
    "other",
];

impl LabelSet {
    /// Parses `all` or a comma-separated list of common labels. Excited merges into happy when
    /// happy is kept and excited is not.
    pub fn parse(s: &str) -> Result<Self> {
        if s.trim().eq_ignore_ascii_case("all") {
            return Ok(LabelSet {
                keep: None,
                merge: vec![],
            });
        }
        let keep: Vec<String> = s.split(',').map(|l| l.trim().to_ascii_lowercase()).collect();
        for l in &keep {
            if !COMMON_LABELS.contains(&l.as_str()) {
                return Err(Error::config(
                    "labels",
                    format!("unknown label `{l}`; use `all` or some of {}", COMMON_LABELS.join(", ")),
                ));
            }
        }
        let merge = if keep.iter().any(|l| l == "happy") && !keep.iter().any(|l| l == "excited") {
            vec![("excited".into(), "happy".into())]
        } else {
            vec![]
        };
        Ok(LabelSet {
            keep: Some(keep),
            merge,
        })
    }

    /// The label `common` becomes, or why the utterance is left out.
    fn apply(&self, common: &str) -> std::result::Result<String, String> {
        let label = self
            .merge
            .iter()
            .find(|(from, _)| from == common)
            .map_or(common, |(_, to)| to.as_str());
        match &self.keep {
            Some(keep) if !keep.iter().any(|k| k == label) => {
                Err(format!("label `{label}` is not in the chosen set ({})", keep.join(",")))
            }
            _ => Ok(label.to_string()),
        }
    }
}

/// Reads corpus `kind` from `root`, keeping the utterances whose label `labels` keeps. Items
/// are sorted by id (the path under `root`); `dataset` is the kind's name. Files that do not
/// follow the corpus's naming, or whose label is not kept, are listed in `skipped` with the
/// reason; a root that holds none of the corpus's files is an error.
pub fn load_corpus(kind: CorpusKind, root: &Path, labels: &LabelSet) -> Result<Inputs> {
    if !root.is_dir() {
        return Err(Error::run(
            root,
            format!("not a folder: expected the unpacked {} corpus", kind.name()),
        ));
    }
    let mut inputs = Inputs::default();
    let mut files = vec![];
    walk_files(root, &is_wav, &mut files)?;
    files.sort();
    let parsed: Vec<(PathBuf, std::result::Result<Parsed, String>)> = match kind {
        CorpusKind::Iemocap => iemocap(root, files)?,
        _ => {
            let genders = if kind == CorpusKind::CremaD {
                cremad_genders(root)?
            } else {
                BTreeMap::new()
            };
            files
                .into_iter()
                .map(|f| {
                    let stem = f
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let parent = f
                        .parent()
                        .and_then(|p| p.file_name())
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let p = match kind {
                        CorpusKind::EmoDb => emodb(&stem),
                        CorpusKind::Ravdess => ravdess(&stem),
                        CorpusKind::CremaD => cremad(&stem, &genders),
                        CorpusKind::Tess => tess(&stem),
                        CorpusKind::Savee => savee(&stem, &parent),
                        CorpusKind::Iemocap => unreachable!("handled above"),
                    };
                    (f, p)
                })
                .collect()
        }
    };
    let mut recognised = 0usize;
    for (path, p) in parsed {
        let id = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        match p.and_then(|p| {
            recognised += 1;
            labels.apply(p.label).map(|label| (p, label))
        }) {
            Ok((p, label)) => inputs.items.push(InputItem {
                path,
                id,
                label: Some(label),
                speaker: Some(p.speaker),
                dataset: Some(kind.name().to_string()),
                gender: p.gender.map(String::from),
                ..Default::default()
            }),
            Err(reason) => inputs.skipped.push(Skipped { path, reason }),
        }
    }
    if recognised == 0 {
        return Err(Error::run(
            root,
            format!(
                "no {} file found ({} audio files, none named as the corpus names them)",
                kind.name(),
                inputs.skipped.len()
            ),
        ));
    }
    Ok(inputs)
}

/// What a file name says.
struct Parsed {
    label: &'static str,
    speaker: String,
    gender: Option<&'static str>,
}

/// WAV files, without macOS's `._` resource-fork twins.
fn is_wav(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav"))
        && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("._"))
}

/// EmoDB: `SSTTTEV`: speaker (2 digits), text (3), emotion letter (German initial), version.
fn emodb(stem: &str) -> std::result::Result<Parsed, String> {
    let b = stem.as_bytes();
    if b.len() < 7 || !b[..2].iter().all(u8::is_ascii_digit) {
        return Err("not an EmoDB name (SSTTTEV, e.g. 03a01Fa)".into());
    }
    let label = match b[5] {
        b'W' => "angry",
        b'L' => "boredom",
        b'E' => "disgust",
        b'A' => "fear",
        b'F' => "happy",
        b'T' => "sad",
        b'N' => "neutral",
        c => return Err(format!("unknown EmoDB emotion letter `{}`", c as char)),
    };
    let speaker = &stem[..2];
    let gender = match speaker {
        "03" | "10" | "11" | "12" | "15" => "male",
        "08" | "09" | "13" | "14" | "16" => "female",
        _ => return Err(format!("unknown EmoDB speaker `{speaker}`")),
    };
    Ok(Parsed {
        label,
        speaker: format!("emodb_{speaker}"),
        gender: Some(gender),
    })
}

/// RAVDESS: seven two-digit fields; speech only (vocal channel 01), audio-only or full
/// audio-video files (modality 03 or 01); actors odd male, even female.
fn ravdess(stem: &str) -> std::result::Result<Parsed, String> {
    let f: Vec<&str> = stem.split('-').collect();
    if f.len() != 7 || !f.iter().all(|x| x.len() == 2 && x.bytes().all(|c| c.is_ascii_digit())) {
        return Err("not a RAVDESS name (seven two-digit fields, e.g. 03-01-05-01-02-01-01)".into());
    }
    if f[1] != "01" {
        return Err("song, not speech (vocal channel 02)".into());
    }
    if f[0] == "02" {
        return Err("video only (modality 02)".into());
    }
    let label = match f[2] {
        "01" => "neutral",
        "02" => "calm",
        "03" => "happy",
        "04" => "sad",
        "05" => "angry",
        "06" => "fear",
        "07" => "disgust",
        "08" => "surprise",
        e => return Err(format!("unknown RAVDESS emotion code {e}")),
    };
    let actor: u32 = f[6].parse().map_err(|_| "bad actor field".to_string())?;
    Ok(Parsed {
        label,
        speaker: format!("ravdess_{:02}", actor),
        gender: Some(if actor % 2 == 1 { "male" } else { "female" }),
    })
}

/// CREMA-D: `ACTOR_SENTENCE_EMOTION_LEVEL`.
fn cremad(stem: &str, genders: &BTreeMap<String, &'static str>) -> std::result::Result<Parsed, String> {
    let f: Vec<&str> = stem.split('_').collect();
    if f.len() != 4 || f[0].len() != 4 || !f[0].bytes().all(|c| c.is_ascii_digit()) {
        return Err("not a CREMA-D name (ACTOR_SENTENCE_EMOTION_LEVEL, e.g. 1001_DFA_ANG_XX)".into());
    }
    let label = match f[2] {
        "ANG" => "angry",
        "DIS" => "disgust",
        "FEA" => "fear",
        "HAP" => "happy",
        "NEU" => "neutral",
        "SAD" => "sad",
        e => return Err(format!("unknown CREMA-D emotion `{e}`")),
    };
    Ok(Parsed {
        label,
        speaker: format!("cremad_{}", f[0]),
        gender: genders.get(f[0]).copied(),
    })
}

/// `VideoDemographics.csv` (ActorID, Age, Sex, ...) anywhere under `root`, if present.
fn cremad_genders(root: &Path) -> Result<BTreeMap<String, &'static str>> {
    let mut out = BTreeMap::new();
    let Some(path) = [
        root.join("VideoDemographics.csv"),
        root.join("..").join("VideoDemographics.csv"),
    ]
    .into_iter()
    .find(|p| p.is_file()) else {
        return Ok(out);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let (Some(id), Some(sex)) = (
        header.iter().position(|h| h == "actorid"),
        header.iter().position(|h| h == "sex"),
    ) else {
        return Ok(out);
    };
    for line in lines {
        let f: Vec<&str> = line.split(',').map(|x| x.trim().trim_matches('"')).collect();
        if let (Some(a), Some(s)) = (f.get(id), f.get(sex)) {
            let g = match s.to_ascii_lowercase().as_str() {
                "male" => "male",
                "female" => "female",
                _ => continue,
            };
            out.insert(a.to_string(), g);
        }
    }
    Ok(out)
}

/// TESS: `SPEAKER_WORD_EMOTION`, speaker OAF or YAF (both female).
fn tess(stem: &str) -> std::result::Result<Parsed, String> {
    let lower = stem.to_ascii_lowercase();
    let f: Vec<&str> = lower.split('_').collect();
    if f.len() < 3 || !matches!(f[0], "oaf" | "yaf") {
        return Err("not a TESS name (OAF_word_emotion or YAF_word_emotion)".into());
    }
    let emotion = f[2..].join("_");
    let label = match emotion.as_str() {
        "angry" => "angry",
        "disgust" => "disgust",
        "fear" => "fear",
        "happy" => "happy",
        "neutral" => "neutral",
        "ps" | "pleasant_surprise" | "pleasant_surprised" => "surprise",
        "sad" => "sad",
        e => return Err(format!("unknown TESS emotion `{e}`")),
    };
    Ok(Parsed {
        label,
        speaker: format!("tess_{}", f[0].to_ascii_uppercase()),
        gender: Some("female"),
    })
}

/// SAVEE: `AudioData/SPEAKER/eNN.wav` or `SPEAKER_eNN.wav`; emotion a, d, f, h, n, sa, su.
fn savee(stem: &str, parent: &str) -> std::result::Result<Parsed, String> {
    const SPEAKERS: [&str; 4] = ["DC", "JE", "JK", "KL"];
    let (speaker, code) = match stem.split_once('_') {
        Some((s, c)) if SPEAKERS.contains(&s) => (s, c),
        _ if SPEAKERS.contains(&parent) => (parent, stem),
        _ => return Err("not a SAVEE name (SPEAKER/eNN.wav or SPEAKER_eNN.wav, speakers DC JE JK KL)".into()),
    };
    let letters: String = code.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    let digits = &code[letters.len()..];
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("not a SAVEE utterance code `{code}` (e.g. a01, sa03)"));
    }
    let label = match letters.as_str() {
        "a" => "angry",
        "d" => "disgust",
        "f" => "fear",
        "h" => "happy",
        "n" => "neutral",
        "sa" => "sad",
        "su" => "surprise",
        e => return Err(format!("unknown SAVEE emotion code `{e}`")),
    };
    Ok(Parsed {
        label,
        speaker: format!("savee_{speaker}"),
        gender: Some("male"),
    })
}

/// IEMOCAP: labels from every `EmoEvaluation/*.txt` line `[start - end]\tTURN\tLABEL\t[v, a, d]`;
/// the speaker is the session and the turn's gender letter (`Ses01F_impro01_M003` is `Ses01M`).
fn iemocap(root: &Path, files: Vec<PathBuf>) -> Result<Vec<(PathBuf, std::result::Result<Parsed, String>)>> {
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let mut evals = vec![];
    let is_evaluation = |p: &Path| {
        p.parent()
            .and_then(|d| d.file_name())
            .is_some_and(|n| n == "EmoEvaluation")
            && p.extension().is_some_and(|e| e == "txt")
    };
    walk_files(root, &is_evaluation, &mut evals)?;
    evals.sort();
    for path in evals {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        for line in text.lines().filter(|l| l.starts_with('[')) {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() >= 3 {
                labels.insert(f[1].trim().to_string(), f[2].trim().to_string());
            }
        }
    }
    Ok(files
        .into_iter()
        .map(|f| {
            let stem = f
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let p = (|| {
                let code = labels
                    .get(&stem)
                    .ok_or_else(|| "no label in any EmoEvaluation file".to_string())?;
                let label = match code.as_str() {
                    "ang" => "angry",
                    "hap" => "happy",
                    "exc" => "excited",
                    "sad" => "sad",
                    "neu" => "neutral",
                    "fru" => "frustration",
                    "fea" => "fear",
                    "sur" => "surprise",
                    "dis" => "disgust",
                    "oth" => "other",
                    "xxx" => return Err("no agreed label (xxx)".to_string()),
                    e => return Err(format!("unknown IEMOCAP label `{e}`")),
                };
                let session = stem.get(..5).filter(|s| s.starts_with("Ses"));
                let gender = stem.rsplit('_').next().and_then(|t| t.chars().next());
                match (session, gender) {
                    (Some(s), Some(g @ ('F' | 'M'))) => Ok(Parsed {
                        label,
                        speaker: format!("iemocap_{s}{g}"),
                        gender: Some(if g == 'F' { "female" } else { "male" }),
                    }),
                    _ => Err("not an IEMOCAP turn name (SesNNx_dialog_G000)".to_string()),
                }
            })();
            (f, p)
        })
        .collect())
}

/// Parses `KIND=PATH` into a corpus kind and its folder.
pub fn parse_corpus_arg(s: &str) -> Result<(CorpusKind, PathBuf)> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| Error::config("corpus", format!("expected KIND=PATH, got `{s}`")))?;
    let kind = CorpusKind::parse(name).ok_or_else(|| {
        Error::config(
            "corpus",
            format!(
                "unknown corpus `{name}`; one of {}",
                CorpusKind::ALL.map(CorpusKind::name).join(", ")
            ),
        )
    })?;
    Ok((kind, PathBuf::from(path.trim())))
}
