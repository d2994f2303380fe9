#!/usr/bin/env bash
# `make setup`'s last step: on a Linux machine with an NVIDIA GPU, make the venv's torch a CUDA build.
#
#   scripts/ensure_torch.sh PYTHON
#
# `pip install torch==2.13.0` counts a CPU build (2.13.0+cpu) as satisfying the pin, and pip prefers a local
# +cpu wheel it can find to the plain one, so a venv that once got the CPU build keeps it on a GPU machine. Here:
# with a GPU (`nvidia-smi -L` lists one) and a torch without CUDA, torch is uninstalled and 2.13.0 installed again
# from $TORCH_CUDA_INDEX (default PyPI, whose Linux x86-64 torch wheels are CUDA builds; e.g.
# https://download.pytorch.org/whl/cu128 for a given CUDA), with pip's local configuration (extra wheel folders)
# ignored. Without a GPU nothing is installed. Either way it prints the build installed and whether CUDA is usable.
set -u
PYTHON="${1:?usage: scripts/ensure_torch.sh PYTHON}"
VERSION=2.13.0
INDEX="${TORCH_CUDA_INDEX:-https://pypi.org/simple}"

installed=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('torch'))" 2>/dev/null || echo none)
gpu=""
if [ "$(uname -s)" = Linux ] && command -v nvidia-smi >/dev/null 2>&1; then
  gpu=$(nvidia-smi -L 2>/dev/null | head -1)
fi

if [ -n "$gpu" ]; then
  cuda_build=$("$PYTHON" -c "import torch; print(torch.version.cuda or '')" 2>/dev/null || true)
  if [ -z "$cuda_build" ] || [ "${installed#"$VERSION"}" = "$installed" ]; then
    echo "torch: $gpu found, but torch $installed is not a CUDA build of $VERSION: installing torch==$VERSION from $INDEX"
    [ "$installed" = none ] || "$PYTHON" -m pip uninstall -q -y torch || exit 1
    "$PYTHON" -m pip --isolated install -q "torch==$VERSION" --index-url "$INDEX" || exit 1
  fi
fi

GPU_FOUND="$gpu" "$PYTHON" -c "
import os, torch
build = f'CUDA {torch.version.cuda} build' if torch.version.cuda else 'CPU build'
usable = torch.cuda.is_available()
where = f' ({torch.cuda.get_device_name(0)})' if usable else ''
print(f'torch {torch.__version__}: {build}; CUDA usable: {\"yes\" if usable else \"no\"}{where}')
gpu = os.environ['GPU_FOUND']
if gpu and not usable:
    print(f'warning: {gpu} is present but this torch cannot use it (a driver older than the build? see nvidia-smi)')
"
