#!/usr/bin/env bash
# The product on a CUDA machine: CI and every benchmark so far ran on CPU. Run from the repository
# root on a machine with one NVIDIA GPU, a CUDA torch, RecBole 1.2.1, pytest and pytest-xdist
# installed (the script puts the repository itself on PYTHONPATH); writes everything it finds
# under $OUT (default bench-work/cuda-check). How it ran on an H200: docs/benchmarks.md.
#   1. the test suite on the GPU (RECBOLE_UNLEARN_TEST_GPU=1: every test's config has
#      use_gpu=True), in parallel workers (tests/test_ray_cluster.py skips itself where Ray is
#      missing: Ray 2.6.3 has no wheel for Python 3.12; -k "not ray" deselected nothing else);
#   2. the README's default job on the GPU, a SISA model saved there, and that folder answering a
#      request file in a process that sees no GPU (a model moved between machines); SRUGA on
#      GRU4Rec (gradients through an eval-mode GRU) saved and answering a request on the GPU;
#   3. the converged grid's BERT4Rec Beauty settings (benchmarks/grids/converged-gru4rec-bert4rec.yaml)
#      on the GPU, original and Retrain only, audit off, to time an epoch against the CPU's.
# Each part has its own time limit (seconds, below) so that one slow part cannot eat the others'.
# Usage: bash benchmarks/cuda_check.sh [beauty data folder, holding beauty/beauty.inter]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-bench-work/cuda-check}
DATA=${1:-dataset}
TESTS_S=${TESTS_S:-210}
CLI_S=${CLI_S:-60}
BERT_S=${BERT_S:-100}
WORKERS=${WORKERS:-14}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
WORK=$(mktemp -d)

echo "== environment" | tee "$OUT/summary.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/summary.txt"
python3 -c "
import sys, torch, numpy, pandas, recbole
print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda,
      'numpy', numpy.__version__, 'pandas', pandas.__version__, 'recbole', recbole.__version__)
print('gpu', torch.cuda.get_device_name(0))" 2>&1 | tee -a "$OUT/summary.txt"
nproc | sed 's/^/cpu cores: /' | tee -a "$OUT/summary.txt"

echo "== 1. tests on the GPU ($WORKERS workers, limit ${TESTS_S}s)" | tee -a "$OUT/summary.txt"
start=$(date +%s)
RECBOLE_UNLEARN_TEST_GPU=1 OMP_NUM_THREADS=1 timeout "$TESTS_S" python3 -m pytest -v -n "$WORKERS" \
    -k "not ray" --tb=short -p no:cacheprovider tests > "$OUT/tests-gpu.log" 2>&1
echo "rc=$? seconds=$(( $(date +%s) - start ))" | tee -a "$OUT/summary.txt"
grep -E "(FAILED|ERROR) tests/|^(FAILED|ERROR)|[0-9]+ (passed|failed)" "$OUT/tests-gpu.log" | sort -u | tail -60 | tee -a "$OUT/summary.txt"

echo "== 2. command line on the GPU (each command limited to ${CLI_S}s)" | tee -a "$OUT/summary.txt"
printf '# forget everything user 196 did in training\n196\n' > "$WORK/requests.csv"
R="$PWD/run_recbole_unlearn.py"
run() {  # run a command inside $WORK with the time limit; print rc, seconds and its last lines
  local t0=$(date +%s%N)
  (cd "$WORK" && timeout "$CLI_S" "$@") > "$WORK/last.log" 2>&1
  local rc=$? ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "rc=$rc seconds=$((ms / 1000)).$(printf %03d $((ms % 1000))) :: ${*:2}"
  grep -vE "^\s*$" "$WORK/last.log" | tail -4 | cut -c1-240 | sed 's/^/    /'
}
{
  run python3 "$R" --use_gpu=True --results_dir="$WORK/r-default"
  grep -ho '"cuda": [^,]*' "$WORK"/r-default/*/results.json | head -1 | sed 's/^/    /'
  run python3 "$R" --model=SASRec --unlearn_method=sisa --n_shards=2 --use_gpu=True \
      --model_dir="$WORK/sisa_model" --results_dir="$WORK/r-sisa"
  run env CUDA_VISIBLE_DEVICES= python3 "$R" --model_dir="$WORK/sisa_model" --forget="$WORK/requests.csv"
  run env CUDA_VISIBLE_DEVICES= python3 "$R" --model_dir="$WORK/sisa_model" --verify=True --use_gpu=False
  # an approximate step differentiates an eval-mode GRU (cuDNN's RNN backward refuses that)
  run python3 "$R" --model=GRU4Rec --unlearn_method=sruga --use_gpu=True \
      --model_dir="$WORK/sruga_model" --results_dir="$WORK/r-sruga"
  run python3 "$R" --model_dir="$WORK/sruga_model" --forget="$WORK/requests.csv"
} 2>&1 | tee -a "$OUT/summary.txt"

echo "== 3. BERT4Rec Beauty, converged settings, on the GPU (limit ${BERT_S}s)" | tee -a "$OUT/summary.txt"
if [ "$BERT_S" = 0 ]; then
  echo "skipped (BERT_S=0)" | tee -a "$OUT/summary.txt"
elif [ -f "$DATA/beauty/beauty.inter" ]; then
  timeout "$BERT_S" python3 run_recbole_unlearn.py --model=BERT4Rec --dataset=beauty --data_path="$DATA" \
      --epochs=200 --stopping_step=5 --forget_protocol=thesis --forget_user_ratio=0.1 --audit=False \
      --unlearn_method=retrain --use_gpu=True --results_dir="$WORK/r-bert" > "$OUT/bert4rec-beauty.log" 2>&1
  echo "rc=$?" | tee -a "$OUT/summary.txt"
  grep -E "training \[time|evaluating \[time|training original|training retrain|stopped|Finished" \
      "$OUT/bert4rec-beauty.log" | head -12 | tee -a "$OUT/summary.txt"
  grep -cE "training \[time" "$OUT/bert4rec-beauty.log" | sed 's/^/epochs logged: /' | tee -a "$OUT/summary.txt"
else
  echo "no $DATA/beauty/beauty.inter: skipped" | tee -a "$OUT/summary.txt"
fi
rm -rf "$WORK"
