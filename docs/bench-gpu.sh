#!/usr/bin/env bash
# The end-to-end training matrix of issue 18 on a lent GPU (run from the repository root with the device tool;
# the kit's GPU-less dependencies travel as wheels in .whl/). Writes $OUT/train.log, bench.csv and bench.md.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
export PYTHONPATH=/tmp/site:$PWD KIT_HOME=/tmp/home PYTHONUNBUFFERED=1 OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m kit.cli synth rsna > "$OUT/synth.log" 2>&1 &
synth=$!
fused_rsna="model.decoder_se_reduction=8 loss.name=focal"
b() {  # b LABEL [env...] -- kit args
    [ "$SECONDS" -gt "${BUDGET:-440}" ] && { echo "skipped (time): $*" >> "$OUT/train.log"; return; }
    echo "== $*" >> "$OUT/train.log"
    env "$@" 2>&1 | grep -v -i "warn" | tail -5 >> "$OUT/train.log"
}
run() { b timeout 150 python3 -m benchmarks.bench_train --batches "${BATCHES:-10}" "$@"; }
for exp in "mars_dual_unet" "rsna_unet $fused_rsna"; do
    [ "$exp" != mars_dual_unet ] && wait $synth
    for setting in trainer.precision=fp32 trainer.precision=auto "trainer.precision=auto trainer.compile=true"; do
        run --exp $exp $setting
        KIT_DISABLE_TRITON=1 run --exp $exp $setting
    done
done
run --exp rsna_unet trainer.precision=auto
cp /tmp/home/runs/bench-train/bench.csv /tmp/home/runs/bench-train/bench.md "$OUT/" 2>/dev/null
cat "$OUT/bench.md" 2>/dev/null || cat "$OUT/train.log"
