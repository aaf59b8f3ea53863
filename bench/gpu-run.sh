#!/usr/bin/env bash
# The GPU benchmark in one call on a machine with a CUDA device and no network, from the repository
# root: Python packages it lacks come as wheels in .whl/, the tokenizer in .cache/bench-tok/
# (bench/gpu_speed.py says how to prepare both). Results and the whole log go to $OUT.
set -o pipefail
OUT=${OUT:-results}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
    | tee -a "$OUT/gpu.txt" || exit
python3 bench/gpu_speed.py --tokenizer .cache/bench-tok --out "$OUT" "$@" 2>&1 | tee "$OUT/log"
