#!/usr/bin/env bash
# The CPU demo: generate the demo tiles (once) and pretrain PerA ViT-Tiny on them.
# Writes work_dirs/pera_demo/epoch_*.pth (and the teacher backbone, extracted).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python}
CONFIG=configs/pera/pera_vit-tiny-p16_1xb32-20e_demo-96px.py
WORK_DIR=${WORK_DIR:-work_dirs/pera_demo}

"$PYTHON" tools/misc/make_demo_data.py data/pera_demo
"$PYTHON" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" "$@"
last=$(cat "$WORK_DIR/last_checkpoint")
"$PYTHON" tools/model_converters/extract_backbone.py "$last" "$WORK_DIR/teacher_backbone.pth"
echo "[demo] checkpoint: $last"
echo "[demo] teacher backbone: $WORK_DIR/teacher_backbone.pth"
