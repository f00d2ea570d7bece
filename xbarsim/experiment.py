"""One experiment point: config → hardware, algorithm → fit → evaluate → rows of the results table.

This is the one place where a validated configuration turns into engine objects:
:func:`build_hardware` (device, crossbar spec, converters, per-layer overrides, the seeded
generator), :func:`prepare` (dataset and software model) and :func:`run_point` (the algorithm
from :data:`algorithms.registry.ALGORITHMS`, fitted once, evaluated at every ``eval.times_s``
and drift-compensation setting).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from functools import lru_cache

import torch
from torch import nn

from algorithms.base import Hardware, ledger_columns
from algorithms.registry import get_algorithm
from circuits import COMPONENTS, EnergyLedger

from .config import Config, ConfigError, check_torch_device, layer_sections
from .datasets import Dataset, DatasetError, load_dataset, shuffle_train
from .models import ModelError, get_trained_model, model_sha
from .resources import CELL_TENSORS, SOLVE_BYTES_PER_CELL, ResourceError, arrays_for_layer, check_budget, solve_seconds
from .schema import build_device, crossbar_objects

__all__ = [
    "build_device",
    "build_hardware",
    "build_algorithm",
    "build_network",
    "device_label",
    "prepare",
    "run_point",
    "weight_layers",
]

#: energy components always reported (so tables from different configs share columns)
ENERGY_COMPONENTS = COMPONENTS


def device_label(device_cfg: dict) -> str:
    return str(device_cfg.get("label") or device_cfg.get("preset") or device_cfg.get("model", "ideal"))


@lru_cache(maxsize=4)
def _dataset(name: str, path: str | None, test_fraction: float, split_seed: int) -> Dataset:
    return load_dataset(name, path, test_fraction, split_seed)


def _data_key(cfg: Config) -> str:
    return json.dumps({**cfg.dataset.model_dump(), "split_seed": cfg.model.seed}, sort_keys=True)


def prepare_data(cfg: Config) -> Dataset:
    """The dataset of ``cfg`` (cached), in ``dataset.shuffle_seed``'s order, cut to ``dataset.n_train`` training samples."""
    d = cfg.dataset
    data = _dataset(d.name, d.path, d.test_fraction, cfg.model.seed)
    if d.shuffle_seed is not None:
        data = shuffle_train(data, d.shuffle_seed)
    if d.n_train is not None:
        if d.n_train > data.x_train.shape[0]:
            raise ConfigError(f"dataset.n_train: got {d.n_train}; the {d.name} training set has {data.x_train.shape[0]} samples")
        data = Dataset(data.name, data.x_train[: d.n_train], data.y_train[: d.n_train], data.x_test, data.y_test, data.image_shape)
    return data


def prepare(cfg: Config, model: nn.Module | None = None) -> tuple[Dataset, nn.Module]:
    """Dataset and software model for ``cfg`` (both cached): ``model`` if given (an in-memory module), else
    the built-in architecture or the factory, loaded from ``model.weights`` or trained."""
    data = prepare_data(cfg)
    if model is None:
        model = get_trained_model(cfg.model.model_dump(), data, _data_key(cfg))
    elif not isinstance(model, nn.Module):
        raise TypeError(f"model=: got a {type(model).__name__}; pass a torch nn.Module")
    return data, model


def weight_layers(model: nn.Module) -> list[tuple[str, int, int]]:
    """``[(name, out, in)]`` of the model's crossbar layers, named as the ``ann`` algorithm names them
    (``conv1``, ``linear1``, … in network order; Conv2d ``in`` = C_in·k_h·k_w)."""
    from algorithms.ann import flatten_layers

    out, counts = [], {"conv": 0, "linear": 0}
    try:
        layers = flatten_layers(model)
    except Exception:  # noqa: BLE001 - the algorithm reports unsupported models itself
        layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for m in layers:
        if isinstance(m, nn.Conv2d):
            counts["conv"] += 1
            out.append((f"conv{counts['conv']}", m.out_channels, m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]))
        elif isinstance(m, nn.Linear):
            counts["linear"] += 1
            out.append((f"linear{counts['linear']}", m.out_features, m.in_features))
    return out


class _SeenDict(dict):
    """The overrides dict given to :class:`Hardware`: remembers which layer names the algorithm asked for."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.asked: list[str] = []

    def get(self, key, default=None):
        self.asked.append(key)
        return super().get(key, default)


def build_hardware(cfg: Config, generator: torch.Generator | None = None) -> Hardware:
    """The :class:`algorithms.base.Hardware` of ``cfg``: device, spec, converters, per-layer overrides
    (``layers:``), the generator seeded with ``cfg.seed`` on ``runtime.torch_device``."""
    if generator is None:
        tdev = check_torch_device(cfg.runtime.torch_device)
        generator = torch.Generator(device=tdev).manual_seed(cfg.seed)
    try:
        device = build_device(cfg.device)
        spec, dac, adc = crossbar_objects(cfg.crossbar, cfg.mapping)
        overrides = _SeenDict()
        for name in cfg.layers:
            dev_cfg, xb, mp = layer_sections(cfg, name)
            l_spec, l_dac, l_adc = crossbar_objects(xb, mp, prefix=f"layers.{name}.")
            over = {"spec": l_spec, "dac": l_dac, "adc": l_adc}
            if (cfg.layers[name] or {}).get("device") is not None:
                over["device"] = build_device(dev_cfg, key=f"layers.{name}.device")
            overrides[name] = over
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return Hardware(
        device=device,
        spec=spec,
        dac=dac,
        adc=adc,
        generator=generator,
        dtype=getattr(torch, cfg.runtime.dtype),
        drift_compensation=bool(cfg.eval.drift_compensation[0]),
        overrides=overrides,
        n_calibration=cfg.eval.n_calibration,
        batch_size=cfg.eval.batch_size,
    )


def build_algorithm(cfg: Config, hardware: Hardware, model: nn.Module | None):
    """``Cls(params, hardware, model)`` for ``cfg.algorithm`` (the registry's class, its ``Params``)."""
    cls = get_algorithm(cfg.algorithm.name)
    try:
        params = cls.make_params(**cfg.algorithm.engine_kwargs())
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc) if str(exc).startswith("algorithm") else f"algorithm: {exc}") from None
    return cls(params, hardware, model)


def build_network(cfg: Config, model: nn.Module, generator: torch.Generator | None = None):
    """The programmed (uncalibrated) :class:`algorithms.CrossbarNetwork` of ``cfg`` for ``model`` (ann)."""
    from algorithms.ann_algorithm import AnnAlgorithm

    hw = build_hardware(cfg, generator)
    alg = AnnAlgorithm(AnnAlgorithm.make_params(), hw, model)
    return alg.build()


def _check_layer_names(cfg: Config, names: list[str]) -> None:
    for name in cfg.layers:
        if name not in names:
            raise ConfigError(f"layers.{name}: no such layer; the model's crossbar layers are {', '.join(names) or '(none)'}")


def _check_resources(cfg: Config, hardware: Hardware, layers: list[tuple[str, int, int]]) -> None:
    """Memory and exact-solve time of every mapped layer, estimated before anything is allocated."""
    itemsize = torch.finfo(hardware.dtype).bits // 8
    items, solve_s = [], 0.0
    for name, n_out, n_in in layers:
        spec = hardware.for_layer(name)[1]
        n = arrays_for_layer(n_out, n_in, spec)
        key = f"layers.{name}.crossbar.rows / cols" if name in cfg.layers else "crossbar.rows / crossbar.cols"
        if n > 1 and (n_out > 1e5 or n_in > 1e5):
            key = "model (the layer sizes)" if cfg.model.factory or cfg.model.arch is None else "model.hidden"
        items.append((f"{name} ({n_out}×{n_in}): {n} arrays of {spec.rows}×{spec.cols}", n * spec.rows * spec.cols * CELL_TENSORS * itemsize, key))
        if spec.solver == "exact":
            items.append((f"{name}: exact-solve workspace", n * spec.rows * spec.cols * SOLVE_BYTES_PER_CELL, key))
            solve_s += n * solve_seconds(spec.rows, spec.cols)
    if isinstance(hardware.overrides, _SeenDict):
        hardware.overrides.asked.clear()
    limit = cfg.runtime.memory_limit_GB * 2**30 if cfg.runtime.memory_limit_GB else None
    try:
        check_budget(items, limit, solve_s)
    except ResourceError as exc:
        raise ConfigError(str(exc)) from None


_DATA_SHA: dict[tuple, str] = {}


def data_sha(data: Dataset, n_test: int) -> str:
    """A content hash of the training data and the ``n_test`` test samples a point used."""
    key = (id(data.x_train), id(data.x_test), data.x_train.shape[0], n_test)
    if key not in _DATA_SHA:
        h = hashlib.sha256()
        for t in (data.x_train, data.y_train, data.x_test[:n_test], data.y_test[:n_test]):
            t = t.detach().cpu().contiguous()
            h.update(f"{tuple(t.shape)}:{t.dtype}".encode())
            h.update(t.numpy().tobytes())
        _DATA_SHA[key] = h.hexdigest()[:16]
    return _DATA_SHA[key]


def run_point(cfg: Config, breakdown: bool = False, model: nn.Module | None = None) -> list[dict]:
    """Evaluate one configuration: one row per (evaluation time, drift-compensation setting, algorithm row).

    Build :class:`Hardware` → ``alg = Cls(params, hardware, model)`` → ``alg.fit(data, train_ledger)`` →
    ``alg.evaluate(x_test, y_test, t)`` for each ``eval.times_s`` (and each ``eval.drift_compensation``).
    ``model``: an in-memory ``nn.Module`` used instead of ``cfg.model``. With ``breakdown=True`` every
    row carries ``"_breakdown"``: the inference ledger's tidy records (layer × component: energy,
    events and latency per inference) for that evaluation.
    """
    t_start = time.perf_counter()
    try:
        data = prepare_data(cfg)
    except DatasetError as exc:  # a missing, corrupt or mis-split dataset: keyed (dataset.*)
        raise ConfigError(str(exc)) from None
    n_avail = data.x_test.shape[0]
    if cfg.eval.n_test is not None and cfg.eval.n_test > n_avail:  # checked before any training
        raise ConfigError(f"eval.n_test: got {cfg.eval.n_test}; the {cfg.dataset.name} test set has {n_avail} samples "
                          f"(use at most {n_avail}, or null for all)")
    cls = get_algorithm(cfg.algorithm.name)
    try:
        if model is None and getattr(cls, "needs_model", True):  # learning algorithms set needs_model = False
            model = get_trained_model(cfg.model.model_dump(), data, _data_key(cfg))
        elif model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"model=: got a {type(model).__name__}; pass a torch nn.Module")
    except ModelError as exc:
        raise ConfigError(str(exc)) from None
    n_test = cfg.eval.n_test or n_avail
    x_test, y_test = data.x_test[:n_test], data.y_test[:n_test]

    hardware = build_hardware(cfg)
    layers = weight_layers(model) if model is not None else []
    if cfg.algorithm.name == "ann":
        _check_layer_names(cfg, [n for n, _, _ in layers])
    _check_resources(cfg, hardware, layers)
    alg = build_algorithm(cfg, hardware, model)
    train_ledger = EnergyLedger()
    try:
        alg.fit(data, train_ledger)
    except ValueError as exc:  # bad data or settings found by the algorithm: a user error
        msg = str(exc)
        raise ConfigError(msg if re.match(r"^[\w.]+:", msg) else f"algorithm ({cfg.algorithm.name}): {msg}") from None
    asked = getattr(hardware.overrides, "asked", None)
    if asked is not None and cfg.algorithm.name != "ann":
        unknown = [n for n in cfg.layers if n not in asked]
        if unknown:
            raise ConfigError(f"layers.{unknown[0]}: no such layer in algorithm {cfg.algorithm.name!r}; its layers are "
                              f"{', '.join(dict.fromkeys(asked)) or '(none)'}")
    learned = bool(train_ledger.records())
    train_cols = ledger_columns(train_ledger, "energy_train") if learned else {}
    m_sha, d_sha = (model_sha(model) if model is not None else ""), data_sha(data, n_test)
    dcs = cfg.eval.drift_compensation
    rows = []
    for t_s in cfg.eval.times_s:
        for dc in dcs:
            if hasattr(alg, "set_drift_compensation"):
                alg.set_drift_compensation(dc)
            for r in alg.evaluate(x_test, y_test, t_s, cfg.eval.batch_size):
                r = dict(r)
                ledger = r.pop("_ledger", None)
                row = {
                    "name": cfg.name,
                    "seed": cfg.seed,
                    "device": device_label(cfg.device),
                    "algorithm": cfg.algorithm.name,
                    "t_s": float(r.pop("t_s", t_s)),
                    "drift_compensation": bool(dc),
                    **r,
                    **alg.columns(),
                    **train_cols,
                    "n_test": n_test,
                }
                if breakdown:
                    row["_breakdown"] = ledger.records() if ledger is not None else []
                rows.append(row)
    wall = time.perf_counter() - t_start
    for row in rows:
        row["wall_s"] = wall
        row["model_sha"] = m_sha
        row["data_sha"] = d_sha
    return rows
