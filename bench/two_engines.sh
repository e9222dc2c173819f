#!/usr/bin/env bash
# Two plugin runs at once, as two pytest-xdist workers run two engine tests on this project's
# 2-core machine: builtin:tiny, the 150 bundled tasks, max_tokens 64, eager. Prints each run's
# wall time, engine start and generation, for vLLM's automatic OpenMP binding (every engine on
# the same core) and for one core per run (what testing/conftest.py gives each xdist worker).
#   bash bench/two_engines.sh [rounds]
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
ROUNDS=${1:-2}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

run() { # label, run index, environment assignments
  local label=$1 i=$2 envs=$3 dir=$WORK/$1-$2-$RANDOM
  mkdir -p "$dir"
  local t0; t0=$(date +%s.%N)
  (cd "$dir" && env VLLM_CPU_KVCACHE_SPACE=2 $envs "$PY" -m pytest -p no:cacheprovider -q \
    --out=out --cache-dir=cache --model=builtin:tiny --max-tokens=64 \
    --vllm-arg enforce_eager=true >log 2>&1)
  local wall; wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  local start gen
  start=$(grep -oP 'structeval: engine start \K[0-9.]+' "$dir/log" | head -1)
  gen=$(grep -oP 'structeval: generation 150 prompts \K[0-9.]+' "$dir/log" | head -1)
  echo "$label run $i: wall $wall s, engine start ${start:-?} s, generation ${gen:-?} s"
}

for round in $(seq "$ROUNDS"); do
  run automatic 1 "" & run automatic 2 "" & wait
  run own-core 1 VLLM_CPU_OMP_THREADS_BIND=0 & run own-core 2 VLLM_CPU_OMP_THREADS_BIND=1 & wait
done
