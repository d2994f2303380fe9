#!/usr/bin/env bash
# The one script to run on a lent GPU (≤ 8 minutes; installs nothing beyond `make setup`):
#   1. what the machine is (torch, CUDA, GPU name)
#   2. the GPU tests: `pytest -m cuda` and the device-rule tests with `--device cuda`
#   3. bench/train_throughput.py --device cuda   (the MNIST recipe 784-400-20, batch 128, on 60,000 images)
#   4. bench/recipe_speed.py --device cuda       (the dSprites reference recipe, conv, batch 64, 60 s)
#   5. bench/channels_last_ab.py --device cuda   (that recipe channels_last vs contiguous, interleaved, ~30 s)
#   6. bench/time_to_disentangle.py --device cuda --minutes 3   (if that script exists)
# Each step runs under a time limit, prints its RESULT line(s), and the summary at the end repeats them all.
#
#   bench/gpu_check.sh                  # on the GPU
#   bench/gpu_check.sh --device cpu     # dry run of the same steps on a CPU, shortened (the cuda tests skip)
# Logs go to $OUT (if set, e.g. by the device runner) or bench/gpu_check_logs/.
set -u
cd "$(dirname "$0")/.."

DEVICE=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --device=*) DEVICE="${1#--device=}"; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

PY="${PY:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
LOGS="${OUT:-bench/gpu_check_logs}"
mkdir -p "$LOGS"
export QT_QPA_PLATFORM=offscreen PYTHONUNBUFFERED=1
DRY=0
[ "$DEVICE" = cpu ] && DRY=1
FAILED=()
STARTED=$SECONDS

step() {  # step NAME LIMIT_SECONDS COMMAND...
  local name="$1" limit="$2"; shift 2
  echo "== $name (limit ${limit}s, $(( SECONDS - STARTED ))s so far): $*"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
  local status=${PIPESTATUS[0]}
  if [ "$status" -ne 0 ]; then
    FAILED+=("$name (exit $status)")
    echo "RESULT step=$name status=failed exit=$status" | tee -a "$LOGS/$name.log"
  fi
}

step environment 60 "$PY" -c "
import torch
cuda = torch.cuda.is_available()
name = torch.cuda.get_device_name(0) if cuda else 'none'
print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, GPU: {name}, {torch.get_num_threads()} CPU threads')
print(f'RESULT torch={torch.__version__} cuda_available={cuda} gpu=\"{name}\"')
if '$DEVICE'.startswith('cuda') and not cuda:
    raise SystemExit('no CUDA GPU here: run with --device cpu for the dry run')
"

if [ $DRY = 1 ]; then
  step tests 300 "$PY" -m pytest -o addopts= -q -p no:cacheprovider tests/engine/test_device_rules.py --device cpu
  step tests_cuda_marked 60 "$PY" -m pytest -o addopts= -q -p no:cacheprovider -m cuda tests/engine/test_cuda.py tests/engine/test_term_puller.py tests/gui/test_panels_device.py
  step throughput 300 "$PY" bench/train_throughput.py --device cpu --quick --images 2000
  step recipe 120 "$PY" bench/recipe_speed.py --device cpu --seconds 10 --warmup 3 --dataset "dsprites?subset=5000"
  step channels_last 150 "$PY" bench/channels_last_ab.py --device cpu --quick --dataset "dsprites?subset=5000"
else
  step tests_cuda_marked 150 "$PY" -m pytest -o addopts= -q -p no:cacheprovider -m cuda tests/engine/test_cuda.py tests/engine/test_term_puller.py tests/gui/test_panels_device.py
  step tests 120 "$PY" -m pytest -o addopts= -q -p no:cacheprovider tests/engine/test_device_rules.py --device "$DEVICE"
  step throughput 150 "$PY" bench/train_throughput.py --device "$DEVICE" --quick --images 60000
  step recipe 90 "$PY" bench/recipe_speed.py --device "$DEVICE" --seconds 60
  step channels_last 60 "$PY" bench/channels_last_ab.py --device "$DEVICE" --rounds 4 --chunk 300
fi
if [ -f bench/time_to_disentangle.py ]; then
  if [ $DRY = 1 ]; then
    echo "== time_to_disentangle: exists; skipped in the CPU dry run (3 minutes of GPU training)"
  else
    step time_to_disentangle 200 "$PY" bench/time_to_disentangle.py --device "$DEVICE" --minutes 3
  fi
else
  echo "== time_to_disentangle: bench/time_to_disentangle.py does not exist here; skipped"
fi

echo
echo "== summary ($(( SECONDS - STARTED )) s, device $DEVICE)"
grep -h "^RESULT" "$LOGS"/*.log
for name in tests_cuda_marked tests; do
  [ -f "$LOGS/$name.log" ] && echo "$name: $(grep -E '[0-9]+ (passed|failed|skipped)' "$LOGS/$name.log" | tail -1)"
done
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "FAILED: ${FAILED[*]}"
  exit 1
fi
echo "all steps passed"
