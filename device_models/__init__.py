"""Device models: one cell's physics, vectorised over whole arrays (DESIGN §4)."""

from .base import Device, DeviceParameterError, DeviceState
from .ideal import IdealDevice
from .registry import DEVICE_MODELS, make_device, register_device
from .rram import RRAM

__all__ = [
    "DEVICE_MODELS",
    "Device",
    "DeviceParameterError",
    "DeviceState",
    "IdealDevice",
    "RRAM",
    "make_device",
    "register_device",
]
