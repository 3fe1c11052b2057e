#!/usr/bin/env bash
# One prepared run for a lent NVIDIA GPU machine (see ../shared/GPU.md), in value order:
#   1. train the release model (time-boxed), then with EXTRAS=1: 2. measure GPU inference throughput,
#   3. run the GPU-marked tests (both were done on 2026-11-28: BENCHMARKS.md).
# Results go to $OUT (8 files at most come back). The machine has torch (CUDA), onnx, onnxruntime,
# numpy, pillow, click, tqdm, pytest and no network, so the package runs from the checkout (PYTHONPATH);
# its Python with torch is `python3`.
#
# Before calling the device tool, copy the data into the git-ignored gpu-data/ folder and carry it:
#   mkdir -p gpu-data && cp ../shared/data/cifar10/cifar10-jpeg.tar.gz gpu-data/ && cp -r ../shared/data/cbsd68 gpu-data/
#   run(command="bash scripts/gpu_session.sh", carry=["gpu-data"], timeout_s=600)
# With 15 minutes of device time: a machine starts in about 35 s and loading the data takes about 20 s, so
# the default 9 training minutes end near 590 s; a second, shorter run (INIT=the first run's stripped
# best.pt, carried) fits in what is left if it is 4 minutes or more.
# A dry run here on the CPU (checks the script end to end in a minute or two):
#   PY=.venv/bin/python DEVICE=cpu TRAIN_MINUTES=0.5 EXTRAS=1 OUT=/tmp/gpu-dry bash scripts/gpu_session.sh
#
# Training: fine-tunes INIT (default: the bundled model) on CIFAR-10 + the CBSD68 training part (every
# 10th photo is held out: the unseen photos of the CBM3D comparison) with mixed noise and log-mse.
# Afterwards, here: strip_checkpoint(best.pt) -> denoise export --fp16 --verify-images samples/clean ->
# copy into denoise/weights/ -> re-run BENCHMARKS.md's evaluations.
set -uo pipefail
OUT=${OUT:-gpu-out}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
TRAIN_MINUTES=${TRAIN_MINUTES:-9}
LR=${LR:-3e-4}
INIT=${INIT:-denoise/weights/default.pt}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
{ nvidia-smi; "$PY" -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"; } > "$OUT/machine.txt" 2>&1
train_limit=$("$PY" -c "print(int(float('$TRAIN_MINUTES') * 60 + 90))")

timeout "$train_limit" "$PY" -m denoise train \
    --data gpu-data/cifar10-jpeg.tar.gz --data gpu-data/cbsd68 --model fast --init "$INIT" \
    --steps 1000000 --minutes "$TRAIN_MINUTES" --batch-size 128 --crop 96 --lr "$LR" --loss log-mse --protocol mixed \
    --val-every 2500 --val-images 50 --device "$DEVICE" --out "$OUT/run" > "$OUT/train.log" 2>&1
echo "train exit $?" >> "$OUT/train.log"
cp "$OUT/run/log.jsonl" "$OUT/train-log.jsonl" 2>/dev/null
# Only the best and last checkpoints come back (the run folder is removed: 8 files at most return).
mv "$OUT/run/best.pt" "$OUT/best.pt" 2>/dev/null
mv "$OUT/run/last.pt" "$OUT/last.pt" 2>/dev/null
rm -rf "$OUT/run"

if [ -z "${EXTRAS:-}" ]; then ls -la "$OUT"; exit 0; fi
timeout 60 "$PY" benchmarks/gpu_throughput.py --json "$OUT/throughput.json" > "$OUT/throughput.txt" 2>&1
echo "throughput exit $?" >> "$OUT/throughput.txt"
timeout 45 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py > "$OUT/pytest-gpu.txt" 2>&1
echo "pytest exit $?" >> "$OUT/pytest-gpu.txt"
ls -la "$OUT"
