"""Software models: built from config and trained (or loaded), cached per process."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .datasets import Dataset

__all__ = ["build_model", "train_model", "get_trained_model", "clear_model_cache"]

_CACHE: dict[str, nn.Module] = {}


def build_model(
    arch: str,
    in_shape: tuple[int, int, int],
    n_classes: int,
    hidden: list[int],
    bias: bool = True,
    channels: list[int] | None = None,
    batchnorm: bool = False,
    kernel_size: int | None = None,
) -> nn.Module:
    """A software model for images of shape ``in_shape = (C, H, W)``.

    * ``mlp``: Flatten → [Linear → ReLU]* → Linear.
    * ``cnn``: a LeNet-like network (LeCun et al., Proc. IEEE 86(11), 1998, with ReLU and average
      pooling as used for SNN conversion, Sengupta et al. 2019): for each entry of ``channels``
      (default ``[6, 16]``) Conv2d(k, padding k//2) → [BatchNorm2d] → ReLU → AvgPool2d(2) (the pool
      is skipped once the map is smaller than 2×2), then Flatten → [Linear → [BatchNorm1d] → ReLU]*
      (``hidden``) → Linear. ``k`` defaults to 3 for images under 16 px (8×8 digits: 8→4→2) and 5
      otherwise (28×28 MNIST: 28→14→7). BatchNorm layers are folded into the preceding weights
      when the model is mapped onto crossbars.
    """
    if arch == "mlp":
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_shape[0] * in_shape[1] * in_shape[2]
        for h in hidden:
            layers += [nn.Linear(width, h, bias=bias), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_classes, bias=bias))
        return nn.Sequential(*layers)
    if arch == "cnn":
        channels = [6, 16] if channels is None else list(channels)
        c, h, w = in_shape
        k = kernel_size if kernel_size is not None else (3 if min(h, w) < 16 else 5)
        layers = []
        for c_out in channels:
            layers.append(nn.Conv2d(c, c_out, k, padding=k // 2, bias=bias))
            h, w = h + 2 * (k // 2) - k + 1, w + 2 * (k // 2) - k + 1
            if h < 1 or w < 1:
                raise ValueError(f"model.kernel_size: {k} is too large for {in_shape[1]}×{in_shape[2]} images")
            if batchnorm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU())
            if h >= 2 and w >= 2:
                layers.append(nn.AvgPool2d(2))
                h, w = h // 2, w // 2
            c = c_out
        layers.append(nn.Flatten())
        width = c * h * w
        for n in hidden:
            layers.append(nn.Linear(width, n, bias=bias))
            if batchnorm:
                layers.append(nn.BatchNorm1d(n))
            layers.append(nn.ReLU())
            width = n
        layers.append(nn.Linear(width, n_classes, bias=bias))
        return nn.Sequential(*layers)
    raise ValueError(f"model.arch: got {arch!r}; allowed: mlp, cnn")


def train_model(
    model: nn.Module,
    data: Dataset,
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float = 0.0,
    seed: int = 0,
    num_threads: int | None = 1,
) -> nn.Module:
    """Adam on cross-entropy, CPU, deterministic under ``seed``.

    ``num_threads``: torch intra-op threads while training (restored afterwards; ``None`` leaves
    the setting alone). The zoo's small models run many tiny kernels per step, where thread
    start-up dominates: on 2 shared cores one thread trained the digits CNN 9× and an MNIST CNN
    5× faster than two (measured). A last batch of one sample is skipped for models with
    BatchNorm (batch statistics need two samples).
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    n = data.x_train.shape[0]
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    prev_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen)
            for start in range(0, n, batch_size):
                idx = perm[start : start + batch_size]
                if has_bn and idx.numel() < 2:
                    continue
                opt.zero_grad()
                loss_fn(model(data.x_train[idx]), data.y_train[idx]).backward()
                opt.step()
    finally:
        torch.set_num_threads(prev_threads)
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
        model = build_model(
            model_cfg["arch"],
            data.image_shape,
            data.n_classes,
            model_cfg["hidden"],
            model_cfg["bias"],
            channels=model_cfg.get("channels"),
            batchnorm=model_cfg.get("batchnorm", False),
            kernel_size=model_cfg.get("kernel_size"),
        )
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
