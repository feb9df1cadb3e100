#!/usr/bin/env bash
# The three chorale priors at GPU scale (issue 18), ready for the first machine that has a GPU: the presets
# top-gpu, middle-gpu and bottom-gpu (config.py) trained side by side on one GPU for a fixed time budget.
#   1. a timed probe: 60 steps of each, side by side; the seconds a step takes come from its log.csv (steps
#      10 to 60, so start-up is not counted);
#   2. the runs: each gets the steps that fit --minutes at that pace (a full schedule, warm-up and decay, so a
#      run is reproducible from the steps it prints), then the recipe's test report (bits per token beside the
#      bigram and the shuffled-condition figures) in OUT/{top,middle,bottom}/;
#   3. --pack DIR: the three models with float16 weights (what a CPU then measures and may ship), cards, results
#      and logs as one tar cut into 15 MiB parts, DIR/music_gpu.tar.part-aa ... (cat them | tar -x).
# Needs the token sets (data_cache/tokens/chorales-<tokenizer weights>/, 24 MB; the first `arsound train
# music_prior` here writes them) and a python with torch and soundfile. Then, on any machine, the generator:
#   python recipes/music_prior/assemble.py OUT/top/model OUT/middle/model OUT/bottom/model -o runs/music_gpu_gen
#   python recipes/music_prior/choose_temperature.py --model runs/music_gpu_gen --temperatures --top-temperatures 1.2
# Usage, from anywhere: bash recipes/music_prior/gpu.sh [--out DIR] [--minutes M] [--pack DIR] [--device D]
#                                                       [--extra "--a.b=v ..."]   (extra overrides for every run)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
OUT=runs/music_gpu MINUTES=5.5 PACK="" DEVICE=cuda EXTRA=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --minutes) MINUTES="$2"; shift 2 ;;
    --pack) PACK="$2"; shift 2 ;;
    --device) DEVICE="$2"; shift 2 ;;
    --extra) EXTRA="$2"; shift 2 ;;
    *) echo "recipes/music_prior/gpu.sh: unknown argument '$1' (see the usage at the top of the script)" >&2; exit 2 ;;
  esac
done
"$PY" -c "import sys; float('$MINUTES') > 0 or sys.exit('recipes/music_prior/gpu.sh: --minutes must be > 0')" \
  2>/dev/null || { echo "recipes/music_prior/gpu.sh: --minutes must be a number > 0, got '$MINUTES'" >&2; exit 2; }
if [ "${DEVICE%%:*}" = cuda ]; then
  "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else
            "recipes/music_prior/gpu.sh: torch sees no CUDA device here; nothing to run (--device cpu for a smoke run)")'
  "$PY" -c 'import torch; print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)'
fi
[ -e "$OUT" ] && { echo "recipes/music_prior/gpu.sh: $OUT exists; give another --out (nothing was changed)" >&2; exit 2; }
LEVELS="top middle bottom"

train() {  # train PRESET FOLDER STEPS [overrides...]: one run, its output in FOLDER.log
  local preset=$1 dir=$2 steps=$3; shift 3
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=4 "$PY" -m arsound train music_prior --preset "$preset-gpu" --out "$dir" --device "$DEVICE" \
    --train.steps="$steps" --train.progress=false "$@" $EXTRA > "$dir.log" 2>&1
}

run_side_by_side() {  # run_side_by_side PHASE STEPS... : the three levels at once; one failure stops the script
  local phase=$1 pids=() i=0; shift
  for p in $LEVELS; do
    mkdir -p "$OUT/$phase"
    train "$p" "$OUT/$phase/$p" "${STEPS[$i]}" "$@" & pids+=($!)
    i=$((i + 1))
  done
  i=0
  for p in $LEVELS; do
    wait "${pids[$i]}" || { echo "recipes/music_prior/gpu.sh: the $phase run of $p failed; its output:" >&2
                            tail -n 20 "$OUT/$phase/$p.log" >&2; exit 1; }
    i=$((i + 1))
  done
}

start=$(date +%s)
STEPS=(60 60 60)
run_side_by_side probe --train.log_every=10 --train.eval_every=0 --train.ckpt_every=0 --eval.windows=4
mapfile -t STEPS < <("$PY" - "$OUT/probe" "$MINUTES" $LEVELS <<'EOF'
import csv, sys
folder, minutes, levels = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
for p in levels:
    rows = [r for r in csv.DictReader(open(f"{folder}/{p}/log.csv")) if r["split"] == "train"]
    first, last = rows[0], rows[-1]
    pace = (float(last["seconds"]) - float(first["seconds"])) / (int(last["step"]) - int(first["step"]))
    steps = max(100, int(minutes * 60 / pace))
    print(steps)
    print(f"{p}: {pace:.4f} s a step side by side -> {steps} steps in {minutes:g} min", file=sys.stderr)
EOF
)
echo "probe done in $(( $(date +%s) - start )) s; steps ${STEPS[*]} (top middle bottom)"
run_side_by_side run
"$PY" - "$OUT/run" $LEVELS <<'EOF'
import json, sys
for p in sys.argv[2:]:
    r = json.load(open(f"{sys.argv[1]}/{p}/results.json"))
    extra = f", {r['shuffled_upper_bits']:.3f} with another piece's upper codes" if "shuffled_upper_bits" in r else ""
    print(f"{p}: {r['params'] / 1e6:.1f} M parameters, {r['steps']} steps in {r['train_s'] / 60:.1f} min, test "
          f"{r['bits_per_token']:.3f} bits/token (bigram {r['bigram_bits']:.3f}{extra})")
EOF
echo "trained in $(( $(date +%s) - start )) s; models in $OUT/run/{top,middle,bottom}/model"

if [ -n "$PACK" ]; then
  mkdir -p "$PACK"
  stage=$(mktemp -d)
  for p in $LEVELS; do
    mkdir -p "$stage/$p"
    cp -r "$OUT/run/$p/model" "$OUT/run/$p/results.json" "$OUT/run/$p/log.csv" "$OUT/run/$p.log" "$stage/$p/"
  done
  "$PY" - "$stage" $LEVELS <<'EOF'
import sys
from safetensors.torch import load_file, save_file
for p in sys.argv[2:]:
    f = f"{sys.argv[1]}/{p}/model/model.safetensors"
    save_file({k: v.half() if v.is_floating_point() else v for k, v in load_file(f).items()}, f)
EOF
  tar -C "$stage" -cf - $LEVELS | split -b 15m - "$PACK/music_gpu.tar.part-"
  rm -rf "$stage"
  ls -l "$PACK"
fi
