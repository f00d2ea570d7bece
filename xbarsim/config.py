"""YAML ⇄ typed, validated experiment configuration.

Sections mirror the layers: ``device``, ``crossbar`` (size, wires, solver, dac, adc), ``mapping``,
``algorithm``, ``layers`` (per-layer overrides), ``model``, ``dataset``, ``eval``, ``runtime``,
``sweep`` and ``seed``. The hardware sections are generated from the engine's own parameter
objects (:mod:`xbarsim.schema`): ``crossbar:``/``mapping:`` from :class:`circuits.CrossbarSpec`,
:class:`circuits.DAC` and :class:`circuits.ADC`, ``algorithm:`` from the ``Params`` dataclass of
every algorithm in :data:`algorithms.registry.ALGORITHMS` (a union tagged by ``name``), and
``device:`` is checked against the device model's dataclass. Every error names the dotted key,
the bad value and what is allowed.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union

import torch
import yaml
from pydantic import BaseModel, BeforeValidator, Field, ValidationError, create_model

from algorithms.base import param
from algorithms.registry import ALGORITHMS

from .resources import ResourceError, arrays_for_layer, check_budget
from .schema import (
    CrossbarSection,
    EngineSection,
    MappingSection,
    Section,
    ValueChecker,
    algorithm_model,
    build_device,
    check_device_section,
    crossbar_objects,
    section_model,
)

__all__ = [
    "Config",
    "ConfigError",
    "config_model",
    "load_config",
    "validate_config",
    "set_dotted",
    "get_dotted",
    "QUICKSTART_PATH",
    "SEED_MAX",
    "LAYER_KEYS",
]

QUICKSTART_PATH = Path(__file__).with_name("quickstart.yaml")
#: seeds are in [0, 2^63): torch.Generator.manual_seed's range for a non-negative int64
SEED_MAX = 2**63
#: what a ``layers.<name>`` override may hold
LAYER_KEYS = ("device", "crossbar", "mapping", "dac", "adc")
#: input shape of the built-in datasets (C, H, W) and their number of classes
DATASET_SHAPES = {"digits": ((1, 8, 8), 10), "mnist": ((1, 28, 28), 10)}


class ConfigError(ValueError):
    """An invalid configuration; the message names the dotted key, the value and what is allowed."""


# ------------------------------------------------------------------------------------------------
# framework sections, written as parameter dataclasses like the engine's (one declaration per key)
@dataclass
class DatasetParams:
    name: str = param("digits", description="digits (scikit-learn, offline) or mnist (IDX files)", choices=("digits", "mnist"))
    path: str | None = param(None, description="directory of the MNIST IDX files (default: $XBARSIM_DATA)", nullable=True)
    test_fraction: float = param(0.3, description="digits: held-out fraction", gt=0, lt=1)
    n_train: int | None = param(None, description="use only the first n training samples", ge=1, nullable=True)
    shuffle_seed: int | None = param(None, description="training order: null keeps the file's order; an integer "
                                     "permutes the training samples with that seed (before n_train takes the first n)",
                                     ge=0, lt=SEED_MAX, nullable=True)


@dataclass
class ModelParams:
    arch: str = param("mlp", description="built-in model: mlp (Flatten→[Linear→ReLU]*→Linear) or cnn (LeNet-like)",
                      choices=("mlp", "cnn"))
    hidden: list[int] = param(default_factory=lambda: [64], description="widths of the hidden fully connected layers", ge=1)
    channels: list[int] = param(default_factory=lambda: [6, 16], description="cnn: output channels of the conv stages", ge=1)
    kernel_size: int | None = param(None, description="cnn: conv kernel (default: 3 below 16 px images, else 5)", ge=1,
                                    nullable=True)
    batchnorm: bool = param(False, description="cnn: BatchNorm after every conv/hidden layer (folded on crossbars)")
    bias: bool = param(True, description="layers with bias")
    epochs: int = param(40, description="training epochs (0: keep the initial or loaded weights)", ge=0)
    lr: float = param(1e-2, description="Adam learning rate", gt=0)
    batch_size: int = param(64, description="training batch size", ge=1)
    weight_decay: float = param(0.0, description="Adam weight decay", ge=0)
    seed: int = param(0, description="initialisation, shuffling and the digits split", ge=0, lt=SEED_MAX)
    factory: str | None = param(None, nullable=True, description="'pkg.module:function' or 'file.py:function' returning "
                                "an nn.Module (module looked up next to the YAML file first); replaces arch")
    kwargs: dict = param(default_factory=dict, description="keyword arguments of the factory")
    weights: str | None = param(None, nullable=True, description="state dict saved by torch.save(model.state_dict(), "
                                "file) and loaded with weights_only=True; the model is not trained")


@dataclass
class EvalParams:
    n_test: int | None = param(None, description="evaluate on the first n test samples (null: all)", ge=1, nullable=True)
    batch_size: int = param(512, description="evaluation batch size", ge=1)
    n_calibration: int = param(256, description="training samples used to calibrate DAC/ADC ranges", ge=1)
    times_s: list[float] = param(default_factory=lambda: [0.0], description="evaluation times after programming", unit="s",
                                 ge=0, min_items=1)
    drift_compensation: list[bool] = param(default_factory=lambda: [False], description="global drift compensation "
                                           "settings to evaluate", min_items=1, scalar_ok=True)


@dataclass
class RuntimeParams:
    torch_device: str = param("cpu", description="torch device of the simulation: cpu, cuda, cuda:N, mps")
    dtype: str = param("float32", description="simulation dtype", choices=("float32", "float64"))
    memory_limit_GB: float | None = param(None, description="refuse experiments estimated above this memory "
                                          "(null: 80 % of the memory available)", unit="GB", gt=0, nullable=True)


DatasetSection = section_model(DatasetParams, "DatasetSection", doc="dataset: what to train and test on.")
ModelSection = section_model(ModelParams, "ModelSection", doc="model: the software network (built-in, or a factory + weights).")
EvalSection = section_model(EvalParams, "EvalSection", doc="eval: test set, calibration and evaluation times.")
RuntimeSection = section_model(RuntimeParams, "RuntimeSection", doc="runtime: torch device, dtype, memory limit.")


def _checked(annotation, default=None, default_factory=None, **meta):
    kw = {"default_factory": default_factory} if default_factory is not None else {"default": default}
    return Annotated[Any, BeforeValidator(ValueChecker(annotation, meta))], Field(description=meta.get("description"), **kw)


class AlgorithmSection(EngineSection):
    """Placeholder of the ``algorithm:`` section; :func:`config_model` replaces it by the registry's union."""

    name: str = "ann"


class Config(Section):
    """A validated experiment. Build with :func:`validate_config`/:func:`load_config` (the ``algorithm``
    section is a union over the registered algorithms, see :func:`config_model`)."""

    name: Annotated[Any, BeforeValidator(ValueChecker(str))] = "experiment"
    seed: Annotated[Any, BeforeValidator(ValueChecker(int, {"ge": 0, "lt": SEED_MAX}))] = Field(
        0, description="seeds every random draw of the hardware (device noise, faults, ADC errors)")
    device: Annotated[Any, BeforeValidator(ValueChecker(dict))] = Field(default_factory=lambda: {"model": "ideal"})
    crossbar: CrossbarSection = Field(default_factory=CrossbarSection)
    mapping: MappingSection = Field(default_factory=MappingSection)
    algorithm: AlgorithmSection = Field(default_factory=AlgorithmSection)
    layers: Annotated[Any, BeforeValidator(ValueChecker(dict))] = Field(
        default_factory=dict, description="per-layer overrides: {linear1: {device: {...}, crossbar: {...}, mapping: {...}, "
        "dac: {...}, adc: {...}}}")
    model: ModelSection = Field(default_factory=ModelSection)
    dataset: DatasetSection = Field(default_factory=DatasetSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    runtime: RuntimeSection = Field(default_factory=RuntimeSection)
    sweep: Annotated[Any, BeforeValidator(ValueChecker(dict))] = Field(default_factory=dict)
    sweep_mode: Annotated[Any, BeforeValidator(ValueChecker(str, {"choices": ("grid", "zip")}))] = Field(
        "grid", description="grid: every combination; zip: i-th values together")


_MODELS: dict[tuple, type[Config]] = {}


def config_model() -> type[Config]:
    """The :class:`Config` subclass whose ``algorithm`` is the union of the registered algorithms."""
    key = tuple(sorted((n, id(c)) for n, c in ALGORITHMS.items()))
    if key not in _MODELS:
        members = [algorithm_model(cls) for _, cls in sorted(ALGORITHMS.items())]
        if not members:
            ann: Any = AlgorithmSection
        elif len(members) == 1:
            ann = members[0]
        else:
            ann = Annotated[Union[tuple(members)], Field(discriminator="name")]  # noqa: UP007
        default = "ann" if "ann" in ALGORITHMS else (sorted(ALGORITHMS)[0] if ALGORITHMS else "ann")
        by_name = {m.model_fields["name"].default: m for m in members}

        def factory(_d=default, _m=by_name):
            return _m[_d]() if _d in _m else AlgorithmSection()

        model = create_model("Config", __base__=Config, algorithm=(ann, Field(default_factory=factory)))
        model.__module__ = __name__
        model.__qualname__ = f"_Config_{len(_MODELS)}"  # a module attribute, so that instances pickle
        globals()[model.__qualname__] = model
        model.__algorithm_models__ = by_name
        _MODELS[key] = model
    return _MODELS[key]


# ------------------------------------------------------------------------------------------------
def _section_at(loc: tuple) -> Any:
    """The pydantic model of the section at ``loc`` (YAML keys, algorithm tag removed) or None."""
    model: Any = config_model()
    for i, part in enumerate(loc):
        if model is None:
            return None
        if part == "algorithm" and i == 0:
            model = getattr(config_model(), "__algorithm_models__", {})
            continue
        if isinstance(model, dict):
            model = model.get(part)
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        model = field.annotation if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel) else None
    return model


def _format_errors(err: ValidationError, prefix: str = "", algo: str | None = None) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"])
        if loc[:1] == ("algorithm",) and len(loc) > 1 and loc[1] in ALGORITHMS and len(ALGORITHMS) > 1:
            loc = loc[:1] + loc[2:]
        key = ".".join(loc)
        key = f"{prefix}{key}" if key else prefix.rstrip(".") or "<root>"
        if e["type"] == "extra_forbidden":
            model = _section_at(loc[:-1] if loc[:1] != ("algorithm",) else ("algorithm", algo or "ann"))
            allowed = ("allowed keys: " + ", ".join(model.model_fields)) if model is not None else "see the documented keys"
            lines.append(f"{key}: unknown key (value {e['input']!r}); {allowed}")
        elif e["type"] in ("model_type", "model_attributes_type", "dict_type"):
            lines.append(f"{key}: got {e['input']!r}; must be a mapping (a section of keys)")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{key}: got {e['input']!r}; {msg}")
    return "\n".join(lines)


_REFUSED = {
    ("model", "path"): "model.path: loading a pickled whole model is refused (unpickling runs code from the file); save "
    "a state dict instead, torch.save(model.state_dict(), 'w.pt'), and give model: {factory: 'pkg.module:function', "
    "weights: w.pt} (the factory builds the network, the weights are loaded with weights_only=True)",
}


def _pre_checks(data: dict) -> dict:
    for (section, key), msg in _REFUSED.items():
        sec = data.get(section)
        if isinstance(sec, dict) and key in sec:
            raise ConfigError(f"{msg} (got {sec[key]!r})")
    alg = data.get("algorithm")
    if isinstance(alg, dict):
        alg = dict(alg)
        if "name" not in alg:
            alg["name"] = "ann"
        if not isinstance(alg["name"], str) or alg["name"] not in ALGORITHMS:
            raise ConfigError(f"algorithm.name: got {alg['name']!r}; allowed: {', '.join(sorted(ALGORITHMS)) or '(none registered)'}")
        data = {**data, "algorithm": alg}
    return data


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def layer_sections(cfg: Config, name: str) -> tuple[dict, Any, Any]:
    """``(device dict, crossbar section, mapping section)`` of layer ``name``: the global sections with the
    ``layers.<name>`` override merged in (the device is replaced when the override names a model or preset)."""
    over = cfg.layers.get(name) or {}
    dev = over.get("device")
    if dev is None:
        device = cfg.device
    elif "model" in dev or "preset" in dev:
        device = dev
    else:
        device = _merge(cfg.device, dev)
    xb = cfg.crossbar.model_dump()
    xb = _merge(xb, over.get("crossbar") or {})
    for conv in ("dac", "adc"):
        if over.get(conv):
            xb[conv] = _merge(xb[conv], over[conv])
    mp = _merge(cfg.mapping.model_dump(), over.get("mapping") or {})
    return device, type(cfg.crossbar).model_validate(xb), type(cfg.mapping).model_validate(mp)


def _check_layers(cfg: Config) -> None:
    for name, over in cfg.layers.items():
        key = f"layers.{name}"
        if not isinstance(over, dict):
            raise ConfigError(f"{key}: got {over!r}; a layer override is a mapping with any of {', '.join(LAYER_KEYS)}")
        for k, v in over.items():
            if k not in LAYER_KEYS:
                raise ConfigError(f"{key}.{k}: unknown key; allowed: {', '.join(LAYER_KEYS)}")
            if not isinstance(v, dict):
                raise ConfigError(f"{key}.{k}: got {v!r}; must be a mapping of {k} keys")
        try:
            device, xb, mp = layer_sections(cfg, name)
        except ValidationError as err:
            msg = _format_errors(err)
            msg = re.sub(r"^(dac|adc)\.", rf"{key}.\1.", msg, flags=re.M)
            msg = re.sub(r"^(?!layers\.)(scheme|weight_bits|bits_per_cell)\b", rf"{key}.mapping.\1", msg, flags=re.M)
            msg = re.sub(r"^(?!layers\.)", f"{key}.crossbar.", msg, flags=re.M)
            raise ConfigError(msg) from None
        try:
            crossbar_objects(xb, mp, prefix=f"{key}.")
            if over.get("device") is not None:
                build_device(device, key=f"{key}.device")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def check_torch_device(name: str, key: str = "runtime.torch_device") -> torch.device:
    """The torch device ``name`` if this machine has it; ``ConfigError`` naming ``key`` otherwise."""
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"{key}: got {name!r}; not a torch device ({exc}); use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ConfigError(f"{key}: got {name!r}; CUDA is not available on this machine (torch {torch.__version__}); use cpu")
        if dev.index is not None and dev.index >= n:
            raise ConfigError(f"{key}: got {name!r}; this machine has {n} CUDA device(s): cuda:0…cuda:{n - 1}")
        return dev
    if dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"{key}: got {name!r}; MPS is not available on this machine; use cpu")
        return dev
    raise ConfigError(f"{key}: got {name!r}; allowed device types: cpu, cuda, mps")


def _is_binary(device) -> bool:
    flag = getattr(device, "binary", None)
    if flag is not None:
        return bool(flag)
    from device_models import SOTMTJ, STTMTJ

    return isinstance(device, (STTMTJ, SOTMTJ))


def _cross_checks(cfg: Config, device) -> None:
    cls = ALGORITHMS.get(cfg.algorithm.name)
    if cls is not None and getattr(cls, "supports_binary_devices", True) is False and _is_binary(device):
        raise ConfigError(
            f"device: got the binary device {type(device).__name__} ({cfg.device.get('preset') or cfg.device.get('model')}); "
            f"algorithm {cls.name!r} maps analog weights onto conductances, which a two-state cell cannot hold; use an "
            "analog device (ideal, rram, pcm, lookup) or an algorithm for binary synapses"
        )
    if cls is not None and any(cfg.eval.drift_compensation) and not hasattr(cls, "set_drift_compensation"):
        raise ConfigError(f"eval.drift_compensation: got {cfg.eval.drift_compensation!r}; algorithm {cls.name!r} has no "
                          "drift compensation; use [false]")
    n_test = _test_set_size(cfg)
    if cfg.eval.n_test is not None and n_test is not None and cfg.eval.n_test > n_test:
        raise ConfigError(f"eval.n_test: got {cfg.eval.n_test}; the {cfg.dataset.name} test set has {n_test} samples "
                          f"(use at most {n_test}, or null for all)")
    check_torch_device(cfg.runtime.torch_device)
    _check_sizes(cfg)


def _test_set_size(cfg: Config) -> int | None:
    """Test samples of the built-in datasets (digits: scikit-learn's split rounds the test part up)."""
    if cfg.dataset.name == "digits":
        return math.ceil(1797 * cfg.dataset.test_fraction)
    if cfg.dataset.name == "mnist":
        return 10000
    return None


def _model_param_estimate(cfg: Config) -> tuple[int, list[tuple[int, int]]]:
    """Parameters of the built-in model and the ``[out, in]`` of its weight layers (before building it)."""
    (c, h, w), n_cls = DATASET_SHAPES.get(cfg.dataset.name, ((1, 28, 28), 10))
    m = cfg.model
    layers: list[tuple[int, int]] = []
    if m.arch == "cnn":
        k = m.kernel_size or (3 if min(h, w) < 16 else 5)
        for c_out in m.channels:
            layers.append((c_out, c * k * k))
            h, w = h + 2 * (k // 2) - k + 1, w + 2 * (k // 2) - k + 1
            if h >= 2 and w >= 2:
                h, w = h // 2, w // 2
            c = c_out
    width = c * max(h, 1) * max(w, 1)
    for n in m.hidden:
        layers.append((n, width))
        width = n
    layers.append((n_cls, width))
    return sum(o * i + o for o, i in layers), layers


def _check_sizes(cfg: Config) -> None:
    """Memory (and exact-solve time) estimates from the config alone: refuse before any allocation."""
    from .resources import CELL_TENSORS, SOLVE_BYTES_PER_CELL, solve_seconds

    spec, _, _ = crossbar_objects(cfg.crossbar, cfg.mapping)
    itemsize = 8 if cfg.runtime.dtype == "float64" else 4
    limit = cfg.runtime.memory_limit_GB * 2**30 if cfg.runtime.memory_limit_GB else None
    items = []
    cells_one = spec.rows * spec.cols
    items.append(("one physical array", cells_one * CELL_TENSORS * itemsize, "crossbar.rows / crossbar.cols"))
    solve_s = 0.0
    if cfg.model.factory is None:
        n_params, layers = _model_param_estimate(cfg)
        key = "model.hidden" if cfg.model.arch == "mlp" else "model.hidden / model.channels"
        items.append(("software model (Adam training)", n_params * 4 * 4, key))
        n_arrays = sum(arrays_for_layer(o, i, spec) for o, i in layers)
        items[0] = (f"{n_arrays} physical arrays of {spec.rows}×{spec.cols}", n_arrays * cells_one * CELL_TENSORS * itemsize,
                    "crossbar.rows / crossbar.cols" if n_arrays <= len(layers) else key)
        if spec.solver == "exact":
            items.append(("exact-solve workspace", n_arrays * cells_one * SOLVE_BYTES_PER_CELL, "crossbar.rows / crossbar.cols"))
            solve_s = n_arrays * solve_seconds(spec.rows, spec.cols)
    elif spec.solver == "exact":
        items.append(("exact-solve workspace (one array)", cells_one * SOLVE_BYTES_PER_CELL, "crossbar.rows / crossbar.cols"))
    try:
        check_budget(items, limit, solve_s)
    except ResourceError as exc:
        raise ConfigError(str(exc)) from None


def validate_config(data: dict | Config | None, check_sweep: bool = True) -> Config:
    """Validate a plain dict (as read from YAML) into a :class:`Config`, raising :class:`ConfigError`."""
    if isinstance(data, BaseModel):
        data = data.model_dump()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"<root>: got {type(data).__name__}; a config is a mapping of sections")
    data = _pre_checks(data)
    try:
        cfg = config_model().model_validate(data)
    except ValidationError as err:
        algo = data.get("algorithm", {}).get("name") if isinstance(data.get("algorithm"), dict) else None
        raise ConfigError(_format_errors(err, algo=algo)) from None
    try:
        device = build_device(cfg.device)
        cfg.device = check_device_section(cfg.device)  # integral floats stored as ints
        crossbar_objects(cfg.crossbar, cfg.mapping)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    _check_layers(cfg)
    _cross_checks(cfg, device)
    if check_sweep:
        _check_sweep(cfg)
    return cfg


def _check_sweep(cfg: Config) -> None:
    for key, values in cfg.sweep.items():
        if not isinstance(values, list):
            raise ConfigError(f"sweep.{key}: got {values!r}; a swept key takes a list of values")
    lengths = {len(v) for v in cfg.sweep.values()}
    if cfg.sweep_mode == "zip" and len(lengths) > 1:
        raise ConfigError(
            "sweep: sweep_mode 'zip' needs lists of equal length; got " + ", ".join(f"{k}: {len(v)}" for k, v in cfg.sweep.items())
        )
    base = cfg.model_dump()
    base["sweep"] = {}
    for key, values in cfg.sweep.items():
        if not values:
            raise ConfigError(f"sweep.{key}: got an empty list; give at least one value")
        for val in values:
            point = copy.deepcopy(base)
            try:
                set_dotted(point, key, val)
            except KeyError as exc:
                raise ConfigError(f"sweep.{key}: {exc.args[0]}") from None
            try:
                validate_config(point, check_sweep=False)
            except ConfigError as exc:
                raise ConfigError(f"sweep.{key} = {val!r}: {exc}") from None


# ------------------------------------------------------------------------------------------------
# YAML
class _DuplicateKey(ValueError):
    pass


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-6``/``8e3`` as floats (YAML 1.2) and refuses duplicate keys."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys
            if key in seen:
                raise _DuplicateKey(f"duplicate key {key!r} at line {key_node.start_mark.line + 1} (first at line "
                                    f"{seen[key] + 1}); each key may appear once per section: remove one of them")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$"),
    list("-+0123456789."),
)
_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_mapping)


def read_yaml(path: Path) -> Any:
    """The YAML document at ``path`` (``ConfigError`` naming the file for any read or syntax problem)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc}") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        raise ConfigError(f"config file {str(path)!r}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {' '.join(str(exc).split())}") from None


#: (section, key) of file paths in a config; relative ones are resolved against the YAML file
PATH_KEYS = (("dataset", "path"), ("model", "weights"), ("device", "csv"))


def load_config(source: str | Path | dict | Config | None = None) -> Config:
    """Read and validate a config from a YAML path, a dict, or ``None`` (the built-in quickstart)."""
    if source is None:
        source = QUICKSTART_PATH
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        if path.is_dir():
            raise ConfigError(f"config file {str(path)!r} is a directory; give a YAML file")
        return validate_config(resolve_paths(read_yaml(path), path.parent))
    return validate_config(source)


def resolve_paths(data: Any, base: Path) -> Any:
    """Paths in a YAML file are relative to that file, never to the working directory; a model factory
    ``pkg.module:fn`` whose module is a file next to the YAML becomes ``/abs/pkg/module.py:fn``."""
    if not isinstance(data, dict):
        return data
    for section, key in PATH_KEYS:
        sec = data.get(section)
        val = sec.get(key) if isinstance(sec, dict) else None
        if isinstance(val, str) and val and not Path(val).expanduser().is_absolute():
            sec[key] = str((base / val).resolve())
    for over in (data.get("layers") or {}).values() if isinstance(data.get("layers"), dict) else ():
        dev = over.get("device") if isinstance(over, dict) else None
        if isinstance(dev, dict) and isinstance(dev.get("csv"), str) and not Path(dev["csv"]).expanduser().is_absolute():
            dev["csv"] = str((base / dev["csv"]).resolve())
    model = data.get("model")
    fac = model.get("factory") if isinstance(model, dict) else None
    if isinstance(fac, str) and ":" in fac:
        mod, fn = fac.rsplit(":", 1)
        if mod.endswith(".py"):
            if not Path(mod).expanduser().is_absolute():
                model["factory"] = f"{(base / mod).resolve()}:{fn}"
        else:
            rel = Path(*mod.split("."))
            for cand in (base / rel.with_suffix(".py"), base / rel / "__init__.py"):
                if cand.is_file():
                    model["factory"] = f"{cand.resolve()}:{fn}"
                    break
    return data


def get_dotted(data: dict, key: str) -> Any:
    cur: Any = data
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(f"no key {part!r} in {key!r}")
        cur = cur[part]
    return cur


def set_dotted(data: dict, key: str, value: Any) -> None:
    """``data[a][b][c] = value`` for ``key = "a.b.c"``; sections must exist (device params may be new)."""
    parts = key.split(".")
    cur = data
    for i, part in enumerate(parts[:-1]):
        if not isinstance(cur, dict) or part not in cur or not isinstance(cur[part], dict):
            raise KeyError(f"{'.'.join(parts[: i + 1])!r} is not a config section")
        cur = cur[part]
    cur[parts[-1]] = copy.deepcopy(value)

