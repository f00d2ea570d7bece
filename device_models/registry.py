"""Look-up of device models by name, and construction from plain parameters (YAML)."""

from __future__ import annotations

import dataclasses

from .base import Device, DeviceParameterError
from .ideal import IdealDevice
from .lookup import LookupDevice
from .mtj import SOTMTJ, STTMTJ
from .pcm import PCM
from .rram import RRAM

__all__ = ["DEVICE_MODELS", "make_device", "register_device", "allowed_parameters"]

#: model name (``device.model`` in YAML) -> class
DEVICE_MODELS: dict[str, type[Device]] = {
    "ideal": IdealDevice,
    "rram": RRAM,
    "pcm": PCM,
    "stt_mtj": STTMTJ,
    "sot_mtj": SOTMTJ,
    "lookup": LookupDevice,
}


def register_device(cls: type[Device]) -> type[Device]:
    """Class decorator/function adding a device class under ``cls.name``."""
    DEVICE_MODELS[cls.name] = cls
    return cls


def allowed_parameters(model: str) -> list[str]:
    """Constructor parameters of ``DEVICE_MODELS[model]`` (what YAML may set)."""
    cls = DEVICE_MODELS[model]
    return [f.name for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")]


def make_device(model: str, **params) -> Device:
    """Build ``DEVICE_MODELS[model](**params)``; unknown names/keys raise a clear error."""
    if model not in DEVICE_MODELS:
        raise DeviceParameterError(f"model: got {model!r}; allowed: {', '.join(sorted(DEVICE_MODELS))}")
    cls = DEVICE_MODELS[model]
    allowed = allowed_parameters(model)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise DeviceParameterError(
            f"{unknown[0]}: unknown parameter for device model {model!r}; allowed: {', '.join(allowed)}"
        )
    return cls(**params)
