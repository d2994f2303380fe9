#!/usr/bin/env bash
# The one script to run on a lent GPU: under 8 minutes on a fresh machine after `make setup`, installs nothing.
#   environment          torch, CUDA, GPU name
#   tests_cuda           `pytest -m cuda tests/engine` minus the compile matrix (bf16 on every family included)
#   tests_device_rules   tests/engine/test_device_rules.py --device cuda
#   compile_modes        five live β changes under torch.compile (no recompile), and a few of the compile-matrix tests
#                        (reduce-overhead and max-autotune on the VAE, reduce-overhead on FactorVAE)
#   throughput           bench/train_throughput.py (MNIST recipe 784-400-20, batch 128, one epoch of 60,000)
#   recipe               bench/recipe_speed.py (the dSprites reference recipe, conv, batch 64, 25 s)
#   channels_last        bench/channels_last_ab.py (that recipe channels_last vs contiguous, interleaved)
#   time_to_disentangle  bench/time_to_disentangle.py, short form: the shipped recipe for 45 s, no reference
# Each step has a time limit (they add up to 445 s; a step never runs past what is left of 480 s), prints one
# `RESULT step=NAME status=passed|failed seconds=S` line, and a failed step does not stop the rest; the summary
# repeats every RESULT line in step order and names the failed steps. Exit status 1 if a step failed.
#
#   bench/gpu_check.sh                  # on the GPU
#   bench/gpu_check.sh --device cpu     # dry run of the same steps on a CPU, sized down (the cuda tests skip);
#                                       # a CPU is far slower at them, so its limits (and budget) are 3× as long
# The whole compile matrix (every family × default / reduce-overhead / max-autotune, several minutes):
#   pytest -m cuda tests/engine/test_cuda.py -k compiled_training
# Logs go to $OUT (if set, e.g. by the device runner) or bench/gpu_check_logs/.
set -u
cd "$(dirname "$0")/.."

DEVICE=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --device=*) DEVICE="${1#--device=}"; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

PY="${PY:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
LOGS="${OUT:-bench/gpu_check_logs}"
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log
export QT_QPA_PLATFORM=offscreen PYTHONUNBUFFERED=1
DRY=0
[ "$DEVICE" = cpu ] && DRY=1
SCALE=$(( DRY ? 3 : 1 ))
BUDGET=$(( 480 * SCALE ))
FAILED=()
STEPS=()
STARTED=$SECONDS
PYTEST=("$PY" -m pytest -o addopts= -q -p no:cacheprovider)

step() {  # step NAME LIMIT_SECONDS COMMAND...
  local name="$1" limit=$(( $2 * SCALE )); shift 2
  STEPS+=("$name")
  local left=$(( BUDGET - (SECONDS - STARTED) - 5 ))
  if [ "$left" -lt "$limit" ]; then limit=$(( left > 5 ? left : 5 )); fi
  echo "== $name (limit ${limit}s, $(( SECONDS - STARTED ))s so far): $*"
  local began=$SECONDS
  timeout --kill-after=3 "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
  local status=${PIPESTATUS[0]}
  local took=$(( SECONDS - began ))
  if [ "$status" -eq 0 ]; then
    echo "RESULT step=$name status=passed seconds=$took" | tee -a "$LOGS/$name.log"
  else
    local why="exit $status"
    [ "$status" -eq 124 ] || [ "$status" -eq 137 ] && why="over its ${limit}s limit"
    FAILED+=("$name ($why)")
    echo "RESULT step=$name status=failed seconds=$took exit=$status" | tee -a "$LOGS/$name.log"
  fi
}

step environment 20 "$PY" -c "
import torch
cuda = torch.cuda.is_available()
name = torch.cuda.get_device_name(0) if cuda else 'none'
print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, GPU: {name}, {torch.get_num_threads()} CPU threads')
print(f'RESULT torch={torch.__version__} cuda_available={cuda} gpu=\"{name}\"')
if '$DEVICE'.startswith('cuda') and not cuda:
    raise SystemExit('no CUDA GPU here: run with --device cpu for the dry run')
"

COMPILE_TESTS=("tests/engine/test_compile_live.py::test_five_live_changes_compile_once[beta-vae-beta-cuda]")
for id in vae-reduce-overhead vae-max-autotune factor-vae-reduce-overhead; do
  COMPILE_TESTS+=("tests/engine/test_cuda.py::test_compiled_training_on_cuda[$id]")
done
step tests_cuda 90 "${PYTEST[@]}" -m cuda -k "not compiled_training and not compile_once" tests/engine
step tests_device_rules 60 "${PYTEST[@]}" tests/engine/test_device_rules.py --device "$DEVICE"
step compile_modes 60 "${PYTEST[@]}" -m cuda "${COMPILE_TESTS[@]}"
if [ $DRY = 1 ]; then
  step throughput 75 "$PY" bench/train_throughput.py --device cpu --quick --images 1000
  step recipe 40 "$PY" bench/recipe_speed.py --device cpu --seconds 5 --warmup 2 --dataset "dsprites?subset=2000"
  step channels_last 30 "$PY" bench/channels_last_ab.py --device cpu --rounds 1 --chunk 5 --warmup 2 \
    --dataset "dsprites?subset=2000"
  step time_to_disentangle 70 "$PY" bench/time_to_disentangle.py --device cpu --minutes 0.25 --no-reference \
    --rung position
else
  step throughput 75 "$PY" bench/train_throughput.py --device "$DEVICE" --quick --images 60000
  step recipe 40 "$PY" bench/recipe_speed.py --device "$DEVICE" --seconds 25 --warmup 20
  step channels_last 30 "$PY" bench/channels_last_ab.py --device "$DEVICE" --rounds 2 --chunk 200 --warmup 10
  step time_to_disentangle 70 "$PY" bench/time_to_disentangle.py --device "$DEVICE" --minutes 0.75 --no-reference \
    --score-every 15
fi

echo
echo "== summary ($(( SECONDS - STARTED )) s of the ${BUDGET} s budget, device $DEVICE)"
for name in "${STEPS[@]}"; do grep -h "^RESULT" "$LOGS/$name.log"; done
for name in tests_cuda tests_device_rules compile_modes; do
  [ -f "$LOGS/$name.log" ] && echo "$name: $(grep -E '[0-9]+ (passed|failed|skipped|deselected)' "$LOGS/$name.log" | tail -1)"
done
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "FAILED: ${FAILED[*]}"
  exit 1
fi
echo "all steps passed"
