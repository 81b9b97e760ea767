#!/usr/bin/env bash
# One short script for a lent GPU machine: the CUDA path of the training loop (bf16 autocast,
# channels_last), the GPU-marked tests, and the book-profile throughput of VGG-16 at 224 px.
# Usage (from the repo root, dependencies installed): bash benchmarks/gpu_check.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total --format=csv
"$PY" -m pytest -q -m gpu tests
"$PY" benchmarks/train_throughput.py --model vgg16-finetune --profile book --steps 20
