"""Software models: built-in (``mlp``, ``cnn``) or from a factory, trained or loaded from a state dict.

Loading never runs code from a data file: weights are read with ``torch.load(weights_only=True)``
(tensors and plain containers only) into the network a *factory* builds (a Python function in a
module you have, ``model.factory: "pkg.module:function"``). A pickled whole module is refused with
the recipe to save a state dict. Building and training a model never touches the global torch
RNG (it runs under ``torch.random.fork_rng`` seeded with ``model.seed``), so fetching a model
cannot change any other random stream. Models are cached per process by their config, the
factory's source and the weights file's content.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import pickle
import sys
import zipfile
from pathlib import Path

import torch
from torch import nn

from .datasets import Dataset

__all__ = [
    "ModelError",
    "build_model",
    "train_model",
    "get_trained_model",
    "clear_model_cache",
    "load_factory",
    "load_state_dict",
    "model_sha",
]

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

    ``num_threads``: torch intra-op threads while training, a per-call budget restored afterwards
    (``None`` leaves the setting alone). The zoo's small models run many tiny kernels per step, where thread
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


class ModelError(ValueError):
    """A model that cannot be built or loaded; the message names the ``model.*`` key and the fix."""


_SAVE_RECIPE = (
    "save the weights as a state dict, torch.save(model.state_dict(), 'w.pt'), and give "
    "model: {factory: 'pkg.module:function', weights: w.pt} (a function that builds the network)"
)


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def load_factory(spec: str):
    """The callable named by ``"pkg.module:function"`` or ``"/path/file.py:function"``.

    Standard-library modules and builtins are refused: a factory is a function of your own (or of a
    model library) that returns an ``nn.Module``.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ModelError(f"model.factory: got {spec!r}; must be 'pkg.module:function' or 'file.py:function'")
    mod_name, fn_name = spec.rsplit(":", 1)
    if mod_name.endswith(".py"):
        path = Path(mod_name).expanduser()
        if not path.is_file():
            raise ModelError(f"model.factory: {path} does not exist (relative paths are resolved against the YAML file)")
        name = "xbarsim_factory_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        module = sys.modules.get(name)
        if module is None:
            mspec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(mspec)
            sys.path.insert(0, str(path.parent))  # the factory's own imports resolve next to it
            try:
                mspec.loader.exec_module(module)
            except Exception as exc:  # noqa: BLE001 - any error in user code, reported with its key
                raise ModelError(f"model.factory: importing {path} failed: {type(exc).__name__}: {exc}") from exc
            finally:
                sys.path.remove(str(path.parent))
            sys.modules[name] = module
    else:
        top = mod_name.split(".")[0]
        if top in getattr(sys, "stdlib_module_names", ()) or top == "builtins":
            raise ModelError(f"model.factory: got {spec!r}; {top!r} is a standard-library module, not a model factory")
        try:
            module = importlib.import_module(mod_name)
        except ImportError as exc:
            raise ModelError(
                f"model.factory: cannot import {mod_name!r} ({exc}); put {mod_name.replace('.', '/')}.py next to the "
                "YAML file, give 'file.py:function', or install the package"
            ) from None
    fn = getattr(module, fn_name, None)
    if fn is None or not callable(fn):
        raise ModelError(f"model.factory: {mod_name!r} has no function {fn_name!r}")
    if not hasattr(fn, "__code__") and not isinstance(fn, type):
        raise ModelError(f"model.factory: {spec!r} is a builtin, not a function that builds a model")
    return fn


def load_state_dict(path: str | Path) -> dict:
    """A state dict from ``path`` read with ``weights_only=True`` (never unpickles code)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"model.weights: {path} does not exist (relative paths are resolved against the YAML file)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "unsupported object"
        raise ModelError(f"model.weights: {path} is not a state dict (a pickled object: {first}); {_SAVE_RECIPE}") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, AttributeError) as exc:
        raise ModelError(f"model.weights: {path} cannot be read as a torch file ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); is it truncated? {_SAVE_RECIPE}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # a checkpoint {"state_dict": ..., ...}
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise ModelError(f"model.weights: {path} holds a {type(obj).__name__}, not a state dict of tensors; {_SAVE_RECIPE}")
    return obj


def model_sha(model: nn.Module) -> str:
    """A content hash of a model's state dict (names, shapes, dtypes and values)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def _new_model(model_cfg: dict, data: Dataset) -> nn.Module:
    if model_cfg.get("factory"):
        fn = load_factory(model_cfg["factory"])
        try:
            model = fn(**(model_cfg.get("kwargs") or {}))
        except Exception as exc:  # noqa: BLE001 - user code
            raise ModelError(f"model.factory: {model_cfg['factory']}(**model.kwargs) failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(model, nn.Module):
            raise ModelError(f"model.factory: {model_cfg['factory']} returned a {type(model).__name__}, not a torch nn.Module")
        return model
    return build_model(
        model_cfg["arch"],
        data.image_shape,
        data.n_classes,
        model_cfg["hidden"],
        model_cfg["bias"],
        channels=model_cfg.get("channels"),
        batchnorm=model_cfg.get("batchnorm", False),
        kernel_size=model_cfg.get("kernel_size"),
    )


def get_trained_model(model_cfg: dict, data: Dataset, data_key: str) -> nn.Module:
    """The model of ``model_cfg``: built (``arch`` or ``factory``), then loaded from ``weights`` or trained on
    ``data``; cached. The global torch RNG is left exactly as it was."""
    if model_cfg.get("path"):
        raise ModelError(f"model.path: loading a pickled whole model is refused (unpickling runs code); {_SAVE_RECIPE}")
    ident = dict(model_cfg)
    if model_cfg.get("weights"):
        ident["weights_sha"] = _file_sha(Path(model_cfg["weights"])) if Path(model_cfg["weights"]).is_file() else None
    fac = model_cfg.get("factory")
    if fac and fac.rsplit(":", 1)[0].endswith(".py") and Path(fac.rsplit(":", 1)[0]).is_file():
        ident["factory_sha"] = _file_sha(Path(fac.rsplit(":", 1)[0]))
    key = json.dumps({"model": ident, "data": data_key}, sort_keys=True, default=str)
    if key in _CACHE:
        return _CACHE[key]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(model_cfg["seed"])
        model = _new_model(model_cfg, data)
        if model_cfg.get("weights"):
            sd = load_state_dict(model_cfg["weights"])
            try:
                model.load_state_dict(sd, strict=True)
            except (RuntimeError, KeyError, ValueError) as exc:
                raise ModelError(f"model.weights: {model_cfg['weights']} does not fit the model built by "
                                 f"{model_cfg.get('factory') or model_cfg['arch']}: {str(exc).splitlines()[0][:300]}") from None
            model.eval()
        else:
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
