#!/usr/bin/env python3
"""Compare emolime's eGeMAPS v02 functionals with openSMILE's on the same files.

Needs the PyPI packages `opensmile` and `numpy` (no PyTorch):
    python3 -m venv venv && venv/bin/pip install opensmile numpy

Two steps, so the reference is computed once:
    # 1. openSMILE's values (and its time, one process, one thread; --workers N for N processes)
    python3 scripts/egemaps_compare.py reference CORPUS/metadata.csv --out ref.csv
    # 2. emolime's values for the same files, then the per-feature agreement table
    emolime features --input CORPUS/metadata.csv --out ours.csv
    python3 scripts/egemaps_compare.py compare ref.csv ours.csv [--markdown table.md]

The input of `reference` is a CSV manifest with a header whose first column is `path` (paths
relative to the manifest, as written by ../shared/data/gen_emo_corpus.py), a folder of audio
files, or one file. Rows are matched between the two CSVs by their `id` column.

`compare` prints, per feature, Pearson's r across files and the median relative difference
|ours - ref| / max(|ref|, eps), then the counts the issue's targets ask for: features with
r >= 0.9, features with r < 0.7, and the median relative difference of F0 mean and loudness mean.
"""
import argparse
import csv
import math
import os
import sys
import time


def collect(path):
    """(id, absolute path) for a manifest, a folder or a file, in emolime's order."""
    if os.path.isdir(path):
        out = []
        for root, _dirs, files in os.walk(path):
            for f in files:
                if f.lower().endswith((".wav", ".flac", ".ogg", ".mp3")):
                    full = os.path.join(root, f)
                    out.append((os.path.relpath(full, path).replace(os.sep, "/"), full))
        return sorted(out)
    if path.lower().endswith(".csv"):
        base = os.path.dirname(os.path.abspath(path))
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        if rows and rows[0] and rows[0][0].strip().lower() == "path":
            rows = rows[1:]
        return [(r[0], os.path.join(base, r[0])) for r in rows if r and r[0].strip()]
    return [(os.path.basename(path), path)]


_SMILE = None


def _smile():
    """This process's openSMILE eGeMAPS v02 functionals extractor (one per worker process)."""
    global _SMILE
    if _SMILE is None:
        import opensmile

        _SMILE = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02,
            feature_level=opensmile.FeatureLevel.Functionals,
            num_workers=1,
        )
    return _SMILE


def _extract(full):
    """(values, None) of one file, or (None, error text): one bad file must not stop the corpus."""
    try:
        return [repr(float(v)) for v in _smile().process_file(full).iloc[0].values], None
    except Exception as e:
        return None, f"{full}: {e}"


def reference(args):
    import opensmile

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    items = collect(args.input)
    if args.limit:
        items = items[: args.limit]
    names = list(_smile().feature_names)
    tmp = args.out + ".partial"
    failed = 0
    started = time.perf_counter()
    if args.workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(args.workers)
        list(pool.map(_extract, [full for _, full in items[: args.workers]]))  # start-up, not timed
        started = time.perf_counter()
        results = pool.map(_extract, [full for _, full in items], chunksize=8)
    else:
        results = map(_extract, [full for _, full in items])
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id"] + names)
        for i, ((ident, _full), (values, error)) in enumerate(zip(items, results)):
            if error is not None:
                print(error, file=sys.stderr)
                failed += 1
                continue
            w.writerow([ident] + values)
            if (i + 1) % 50 == 0:
                print(f"{i + 1}/{len(items)}", file=sys.stderr)
    seconds = time.perf_counter() - started
    os.replace(tmp, args.out)
    n = len(items) - failed
    how = f"{args.workers} processes" if args.workers > 1 else "one thread"
    print(f"openSMILE {opensmile.__version__} eGeMAPSv02: {n} files in {seconds:.2f} s "
          f"({n / seconds:.1f} files/s, {how}), {failed} failed -> {args.out}")


def read_table(path):
    with open(path, newline="") as fh:
        r = csv.reader(fh)
        header = next(r)
        rows = {row[0]: row for row in r if row}
    return header, rows


def pearson(x, y):
    n = len(x)
    if n < 3:
        return float("nan")
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return float("nan")
    return sxy / math.sqrt(sxx * syy)


def median(v):
    v = sorted(v)
    if not v:
        return float("nan")
    m = len(v) // 2
    return v[m] if len(v) % 2 else 0.5 * (v[m - 1] + v[m])


def compare(args):
    ref_header, ref = read_table(args.reference)
    our_header, ours = read_table(args.ours)
    names = ref_header[1:]
    missing = [n for n in names if n not in our_header]
    if missing:
        sys.exit(f"{args.ours}: missing columns {missing[:5]}{'...' if len(missing) > 5 else ''}")
    if [h for h in our_header if h in set(names)] != names:
        print("warning: column order differs from openSMILE's", file=sys.stderr)
    ids = sorted(set(ref) & set(ours))
    if not ids:
        sys.exit("no file ids in common")
    col = {n: our_header.index(n) for n in names}
    lines = []
    n_09 = n_07 = 0
    low = []
    medrel = {}
    for j, name in enumerate(names, start=1):
        x, y, rel = [], [], []
        for i in ids:
            a, b = float(ref[i][j]), float(ours[i][col[name]])
            if math.isfinite(a) and math.isfinite(b):
                x.append(a)
                y.append(b)
                rel.append(abs(b - a) / max(abs(a), 1e-9))
        r = pearson(x, y)
        medrel[name] = median(rel)
        n_09 += r >= 0.9
        if not r >= 0.7:
            n_07 += 1
            low.append(name)
        lines.append((name, r, medrel[name], len(x)))
    out = [f"files compared: {len(ids)} (reference {len(ref)}, ours {len(ours)})", "",
           "| feature | Pearson r | median rel. diff |", "| --- | ---: | ---: |"]
    out += [f"| {n} | {r:.4f} | {m:.1e} |" for n, r, m, _ in lines]
    out += ["",
            f"r >= 0.9: {n_09} of {len(names)} features; r < 0.7: {n_07} ({', '.join(low)})",
            f"median relative difference: F0semitoneFrom27.5Hz_sma3nz_amean "
            f"{medrel['F0semitoneFrom27.5Hz_sma3nz_amean']:.1e}, loudness_sma3_amean "
            f"{medrel['loudness_sma3_amean']:.1e}"]
    text = "\n".join(out)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(text + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reference", help="openSMILE's functionals for every file")
    r.add_argument("input")
    r.add_argument("--out", required=True)
    r.add_argument("--limit", type=int, default=0)
    r.add_argument("--workers", type=int, default=1, help="worker processes (the time then excludes their start-up)")
    c = sub.add_parser("compare", help="per-feature agreement of two CSVs")
    c.add_argument("reference")
    c.add_argument("ours")
    c.add_argument("--markdown")
    args = p.parse_args()
    {"reference": reference, "compare": compare}[args.cmd](args)


if __name__ == "__main__":
    main()
