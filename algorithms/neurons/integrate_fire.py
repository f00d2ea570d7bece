"""Integrate-and-fire (IF) and leaky integrate-and-fire (LIF) neurons in discrete time (snnTorch style).

One step of neuron ``i`` with input current ``z_i(t)`` (in the units of the threshold):

    u_i(t) = β·u_i(t−1) + z_i(t)                      (β = 1 for IF, leak factor for LIF)
    s_i(t) = Θ(u_i(t) − θ)                            (Θ(0) = 1: fire when u reaches θ)
    u_i(t) ← u_i(t) − θ·s_i(t)   (reset by subtraction, "soft reset")
    u_i(t) ← u_i(t)·(1 − s_i(t)) (reset to zero, "hard reset")

IF with reset by subtraction is the neuron of ANN→SNN conversion (Rueckauer et al., Front.
Neurosci. 11:682, 2017, Eqs. 2–3; Han et al., CVPR 2020 "RMP-SNN"): with a constant input ``c``
and θ = 1 it fires exactly ``⌊c·T⌋`` times in ``T`` steps (0 ≤ c ≤ 1). Reset to zero is the
neuron of Sengupta et al., Front. Neurosci. 13:95, 2019. The LIF update is snnTorch's
``snn.Leaky`` (Eshraghian et al., Proc. IEEE 111(9), 2023, Eq. 4, ``reset_mechanism`` "subtract"
or "zero") and the neuron of Rathi et al., ICLR 2020 (leak 1.0 there: IF) and Lee et al., Front.
Neurosci. 14:119, 2020.

State tensors are shaped ``[R, B, N]`` (replicas, batch, neurons; any shape works, the update
is element-wise). :meth:`step` returns ``(spikes, state)``; with a ``surrogate`` (see
:mod:`algorithms.snn.surrogate`) the spike function is differentiable for backprop through time
and the reset is detached from the graph (Rathi et al. 2020; Zenke & Vogels, Neural Comput. 33,
2021, "detached reset").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["IF", "LIF", "IFState", "RESETS", "if_scan"]

RESETS = ("subtract", "zero")


@dataclass
class IFState:
    """Membrane potential ``v`` and, for surrogate gradients, the step of each neuron's last spike."""

    v: Tensor
    t_last: Tensor | None = None
    t: int = 0


@dataclass
class LIF:
    """Leaky integrate-and-fire neuron ``u ← β·u + z``; fires at ``u ≥ θ``; ``reset`` "subtract" or "zero".

    Parameters
    ----------
    threshold:
        θ, in the units of the input current (a float, or a tensor broadcastable to the state).
    beta:
        Leak factor per step (1 = no leak: IF). snnTorch ``Leaky(beta)``; Lee et al. 2020 use 0.99.
    reset:
        ``"subtract"`` (soft reset; default) or ``"zero"`` (hard reset).
    surrogate:
        ``None`` (plain Heaviside, no gradient) or a callable ``surrogate(u_over_theta_minus_1, dt)``
        returning spikes with a surrogate gradient (:mod:`algorithms.snn.surrogate`).
    """

    threshold: float | Tensor = 1.0
    beta: float = 1.0
    reset: str = "subtract"
    surrogate: Callable[[Tensor, Tensor], Tensor] | None = None

    def __post_init__(self):
        if self.reset not in RESETS:
            raise ValueError(f"reset: got {self.reset!r}; allowed: {', '.join(map(repr, RESETS))}")
        if not (0.0 <= float(self.beta) <= 1.0):
            raise ValueError(f"beta: got {self.beta!r}; the leak factor must be in [0, 1]")
        if not isinstance(self.threshold, Tensor) and not (self.threshold > 0 and math.isfinite(self.threshold)):
            raise ValueError(f"threshold: got {self.threshold!r}; must be a finite number > 0")

    def init_state(self, shape, device=None, dtype=torch.float32) -> IFState:
        """Zero membrane (and ``t_last = −1000``, "never fired", for the STDB surrogate) of ``shape``."""
        v = torch.zeros(tuple(shape), device=device, dtype=dtype)
        t_last = torch.full(tuple(shape), -1000.0, device=device, dtype=dtype) if self.surrogate is not None else None
        return IFState(v, t_last, 0)

    def step(self, z: Tensor, state: IFState) -> tuple[Tensor, IFState]:
        """One time step: integrate ``z``, fire, reset. Returns ``(spikes, new state)``."""
        theta = self.threshold
        v = state.v * self.beta + z if self.beta != 1.0 else state.v + z
        if self.surrogate is None:
            s = (v >= theta).to(v.dtype)
        else:
            dt = (state.t - state.t_last).to(v.dtype)
            s = self.surrogate(v / theta - 1.0, dt)
        sd = s.detach()
        if self.reset == "subtract":
            v = v - theta * sd
        else:
            v = v * (1.0 - sd)
        t_last = state.t_last
        if t_last is not None:
            t_last = torch.where(sd > 0, torch.full_like(t_last, float(state.t)), t_last)
        return s, IFState(v, t_last, state.t + 1)

    def run(self, z: Tensor, state: IFState | None = None) -> tuple[Tensor, IFState]:
        """All steps of ``z [T, ...]``: spikes ``[T, ...]`` and the final state (a loop over time only)."""
        if state is None:
            state = self.init_state(z.shape[1:], z.device, z.dtype)
        out = []
        for t in range(z.shape[0]):
            s, state = self.step(z[t], state)
            out.append(s)
        return torch.stack(out), state


@dataclass
class IF(LIF):
    """Integrate-and-fire neuron (no leak, β = 1): the neuron of ANN→SNN conversion (module docstring)."""

    def __post_init__(self):
        self.beta = 1.0
        super().__post_init__()


@torch.no_grad()
def if_scan(z: Tensor, threshold: float | Tensor = 1.0, reset: str = "subtract") -> tuple[Tensor, Tensor]:
    """IF neurons over ``z [T, ...]`` without gradients (inference): ``(spikes [T, ...], final membrane)``.

    In place on one membrane buffer; the per-step work is three element-wise kernels.
    """
    if reset not in RESETS:
        raise ValueError(f"reset: got {reset!r}; allowed: {', '.join(map(repr, RESETS))}")
    v = torch.zeros_like(z[0])
    out = torch.empty_like(z)
    for t in range(z.shape[0]):
        v += z[t]
        s = out[t]
        torch.ge(v, threshold, out=s) if not isinstance(threshold, Tensor) else s.copy_(v >= threshold)
        if reset == "subtract":
            v -= s * threshold
        else:
            v *= 1.0 - s
    return out, v
