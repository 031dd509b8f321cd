#!/usr/bin/env python3
"""Per-dataset manifests of a gen_emo_corpus.py corpus, for speaker-independent experiments.

    python3 scripts/split_by_speaker.py CORPUS/metadata.csv

The input may also be an `emolime features` table written inside a corpus folder (its `id` is
the path relative to that folder, its `label` the class), e.g. for EmoDB:

    emolime features --corpus emodb=EMODB --out EMODB/index.csv
    python3 scripts/split_by_speaker.py EMODB/index.csv

writes, beside metadata.csv, for every value D of its `dataset` column:
  split_D_all.csv       every file of D
  split_D_trainspk.csv  the files of every other speaker of D in sorted order (1st, 3rd, ...)
  split_D_testspk.csv   the files of the remaining speakers
with the header path,label,speaker,dataset (label = the `emotion` column, or `label`; path = the
`path` column, or `id`). Standard library only.
"""
import collections
import csv
import os
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    meta = sys.argv[1]
    rows = list(csv.DictReader(open(meta, newline="")))
    if not rows:
        sys.exit(f"{meta}: no rows")
    path_key = "path" if "path" in rows[0] else "id"
    label_key = "emotion" if "emotion" in rows[0] else "label"
    missing = [k for k in (path_key, label_key, "speaker", "dataset") if k not in rows[0]]
    if missing:
        sys.exit(f"{meta}: missing column(s) {', '.join(missing)}")
    by = collections.defaultdict(list)
    for r in rows:
        by[r["dataset"]].append(r)
    base = os.path.dirname(os.path.abspath(meta))

    def write(name, rs):
        with open(os.path.join(base, f"split_{name}.csv"), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "label", "speaker", "dataset"])
            for r in rs:
                w.writerow([r[path_key], r[label_key], r["speaker"], r["dataset"]])

    for d, rs in sorted(by.items()):
        speakers = sorted({r["speaker"] for r in rs})
        train = set(speakers[::2])
        write(f"{d}_all", rs)
        write(f"{d}_trainspk", [r for r in rs if r["speaker"] in train])
        write(f"{d}_testspk", [r for r in rs if r["speaker"] not in train])
        print(f"{d}: {len(rs)} files, train speakers {sorted(train)}, "
              f"test speakers {sorted(set(speakers) - train)}")


if __name__ == "__main__":
    main()
