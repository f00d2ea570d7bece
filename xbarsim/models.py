"""Software models: built from config and trained (or loaded), cached per process."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .datasets import Dataset

__all__ = ["build_model", "train_model", "get_trained_model", "clear_model_cache"]

_CACHE: dict[str, nn.Module] = {}


def build_model(arch: str, in_shape: tuple[int, int, int], n_classes: int, hidden: list[int], bias: bool = True) -> nn.Module:
    """``mlp``: Flatten → [Linear → ReLU]* → Linear."""
    if arch != "mlp":
        raise ValueError(f"model.arch: got {arch!r}; allowed: mlp")
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_shape[0] * in_shape[1] * in_shape[2]
    for h in hidden:
        layers += [nn.Linear(width, h, bias=bias), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_classes, bias=bias))
    return nn.Sequential(*layers)


def train_model(
    model: nn.Module,
    data: Dataset,
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> nn.Module:
    """Adam on cross-entropy, CPU, deterministic under ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    n = data.x_train.shape[0]
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            opt.zero_grad()
            loss_fn(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
    model.eval()
    return model


def get_trained_model(model_cfg: dict, data: Dataset, data_key: str) -> nn.Module:
    """The model described by ``model_cfg`` trained on ``data`` (or loaded from ``model_cfg['path']``), cached."""
    key = json.dumps({"model": model_cfg, "data": data_key}, sort_keys=True, default=str)
    if key in _CACHE:
        return _CACHE[key]
    if model_cfg.get("path"):
        path = Path(model_cfg["path"]).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"model.path: {path} does not exist")
        model = torch.load(path, weights_only=False, map_location="cpu")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model.path: {path} holds a {type(model).__name__}, not a pickled nn.Module")
        model.eval()
    else:
        torch.manual_seed(model_cfg["seed"])
        model = build_model(model_cfg["arch"], data.image_shape, data.n_classes, model_cfg["hidden"], model_cfg["bias"])
        train_model(
            model,
            data,
            model_cfg["epochs"],
            model_cfg["lr"],
            model_cfg["batch_size"],
            model_cfg["weight_decay"],
            model_cfg["seed"],
        )
    _CACHE[key] = model
    return model


def clear_model_cache() -> None:
    _CACHE.clear()
