#!/usr/bin/env bash
# One prepared script for a lent GPU machine (an H200): fits in 8 minutes, prints as it goes,
# writes its results under $OUT when set (else a temp folder). Phases, each time-boxed:
#   env         python, torch/CUDA and which of the pipeline's packages import; nvidia-smi
#   throughput  benchmarks/gpu_throughput.py at the book profile: images/s of a book-style fp32
#               loop vs the engine (bf16 autocast + channels_last), peak memory, checkpoint time
#   gpu-tests   pytest -q -m gpu tests
#   pipeline    zooflow run classification --model mobilenetv2-transfer --profile book in a
#               throwaway copy of the project: a GPU-trained version is registered and the
#               policy's GPU rule decides on it
#
# Usage, from the repo root:  bash benchmarks/gpu_check.sh
#   PY=python3              the interpreter (default: .venv/bin/python when it runs, else python3)
#   COMPILE=1               a last phase: torch.compile'd networks for three models (with the time left)
#   STEPS=20 ROUNDS=3       the throughput phase's steps per pass and measured rounds
#   PROFILE=book            the profile of the throughput and pipeline phases (smoke: a quick CPU try)
#   BUDGET=470              seconds for the whole script; each phase gets at most what is left
#   .whl/*.whl              wheels carried for packages the machine lacks are installed first
#                           (into /tmp/site, on PYTHONPATH); see benchmarks/README.md for which
# The GPU image lacks the project's data/ (git-ignored): carry data/classification,
# data/generation and data/anomaly (8 MB), or the throughput phase builds what it can
# (classification from scikit-image) and skips the rest with the reason.
# Every phase runs even when an earlier one failed; the exit status is 1 if any failed.
set -uo pipefail

REPO=$(pwd)
OUT=${OUT:-$(mktemp -d -t zooflow-gpu-check-XXXXXX)}
export OUT
BUDGET=${BUDGET:-470}
STEPS=${STEPS:-20}
ROUNDS=${ROUNDS:-3}
PROFILE=${PROFILE:-book}
SUMMARY="$OUT/summary.txt"
FAILED=0
: > "$SUMMARY"

START=$(date +%s)
stamp() { date -u +%H:%M:%S; }
say() { echo "+ $(stamp) [$(($(date +%s) - START))s] $*"; }  # seconds since the script began

# phase NAME LIMIT CMD...: run CMD under `timeout` (LIMIT seconds, or what is left of the
# budget, whichever is less), its output both on the terminal and in $OUT/NAME.log.
phase() {
  local name=$1 limit=$2; shift 2
  local left=$((BUDGET - SECONDS - 5))
  if [ "$left" -lt 20 ]; then
    say "phase $name SKIPPED: only ${left}s of the ${BUDGET}s budget left"
    echo "$name skipped (budget)" >> "$SUMMARY"; FAILED=1; return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "phase $name: start (limit ${limit}s): $*"
  local began=$SECONDS rc
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  rc=${PIPESTATUS[0]}
  local took=$((SECONDS - began)) verdict=ok
  [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && verdict="TIMED OUT"
  [ "$rc" -ne 0 ] && [ "$verdict" = ok ] && verdict="FAILED (rc $rc)"
  [ "$verdict" = ok ] || FAILED=1
  say "phase $name: $verdict after ${took}s"
  echo "$name: $verdict, ${took}s" >> "$SUMMARY"
}

# -- the interpreter and the packages -----------------------------------------------------
if [ -z "${PY:-}" ]; then
  if .venv/bin/python -c 'import torch' 2>/dev/null; then PY=.venv/bin/python; else PY=python3; fi
fi
case $PY in  # absolute, as the pipeline phase runs from another folder
  /*) ;;
  */*) PY="$REPO/$PY" ;;
  *) PY=$(command -v "$PY") ;;
esac
export PYTHONPATH="$REPO/src:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 ZOOFLOW_OFFLINE=1
if compgen -G ".whl/*.whl" > /dev/null; then
  say "installing the carried wheels (.whl/) into /tmp/site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi

environment() {
  echo "python: $PY ($("$PY" --version 2>&1)); repo: $REPO; out: $OUT"
  "$PY" - <<'EOF'
import importlib
for name in ["torch", "torchvision", "pydantic", "yaml", "zooflow.config", "transformers", "mlflow", "prefect",
             "dvc.repo", "great_expectations", "skimage", "pytest"]:
    try:
        module = importlib.import_module(name)
        print(f"  {name:20s} {getattr(module, '__version__', 'ok')}")
    except Exception as error:
        print(f"  {name:20s} MISSING ({type(error).__name__}: {error})")
import torch
print("cuda:", torch.cuda.is_available(), torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
EOF
  nvidia-smi || return 1
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
}

# -- a throwaway copy of the project, its classification data committed, one book run ------
pipeline() {
  local work proj
  work=$(mktemp -d -t zooflow-gpu-pipeline-XXXXXX)
  proj="$work/project"
  mkdir -p "$proj"
  # the working tree as it is (not a clone: uncommitted changes are what is being checked),
  # without what git ignores (data, stores, caches, the venv)
  if git -C "$REPO" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    (cd "$REPO" && git ls-files -co --exclude-standard -z | tar --null --ignore-failed-read -T - -cf -) | tar -C "$proj" -xf -
  else
    tar -C "$REPO" --exclude=./.git --exclude=./.venv --exclude=./data --exclude=./mlflow --exclude=./.zooflow \
        --exclude=./.dvc/cache --exclude=./.dvc/tmp --exclude=./.dvc/config.local --exclude=./.dvc-storage \
        --exclude=./.whl --exclude=./.pytest_cache --exclude='*/__pycache__' -cf - . | tar -C "$proj" -xf -
  fi
  cd "$proj" || return 1
  rm -f data.dvc  # a data version of its own, holding only what this check trains on
  git init -q && git add -A && git -c user.email=gpu@check -c user.name=gpu-check commit -qm "gpu check copy" || return 1
  export ZOOFLOW_HOME="$proj" PYTHONPATH="$proj/src:$proj:${PYTHONPATH}"
  say "data: data/classification (carried, else built from scikit-image), then dvc add + push"
  if [ -d "$REPO/data/classification" ]; then
    mkdir -p data && cp -r "$REPO/data/classification" data/
  else
    "$PY" -c "from zooflow.data.demo import BUILDERS; print(BUILDERS['classification']('data/classification'))" || return 1
  fi
  "$PY" -m zooflow data commit || return 1
  say "zooflow run classification --model mobilenetv2-transfer --profile $PROFILE"
  "$PY" -m zooflow run classification --model mobilenetv2-transfer --profile "$PROFILE" || return 1
  say "the registered version, its device tag and the policy's reasons"
  "$PY" -m zooflow models
  "$PY" - <<'EOF'
import torch
from zooflow.registry import tracking
client = tracking.connect()
for version in client.search_model_versions("name='classification-mobilenetv2-transfer'"):
    tags = version.tags
    print(f"v{version.version}: device={tags.get('device')} decision={tags.get('promotion.decision')}")
    print(f"  reasons: {tags.get('promotion.reasons')}")
    if torch.cuda.is_available():
        assert tags.get("device", "").startswith("cuda"), "CUDA is here but the run did not train on it"
    else:
        print("  (no CUDA here: the version was trained on the CPU, so a book profile's may not be champion)")
EOF
  local rc=$?
  # the copy goes once all is well; a failed step leaves it for a look inside
  [ "$rc" -eq 0 ] && cd "$REPO" && rm -rf "$work"
  return $rc
}

# `timeout` runs programs, not shell functions: the two functions run in a child bash
export PY REPO PROFILE START
export -f say stamp environment pipeline

say "gpu_check: results in $OUT, budget ${BUDGET}s"
phase env 60 bash -c environment
phase throughput 200 "$PY" benchmarks/gpu_throughput.py --profile "$PROFILE" --steps "$STEPS" --rounds "$ROUNDS"
phase gpu-tests 90 "$PY" -m pytest -q -m gpu tests -p no:cacheprovider
phase pipeline 200 bash -c pipeline
# torch.compile last, with what is left: compiling costs tens of seconds per model
if [ "${COMPILE:-0}" = 1 ]; then
  phase throughput-compile 150 "$PY" benchmarks/gpu_throughput.py --profile "$PROFILE" --steps "$STEPS" --rounds 2 \
    --models vgg16-finetune mobilenetv2-transfer dcgan --compile --json gpu_throughput_compile
fi
say "gpu_check done in ${SECONDS}s; summary:"
cat "$SUMMARY"
exit $FAILED
