#!/usr/bin/env bash
# EmoLIME's robustness question on the synthetic corpus of ../shared/data/gen_emo_corpus.py,
# each engine a dataset: do explanations agree more across models than across datasets?
#
#   bash scripts/robustness_synthetic.sh CORPUS OUT [SAMPLES]
#
# For every engine D in CORPUS/metadata.csv: a log-mel CNN and an eGeMAPS logistic regression
# trained on half of D's speakers, both explained on the other half (SAMPLES perturbations,
# default 256, CPU path), then `emolime robustness` over the six runs. Set EMOLIME to use
# another binary (default target/release/emolime).
set -euo pipefail
corpus=${1:?usage: robustness_synthetic.sh CORPUS OUT [SAMPLES]}
out=${2:?usage: robustness_synthetic.sh CORPUS OUT [SAMPLES]}
samples=${3:-256}
bin=${EMOLIME:-target/release/emolime}
here=$(cd "$(dirname "$0")" && pwd)
python3 "$here/split_by_speaker.py" "$corpus/metadata.csv"
mkdir -p "$out"
runs=()
for split in "$corpus"/split_*_all.csv; do
  d=$(basename "$split" _all.csv); d=${d#split_}
  train="$corpus/split_${d}_trainspk.csv"
  test="$corpus/split_${d}_testspk.csv"
  "$bin" train --input "$train" --out "$out/cnn_$d.emolime" --device cpu --force
  "$bin" train --features egemaps --head logreg --input "$train" --out "$out/egemaps_$d.json" --force
  for m in cnn egemaps; do
    model="$out/cnn_$d.emolime"
    [ "$m" = egemaps ] && model="$out/egemaps_$d.json"
    "$bin" explain --model "$model" --input "$test" --out "$out/explain_${d}_$m" \
      --samples "$samples" --device cpu --quiet --force | grep -E "^explained" || true
    runs+=(--run "$d:$m=$out/explain_${d}_$m")
  done
done
"$bin" robustness "${runs[@]}" --out "$out/robustness" --force
