"""Datasets: one container (`Dataset`) and one entry point (`load_dataset(spec)`)."""

from .base import Dataset, DatasetError, FactorSpec, images_from_array
from .registry import available_datasets, load_dataset, parse_spec

__all__ = [
    "Dataset",
    "DatasetError",
    "FactorSpec",
    "available_datasets",
    "images_from_array",
    "load_dataset",
    "parse_spec",
]
