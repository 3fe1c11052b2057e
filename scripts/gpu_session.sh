#!/usr/bin/env bash
# One prepared run for a lent NVIDIA GPU machine (see ../shared/GPU.md), in value order:
#   1. train the release model (time-boxed), 2. measure GPU inference throughput, 3. run GPU-marked tests.
# Results go to $OUT (8 files at most come back). The machine has torch (CUDA), onnx, onnxruntime,
# numpy, pillow, click, tqdm, pytest and no network, so the package runs from the checkout (PYTHONPATH).
#
# Before calling the device tool, copy the data into the git-ignored gpu-data/ folder and carry it:
#   mkdir -p gpu-data && cp ../shared/data/cifar10/cifar10-jpeg.tar.gz gpu-data/ && cp -r ../shared/data/cbsd68 gpu-data/
#   run(command="bash scripts/gpu_session.sh", carry=["gpu-data"], timeout_s=580)
set -uo pipefail
OUT=${OUT:-gpu-out}
TRAIN_MINUTES=${TRAIN_MINUTES:-6}
mkdir -p "$OUT"
export PYTHONPATH=$PWD
{ nvidia-smi; python -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"; } > "$OUT/machine.txt" 2>&1

timeout $(( TRAIN_MINUTES * 60 + 120 )) python -m denoise train \
    --data gpu-data/cifar10-jpeg.tar.gz --data gpu-data/cbsd68 --model fast \
    --steps 100000 --minutes "$TRAIN_MINUTES" --batch-size 128 --crop 64 --lr 1e-3 --loss log-mse \
    --val-every 1000 --val-images 100 --device cuda --out "$OUT/run" > "$OUT/train.log" 2>&1
echo "train exit $?" >> "$OUT/train.log"
cp "$OUT/run/log.jsonl" "$OUT/train-log.jsonl" 2>/dev/null
# Only the best checkpoint comes back (the run folder is removed: 8 files at most return).
mv "$OUT/run/best.pt" "$OUT/best.pt" 2>/dev/null
rm -rf "$OUT/run"

timeout 90 python benchmarks/gpu_throughput.py --json "$OUT/throughput.json" > "$OUT/throughput.txt" 2>&1
timeout 60 python -m pytest -q -m gpu > "$OUT/pytest-gpu.txt" 2>&1
ls -la "$OUT"
