//! Input discovery: manifests with bad rows and missing files, folders, single files.

use emolime::Error;
use emolime::input::collect_inputs;

#[test]
fn manifest_rows_are_checked_one_by_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    emolime::audio::write_wav_i16(&dir.join("a.wav"), &[0.1; 4000], 16000).unwrap();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    emolime::audio::write_wav_i16(&dir.join("sub/b.wav"), &[0.1; 4000], 16000).unwrap();
    let manifest = dir.join("m.csv");
    std::fs::write(
        &manifest,
        "path,label,speaker\na.wav,angry,s1\n\"sub/b.wav\",sad\nmissing.wav,sad\nonly_a_path.wav\n,happy\na.wav,angry,s1,extra\n",
    )
    .unwrap();
    let inputs = collect_inputs(&manifest).unwrap();
    assert_eq!(inputs.items.len(), 2);
    assert_eq!(inputs.items[0].label.as_deref(), Some("angry"));
    assert_eq!(inputs.items[0].speaker.as_deref(), Some("s1"));
    assert_eq!(inputs.items[1].id, "sub/b.wav");
    let lines: Vec<usize> = inputs
        .errors
        .iter()
        .map(|e| match e {
            Error::Manifest { line, path, .. } => {
                assert_eq!(path, &manifest);
                *line
            }
            other => panic!("unexpected {other}"),
        })
        .collect();
    assert_eq!(lines, vec![4, 5, 6, 7]);
    assert!(
        inputs.errors[0].to_string().contains("missing.wav"),
        "{}",
        inputs.errors[0]
    );

    let folder = collect_inputs(dir).unwrap();
    assert_eq!(folder.items.len(), 2, "the folder walk finds both wavs, not the csv");
    assert_eq!(folder.items[1].label.as_deref(), Some("sub"));
    assert!(matches!(collect_inputs(&dir.join("nope")), Err(Error::Io { .. })));
}

#[test]
fn manifest_header_names_its_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    emolime::audio::write_wav_i16(&dir.join("a.wav"), &[0.1; 4000], 16000).unwrap();
    let manifest = dir.join("metadata.csv");
    // gen_emo_corpus.py's layout: extra columns, a quoted field with a comma.
    std::fs::write(
        &manifest,
        "path,dataset,speaker,gender,emotion,text\n\
         a.wav,espeak,espeak_m1,M,angry,\"Yes, the table.\"\n\
         a.wav,espeak,espeak_m1,M,sad\n",
    )
    .unwrap();
    let inputs = collect_inputs(&manifest).unwrap();
    assert_eq!(inputs.items.len(), 1);
    let item = &inputs.items[0];
    assert_eq!(item.label.as_deref(), Some("angry"));
    assert_eq!(item.speaker.as_deref(), Some("espeak_m1"));
    assert_eq!(item.dataset.as_deref(), Some("espeak"));
    assert!(
        inputs.errors[0].to_string().contains("expected 6 fields"),
        "{}",
        inputs.errors[0]
    );
    // A header without a label column is refused as a whole, naming the file.
    std::fs::write(&manifest, "path,dataset\na.wav,x\n").unwrap();
    let err = collect_inputs(&manifest).unwrap_err().to_string();
    assert!(err.contains("metadata.csv") && err.contains("no `label`"), "{err}");
}

#[test]
fn manifest_extra_columns_become_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    emolime::audio::write_wav_i16(&dir.join("a.wav"), &[0.1; 4000], 16000).unwrap();
    emolime::audio::write_wav_i16(&dir.join("b c.wav"), &[0.1; 4000], 16000).unwrap();
    let manifest = dir.join("m.csv");
    // Any column order; a quoted field spanning two lines; a comment; an empty metadata value.
    std::fs::write(
        &manifest,
        "Emotion,age,path,Split,sex,text\n\
         # a comment line\n\
         angry,31,a.wav,train,F,\"line one\nline two, with a comma\"\n\
         sad,,\"b c.wav\",test,M,\"said \"\"hi\"\"\"\n\
         happy,40,missing.wav,test,M,x\n",
    )
    .unwrap();
    let inputs = collect_inputs(&manifest).unwrap();
    assert_eq!(inputs.items.len(), 2, "{:?}", inputs.errors);
    let a = &inputs.items[0];
    assert_eq!(a.label.as_deref(), Some("angry"));
    assert_eq!(a.split.as_deref(), Some("train"));
    assert_eq!(a.gender.as_deref(), Some("F"));
    assert_eq!(a.metadata["age"], "31");
    assert_eq!(a.metadata["text"], "line one\nline two, with a comma");
    let b = &inputs.items[1];
    assert_eq!(b.id, "b c.wav");
    assert!(!b.metadata.contains_key("age"), "empty values are left out");
    assert_eq!(b.metadata["text"], "said \"hi\"");
    // The missing file is reported at its own line (the quoted field above spans two).
    match &inputs.errors[..] {
        [Error::Manifest { line, reason, .. }] => {
            assert_eq!(*line, 6, "{reason}");
            assert!(reason.contains("missing.wav"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // A column named twice is refused up front.
    std::fs::write(&manifest, "path,label,label\na.wav,x,y\n").unwrap();
    let err = collect_inputs(&manifest).unwrap_err().to_string();
    assert!(err.contains("m.csv") && err.contains("twice"), "{err}");
}
