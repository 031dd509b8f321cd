#!/usr/bin/env bash
# Real-GPU check in one call: adapters, the test suite and the GPU benches on the first
# hardware Vulkan adapter, everything logged under $OUT (or ./gpu-check-out).
#
# Prepare here (builds x86-64 binaries into .gpu/, which git ignores through .git/info/exclude):
#     bash scripts/gpu_check.sh prepare
# Then on the device machine, carrying .gpu and .gl (Vulkan loader debs, see the device notes):
#     bash scripts/gpu_check.sh run
# Checked end to end on lavapipe (OUT=/tmp/gpuout EMOLIME_BENCH_W2V=none ... run); the NVIDIA
# parts (loader debs, VK_DRIVER_FILES) are untested until a device session runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCHES="resynth scoring"

case "${1:-}" in
prepare)
    exclude=$(git rev-parse --git-path info/exclude)
    mkdir -p "$(dirname "$exclude")"
    grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >> "$exclude"
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
    du -sh .gpu
    ;;
run)
    out="${OUT:-gpu-check-out}"
    mkdir -p "$out"
    for f in .gpu/*.xz; do xz -d -f "$f"; done
    chmod +x .gpu/*
    if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan; then
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    fi
    export NODEVICE_SELECT=1 CARGO_MANIFEST_DIR="$PWD"
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
    for b in $BENCHES; do
        (time ".gpu/bench-$b" --bench --warm-up-time 1 --measurement-time 3 --sample-size 10) \
            > "$out/bench-$b.log" 2>&1 || echo "BENCH $b FAILED" | tee -a "$out/bench-$b.log"
        grep -E '^[a-z_]+/|time:|thrpt:' "$out/bench-$b.log" || true
    done
    ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
