#!/usr/bin/env bash
# One prepared run for a lent NVIDIA GPU machine (see ../shared/GPU.md), in value order:
#   1. train the release model (time-boxed), then with EXTRAS=1: 2. measure GPU inference throughput,
#   3. run the GPU-marked tests (both were done on 2026-11-28: BENCHMARKS.md); with PIPELINE=1 (issue 14):
#   4. the GPU tests (torch backend, TensorRT where it exists), benchmarks/gpu_pipeline.py (the torch
#   backend's pure inference FP32/FP16/graphs and `denoise batch --backend torch` end to end on 240
#   camera-size JPEGs made there, GPU busy %), and scripts/gpu_check.py where TensorRT is installed.
#   The pipeline part alone (about 4 minutes; no training):
#     run(command="VARIANTS= PIPELINE=1 bash scripts/gpu_session.sh", timeout_s=540)
#   After a training run of TRAIN_MINUTES=5, both fit one 10-minute call: VARIANTS=camera PIPELINE=1.
#   Its CPU dry run: PY=.venv/bin/python VARIANTS= PIPELINE=1 OUT=/tmp/gpu-dry \
#     PIPELINE_ARGS="--device cpu --backend cpu --files 4 --size 640x480 --repeats 2" bash scripts/gpu_session.sh
# Results go to $OUT (8 files at most come back). The machine has torch (CUDA), onnx, onnxruntime,
# numpy, pillow, click, tqdm, pytest and no network, so the package runs from the checkout (PYTHONPATH);
# its Python with torch is `python3`.
#
# Before calling the device tool, copy the data into the git-ignored gpu-data/ folder and carry it:
#   python scripts/gpu_data.py gpu-data     # CBSD432, CBSD68 (WebP), Sun-Hays 80 (halved), a CIFAR part: under 64 MiB
#   (the older variants below read gpu-data/cifar10-jpeg.tar.gz and gpu-data/cbsd68: copy those instead)
#   python scripts/debian_photos.py gpu-data/photos-debian    # only for the debian variants (needs apt-get)
#   run(command="TRAIN_MINUTES=8.5 bash scripts/gpu_session.sh", carry=["gpu-data"], timeout_s=600)
# With 15 minutes of device time: on 2026-11-28 an 8.5-minute run took 569 s (601 s of device time with
# the start), and a second run of 2.2 minutes (INIT=the first run's best NAME.pt, carried) took 185 s of
# the 298 s left; on 2026-11-29, 8.2 minutes took 570 s (605 s with the start), then 2.2 minutes 180 s.
# A machine does not start with under 4 minutes left. VARIANTS=even trains one model alone.
# A dry run here on the CPU (checks the script end to end in a minute or two):
#   PY=.venv/bin/python DEVICE=cpu TRAIN_MINUTES=0.5 EXTRAS=1 OUT=/tmp/gpu-dry bash scripts/gpu_session.sh
#
# Training: fine-tunes INIT (default: the bundled model) on CIFAR-10 + the CBSD68 training part (every
# 10th photo is held out: the unseen photos of the CBM3D comparison) with mixed noise and log-mse.
# Afterwards, here: for each returned NAME.pt (already stripped of the optimizer state):
#   denoise export NAME.pt --out DIR --fp16 --verify-images samples/clean, evaluate (CIFAR test, held-out
#   photos), copy the better one into denoise/weights/ and re-run BENCHMARKS.md's evaluations. seed-config.pt
#   (10.7 MB: not for the repository) only fills the seed column: denoise eval CIFAR --model seed-config.onnx.
set -uo pipefail
OUT=${OUT:-gpu-out}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
TRAIN_MINUTES=${TRAIN_MINUTES:-9}
LR=${LR:-3e-4}
INIT=${INIT:-denoise/weights/default.pt}
VARIANTS=${VARIANTS-camera camera-photos2 estimator}  # VARIANTS= (empty): no training
THREADS=${THREADS:-3}  # CPU threads per training process (16 cores on the H200 machine)
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
{ nvidia-smi; "$PY" -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"; } > "$OUT/machine.txt" 2>&1
train_limit=$("$PY" -c "print(int(float('$TRAIN_MINUTES') * 60 + 90))")

# Training variants run side by side on the one GPU, and the evaluations here pick the best. Measured on the
# H200: three processes each ran at 17-22 ms per step, as fast as one process alone (3-5 ms of it drawing
# batches), so a variant costs no device time; the limit is elsewhere (kernel launches, small convolutions:
# not profiled). Five side by side (2026-11-29: even-low photos2-low photos3-lowest photos2-low-crop128
# seed-config) is past that point: 27-45 ms per step, slowest for photos2-low-crop128 and seed-config.
# Results of each variant: BENCHMARKS.md, "How stages 5 to 8 were chosen".
#   even:    CIFAR and photo batches in turn (the recipe of the bundled model's GPU stages)
#   photos2: the photo folder listed twice, so two batches in three are photos (the photo gap is larger)
#   debian:  two batches in three are photos too, half of them from scripts/debian_photos.py's 23 photos
#   debian-low: as debian, with photo batches at sigma 0-0.3 (--folder-sigma-max): the photo comparison is at
#            sigma 15-50 of 255 (0.06-0.2), where uniform draws on 0-1 spend only 14% of the photo batches
#   even-low, photos2-low: even and photos2 with photo batches at sigma 0-0.3 and 0-0.25
#   photos3-lowest: CBSD68 three times (three batches in four are photos), photo sigma 0-0.2, LR 1e-4
#   photos2-low-crop128: photos2-low on 128-pixel photo crops (fewer of the crop's pixels lie within the
#            41-pixel receptive radius of its border)
#   camera:  the camera-noise release recipe (issue 13): CIFAR part + CBSD432 + Sun-Hays 80 + CBSD68 training
#            part, mixed protocol (half of the photo batches camera noise), photo sigma 0-0.2, LR 1e-4
#   camera-photos2: camera with the photo folders listed twice (photos in 6 batches of 7)
#   estimator: the noise-map estimator of --sigma auto, from scratch on the photos (mixed, white sigma 0-0.4)
#   seed-config: the seed notebook's configuration (exact: 128 channels, sigmoid, no noise-level input), from
#            scratch on CIFAR-10 with the seed's `clip` noise, one model for sigma 0.1-1.0: the seed column
#            of BENCHMARKS.md's CIFAR table (issue 3). Ran on 2026-11-29 (8.2 min, 10,106 steps at 49 ms
#            per step beside four other variants); its 10.7 MB checkpoint is not in the repository.
FINE_TUNE="--model fast --init $INIT --crop 96 --loss log-mse --protocol mixed --lr $LR"
CIFAR=gpu-data/cifar10-jpeg.tar.gz
PHOTOS=gpu-data/cbsd68
CAMERA_PHOTOS="--data gpu-data/cbsd432 --data gpu-data/sun80 --data gpu-data/cbsd68"
variant_options() {
    case "$1" in
        even) echo "$FINE_TUNE --data $CIFAR --data $PHOTOS" ;;
        photos2) echo "$FINE_TUNE --data $CIFAR --data $PHOTOS --data $PHOTOS" ;;
        debian) echo "$FINE_TUNE --data $CIFAR --data $PHOTOS --data gpu-data/photos-debian" ;;
        debian-low) echo "$(variant_options debian) --folder-sigma-max 0.3" ;;
        even-low) echo "$(variant_options even) --folder-sigma-max 0.3" ;;
        photos2-low) echo "$(variant_options photos2) --folder-sigma-max 0.25" ;;
        photos3-lowest) echo "$FINE_TUNE --data $CIFAR --data $PHOTOS --data $PHOTOS --data $PHOTOS --folder-sigma-max 0.2 --lr 1e-4" ;;
        photos2-low-crop128) echo "$(variant_options photos2-low) --crop 128" ;;
        camera) echo "$FINE_TUNE --data gpu-data/cifar10-part.tar.gz $CAMERA_PHOTOS --folder-sigma-max 0.2 --lr 1e-4" ;;
        camera-photos2) echo "$(variant_options camera) $CAMERA_PHOTOS" ;;
        estimator) echo "--model estimator $CAMERA_PHOTOS --crop 96 --protocol mixed --sigma-max 0.4 --lr 5e-4" ;;
        seed-config) echo "--model seed --data $CIFAR --crop 32 --loss mse --protocol clip --sigma-min 0.1 --lr 5e-4" ;;
        *) echo "unknown variant $1" >&2; return 1 ;;
    esac
}
for name in $VARIANTS; do
    options=$(variant_options "$name") || exit 1
    # shellcheck disable=SC2086  # $options is a list of options
    ( timeout "$train_limit" "$PY" -m denoise train $options --steps 1000000 --minutes "$TRAIN_MINUTES" --batch-size 128 \
        --val-every 2500 --val-images 50 --threads "$THREADS" --device "$DEVICE" --out "$OUT/$name" > "$OUT/$name.log" 2>&1
      echo "train exit $?" >> "$OUT/$name.log" ) &
done
wait
# What comes back (8 files at most): per variant its best checkpoint without the optimizer state, and all
# the logs in one logs.tar (so up to 6 variants, or 4 with EXTRAS=1).
for name in $VARIANTS; do
    "$PY" -c "from denoise.checkpoint import strip_checkpoint as s; s('$OUT/$name/best.pt', '$OUT/$name.pt')" >> "$OUT/$name.log" 2>&1
    cp "$OUT/$name/log.jsonl" "$OUT/$name.jsonl" 2>/dev/null
    rm -rf "${OUT:?}/$name"
done
if [ -n "$VARIANTS" ]; then
    (cd "$OUT" && tar cf logs.tar ./*.log ./*.jsonl machine.txt && rm -f ./*.log ./*.jsonl machine.txt)
fi

if [ -n "${PIPELINE:-}" ]; then
    timeout 120 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py > "$OUT/pytest-gpu.txt" 2>&1
    echo "pytest exit $?" >> "$OUT/pytest-gpu.txt"
    # shellcheck disable=SC2086  # PIPELINE_ARGS is a list of options (the CPU dry run's smaller sizes)
    timeout 360 "$PY" benchmarks/gpu_pipeline.py --json "$OUT/gpu-pipeline.json" ${PIPELINE_ARGS:-} > "$OUT/gpu-pipeline.txt" 2>&1
    echo "gpu_pipeline exit $?" >> "$OUT/gpu-pipeline.txt"
    if "$PY" -c "import tensorrt" 2>/dev/null; then
        timeout 300 "$PY" scripts/gpu_check.py > "$OUT/gpu-check.txt" 2>&1
        echo "gpu_check exit $?" >> "$OUT/gpu-check.txt"
    else
        echo "TensorRT is not installed here: scripts/gpu_check.py not run" > "$OUT/gpu-check.txt"
    fi
fi
if [ -z "${EXTRAS:-}" ]; then ls -la "$OUT"; exit 0; fi
timeout 60 "$PY" benchmarks/gpu_throughput.py --json "$OUT/throughput.json" > "$OUT/throughput.txt" 2>&1
echo "throughput exit $?" >> "$OUT/throughput.txt"
timeout 45 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py > "$OUT/pytest-gpu.txt" 2>&1
echo "pytest exit $?" >> "$OUT/pytest-gpu.txt"
ls -la "$OUT"
