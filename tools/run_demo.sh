#!/usr/bin/env bash
# `make demo` / `make demo-realtime` / `make demo-mask` (after setup): generate DemoShapes, train a detector from scratch
# on the CPU, evaluate it with pycocotools, draw detections on val images and plot the loss curve.
# DEMO picks the detector:
#   retinanet      RetinaNet-EfficientViT-M0 (`make demo`; into work_dirs/demo_shapes, outputs/)
#   realtime       RTMDet-EfficientViT-M0 (`make demo-realtime`; work_dirs/demo_rtmdet, outputs/realtime/)
#   realtime-tiny  mmdet's RTMDet-tiny with the same recipe, the reference of docs/realtime.md
#                  (work_dirs/demo_rtmdet_tiny, outputs/realtime_tiny/)
#   mask           Mask R-CNN-EfficientViT-M0, boxes and masks (`make demo-mask`; work_dirs/demo_mask_rcnn,
#                  outputs/mask/)
#   configs/demo/X.py  any DemoShapes config (work_dirs/X, outputs/X/), e.g. configs/demo/ablations/*.py
# Environment overrides: DEMO, PY (python), WORK_DIR, OUT_DIR, NUM_TRAIN, NUM_VAL, THREADS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PY:-$ROOT/.venv/bin/python}"
KEYS="loss loss_cls loss_bbox lr"      # the losses of the training curve
case "${DEMO:-retinanet}" in
  retinanet)
    CONFIG=configs/demo/retinanet_evit_demo_shapes.py; WORK=work_dirs/demo_shapes; OUT=outputs
    TITLE="RetinaNet EfficientViT-M0" ;;
  realtime)
    CONFIG=configs/demo/rtmdet_evit_demo_shapes.py; WORK=work_dirs/demo_rtmdet; OUT=outputs/realtime
    TITLE="RTMDet EfficientViT-M0" ;;
  realtime-tiny)
    CONFIG=configs/demo/rtmdet_tiny_demo_shapes.py; WORK=work_dirs/demo_rtmdet_tiny
    OUT=outputs/realtime_tiny; TITLE="mmdet RTMDet-tiny" ;;
  mask)
    CONFIG=configs/demo/mask_rcnn_evit_demo_shapes.py; WORK=work_dirs/demo_mask_rcnn; OUT=outputs/mask
    TITLE="Mask R-CNN EfficientViT-M0"; KEYS="loss loss_cls loss_bbox loss_mask lr" ;;
  configs/demo/*.py)  # any DemoShapes config, e.g. the stride-bridge ablations of docs/realtime.md
    [ -f "$DEMO" ] || { echo "error: DEMO=$DEMO: no such config" >&2; exit 2; }
    CONFIG=$DEMO; NAME=$(basename "$DEMO" .py); WORK=work_dirs/$NAME; OUT=outputs/$NAME; TITLE=$NAME ;;
  *)
    echo "error: DEMO=$DEMO is not a demo: use DEMO=retinanet (make demo), realtime (make demo-realtime), realtime-tiny, mask (make demo-mask) or a configs/demo/*.py file" >&2
    exit 2 ;;
esac
DATA=data/demo_shapes                  # the configs' data_root (configs/demo/_base_/demo_shapes_cpu.py)
IMG_SIZE=256                           # their img_size
NUM_TRAIN="${NUM_TRAIN:-800}"
NUM_VAL="${NUM_VAL:-200}"
WORK_DIR="${WORK_DIR:-$WORK}"
OUT_DIR="${OUT_DIR:-$OUT}"
# One intra-op thread: on 2 shared cores, OpenMP threads that wait for each other cost far more
# (measured 4 s/iter with 2 threads vs 0.5 s/iter with 1 while other jobs ran); the data loader
# worker uses the other core.
export OMP_NUM_THREADS="${THREADS:-1}"

echo "==> [demo] DemoShapes data under $DATA ($NUM_TRAIN train / $NUM_VAL val, ${IMG_SIZE}px)"
"$PY" -c 'import sys; from mmdet_efficientvit.datasets.demo_shapes import main
main(sys.argv[1:])' \
  --root "$DATA" \
  --num-train "$NUM_TRAIN" --num-val "$NUM_VAL" --img-size "$IMG_SIZE" --seed 0

echo "==> [demo] training from scratch into $WORK_DIR (load: $(cut -d' ' -f1-3 /proc/loadavg))"
rm -rf "$WORK_DIR"  # a fresh run, so the checkpoint and logs below are this run's
start=$(date +%s)
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
CKPT="$(cat "$WORK_DIR/last_checkpoint")"
trained=$(date +%s)

echo "==> [demo] COCO evaluation of $CKPT on the val split"
"$PY" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR/test" | tee "$WORK_DIR/test.log"
done_at=$(date +%s)
echo "==> [demo] wall time: train $((trained - start)) s + evaluation $((done_at - trained)) s" \
     "= $((done_at - start)) s (load now: $(cut -d' ' -f1-3 /proc/loadavg))"

echo "==> [demo] detection pictures and training curve into $OUT_DIR/"
"$PY" tools/demo.py "$DATA/val" "$CONFIG" "$CKPT" --out-dir "$OUT_DIR/demo_detections" \
  --max-images 8
SCALARS="$(ls -t "$WORK_DIR"/*/vis_data/scalars.json | head -n 1)"
"$PY" tools/analysis_tools/plot_curve.py "$SCALARS" --keys $KEYS \
  --out "$OUT_DIR/demo_loss_curve.png" --title "$TITLE, DemoShapes (from scratch)"
echo "==> [demo] done: $OUT_DIR/demo_detections/*.png, $OUT_DIR/demo_loss_curve.png"
