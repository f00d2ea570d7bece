"""YAML ⇄ typed, validated experiment configuration (DESIGN §7).

Sections mirror the layers: ``device``, ``crossbar`` (size, wires, solver, dac, adc),
``mapping``, ``algorithm``, ``model``, ``dataset``, ``eval``, ``runtime``, ``sweep`` and
``seed``. Every error names the dotted key, the bad value and what is allowed.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

__all__ = [
    "Config",
    "ConfigError",
    "load_config",
    "validate_config",
    "set_dotted",
    "get_dotted",
    "QUICKSTART_PATH",
]

QUICKSTART_PATH = Path(__file__).with_name("quickstart.yaml")


class ConfigError(ValueError):
    """An invalid configuration; the message names the dotted key, the value and what is allowed."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetConfig(_Section):
    name: Literal["digits", "mnist"] = "digits"
    path: str | None = Field(None, description="directory of MNIST IDX files (default: $XBARSIM_DATA)")
    test_fraction: float = Field(0.3, gt=0, lt=1, description="digits: held-out fraction")
    n_train: int | None = Field(None, ge=1, description="use only the first n training samples")


class ModelConfig(_Section):
    arch: Literal["mlp", "cnn"] = Field("mlp", description="mlp: Flatten→[Linear→ReLU]*→Linear; cnn: LeNet-like (xbarsim.models)")
    hidden: list[int] = Field(default_factory=lambda: [64], description="widths of the hidden fully connected layers")
    channels: list[int] = Field(default_factory=lambda: [6, 16], description="cnn: output channels of the conv stages")
    kernel_size: int | None = Field(None, ge=1, description="cnn: conv kernel (default: 3 below 16 px images, else 5)")
    batchnorm: bool = Field(False, description="cnn: BatchNorm after every conv/hidden layer (folded on crossbars)")
    bias: bool = True
    epochs: int = Field(40, ge=0)
    lr: float = Field(1e-2, gt=0)
    batch_size: int = Field(64, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 0
    path: str | None = Field(None, description="a pickled torch nn.Module to use instead of training")

    @field_validator("hidden", "channels")
    @classmethod
    def _positive(cls, v):
        if any(h < 1 for h in v):
            raise ValueError("every width must be ≥ 1")
        return v


class DACConfig(_Section):
    bits: int | None = Field(8, ge=1, le=16, description="amplitude DAC resolution, or input bits for bit_serial (null: ideal)")
    x_max: float | None = Field(None, gt=0, description="input full scale (default: calibrated, the largest |x|)")
    e_1bit_J: float = Field(0.39e-12, ge=0, description="energy per 1-bit row drive [J] (ISAAC DAC budget)")


#: technology nodes of the NeuroSim SAR fit (circuits.constants)
_SAR_NODES = {
    "lstp": (130, 90, 65, 45, 32, 22, 14, 10, 7, 5, 3, 2, 1),
    "hp": (130, 90, 65, 45, 32, 22, 14, 10, 7),
}


class ADCConfig(_Section):
    bits: int | None = Field(8, ge=1, le=16, description="resolution (null: lossless)")
    range: Literal["calibrate", "max", "fixed"] = "calibrate"
    percentile: float = Field(99.99, gt=0, le=100)
    i_range: float | None = Field(None, gt=0, description="full-scale current [A] for range: fixed")
    cols_per_adc: int = Field(8, ge=1, description="column outputs multiplexed onto one ADC (NeuroSim numColMuxed = 8)")
    gain_sigma: float = Field(0.0, ge=0, description="static per-ADC gain error, relative σ")
    offset_sigma_lsb: float = Field(0.0, ge=0, validate_default=True, description="static per-ADC offset σ [LSB]")
    noise_sigma_lsb: float = Field(0.0, ge=0, validate_default=True, description="per-conversion noise σ [LSB]")
    energy_model: Literal["survey", "neurosim_sar", "sense_amp", "fixed"] = Field(
        "survey", validate_default=True, description="survey: max(e_floor_J, fom_J_per_step·2^bits); neurosim_sar: by tech_node_nm; "
        "sense_amp: 1-bit SA; fixed: e_conv_J"
    )
    fom_J_per_step: float = Field(30e-15, ge=0)
    e_floor_J: float = Field(1e-12, ge=0)
    roadmap: Literal["lstp", "hp"] = Field("lstp", description="neurosim_sar: ITRS roadmap of the fit")
    tech_node_nm: int = Field(32, validate_default=True, description="neurosim_sar: technology node [nm]")
    e_conv_J: float | None = Field(None, ge=0, validate_default=True, description="energy per conversion [J] (fixed; sense_amp override)")
    t_conv_s: float | None = Field(None, ge=0, description="conversion time [s] (default: (bits+1)·1 ns, NeuroSim SAR)")

    @field_validator("offset_sigma_lsb", "noise_sigma_lsb")
    @classmethod
    def _lsb_needs_bits(cls, v, info: ValidationInfo):
        if v > 0 and info.data.get("bits", 8) is None:
            raise ValueError("an error in LSB needs a resolution; crossbar.adc.bits is null (lossless)")
        return v

    @field_validator("energy_model")
    @classmethod
    def _sense_amp_one_bit(cls, v, info: ValidationInfo):
        bits = info.data.get("bits", 1)
        if v == "sense_amp" and bits not in (1, None):
            raise ValueError(f"a sense amplifier is a 1-bit converter: needs crossbar.adc.bits = 1 (got {bits})")
        return v

    @field_validator("tech_node_nm")
    @classmethod
    def _node(cls, v, info: ValidationInfo):
        roadmap = info.data.get("roadmap", "lstp")
        allowed = _SAR_NODES.get(roadmap, _SAR_NODES["lstp"])
        if v not in allowed:
            raise ValueError(f"allowed for roadmap {roadmap!r}: {', '.join(map(str, allowed))}")
        return v

    @field_validator("e_conv_J")
    @classmethod
    def _fixed_needs_energy(cls, v, info: ValidationInfo):
        if v is None and info.data.get("energy_model") == "fixed":
            raise ValueError("energy_model 'fixed' needs the energy per conversion [J] (a number ≥ 0)")
        return v


class CrossbarConfig(_Section):
    rows: int = Field(128, ge=1, le=65536)
    cols: int = Field(128, ge=2, le=65536)
    r_wire_row: float = Field(0.0, ge=0, description="row wire resistance per cell [Ω]")
    r_wire_col: float = Field(0.0, ge=0, description="column wire resistance per cell [Ω]")
    r_source: float = Field(0.0, ge=0, description="driver output resistance [Ω]")
    r_sense: float = Field(0.0, ge=0, description="sense (input) resistance of the column amplifier [Ω]")
    r_access: float = Field(0.0, ge=0, description="1T1R access transistor on-resistance [Ω]")
    solver: Literal["ideal", "exact"] = "ideal"
    v_read: float | None = Field(None, gt=0, description="read voltage [V] (default: the device's)")
    t_read_s: float | None = Field(None, gt=0, description="read pulse width [s] (default: the device's)")
    dac: DACConfig = Field(default_factory=DACConfig)
    adc: ADCConfig = Field(default_factory=ADCConfig)
    input_mode: Literal["amplitude", "bit_serial", "spikes"] = Field(
        "amplitude", description="amplitude DAC (one read), bit_serial (one read per dac.bits), spikes (binary, no DAC)"
    )

    @field_validator("input_mode")
    @classmethod
    def _bit_serial_needs_bits(cls, v, info: ValidationInfo):
        dac = info.data.get("dac")
        if v == "bit_serial" and dac is not None and dac.bits is None:
            raise ValueError("bit-serial inputs need crossbar.dac.bits (the number of input bits), got null")
        return v


class MappingConfig(_Section):
    scheme: Literal["differential", "offset"] = Field(
        "differential", description="differential: G+ − G− column pairs; offset: one column per output + reference column"
    )
    weight_bits: int | None = Field(None, ge=2, le=16, description="quantise weights to signed integers of this width (null: continuous)")
    bits_per_cell: int | None = Field(None, ge=1, le=8, description="bit slicing: bits stored per cell (null: one cell per weight)")

    @field_validator("bits_per_cell")
    @classmethod
    def _slicing_needs_weight_bits(cls, v, info: ValidationInfo):
        if v is not None and info.data.get("weight_bits", 8) is None:
            raise ValueError("bit slicing needs mapping.weight_bits (got null)")
        return v


class AlgorithmConfig(_Section):
    name: Literal["ann"] = "ann"


class EvalConfig(_Section):
    n_test: int | None = Field(None, ge=1, description="evaluate on the first n test samples")
    batch_size: int = Field(512, ge=1)
    n_calibration: int = Field(256, ge=1, description="training samples used to calibrate DAC/ADC ranges")
    times_s: list[float] = Field(default_factory=lambda: [0.0], description="evaluation times after programming [s]")
    drift_compensation: list[bool] = Field(default_factory=lambda: [False])

    @field_validator("times_s")
    @classmethod
    def _times(cls, v):
        if not v or any(not (t >= 0 and math.isfinite(t)) for t in v):
            raise ValueError("must be a non-empty list of finite times ≥ 0 s")
        return v

    @field_validator("drift_compensation", mode="before")
    @classmethod
    def _dc(cls, v):
        return [v] if isinstance(v, bool) else v


class RuntimeConfig(_Section):
    torch_device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"


class Config(_Section):
    name: str = "experiment"
    seed: int = 0
    device: dict[str, Any] = Field(default_factory=lambda: {"model": "ideal"})
    crossbar: CrossbarConfig = Field(default_factory=CrossbarConfig)
    mapping: MappingConfig = Field(default_factory=MappingConfig)
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    sweep: dict[str, list[Any]] = Field(default_factory=dict)
    sweep_mode: Literal["grid", "zip"] = Field("grid", description="grid: every combination; zip: i-th values together")


# ------------------------------------------------------------------------------------------------
def _format_errors(err: ValidationError, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        key = f"{prefix}{key}" if key else prefix.rstrip(".") or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key (value {e['input']!r}); {_allowed_keys(e['loc'])}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{key}: got {e['input']!r}; {msg}")
    return "\n".join(lines)


def _allowed_keys(loc: tuple) -> str:
    model: Any = Config
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return "see the documented keys"
        model = field.annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return "allowed keys: " + ", ".join(model.model_fields)
    return "see the documented keys"


def _check_device(cfg: Config) -> None:
    """Build the device once so a bad ``device.*`` key fails at load time with its dotted name."""
    from device_models import DeviceParameterError

    from .experiment import build_device

    try:
        build_device(cfg.device)
    except (DeviceParameterError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"device.{exc}" if not str(exc).startswith("device") else str(exc)) from None


def _check_layout(cfg: Config) -> None:
    """The mapping must fit the array: ``mapping.*`` × ``crossbar.cols`` checked at load time."""
    from circuits import CrossbarSpec

    m = cfg.mapping
    try:
        CrossbarSpec(rows=cfg.crossbar.rows, cols=cfg.crossbar.cols, scheme=m.scheme, weight_bits=m.weight_bits, bits_per_cell=m.bits_per_cell)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def validate_config(data: dict | Config, check_sweep: bool = True) -> Config:
    """Validate a plain dict (as read from YAML) into a :class:`Config`, raising :class:`ConfigError`."""
    if isinstance(data, Config):
        data = data.model_dump()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"<root>: got {type(data).__name__}; a config is a mapping of sections")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err)) from None
    _check_device(cfg)
    _check_layout(cfg)
    if check_sweep:
        lengths = {len(v) for v in cfg.sweep.values()}
        if cfg.sweep_mode == "zip" and len(lengths) > 1:
            raise ConfigError(
                "sweep: sweep_mode 'zip' needs lists of equal length; got "
                + ", ".join(f"{k}: {len(v)}" for k, v in cfg.sweep.items())
            )
        for key, values in cfg.sweep.items():
            if not values:
                raise ConfigError(f"sweep.{key}: got an empty list; give at least one value")
            for val in values:
                point = copy.deepcopy(cfg.model_dump())
                point["sweep"] = {}
                try:
                    set_dotted(point, key, val)
                except KeyError as exc:
                    raise ConfigError(f"sweep.{key}: {exc.args[0]}") from None
                try:
                    validate_config(point, check_sweep=False)
                except ConfigError as exc:
                    raise ConfigError(f"sweep.{key} = {val!r}: {exc}") from None
    return cfg


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-6``/``8e3`` as floats (YAML 1.2), not as strings."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$"),
    list("-+0123456789."),
)

#: (section, key) of file paths in a config; relative ones are resolved against the YAML file
PATH_KEYS = (("dataset", "path"), ("model", "path"), ("device", "csv"))


def load_config(source: str | Path | dict | Config | None = None) -> Config:
    """Read and validate a config from a YAML path, a dict, or ``None`` (the built-in quickstart)."""
    if source is None:
        source = QUICKSTART_PATH
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            data = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
        return validate_config(_resolve_paths(data, path.parent))
    return validate_config(source)


def _resolve_paths(data: Any, base: Path) -> Any:
    """Paths in a YAML file are relative to that file, never to the working directory."""
    if not isinstance(data, dict):
        return data
    for section, key in PATH_KEYS:
        sec = data.get(section)
        val = sec.get(key) if isinstance(sec, dict) else None
        if isinstance(val, str) and val and not Path(val).expanduser().is_absolute():
            sec[key] = str((base / val).resolve())
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
