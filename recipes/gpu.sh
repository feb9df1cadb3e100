#!/usr/bin/env bash
# Recipes at GPU scale, ready for the first machine that has a GPU: the given presets of one recipe trained side by
# side on one GPU for a fixed time budget, then packed for a CPU to measure.
#   1. a timed probe: 60 steps of each preset, side by side (plus --probe-extra); the seconds a step takes come from
#      its log.csv (steps 10 to 60, so start-up is not counted);
#   2. the runs: each gets the steps that fit --minutes at that pace (a full schedule, warm-up and decay, so a run
#      is reproduced from the steps it prints), then its recipe's own report, in OUT/run/PRESET/;
#   3. --pack DIR: each run's model (--half: float16 weights, what a CPU then measures and may ship), results and
#      logs as one tar cut into 15 MiB parts, DIR/gpu_runs.tar.part-aa ... (cat them | tar -x). A run whose report
#      failed is packed with the model its training exported, and the script exits 1 after packing.
# The presets and what to do with the results: recipes/music_prior/README.md and recipes/vocoder/README.md
# ("At GPU scale"). Needs the recipe's data (prepared or packed) and a python with torch, soundfile and soxr
# (the vocoder also librosa).
# Usage: bash recipes/gpu.sh RECIPE PRESET[,PRESET...] [--out DIR] [--minutes M] [--pack DIR] [--half]
#            [--device D] [--extra "--a.b=v ..."] [--probe-extra "--a.b=v ..."]
#   e.g. bash recipes/gpu.sh music_prior top-gpu,middle-gpu,bottom-gpu --minutes 5.5 --pack runs/pack --half \
#          --probe-extra --eval.windows=4
set -euo pipefail
cd "$(dirname "$0")/.."
ME=recipes/gpu.sh
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
[ $# -ge 2 ] && [ "${1#-}" = "$1" ] && [ "${2#-}" = "$2" ] || {
  echo "$ME: give a recipe and its presets first, e.g. music_prior top-gpu,middle-gpu,bottom-gpu" >&2; exit 2; }
RECIPE=$1 PRESETS=${2//,/ }; shift 2
OUT=runs/gpu_$RECIPE MINUTES=5.5 PACK="" HALF=0 DEVICE=cuda EXTRA="" PROBE_EXTRA=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --minutes) MINUTES="$2"; shift 2 ;;
    --pack) PACK="$2"; shift 2 ;;
    --half) HALF=1; shift ;;
    --device) DEVICE="$2"; shift 2 ;;
    --extra) EXTRA="$2"; shift 2 ;;
    --probe-extra) PROBE_EXTRA="$2"; shift 2 ;;
    *) echo "$ME: unknown argument '$1' (see the usage at the top of the script)" >&2; exit 2 ;;
  esac
done
"$PY" -c "import sys; float('$MINUTES') > 0 or sys.exit(1)" 2>/dev/null \
  || { echo "$ME: --minutes must be a number > 0, got '$MINUTES'" >&2; exit 2; }
"$PY" - "$RECIPE" $PRESETS <<'PYEOF' || exit 2
import sys
from arsound.cli.train import load_recipe
try:
    recipe = load_recipe(sys.argv[1])
except Exception as e:
    sys.exit(f"recipes/gpu.sh: {e}")
bad = [p for p in sys.argv[2:] if p not in recipe.presets]
if bad:
    sys.exit(f"recipes/gpu.sh: recipe '{recipe.name}' has no preset {', '.join(map(repr, bad))}; "
             f"choose from {sorted(recipe.presets)}")
PYEOF
if [ "${DEVICE%%:*}" = cuda ]; then
  "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else
            "recipes/gpu.sh: torch sees no CUDA device here; nothing to run (--device cpu for a smoke run)")'
  "$PY" -c 'import torch; print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)'
fi
[ -e "$OUT" ] && { echo "$ME: $OUT exists; give another --out (nothing was changed)" >&2; exit 2; }

side_by_side() {  # side_by_side PHASE [overrides...]: every preset at once, STEPS[i] steps; returns 1 if one failed
  local phase=$1 pids=() i=0 p failed=0; shift
  mkdir -p "$OUT/$phase"
  for p in $PRESETS; do
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=4 "$PY" -m arsound train "$RECIPE" --preset "$p" --out "$OUT/$phase/$p" --device "$DEVICE" \
      --train.steps="${STEPS[$i]}" --train.progress=false "$@" $EXTRA > "$OUT/$phase/$p.log" 2>&1 & pids+=($!)
    i=$((i + 1))
  done
  i=0
  for p in $PRESETS; do
    wait "${pids[$i]}" || { echo "$ME: the $phase run of $p failed; the end of $OUT/$phase/$p.log:" >&2
                            tail -n 20 "$OUT/$phase/$p.log" >&2; failed=1; }
    i=$((i + 1))
  done
  return $failed
}

start=$(date +%s)
read -r -a STEPS <<< "$(for p in $PRESETS; do printf '60 '; done)"
# shellcheck disable=SC2086
side_by_side probe --train.log_every=10 --train.eval_every=0 --train.ckpt_every=0 $PROBE_EXTRA || exit 1
mapfile -t STEPS < <("$PY" - "$OUT/probe" "$MINUTES" $PRESETS <<'PYEOF'
import csv, sys
folder, minutes, presets = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
for p in presets:
    rows = [r for r in csv.DictReader(open(f"{folder}/{p}/log.csv")) if r["split"] == "train"]
    first, last = rows[0], rows[-1]
    pace = (float(last["seconds"]) - float(first["seconds"])) / (int(last["step"]) - int(first["step"]))
    steps = max(100, int(minutes * 60 / pace))
    print(steps)
    print(f"{p}: {pace:.4f} s a step side by side -> {steps} steps in {minutes:g} min", file=sys.stderr)
PYEOF
)
echo "probe done in $(( $(date +%s) - start )) s; steps: ${STEPS[*]} ($PRESETS)"
status=0
side_by_side run || status=1
"$PY" - "$OUT/run" $PRESETS <<'PYEOF'
import json, sys
from pathlib import Path
for p in sys.argv[2:]:
    f = Path(sys.argv[1]) / p / "results.json"
    if not f.is_file():
        print(f"{p}: no results.json (its report did not finish)")
        continue
    r = json.loads(f.read_text())
    shown = {k: r[k] for k in ("params", "steps", "train_s", "bits_per_token", "bigram_bits", "shuffled_upper_bits",
                               "nll_bits_per_sample", "temperature", "postfilter") if k in r}
    shown.update({f"{k}_lsd_db": r[k]["lsd_db"] for k in ("model", "griffin_lim") if isinstance(r.get(k), dict)})
    print(f"{p}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()))
PYEOF
echo "trained in $(( $(date +%s) - start )) s; runs in $OUT/run/"

if [ -n "$PACK" ]; then
  mkdir -p "$PACK"
  stage=$(mktemp -d)
  for p in $PRESETS; do
    mkdir -p "$stage/$p"
    for f in model results.json log.csv resynthesis.jsonl; do
      [ -e "$OUT/run/$p/$f" ] && cp -r "$OUT/run/$p/$f" "$stage/$p/"
    done
    cp "$OUT/run/$p.log" "$stage/$p/train.log"
  done
  if [ "$HALF" = 1 ]; then
    "$PY" - "$stage" $PRESETS <<'PYEOF'
import sys
from pathlib import Path
from safetensors.torch import load_file, save_file
for p in sys.argv[2:]:
    f = Path(sys.argv[1]) / p / "model" / "model.safetensors"
    if f.is_file():
        save_file({k: v.half() if v.is_floating_point() else v for k, v in load_file(str(f)).items()}, str(f))
PYEOF
  fi
  tar -C "$stage" -cf - $PRESETS | split -b 15m - "$PACK/gpu_runs.tar.part-"
  rm -rf "$stage"
  ls -l "$PACK"
fi
exit $status
