"""Ideal, deterministic resistive cell."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from .base import Device, DeviceState, apply_mask, check_range, quantize_levels


@dataclass
class IdealDevice(Device):
    """A noiseless, drift-free linear conductance in ``[g_min, g_max]``.

    ``G = clip(G_target, g_min, g_max)``, optionally rounded to ``levels``
    equally spaced states. Defaults follow the "ideal eNVM" of Chen, Peng & Yu,
    IEEE TCAD 37(12) 3067 (2018), Table I (R_on = 200 kΩ ⇒ g_max = 5 µS),
    with g_min = 0 (an idealised off state) and continuous levels.
    ``v_read`` 0.2 V and ``t_read_s`` 10 ns are typical analog-IMC read
    conditions (docs/devices.md; NeuroSim readPulseWidth 5–10 ns).
    """

    g_min: float = 0.0
    g_max: float = 5.0e-6
    levels: int | None = None
    v_read: float = 0.2
    t_read_s: float = 1.0e-8

    name: ClassVar[str] = "ideal"
    pulsed: ClassVar[bool] = True

    def __post_init__(self):
        check_range("g_min", self.g_min, lo=0.0)
        check_range("g_max", self.g_max, lo=self.g_min, lo_open=True)
        if self.levels is not None:
            check_range("levels", self.levels, lo=2)
        check_range("v_read", self.v_read, lo=0.0, lo_open=True)
        check_range("t_read_s", self.t_read_s, lo=0.0, lo_open=True)

    def program(self, state: DeviceState, g_target: Tensor, generator: torch.Generator) -> DeviceState:
        g = g_target.to(dtype=state.g.dtype, device=state.g.device).clamp(self.g_min, self.g_max)
        return state.replace(g=quantize_levels(g, self.g_min, self.g_max, self.levels))

    def read(self, state: DeviceState, t: float, generator: torch.Generator) -> Tensor:
        return state.g

    @property
    def step_g(self) -> float:
        """Conductance change of one pulse [S]: one level, or 1 % of the window when continuous."""
        steps = (self.levels - 1) if self.levels else 100
        return (self.g_max - self.g_min) / steps

    @property
    def continuous_writes(self) -> bool:
        """Without ``levels`` a fractional pulse count is an exact continuous write ``ΔG = n·step_g``."""
        return self.levels is None

    def pulse_step(self, state: DeviceState, direction: int) -> Tensor:
        return torch.full_like(state.g, self.step_g)

    def pulse(self, state: DeviceState, n_pulses: Tensor, generator: torch.Generator, mask: Tensor | None = None):
        """Linear update ``G ← clip(G + n·step_g)``: each pulse moves G by one level (or 1 % of the
        window when continuous); with continuous levels a fractional ``n`` is an exact write.

        An idealised cell has no write cost: ``energy_J`` is a 0-d zero.
        """
        n = torch.as_tensor(n_pulses, device=state.g.device).to(state.g.dtype)
        if self.levels:
            n = n.round()
        n = apply_mask(n.expand(state.g.shape), mask)
        g = (state.g + n * self.step_g).clamp(self.g_min, self.g_max)
        if self.levels:
            g = quantize_levels(g, self.g_min, self.g_max, self.levels)
        return state.replace(g=g), torch.zeros((), dtype=state.g.dtype, device=state.g.device)
