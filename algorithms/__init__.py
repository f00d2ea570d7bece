"""Algorithms: networks whose weight matrices live on crossbars (docs/algorithms.md)."""

from .ann import CrossbarNetwork, UnsupportedLayerError, accuracy, flatten_layers, fold_batchnorm

__all__ = ["CrossbarNetwork", "UnsupportedLayerError", "accuracy", "flatten_layers", "fold_batchnorm"]
