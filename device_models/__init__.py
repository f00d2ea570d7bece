"""Device models: one cell's physics, vectorised over whole arrays (docs/devices.md).

Models: :class:`IdealDevice`, :class:`PCM` (IBM statistical model + Nandakumar pulses),
:class:`RRAM` (NeuroSim nonlinear pulses, stuck-at, sinh I–V), :class:`STTMTJ`/:class:`SOTMTJ`
(Néel–Brown + precessional stochastic switching), :class:`LookupDevice` (measured curves).
Presets: :func:`list_presets`, :func:`load_preset`, :func:`preset_table`.
"""

from .base import Device, DeviceParameterError, DeviceState
from .ideal import IdealDevice
from .lookup import LookupDevice
from .mtj import SOTMTJ, STTMTJ
from .nonlinearity import nl_to_a
from .pcm import PCM
from .presets_loader import list_presets, load_preset, preset_info, preset_table
from .registry import DEVICE_MODELS, allowed_parameters, make_device, register_device
from .rram import RRAM

__all__ = [
    "DEVICE_MODELS",
    "Device",
    "DeviceParameterError",
    "DeviceState",
    "IdealDevice",
    "LookupDevice",
    "PCM",
    "RRAM",
    "SOTMTJ",
    "STTMTJ",
    "allowed_parameters",
    "list_presets",
    "load_preset",
    "make_device",
    "nl_to_a",
    "preset_info",
    "preset_table",
    "register_device",
]
