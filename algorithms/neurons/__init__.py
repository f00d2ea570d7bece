"""Spiking neuron models, one file each: equation and source in each docstring; state tensors shaped
``[R, B, N]`` (replicas, batch, neurons); every random draw from a ``torch.Generator``."""

from .integrate_fire import IF, LIF, RESETS, IFState, if_scan  # noqa: E402

__all__ = [*globals().get("__all__", []), "IF", "LIF", "IFState", "RESETS", "if_scan"]

from .diehl_cook import (  # noqa: E402
    DiehlCookConductanceLIF,
    DiehlCookCurrentLIF,
    DiehlCookInhibitoryLIF,
    DiehlCookState,
)

__all__ = [*__all__, "DiehlCookConductanceLIF", "DiehlCookCurrentLIF", "DiehlCookInhibitoryLIF", "DiehlCookState"]
