"""Resistive RAM (filamentary oxide) cell — inference model.

First version: level quantisation, programming noise, stuck-at faults and
white read noise. The NeuroSim nonlinear pulse model for learning comes with
the device-models issue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from .base import STUCK_OFF, STUCK_ON, Device, DeviceState, apply_stuck, check_range, quantize_levels


@dataclass
class RRAM(Device):
    """Multi-level RRAM written by program-and-verify.

    Model (per cell, SI units):

    * ``G_prog = q_L(clip(G_T, g_min, g_max)) + N(0, σ_prog·(g_max − g_min))``, clipped to
      ``[g_min, g_max]``, where ``q_L`` rounds to ``levels`` equally spaced states.
    * Stuck-at faults: a Bernoulli mask drawn once per array; SA0 cells read ``g_min``
      (high-resistance state), SA1 cells ``g_max`` (Chen et al., IEEE Trans. Comput. 64,
      180, 2015 measured SA0 ≈ 1.75 %, SA1 ≈ 9.04 % on a 4 Mb HfOx array).
    * Read noise: ``G_read = G·(1 + N(0, σ_read))`` per MVM (NeuroSim's ``I = V·G·(1+N)``).

    Defaults are the TaOx/HfOx device of Wu et al., VLSI 2018, as tabulated in
    NeuroSim (Chen, Peng & Yu, IEEE TCAD 2018; MLP+NeuroSim V3.0 manual Table II):
    g_max = 10 µS (R_on 100 kΩ), on/off 10, 128 levels, cycle-to-cycle σ 3.7 % of the
    window (used here as the single-shot programming error). Stuck-at rates default
    to 0 (a fault-free array); set them to study faults.
    """

    g_min: float = 1.0e-6
    g_max: float = 10.0e-6
    levels: int | None = 128
    sigma_prog: float = 0.037
    p_stuck_off: float = 0.0
    p_stuck_on: float = 0.0
    sigma_read: float = 0.0
    v_read: float = 0.2
    t_read_s: float = 1.0e-8

    name: ClassVar[str] = "rram"

    def __post_init__(self):
        check_range("g_min", self.g_min, lo=0.0)
        check_range("g_max", self.g_max, lo=self.g_min, lo_open=True)
        if self.levels is not None:
            check_range("levels", self.levels, lo=2)
        check_range("sigma_prog", self.sigma_prog, lo=0.0)
        check_range("p_stuck_off", self.p_stuck_off, lo=0.0, hi=1.0)
        check_range("p_stuck_on", self.p_stuck_on, lo=0.0, hi=1.0)
        check_range("p_stuck_off + p_stuck_on", self.p_stuck_off + self.p_stuck_on, hi=1.0)
        check_range("sigma_read", self.sigma_read, lo=0.0)
        check_range("v_read", self.v_read, lo=0.0, lo_open=True)
        check_range("t_read_s", self.t_read_s, lo=0.0, lo_open=True)

    @property
    def on_off_ratio(self) -> float:
        return self.g_max / self.g_min if self.g_min > 0 else float("inf")

    def sample_d2d(self, shape, generator, dtype):
        u = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64)
        stuck = torch.zeros(shape, dtype=torch.uint8, device=generator.device)
        stuck[u < self.p_stuck_off] = STUCK_OFF
        stuck[(u >= self.p_stuck_off) & (u < self.p_stuck_off + self.p_stuck_on)] = STUCK_ON
        return {"stuck": stuck}

    def program(self, state: DeviceState, g_target: Tensor, generator: torch.Generator) -> DeviceState:
        g = g_target.to(dtype=state.g.dtype, device=state.g.device).clamp(self.g_min, self.g_max)
        g = quantize_levels(g, self.g_min, self.g_max, self.levels)
        if self.sigma_prog > 0:
            noise = torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)
            g = (g + noise * self.sigma_prog * (self.g_max - self.g_min)).clamp(self.g_min, self.g_max)
        return state.replace(g=apply_stuck(g, state, self.g_min, self.g_max))

    def read(self, state: DeviceState, t: float, generator: torch.Generator) -> Tensor:
        return apply_stuck(state.g, state, self.g_min, self.g_max)
