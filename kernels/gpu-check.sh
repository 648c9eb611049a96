#!/usr/bin/env bash
# Issue 31's GPU part in one device call (about 8 minutes on an H100/H200): correctness of the kernels on the GPU,
# `task bench-kernels` (which writes this GPU's entry of kernels/dispatch.json), and the `bench-train --matrix`
# (eager / compile / compile + CUDA graphs, kernels on and off) for mars_dual_unet, an SE-ResNet classifier and
# rsna_two_stage's stage 2 with an SE-ResNet crop encoder. Everything lands under $OUT; the table is printed last.
#
# The device image has torch, triton and timm but not the kit's other dependencies, and nothing can be fetched there.
# Before the call, on this machine:  pip download --no-deps -d .whl segmentation-models-pytorch monai nibabel \
#   pydicom iterative-stratification imagehash grad-cam kagglesdk ttach
# then:  run(command="bash kernels/gpu-check.sh", carry=[".whl"], timeout_s=560)
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl > "$OUT/install.log" 2>&1
export PYTHONPATH=/tmp/site:$PWD KIT_HOME=/tmp/home PYTHONUNBUFFERED=1
mkdir -p /tmp/home
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } > "$OUT/versions.txt" 2>&1
step() {  # step NAME SECONDS command...: a step that cannot finish in its time is cut, not the whole call
    local name=$1 limit=$2; shift 2
    echo "== $name ($(date +%T))" >> "$OUT/steps.log"
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    echo "   rc=$? after ${SECONDS}s" >> "$OUT/steps.log"
}
(cd /tmp/home && python3 -m kit.cli synth mars > "$OUT/synth-mars.log" 2>&1 && python3 -m kit.cli synth rsna > "$OUT/synth-rsna.log" 2>&1) &
synth=$!
step check-cuda 90 python3 -m kernels.check_cuda
step bench-kernels 150 python3 -m benchmarks.bench_kernels --out "$OUT/bench-kernels"
cp kernels/dispatch.json "$OUT/dispatch.json"
wait $synth
cd /tmp/home || exit
step matrix-mars 80 python3 -m benchmarks.bench_train --exp mars_dual_unet --matrix --batches 20
step matrix-seresnet 80 python3 -m benchmarks.bench_train --exp imagefolder_resnet18 --matrix --batches 20 \
    model.encoder=seresnet50 data.size=128 trainer.batch_size=64
step matrix-rsna-stage2 80 python3 -m benchmarks.bench_train --exp rsna_two_stage --matrix --batches 20 \
    model.encoder=seresnet18
cp runs/bench-train/matrix.* "$OUT/" 2>/dev/null
cat "$OUT/versions.txt" "$OUT/steps.log"
tail -n 25 "$OUT"/matrix-*.log
