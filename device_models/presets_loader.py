"""Published device parameter sets shipped as YAML (``device_models/presets/*.yaml``).

Each preset file holds the model name and, per parameter, ``{value, unit, source}``::

    model: rram
    title: "Ag:a-Si RRAM (Jo et al., Nano Lett. 2010)"
    parameters:
      g_max: {value: 3.846e-8, unit: S, source: "Jo 2010 via NeuroSim TCAD 2018 Table I"}

``load_preset(name, **overrides)`` builds the device through :func:`make_device`, so unknown
keys fail with the list of allowed ones. Sources are tagged as in docs/references.md: [code],
[paper-via-code], [lit] (recalled, not re-read), [est] (estimate, calculation given).
"""

from __future__ import annotations

import functools
from importlib import resources

import yaml

from .base import Device, DeviceParameterError
from .registry import make_device

__all__ = ["load_preset", "list_presets", "preset_table", "preset_info"]

_PACKAGE = "device_models"
_FOLDER = "presets"


def _files():
    return resources.files(_PACKAGE).joinpath(_FOLDER)


def list_presets() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(p.name[:-5] for p in _files().iterdir() if p.name.endswith(".yaml"))


@functools.cache
def _load(name: str) -> dict:
    names = list_presets()
    if name not in names:
        raise DeviceParameterError(f"preset: got {name!r}; allowed: {', '.join(names)}")
    data = yaml.safe_load(_files().joinpath(name + ".yaml").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "model" not in data or not isinstance(data.get("parameters"), dict):
        raise DeviceParameterError(f"preset {name!r}: file must define 'model' and a 'parameters' mapping")
    for key, entry in data["parameters"].items():
        if not isinstance(entry, dict) or not {"value", "unit", "source"} <= set(entry):
            raise DeviceParameterError(f"preset {name!r}: parameter {key!r} must be {{value, unit, source}}")
    return data


def preset_info(name: str) -> dict:
    """The parsed preset file (``model``, ``title``, ``parameters``, …); a copy."""
    import copy

    return copy.deepcopy(_load(name))


def _value(v):
    return tuple(v) if isinstance(v, list) else v


def preset_params(name: str) -> tuple[str, dict]:
    """``(model, {parameter: value})`` of a preset."""
    data = _load(name)
    return data["model"], {k: _value(e["value"]) for k, e in data["parameters"].items()}


def load_preset(name: str, **overrides) -> Device:
    """Build the preset ``name``'s device, with ``overrides`` replacing any of its parameters."""
    model, params = preset_params(name)
    params.update(overrides)
    return make_device(model, **params)


def preset_table(name: str) -> list[dict]:
    """Rows ``{parameter, value, unit, source}`` of a preset, in file order."""
    data = _load(name)
    return [
        {"parameter": k, "value": _value(e["value"]), "unit": str(e["unit"]), "source": str(e["source"])}
        for k, e in data["parameters"].items()
    ]
