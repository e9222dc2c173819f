#!/usr/bin/env bash
# The GPU figures of issues 21 and 24, one stage per device call (each well under 10 minutes),
# on a machine prepared by ../shared/tools/gpu (vLLM 0.26.0 in /tmp/site, a random-weight model
# with Qwen3-4B-Instruct-2507's shape in /tmp/model, /tmp/gpu.env). Tasks and a real submission
# (for realistic answer lengths) are read from $DATA (default .gpu/data, carried to the machine).
#   bash bench/gpu_session.sh stage1   bare script vs plugin, the notebook's settings, twice; the
#                                      plugin's defaults at max_tokens 1024 (first compile)
#   bash bench/gpu_session.sh ratio    bare script and plugin, the notebook's settings, max_tokens
#                                      1024, three pairs in alternating order
#   bash bench/gpu_session.sh spy      one bare and one plugin run at 1024 under py-spy
#   bash bench/gpu_session.sh stage2   realistic answer lengths at max_tokens 4096: the notebook's
#                                      engine, the plugin's eager and default engines
#   bash bench/gpu_session.sh stage3   --serve with the notebook's settings; -n 2 in-process and
#                                      served (one engine or server); a device already taken
# Every result is one JSON line in $OUT/results.jsonl (or ./gpu-results.jsonl); logs beside it.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
[ -f /tmp/gpu.env ] && . /tmp/gpu.env
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/plugin${PYTHONPATH:+:$PYTHONPATH}"
DATA=${DATA:-.gpu/data}
MODEL=${MODEL:-/tmp/model}
TASKS=$DATA/public_150.json
ANSWERS=$DATA/scored_0.77064.json
RES=${OUT:-.}/results.jsonl
LOGS=${OUT:-.}
NOTEBOOK=(--vllm-arg enforce_eager=true --gpu-memory-utilization=0.8 --max-model-len=4096)

record() { # name, then a JSON object
  printf '{"run": "%s", "gpu": "%s", %s\n' "$1" \
    "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" "${2#\{}" | tee -a "$RES"
}

plugin_run() { # name, then pytest arguments: wall time, exit code, phase lines, meta counters
  local name=$1; shift
  local out; out=$(mktemp -d)
  local t0; t0=$(date +%s.%N)
  python3 -m pytest -p no:cacheprovider -q --model="$MODEL" --tasks="$TASKS" --out="$out" "$@" \
    >"$LOGS/$name.log" 2>&1
  local rc=$?
  local wall; wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  record "$name" "$(python3 - "$out" "$LOGS/$name.log" "$wall" "$rc" <<'PY'
import json, re, sys
out, log, wall, rc = sys.argv[1:5]
text = open(log, encoding="utf-8", errors="replace").read()
phases = {m[1]: float(m[2]) for m in re.finditer(r"^structeval: (.+?) (\d+\.\d) s$", text, re.M)}
try:
    report = json.load(open(f"{out}/report.json"))
    meta = report["meta"]
    extra = {k: meta.get(k) for k in ("engine_builds", "servers_started", "generated", "workers")}
    extra["overall"] = report["summary"]["overall"]
    extra["inference"] = f"{out}/inference.json"
except (OSError, KeyError, ValueError):
    extra = {"tail": text[-1500:]}
print(json.dumps({"wall": float(wall), "rc": int(rc), "phases": phases, **extra}))
PY
)"
}

taken_device() { # a device already taken: another process holds 60 GiB while -m smoke runs
  python3 -c "import torch, time; x = torch.empty(int(60 * 2**30), dtype=torch.uint8, device='cuda'); print('held', flush=True); time.sleep(900)" &
  local hog=$!
  sleep 15
  plugin_run taken_device_smoke -m smoke --max-tokens=64 --no-cache --vllm-arg enforce_eager=true
  kill "$hog" 2>/dev/null
  grep -E "^(E |ERROR|FAILED|structeval: )" "$LOGS/taken_device_smoke.log" | head -20
}

case "${1:-}" in
stage1)
  for round in 1 2; do
    record "bare_vs_plugin_$round" "$(python3 bench/bench_gpu.py --model "$MODEL" --tasks "$TASKS" \
      --max-tokens 1024)"
  done
  [ -n "${SKIP_DEFAULTS:-}" ] || plugin_run plugin_defaults_1024_first --max-tokens=1024 --no-cache
  ;;
ratio)
  # The whole-run ratio at max_tokens 1024 with the notebook's settings, three pairs in
  # alternating order (bare first, plugin first, bare first), so a drift of the machine over
  # the minutes shows as a difference between the pairs rather than as the plugin's cost.
  for order in "bare plugin" "plugin bare" "bare plugin"; do
    for only in $order; do
      record "ratio_$only" "$(python3 bench/bench_gpu.py --model "$MODEL" --tasks "$TASKS" \
        --max-tokens 1024 --only "$only")"
    done
  done
  ;;
spy)
  # Where the plugin's generation loses its seconds against the bare script's (same engine):
  # py-spy (every process, idle stacks included, 40 Hz) over one bare run and one plugin run
  # at max_tokens 1024; collapsed stacks in $OUT/spy_{bare,plugin}.txt (bench/spy_diff.py).
  python3 -m pip install -q --no-index --no-deps --target /tmp/pyspy .gpu/tools/py_spy-*.whl
  for only in bare plugin; do
    /tmp/pyspy/bin/py-spy record --subprocesses --idle --rate 40 --format raw \
      --output "$LOGS/spy_$only.txt" -- python3 bench/bench_gpu.py --model "$MODEL" \
      --tasks "$TASKS" --max-tokens 1024 --only "$only" >"$LOGS/spy_$only.json" 2>"$LOGS/spy_$only.err"
    record "spy_$only" "$(grep '^{' "$LOGS/spy_$only.json" | tail -1)"  # py-spy prints too
  done
  ;;
stage2)
  record realistic_4096 "$(python3 bench/bench_gpu.py --model "$MODEL" --tasks "$TASKS" \
    --max-tokens 4096 --answers "$ANSWERS")"
  ;;
probe)
  # Where the plugin's generation loses time against the bare script with the same engine.
  record probe_bare "$(python3 bench/bench_gpu.py --model "$MODEL" --tasks "$TASKS" \
    --max-tokens 1024 --only bare --variants notebook,notebook-thread 2>&1 | tail -1)"
  VLLM_WORKER_MULTIPROC_METHOD=spawn plugin_run probe_plugin_spawn --max-tokens=1024 --no-cache "${NOTEBOOK[@]}"
  plugin_run probe_plugin_fork --max-tokens=1024 --no-cache "${NOTEBOOK[@]}"
  ;;
stage3b)
  plugin_run served_notebook_1024 --max-tokens=1024 --no-cache --serve "${NOTEBOOK[@]}"
  taken_device
  ;;
stage3)
  plugin_run offline_notebook_1024 --max-tokens=1024 --no-cache "${NOTEBOOK[@]}"
  plugin_run served_notebook_1024 --max-tokens=1024 --no-cache --serve "${NOTEBOOK[@]}"
  plugin_run offline_n2_1024 --max-tokens=1024 --no-cache -n 2 "${NOTEBOOK[@]}"
  plugin_run served_n2_1024 --max-tokens=1024 --no-cache -n 2 --serve "${NOTEBOOK[@]}"
  (python3 - "$RES" <<'PY'
import json, sys
runs = {r["run"]: r for r in map(json.loads, open(sys.argv[1])) if "inference" in r}
base = json.load(open(runs["offline_notebook_1024"]["inference"]))
for name, run in runs.items():
    other = json.load(open(run["inference"]))
    same = sum(a["generation"] == b["generation"] for a, b in zip(base, other))
    print(json.dumps({"run": f"equal_to_offline:{name}", "same": same, "of": len(base)}))
PY
  ) | tee -a "$RES"
  taken_device
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv
  ;;
*)
  echo "usage: bash bench/gpu_session.sh stage1|ratio|spy|stage2|probe|stage3b|stage3" >&2
  exit 2
  ;;
esac
