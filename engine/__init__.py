"""Latent Explorer's engine: data, models, training, evaluation. Pure torch/numpy; never imports Qt."""

__version__ = "0.1.0"
