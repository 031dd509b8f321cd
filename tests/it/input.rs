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
