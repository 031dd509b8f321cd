#!/usr/bin/env bash
# Real-GPU check in one call: adapters, the test suite and the GPU benches on the first
# hardware Vulkan adapter, everything logged under $OUT (or ./gpu-check-out).
#
# Prepare here (builds x86-64 binaries into .gpu/, which git ignores through .git/info/exclude):
#     bash scripts/gpu_check.sh prepare
# Then on the device machine, carrying .gpu, .gl (Vulkan loader debs, see the device notes) and
# .whl (captum's wheel, for benches/peers/captum_peer.py):
#     bash scripts/gpu_check.sh run
# Further calls: `scale` (batch sizes, a corpus-scale run with its memory, captum) and `batch`
# (batch size on that corpus, the demo trained on the GPU), `train` (the demo trained on the
# CPU path and on the GPU, compared) and `extra` (wav2vec 2.0 base at its memory-sized batch
# and out of memory, `features rank` on the device), `sizes`, `peers`, `large`, `pack`, `w2v`
# (wav2vec 2.0 scoring, its convolutions lowered and direct) and `w2vbench` (`emolime bench
# --model` on a base-sized checkpoint, then `large`), `overlap` (an eGeMAPS classifier's
# explanation overlapping the device and the CPU; memory of the corpus runs) and `half`
# (wav2vec 2.0 scoring in f16), `halfexplain` (f32 and f16 explanations compared) and `tests`
# (the integration suite alone). All ran on an H100. `prepare-ab <commit>` builds that commit's
# binary beside this one's, and `ab` times the two on the same machine. `prepare-feature
# FEATURES` builds this checkout as it is and with those cargo features (`spirv`, the only one:
# Burn's kernels compiled to SPIR-V), and `feature` compares the two (then `ab` times their CNN
# runs, `featurebench` their wav2vec 2.0 scoring). `profile` sums the CNN's scoring time by
# Burn kernel (after `prepare` or `prepare-ab`; with the base build too after the latter).
# `prepare-pending <commit>` then `pending`: what is not yet measured on a GPU, in one call.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCHES="resynth scoring surrogate"

# Unpacks the binaries, installs the Vulkan loader and the carried wheels (device machine).
setup() {
    for f in .gpu/*.xz; do if [ -e "$f" ]; then xz -d -f "$f"; fi; done
    for f in .gpu/emolime .gpu/emolime-base .gpu/it .gpu/bench-*; do
        if [ -e "$f" ]; then chmod +x "$f"; fi
    done
    built_in=$(cat .gpu/built-in)
    mkdir -p target/release && cp .gpu/emolime target/release/emolime
    if [ "$built_in" != "$PWD" ] && [ ! -e "$built_in" ]; then
        mkdir -p "$(dirname "$built_in")" && ln -s "$PWD" "$built_in"
    fi
    if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan; then
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    fi
    export NODEVICE_SELECT=1 CARGO_MANIFEST_DIR="$PWD"
    # Python wheels carried in .whl (captum for the peer benchmark), installed beside the image's.
    if ls .whl/*.whl > /dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    fi
}

# A base-sized wav2vec 2.0 classifier with random weights, written by transformers (device
# machine, whose image has PyTorch) into the folder $1.
write_base_w2v() {
    python3 - "$1" <<'PY'
import sys, torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification
torch.manual_seed(0)
labels = {0: "angry", 1: "happy", 2: "neutral", 3: "sad"}
cfg = Wav2Vec2Config(num_labels=4, id2label=labels, label2id={v: k for k, v in labels.items()})
Wav2Vec2ForSequenceClassification(cfg).eval().save_pretrained(sys.argv[1])
Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                         return_attention_mask=False).save_pretrained(sys.argv[1])
PY
}

# Keeps .gpu/ out of git (through .git/info/exclude, not .gitignore).
ignore_gpu_dir() {
    local exclude
    exclude=$(git rev-parse --git-path info/exclude)
    mkdir -p "$(dirname "$exclude")"
    grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >> "$exclude"
}

# The binary `ab` runs for $1: base (the commit given to prepare-ab) or new (this checkout).
ab_binary() {
    if [ "$1" = base ]; then echo .gpu/emolime-base; else echo .gpu/emolime; fi
}

# The scoring bench of the build $1 after `prepare-feature`: base (the default build) or new.
ab_bench() {
    if [ "$1" = base ]; then echo .gpu/bench-scoring-base; else echo .gpu/bench-scoring; fi
}

case "${1:-}" in
prepare)
    ignore_gpu_dir
    cargo build --release
    cargo test --release --no-run
    cargo bench --no-run
    rm -rf .gpu && mkdir -p .gpu
    newest() { ls -t target/release/deps/"$1"-* | grep -v '\.d$' | head -n 1; }
    # Stripped and xz-compressed: four binaries stay under the 64 MiB a device call carries.
    pack() { cp "$1" ".gpu/$2" && strip ".gpu/$2" && xz -T2 -6 ".gpu/$2"; }
    pack target/release/emolime emolime
    pack "$(newest it)" it
    for b in $BENCHES; do pack "$(newest "$b")" "bench-$b"; done
    # The test binary starts the emolime binary by the absolute path it was built with.
    echo "$PWD" > .gpu/built-in
    du -sh .gpu
    ;;
prepare-ab)
    # For `ab`: this checkout's binary and that of the commit given, alone in .gpu (carry .gpu
    # and .gl). The base is built first, from a temporary worktree into the same target folder
    # (the dependencies are shared); cargo then takes the base's build of the crate for this
    # checkout's, so this checkout's sources are touched and built anew afterwards.
    base="${2:?usage: $0 prepare-ab <base commit>}"
    ignore_gpu_dir
    rm -rf .gpu && mkdir -p .gpu
    base_tree=$(mktemp -d)/base
    git worktree add -q --detach "$base_tree" "$base"
    CARGO_TARGET_DIR="$PWD/target" cargo build --release --bin emolime --manifest-path "$base_tree/Cargo.toml"
    cp target/release/emolime .gpu/emolime-base
    git worktree remove --force "$base_tree"
    touch src/lib.rs src/main.rs
    cargo build --release --bin emolime
    if cmp -s .gpu/emolime-base target/release/emolime; then
        echo "the base and this build are the same binary" >&2
        exit 1
    fi
    cp target/release/emolime .gpu/emolime
    for f in emolime emolime-base; do strip ".gpu/$f" && xz -T2 -6 ".gpu/$f"; done
    git rev-parse "$base" > .gpu/base-commit
    echo "$PWD" > .gpu/built-in
    du -sh .gpu
    ;;
prepare-pending)
    # For `pending`: `prepare-ab <commit>` plus this checkout's scoring bench and its test binary.
    "$0" prepare-ab "${2:?usage: $0 prepare-pending <base commit>}"
    cargo bench --no-run --bench scoring
    cargo test --release --no-run --test it
    newest() { ls -t target/release/deps/"$1"-* | grep -v '\.d$' | head -n 1; }
    for pair in "scoring:bench-scoring" "it:it"; do
        cp "$(newest "${pair%%:*}")" ".gpu/${pair##*:}" && strip ".gpu/${pair##*:}" && xz -T2 -6 ".gpu/${pair##*:}"
    done
    du -sh .gpu
    ;;
prepare-feature)
    # For `feature` and `ab`: this checkout built twice, as it is (the default build,
    # .gpu/emolime-base) and with the cargo features FEATURES (.gpu/emolime), each with the
    # scoring bench. The feature build has its own target folder (FEATURE_TARGET_DIR, default
    # target/<features>), so neither build undoes the other's.
    features="${2:?usage: $0 prepare-feature FEATURES (e.g. spirv)}"
    feature_target="${FEATURE_TARGET_DIR:-$PWD/target/${features//,/-}}"
    ignore_gpu_dir
    rm -rf .gpu && mkdir -p .gpu
    newest() { ls -t "$1"/release/deps/"$2"-* | grep -v '\.d$' | head -n 1; }
    cargo build --release --bin emolime
    cargo bench --no-run --bench scoring
    cp target/release/emolime .gpu/emolime-base
    cp "$(newest target scoring)" .gpu/bench-scoring-base
    CARGO_TARGET_DIR="$feature_target" cargo build --release --features "$features" --bin emolime
    CARGO_TARGET_DIR="$feature_target" cargo bench --no-run --features "$features" --bench scoring
    cp "$feature_target/release/emolime" .gpu/emolime
    cp "$(newest "$feature_target" scoring)" .gpu/bench-scoring
    for f in emolime emolime-base bench-scoring bench-scoring-base; do strip ".gpu/$f" && xz -T2 -6 ".gpu/$f"; done
    echo "$(git rev-parse HEAD) without the features $features" > .gpu/base-commit
    echo "$features" > .gpu/features
    echo "$PWD" > .gpu/built-in
    du -sh .gpu
    ;;
feature)
    # (#10) After `prepare-feature FEATURES`: the feature build against the default build on the
    # same machine. Which runtime each build puts Burn on; the device limits (f32 and f16 matmul,
    # bandwidth) through each; a 16-utterance, 64-sample CNN explanation as a new process of each
    # (kernel compilation included: SPIR-V skips naga); a base-sized wav2vec 2.0 classifier
    # (random weights, written by transformers) explained on the same 16 utterances (1000
    # samples) in f32 and in f16 by each build, alternating, and the two builds' explanations
    # compared.
    # `ab` then times the CNN's bench and corpus runs of the two builds.
    setup
    echo "the default build against --features $(cat .gpu/features)"
    work=$(mktemp -d)
    .gpu/emolime synth --out "$work/syn" --per-class 8 > /dev/null
    .gpu/emolime demo --out "$work/demo" --device cpu > /dev/null
    head -n 17 "$work/syn/manifest.csv" > "$work/syn/first16.csv"
    for which in base new; do
        EMOLIME_BENCH_DEVICE=gpu:0 timeout 240 "$(ab_bench $which)" --bench --warm-up-time 1 \
            --measurement-time 3 device_limits 2>&1 | grep -E '^device_limits|thrpt:' | sed "s/^/$which: /" || echo "$which: DEVICE LIMITS FAILED"
    done
    for round in 1 2; do
        for which in base new; do
            start=$(date +%s%N)
            "$(ab_binary $which)" explain --model "$work/demo/model.emolime" --input "$work/syn/first16.csv" \
                --out "$work/cnn16-$which" --force --device gpu:0 --samples 64 2>&1 | grep -E '^device|^explained' \
                | sed "s/^/$which $round: /" || echo "$which $round: FAILED"
            echo "$which $round: process $(( ($(date +%s%N) - start) / 1000000 )) ms"
        done
    done
    .gpu/emolime compare "$work/cnn16-base" "$work/cnn16-new" 2>&1 | tail -n 3 || echo "CNN COMPARE FAILED"
    write_base_w2v "$work/w2v"
    for round in 1 2; do
        for which in base new; do
            for p in f32 f16; do
                timeout 120 "$(ab_binary $which)" explain --model "$work/w2v" --input "$work/syn/first16.csv" \
                    --out "$work/w2v-$which-$p" --force --device gpu:0 --samples 1000 --precision $p --quiet 2>&1 \
                    | grep -E '^explained' | sed "s/^/$which $p $round: /" || echo "$which $p $round: FAILED"
            done
        done
    done
    for p in f32 f16; do
        echo "wav2vec 2.0 $p, the default build against --features $(cat .gpu/features):"
        .gpu/emolime compare "$work/w2v-base-$p" "$work/w2v-new-$p" 2>&1 | tail -n 3 || echo "W2V $p COMPARE FAILED"
    done
    ;;
featurebench)
    # (#10) After `prepare-feature FEATURES`: wav2vec 2.0 scoring in f32 and f16 through the
    # default build's scoring bench and the feature build's, alternating (criterion, random
    # weights, base-sized at batch 128 and large-sized at 64, as `half` measures), then each
    # build's `emolime bench --model` of a base-sized checkpoint in f32 and in f16.
    setup
    for spec in base:128 large:64; do
        for which in base new; do
            EMOLIME_BENCH_W2V=${spec%%:*} EMOLIME_BENCH_W2V_BATCH=${spec##*:} timeout 150 \
                "$(ab_bench $which)" --bench --warm-up-time 1 --measurement-time 3 --sample-size 10 'w2v_.*probs' 2>&1 \
                | grep -E '^[a-z_]+/|thrpt:|agreement' | sed "s/^/$which: /" || echo "$which W2V $spec FAILED"
        done
    done
    # `emolime bench --model` on a base-sized checkpoint (random weights, written by
    # transformers): the stages beside the forward and the pipelined run, f32 and f16, each build.
    work=$(mktemp -d)
    write_base_w2v "$work/w2v" 2> /dev/null
    for p in f32 f16; do
        for which in base new; do
            timeout 200 "$(ab_binary $which)" bench --device gpu:0 --model "$work/w2v" --utterances 32 \
                --seconds 1 --samples 1000 --precision $p 2>&1 | grep -E '^ +[a-z_ +]+:|end to end|first run' \
                | tr -s ' ' | paste -sd ' ' | sed "s/^/$which $p: /" || echo "$which $p W2V BENCH FAILED"
        done
    done
    ;;
run)
    out="${OUT:-gpu-check-out}"
    mkdir -p "$out"
    setup
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/nvidia-smi.txt" 2>&1 || true
    .gpu/emolime devices --json > "$out/devices.json"
    .gpu/emolime devices | tee "$out/devices.txt"
    # The first adapter `auto` would pick is the one to test.
    index=$(python3 -c "import json;d=json.load(open('$out/devices.json'));a=[x for x in d['adapters'] if x['device_type']!='Cpu'];print(a[0]['index'] if a else 0)")
    export EMOLIME_TEST_ADAPTER="$index" EMOLIME_BENCH_DEVICE="gpu:$index"
    echo "testing on gpu:$index"
    (time .gpu/it --test-threads=4) > "$out/tests.log" 2>&1 || echo "TESTS FAILED" | tee -a "$out/tests.log"
    grep -E '^test result|FAILED|panicked' "$out/tests.log" || true
    # emolime bench: the same work on every device; its JSON record goes into the README.
    for samples in 1000 64; do
        (time .gpu/emolime bench --device "gpu:$index" --utterances 32 --samples "$samples" \
            --json "$out/emolime-bench-$samples.json") > "$out/emolime-bench-$samples.log" 2>&1 \
            || echo "EMOLIME BENCH FAILED" | tee -a "$out/emolime-bench-$samples.log"
        grep -vE '^bench:' "$out/emolime-bench-$samples.log" || true
    done
    (time .gpu/emolime bench --device cpu --utterances 8 --json "$out/emolime-bench-cpu.json") \
        > "$out/emolime-bench-cpu.log" 2>&1 || true
    grep -vE '^bench:' "$out/emolime-bench-cpu.log" || true
    # The same explanations on two devices: the demo's CPU run against the GPU (#9: agree to 1e-4),
    # and a whole-corpus explain timed end to end (decode to Parquet) at 1000 samples.
    work=$(mktemp -d)
    .gpu/emolime demo --out "$work/demo" --device cpu > "$out/cross-device.log" 2>&1
    (time .gpu/emolime explain --model "$work/demo/model.emolime" --input "$work/demo/corpus" \
        --out "$work/gpu512" --device "gpu:$index" --samples 512) >> "$out/cross-device.log" 2>&1
    (time .gpu/emolime explain --model "$work/demo/model.emolime" --input "$work/demo/corpus" \
        --out "$work/cpu512" --device cpu --samples 512) >> "$out/cross-device.log" 2>&1
    .gpu/emolime compare "$work/cpu512" "$work/gpu512" --tolerance 1e-4 2>&1 | tee -a "$out/cross-device.log" \
        || echo "CROSS-DEVICE COMPARE FAILED" | tee -a "$out/cross-device.log"
    (time .gpu/emolime explain --model "$work/demo/model.emolime" --input "$work/demo/corpus" \
        --out "$work/gpu1000" --device "gpu:$index" --samples 1000) > "$out/explain-1000.log" 2>&1
    grep -E 'real|explained|utterances' "$out/explain-1000.log" || true
    # EmoLIME's Griffin-Lim path (#5): an eGeMAPS classifier explained with --resynthesis
    # griffin-lim (32 iterations) on the GPU, where the resynthesis runs on the device, and on the
    # CPU threads; timed and compared.
    .gpu/emolime train --features egemaps --head logreg --folds 0 --input "$work/demo/corpus" \
        --out "$work/feat.json" > "$out/griffin-lim.log" 2>&1
    { echo "path,label"; ls "$work"/demo/corpus/*/*.wav | head -8 | while read -r f; do
        echo "$f,$(basename "$(dirname "$f")")"; done; } > "$work/gl.csv"
    for dev in "gpu:$index" cpu; do
        (time .gpu/emolime explain --model "$work/feat.json" --input "$work/gl.csv" --out "$work/gl-${dev%%:*}" \
            --device "$dev" --samples 256 --resynthesis griffin-lim) >> "$out/griffin-lim.log" 2>&1
    done
    .gpu/emolime compare "$work/gl-cpu" "$work/gl-gpu" >> "$out/griffin-lim.log" 2>&1 || true
    grep -E 'real|largest|Spearman' "$out/griffin-lim.log" || true
    for b in $BENCHES; do
        (time ".gpu/bench-$b" --bench --warm-up-time 1 --measurement-time 3 --sample-size 10) \
            > "$out/bench-$b.log" 2>&1 || echo "BENCH $b FAILED" | tee -a "$out/bench-$b.log"
        grep -E '^[a-z_]+/|time:|thrpt:' "$out/bench-$b.log" || true
    done
    # wav2vec 2.0 scoring at larger batches (the criterion run above uses 8).
    for batch in 32 64; do
        (EMOLIME_BENCH_W2V_BATCH=$batch .gpu/bench-scoring --bench --warm-up-time 1 --measurement-time 3 \
            --sample-size 10 w2v_) > "$out/bench-w2v-batch$batch.log" 2>&1 || echo "W2V BATCH $batch FAILED"
        grep -E '^[a-z_]+/|time:|thrpt:' "$out/bench-w2v-batch$batch.log" || true
    done
    # captum on the same GPU (#10), when PyTorch and captum are there (carry captum's wheel in .whl).
    if python3 -c 'import torch, captum' 2>/dev/null; then
        (time python3 benches/peers/captum_peer.py --emolime .gpu/emolime --model "$work/demo/model.emolime" \
            --input "$work/demo/corpus" --limit 16 --samples 64,1000,exhaustive --emolime-device "gpu:$index") \
            > "$out/captum-peer.log" 2>&1 || echo "CAPTUM PEER FAILED" | tee -a "$out/captum-peer.log"
        cat "$out/captum-peer.log"
    fi
    # Few files come back from a device call: everything in one archive.
    (cd "$out" && tar czf ../gpu-check.tgz . && rm -f ./* && mv ../gpu-check.tgz .)
    ;;
scale)
    # Second call (after `run`, which installs the loaders): batch sizes, a corpus-scale run with
    # its host and device memory, and the captum comparison. Same carry as `run`.
    out="${OUT:-gpu-check-out}"
    mkdir -p "$out"
    setup
    dev=gpu:0
    # The row-cached forward on the device (the default) against scoring every distinct input.
    for batch in 256 1024 4096; do
        .gpu/emolime bench --device $dev --utterances 64 --samples 1000 --batch-size $batch --no-row-cache \
            --json "$out/bench-batch$batch.json" 2>&1 | grep -E 'scoring|surrogate|masks|end to end' | sed "s/^/batch $batch: /"
    done
    .gpu/emolime bench --device $dev --utterances 64 --samples 1000 --json "$out/bench-rows.json" 2>&1 \
        | grep -E 'work:|scoring|surrogate|masks|end to end' | sed "s/^/row-cached: /"
    work=$(mktemp -d)
    .gpu/emolime synth --out "$work/big" --per-class 2000 > /dev/null
    head -n 501 "$work/big/manifest.csv" > "$work/big/first500.csv"
    .gpu/emolime demo --out "$work/demo" --device cpu > /dev/null
    for input in first500 manifest; do
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$work/vram.txt" &
        smi=$!
        # Peak resident memory of the child, the same on machines without GNU time.
        python3 -c 'import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); print("Maximum resident set size (kbytes):", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)' \
            .gpu/emolime explain --model "$work/demo/model.emolime" --input "$work/big/$input.csv" \
            --out "$work/run-$input" --device $dev --samples 1000 --quiet > "$work/explain.log" 2>&1
        kill $smi 2>/dev/null || true
        echo "$input: $(grep -E 'explained' "$work/explain.log")"
        echo "  peak host memory: $(grep 'Maximum resident' "$work/explain.log")"
        echo "  device memory used (MiB): min $(sort -n "$work/vram.txt" | head -1), max $(sort -n "$work/vram.txt" | tail -1)"
    done
    if python3 -c 'import torch, captum' 2>/dev/null; then
        python3 benches/peers/captum_peer.py --emolime .gpu/emolime --model "$work/demo/model.emolime" \
            --input "$work/demo/corpus" --limit 16 --samples 64,1000,exhaustive --emolime-device $dev
    fi
    ;;
batch)
    # Third call: the batch size on a corpus-scale run, and the demo trained on the GPU.
    setup
    work=$(mktemp -d)
    .gpu/emolime synth --out "$work/big" --per-class 2000 > /dev/null
    .gpu/emolime demo --out "$work/demo" --device cpu | grep -E 'accuracy|top band' | sed 's/^/cpu demo: /'
    .gpu/emolime demo --out "$work/demo-gpu" --device gpu:0 | grep -E 'accuracy|top band' | sed 's/^/gpu demo: /'
    for batch in 256 1024 4096; do
        .gpu/emolime explain --model "$work/demo/model.emolime" --input "$work/big/manifest.csv" \
            --out "$work/run-$batch" --device gpu:0 --samples 1000 --batch-size $batch --quiet 2>&1 \
            | grep explained | sed "s/^/batch $batch: /"
    done
    .gpu/emolime compare "$work/run-256" "$work/run-4096" | tail -n 3
    ;;
train)
    # Device-independent training: the demo trained and explained on the CPU path and on the GPU.
    setup
    work=$(mktemp -d)
    .gpu/emolime demo --out "$work/cpu" --device cpu | grep -E 'accuracy|top band' | sed 's/^/cpu demo: /'
    .gpu/emolime demo --out "$work/gpu" --device gpu:0 | grep -E 'accuracy|top band' | sed 's/^/gpu demo: /'
    .gpu/emolime compare "$work/cpu" "$work/gpu" || true
    ;;
extra)
    # Fourth call: a base-sized wav2vec 2.0 classifier (random weights, written by transformers on
    # the device) explained on the GPU at 256 inputs per call and at the memory-sized batch (#5),
    # then again with most of the device's memory taken by another process so that model calls
    # run out of memory and halve (#9), compared; `features rank` scored on the GPU and on the
    # CPU, timed and compared (#7).
    out="${OUT:-gpu-check-out}"
    mkdir -p "$out"
    setup
    work=$(mktemp -d)
    write_base_w2v "$work/w2v"
    .gpu/emolime synth --out "$work/syn" --per-class 2 > /dev/null
    for batch in 256 4096; do
        echo "w2v base, batch $batch:"
        (time timeout 240 .gpu/emolime explain --model "$work/w2v" --input "$work/syn/manifest.csv" \
            --out "$work/w2v-$batch" --device gpu:0 --samples 256 --batch-size $batch) 2>&1 \
            | grep -E 'explained|note|real|rror' || true
    done
    # Another process holds all but 3 GiB of the device's memory while emolime explains.
    python3 -c 'import torch, time, sys
free, total = torch.cuda.mem_get_info()
x = torch.empty(free - 3 * 2**30, dtype=torch.uint8, device="cuda")
print(f"holding {x.numel() / 2**30:.1f} of {total / 2**30:.1f} GiB", flush=True)
time.sleep(400)' &
    hog=$!
    sleep 15
    nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader
    echo "w2v base, batch 4096, 3 GiB free:"
    (time timeout 240 .gpu/emolime explain --model "$work/w2v" --input "$work/syn/manifest.csv" \
        --out "$work/w2v-oom" --device gpu:0 --samples 256 --batch-size 4096) > "$out/w2v-oom.log" 2>&1 \
        || echo "EXIT $?" >> "$out/w2v-oom.log"
    kill $hog 2>/dev/null || true
    grep -E 'explained|note:|real|rror|EXIT|panick' "$out/w2v-oom.log" | grep -v 'Some details' | sort | uniq -c || true
    EMOLIME_TEST_ADAPTER=0 .gpu/it device_errors 2>&1 | grep -E '^test |test result' || true
    .gpu/emolime compare "$work/w2v-256" "$work/w2v-4096" 2>&1 | tail -n 3
    .gpu/emolime compare "$work/w2v-256" "$work/w2v-oom" 2>&1 | tail -n 3
    # features rank: permutation importance and KernelSHAP scored on the GPU and on the CPU.
    .gpu/emolime synth --out "$work/rank" --per-class 60 > /dev/null
    for dev in gpu:0 cpu; do
        echo "features rank on $dev:"
        (time .gpu/emolime features rank --corpus syn="$work/rank/manifest.csv" --out "$work/rank-${dev%%:*}" \
            --device $dev --bootstrap 200) > "$out/rank-${dev%%:*}.log" 2>&1 || echo "RANK $dev FAILED"
        grep -E 'real|rror' "$out/rank-${dev%%:*}.log" || true
    done
    python3 - "$work/rank-gpu" "$work/rank-cpu" <<'PY'
import csv, pathlib, sys
a, b = map(pathlib.Path, sys.argv[1:])
for f in sorted(a.glob("*.csv")):
    ra, rb = list(csv.reader(open(f))), list(csv.reader(open(b / f.name)))
    worst, text = 0.0, 0
    for x, y in zip(ra, rb):
        for u, v in zip(x, y):
            try:
                worst = max(worst, abs(float(u) - float(v)))
            except ValueError:
                text += u != v
    print(f"{f.name}: rows {len(ra)}/{len(rb)}, largest numeric difference {worst:.3g}, differing text cells {text}")
PY
    (cd "$out" && tar czf ../gpu-check.tgz . && rm -f ./* && mv ../gpu-check.tgz .)
    ;;
sizes)
    # Fifth call: `features rank` on a larger corpus with the logistic and the SVM head, on the
    # GPU and on the CPU (#7), and wav2vec 2.0 base scoring at batches past 64 (#5, #10).
    setup
    work=$(mktemp -d)
    .gpu/emolime synth --out "$work/rank" --per-class 250 > /dev/null
    for head in logreg svm; do
        for dev in gpu:0 cpu; do
            timeout 100 .gpu/emolime features rank --corpus syn="$work/rank/manifest.csv" --head $head \
                --out "$work/rank-$head-${dev%%:*}" --device $dev --bootstrap 200 2>&1 \
                | grep -E 'utterances,|features .* ranking' | sed "s/^/$head on $dev: /" || echo "$head on $dev: over 100 s"
        done
    done
    for batch in 128 256; do
        EMOLIME_BENCH_W2V=base EMOLIME_BENCH_W2V_BATCH=$batch .gpu/bench-scoring --bench --warm-up-time 1 \
            --measurement-time 3 --sample-size 10 w2v_ 2>&1 | grep -E '^[a-z_]+/|time:|thrpt:' || echo "W2V BATCH $batch FAILED"
    done
    ;;
peers)
    # Sixth call: captum on 64 utterances rather than 16, so that start-up weighs less on both
    # sides (#10), and `emolime bench` at 64 samples on 256 utterances.
    out="${OUT:-gpu-check-out}"
    mkdir -p "$out"
    setup
    work=$(mktemp -d)
    .gpu/emolime demo --out "$work/demo" --device cpu > /dev/null
    .gpu/emolime bench --device gpu:0 --utterances 256 --samples 64 2>&1 | grep -E 'work:|ms per|:  |end to end'
    python3 benches/peers/captum_peer.py --emolime .gpu/emolime --model "$work/demo/model.emolime" \
        --input "$work/demo/corpus" --limit 64 --samples 64,1000,exhaustive --emolime-device gpu:0 2>&1 \
        | tee "$out/captum-peer-64.log"
    ;;
large)
    # Seventh call (#5): a large-sized wav2vec 2.0 classifier (random weights, stable layer norm,
    # written by transformers on the device) explained on a 5 s utterance at 1000 samples with
    # no --batch-size, the batch sized from the device's memory; peak device memory sampled.
    setup
    work=$(mktemp -d)
    python3 - "$work" <<'PY'
import sys, wave, numpy as np, torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification
out = sys.argv[1]
torch.manual_seed(0)
labels = {0: "angry", 1: "happy", 2: "neutral", 3: "sad"}
cfg = Wav2Vec2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                     feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, num_labels=4,
                     id2label=labels, label2id={v: k for k, v in labels.items()})
Wav2Vec2ForSequenceClassification(cfg).eval().save_pretrained(out + "/large")
Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                         return_attention_mask=False).save_pretrained(out + "/large")
# 5 s of a voiced-like signal: harmonics of a gliding pitch plus noise.
t = np.arange(5 * 16000) / 16000
f0 = 140 + 30 * np.sin(2 * np.pi * 0.4 * t)
phase = 2 * np.pi * np.cumsum(f0) / 16000
x = sum(np.sin(k * phase) / k for k in range(1, 20)) * 0.2 + 0.01 * np.random.default_rng(0).standard_normal(t.size)
with wave.open(out + "/five.wav", "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
    w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
PY
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$work/vram.txt" &
    smi=$!
    (time .gpu/emolime explain --model "$work/large" --input "$work/five.wav" --out "$work/run" \
        --device gpu:0 --samples 1000) 2>&1 | grep -vE '^explaining|^$' || echo "LARGE EXPLAIN FAILED"
    kill $smi 2>/dev/null || true
    echo "device memory used (MiB): max $(sort -n "$work/vram.txt" | tail -1)"
    grep -ho '"batch_size": *[0-9]*' "$work"/run/*.json | sort -u || true
    ;;
w2v)
    # Ninth call (#10): wav2vec 2.0 scoring with its convolutions as matrix products: the
    # encoder tests on the device, then the whole forward, the feature encoder and the
    # positional convolution, each lowered ("gemm") and through Burn's conv1d ("direct").
    setup
    .gpu/it --test-threads=2 wav2vec2 gemm 2>&1 | grep -E '^test |test result|panicked' || echo "W2V TESTS FAILED"
    for spec in base:64 base:128 base:256 large:64; do
        EMOLIME_BENCH_W2V=${spec%%:*} EMOLIME_BENCH_W2V_BATCH=${spec##*:} timeout 150 .gpu/bench-scoring --bench \
            --warm-up-time 1 --measurement-time 3 --sample-size 10 w2v_ 2>&1 \
            | grep -E '^[a-z_]+/|time:|thrpt:' || echo "W2V $spec FAILED"
    done
    ;;
w2vbench)
    # Tenth call (#10): `emolime bench --model` on a base-sized wav2vec 2.0 classifier (random
    # weights, written by transformers on the device) at the default batch: the stages beside
    # the model's forward, then the large-sized 5 s explanation of `large` again.
    setup
    work=$(mktemp -d)
    write_base_w2v "$work/w2v"
    for seconds in 1 3; do
        timeout 200 .gpu/emolime bench --device gpu:0 --model "$work/w2v" --utterances 32 --seconds $seconds \
            --samples 1000 2>&1 | grep -E 'work:|model:|ms per|:  |end to end|first run' || echo "W2V BENCH FAILED"
    done
    bash "$0" large
    ;;
tests)
    # The integration suite alone on the first hardware adapter (what `run` starts with).
    setup
    index=$(.gpu/emolime devices --json | python3 -c "import json,sys;d=json.load(sys.stdin);a=[x for x in d['adapters'] if x['device_type']!='Cpu'];print(a[0]['index'] if a else 0)")
    echo "testing on gpu:$index"
    EMOLIME_TEST_ADAPTER="$index" .gpu/it --test-threads=4 2>&1 | grep -E '^test result|FAILED|panicked' || true
    ;;
halfexplain)
    # (#10) A base-sized wav2vec 2.0 classifier explained in f32 and in f16 on the same corpus
    # (32 utterances of 1.5 s, 1000 samples, default batch), timed and compared.
    setup
    work=$(mktemp -d)
    write_base_w2v "$work/w2v"
    .gpu/emolime synth --out "$work/syn" --per-class 8 > /dev/null
    for p in f32 f16 f32 f16; do
        .gpu/emolime explain --model "$work/w2v" --input "$work/syn/manifest.csv" --out "$work/run-$p" --force \
            --device gpu:0 --samples 1000 --precision $p --quiet 2>&1 | grep -E '^explained|^model' | sed "s/^/$p: /"
    done
    .gpu/emolime compare "$work/run-f32" "$work/run-f16" 2>&1 | tail -n 3
    ;;
half)
    # Twelfth call (#10): wav2vec 2.0 scoring in f16 against f32 (speed, and the agreement of
    # their probabilities on the bench batch), then the f16 and lowering tests on the device.
    setup
    for spec in base:64 base:128 base:256 large:64; do
        EMOLIME_BENCH_W2V=${spec%%:*} EMOLIME_BENCH_W2V_BATCH=${spec##*:} timeout 150 .gpu/bench-scoring --bench \
            --warm-up-time 1 --measurement-time 3 --sample-size 10 'w2v_.*probs' 2>&1 \
            | grep -E '^[a-z_]+/|time:|thrpt:|agreement' || echo "W2V $spec FAILED"
    done
    .gpu/it --test-threads=2 half_precision gemm 2>&1 | grep -E '^test |test result|panicked' || echo "HALF TESTS FAILED"
    ;;
overlap)
    # Eleventh call (#6, #9): an eGeMAPS classifier explained on the GPU, where each batch is
    # copied back as it is built and its features extracted on the CPU while the device builds
    # the next: Griffin-Lim resynthesis on the device (as in `run`) and phase-preserving
    # resynthesis in `emolime bench --model` (stages waited for one by one, then the pipelined
    # run); then the corpus runs of `scale` with their host and device memory, now with the
    # decoding workers.
    setup
    work=$(mktemp -d)
    .gpu/emolime demo --out "$work/demo" --device cpu > /dev/null
    .gpu/emolime train --features egemaps --head logreg --folds 0 --input "$work/demo/corpus" \
        --out "$work/feat.json" > /dev/null 2>&1
    { echo "path,label"; ls "$work"/demo/corpus/*/*.wav | head -8 | while read -r f; do
        echo "$f,$(basename "$(dirname "$f")")"; done; } > "$work/gl.csv"
    for dev in gpu:0 cpu; do
        echo "griffin-lim on $dev:"
        (time .gpu/emolime explain --model "$work/feat.json" --input "$work/gl.csv" --out "$work/gl-${dev%%:*}" \
            --device "$dev" --samples 256 --resynthesis griffin-lim) 2>&1 | grep -E 'real|explained' || true
    done
    .gpu/emolime compare "$work/gl-cpu" "$work/gl-gpu" 2>&1 | grep -E 'largest|Spearman' || true
    .gpu/emolime bench --device gpu:0 --model "$work/feat.json" --utterances 16 --samples 1000 2>&1 \
        | grep -E 'work:|model:|ms per|:  |end to end|first run' || echo "FEATURE BENCH FAILED"
    .gpu/emolime synth --out "$work/big" --per-class 2000 > /dev/null
    head -n 501 "$work/big/manifest.csv" > "$work/big/first500.csv"
    for input in first500 manifest; do
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$work/vram.txt" &
        smi=$!
        python3 -c 'import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); print("Maximum resident set size (kbytes):", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)' \
            .gpu/emolime explain --model "$work/demo/model.emolime" --input "$work/big/$input.csv" \
            --out "$work/run-$input" --device gpu:0 --samples 1000 --quiet > "$work/explain.log" 2>&1
        kill $smi 2>/dev/null || true
        echo "$input: $(grep -E 'explained' "$work/explain.log")"
        echo "  peak host memory: $(grep 'Maximum resident' "$work/explain.log")"
        echo "  device memory used (MiB): min $(sort -n "$work/vram.txt" | head -1), max $(sort -n "$work/vram.txt" | tail -1)"
    done
    ;;
pack)
    # Eighth call (#9, #10): packing by the inputs scored (each utterance's distinct masks)
    # against the earlier packing by samples (`--pack 5` at 1000 samples and batch 4096), on the
    # 8000-utterance corpus, compared, with the time the device waited for decoded audio;
    # `emolime bench` with its stages packed as the run packs.
    setup
    work=$(mktemp -d)
    .gpu/emolime bench --device gpu:0 --utterances 64 --samples 1000 2>&1 | grep -E 'work:|ms per|:  |end to end|first run'
    .gpu/emolime synth --out "$work/big" --per-class 2000 > /dev/null
    .gpu/emolime demo --out "$work/demo" --device cpu > /dev/null
    # The first run also compiles the kernels; each later one is timed warm.
    for pack in 64 5 64; do
        rm -rf "$work/run-$pack"
        .gpu/emolime explain --model "$work/demo/model.emolime" --input "$work/big/manifest.csv" \
            --out "$work/run-$pack" --device gpu:0 --samples 1000 --pack $pack --quiet 2>&1 \
            | grep explained | sed "s/^/pack $pack: /"
    done
    .gpu/emolime compare "$work/run-5" "$work/run-64" | tail -n 3
    ;;
ab)
    # The build of `prepare-ab <commit>` against this one on the same machine (machines of one
    # kind differ by about a third): `emolime bench` stages, old and new alternating, then the
    # corpus-scale run (AB_PER_CLASS utterances per class, default 2000: 8000 of 1 s) timed for
    # each after a first run that compiles the kernels, and the two runs' explanations compared.
    # AB_BENCH_ARGS and AB_EXPLAIN_ARGS add flags to every bench and explain run (e.g.
    # "--no-row-cache --batch-size 4096" for scoring every input), split into words on purpose.
    setup
    dev="${AB_DEVICE:-gpu:0}"
    echo "base $(cat .gpu/base-commit) against this build"
    work=$(mktemp -d)
    for round in 1 2 3; do
        for which in base new; do
            "$(ab_binary $which)" bench --device "$dev" --utterances "${AB_BENCH_UTTERANCES:-64}" --samples 1000 \
                ${AB_BENCH_ARGS:-} 2>&1 \
                | grep -E 'masks|scoring|surrogate|end to end' | tr -s ' ' | paste -sd ' ' | sed "s/^/$which $round: /"
        done
    done
    .gpu/emolime synth --out "$work/big" --per-class "${AB_PER_CLASS:-2000}" > /dev/null
    .gpu/emolime demo --out "$work/demo" --device cpu > /dev/null
    for which in base new base new base new; do
        rm -rf "$work/run-$which"
        "$(ab_binary $which)" explain --model "$work/demo/model.emolime" --input "$work/big/manifest.csv" \
            --out "$work/run-$which" --device "$dev" --samples 1000 --quiet ${AB_EXPLAIN_ARGS:-} 2>&1 \
            | grep explained | sed "s/^/$which: /"
    done
    .gpu/emolime compare "$work/run-base" "$work/run-new" | tail -n 3
    ;;
pending)
    # Everything not yet measured on a GPU, in one call of about 8 minutes, after
    # `prepare-pending <commit>` here (carry .gpu, .gl and .whl): the twin and pipeline tests on
    # the device; the CNN's kernels (compiling them, the fused blocks and the head against the same
    # folded network through Burn's operations, in criterion); `emolime bench` of both builds
    # alternating, row-cached and every input scored (its "scoring rate" line is the roofline's measured rate); the 8000-utterance
    # corpus; the whole 16-utterance process at 64 samples; captum at 16 utterances.
    # AB_BENCH_UTTERANCES and AB_PER_CLASS shrink the work as for `ab` (a trial on lavapipe).
    out="${OUT:-gpu-check-out}"
    mkdir -p "$out"
    setup
    dev="${AB_DEVICE:-gpu:0}"
    export EMOLIME_TEST_ADAPTER="${dev#gpu:}" EMOLIME_BENCH_DEVICE="$dev" EMOLIME_BENCH_W2V=none
    echo "base $(cat .gpu/base-commit) against this build"
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true
    # The twin and pipeline tests (the kernels against their CPU twins, whole explanations);
    # `tests` runs the whole suite.
    (timeout 150 .gpu/it --test-threads=4 twins:: pipeline::) > "$out/tests.log" 2>&1 \
        || echo "TESTS FAILED" | tee -a "$out/tests.log"
    grep -E '^test result|FAILED|panicked' "$out/tests.log" || true
    timeout 150 .gpu/bench-scoring --bench --warm-up-time 1 --measurement-time 2 --sample-size 10 \
        'cnn_probs_batch|cnn_burn_ops_batch|cnn_row_cached_(device|burn_ops)|compile_emolime' 2>&1 \
        | awk '/^[a-z_]+\// {name = $1} /time:/ && !/%/ {sub(/.*time:/, "time:"); print name, $0}' | tr -s ' ' | tee "$out/criterion.log" || true
    for round in 1 2; do
        for which in base new; do
            for path in rows every; do
                args=""
                if [ "$path" = every ]; then args="--no-row-cache --batch-size 4096"; fi
                "$(ab_binary $which)" bench --device "$dev" --utterances "${AB_BENCH_UTTERANCES:-64}" --samples 1000 $args 2>&1 \
                    | grep -E 'masks|scoring|surrogate|end to end' | tr -s ' ' | paste -sd ' ' \
                    | sed "s/^/$which $path $round: /"
            done
        done
    done
    work=$(mktemp -d)
    .gpu/emolime synth --out "$work/big" --per-class "${AB_PER_CLASS:-2000}" > /dev/null
    .gpu/emolime demo --out "$work/demo" --device cpu > /dev/null
    head -n 17 "$work/demo/corpus/manifest.csv" > "$work/demo/corpus/first16.csv"
    for which in base new base new base new; do
        rm -rf "$work/run-$which" "$work/small-$which"
        "$(ab_binary $which)" explain --model "$work/demo/model.emolime" --input "$work/big/manifest.csv" \
            --out "$work/run-$which" --device "$dev" --samples 1000 --quiet 2>&1 | grep explained | sed "s/^/$which: /"
        /usr/bin/time -f "$which 16 x 64 process: %e s" "$(ab_binary $which)" explain \
            --model "$work/demo/model.emolime" --input "$work/demo/corpus/first16.csv" \
            --out "$work/small-$which" --device "$dev" --samples 64 --quiet 2>&1 | grep -E 'process|explained'
    done
    .gpu/emolime compare "$work/run-base" "$work/run-new" | tail -n 3
    if python3 -c 'import torch, captum' 2>/dev/null; then
        timeout 200 python3 benches/peers/captum_peer.py --emolime .gpu/emolime --model "$work/demo/model.emolime" \
            --input "$work/demo/corpus" --limit 16 --samples 64,1000 --emolime-device "$dev" 2>&1 \
            | tee "$out/captum-peer-16.log"
    else
        echo "no captum (carry its wheel in .whl)"
    fi
    ;;
profile)
    # Where the CNN's scoring time goes, kernel by kernel (CubeCL's profiling log summed by
    # scripts/kernel_profile.py), every input scored at batch 4096 and row-cached, for this build
    # and, after `prepare-ab`, the base build too. Profiling waits for each kernel: the shares
    # are the figures, not the sums. The log holds Burn's kernels only: since 920002a and 25a1ceb
    # the CNN's blocks are emolime's own kernel (conv_block.wgsl) on both paths and are not in
    # it, so for those builds the log gives the head's share (scoring time less its sum: the
    # blocks); since the row-cached head's own kernels (row_head_*.wgsl) that path has no Burn
    # kernel left, and only the every-input head (pooling, linear layer, softmax) shows.
    setup
    dev="${AB_DEVICE:-gpu:0}"
    work=$(mktemp -d)
    builds=new
    if [ -e .gpu/emolime-base ]; then builds="base new"; fi
    for which in $builds; do
        for path in every rows; do
            args=""
            if [ "$path" = every ]; then args="--no-row-cache --batch-size 4096"; fi
            CUBECL_DEBUG_LOG="$work/$which-$path.log" CUBECL_DEBUG_OPTION=profile \
                "$(ab_binary $which)" bench --device "$dev" --utterances 16 --samples 1000 $args 2>&1 \
                | grep -E 'scoring|end to end' | tr -s ' ' | paste -sd ' ' | sed "s/^/$which $path: /"
            python3 scripts/kernel_profile.py "$work/$which-$path.log" --top 12 | sed "s/^/$which $path: /"
        done
    done
    ;;
*)
    echo "usage: $0 prepare|prepare-ab COMMIT|prepare-pending COMMIT|prepare-feature FEATURES|featurebench|run|scale|batch|train|extra|sizes|peers|large|pack|ab|pending|feature|profile" >&2
    exit 2
    ;;
esac
