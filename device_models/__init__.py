"""Device models: one cell's physics, vectorised over whole arrays (DESIGN §4)."""

from .base import Device, DeviceParameterError, DeviceState
from .ideal import IdealDevice
from .rram import RRAM

__all__ = ["Device", "DeviceParameterError", "DeviceState", "IdealDevice", "RRAM"]
