"""Latent Explorer's engine: data, models, training, evaluation. Pure torch/numpy; never imports Qt."""

import os

# cuBLAS reads CUBLAS_WORKSPACE_CONFIG once, when a process first uses it; `deterministic = true` needs it
# (use_deterministic_algorithms refuses cuBLAS matmuls otherwise), so it is set here, before any engine code runs
# a matmul, unless the user set it. (":4096:8": eight 4 MiB workspaces per stream, the CUDA docs' setting.)
DETERMINISTIC_CUBLAS_WORKSPACE = ":4096:8"
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", DETERMINISTIC_CUBLAS_WORKSPACE)

__version__ = "0.1.0"
