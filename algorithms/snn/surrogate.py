"""Surrogate spike functions for backprop through time: Heaviside forward, a smooth gradient backward.

The spike is ``o = Θ(x)`` with ``x = u/θ − 1`` (the normalised membrane above threshold), fired
when ``x ≥ 0``. Backward, ``∂o/∂x`` is replaced by

* **STDB** (spike-timing-dependent backprop; Rathi, Srinivasan, Panda & Roy, ICLR 2020, Eq. 9,
  code ``nitin-rathi/hybrid-snn-conversion``): ``∂o/∂x = α·exp(−β·Δt)``, Δt the number of steps
  since the neuron's last spike (1000 + t for a neuron that has not fired). α = 0.3, β = 0.01.
* **linear** (piecewise linear; Bellec et al., NeurIPS 2018; the ``activation='Linear'`` option of
  Rathi's code): ``∂o/∂x = α·max(0, 1 − |x|)``, α = 0.3.

Both are ``callable(x, dt) -> spikes``; ``dt`` is ignored by the linear surrogate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["STDB", "LinearSurrogate", "SURROGATES", "make_surrogate"]


class _STDBFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, alpha, beta):
        ctx.save_for_backward(dt)
        ctx.alpha, ctx.beta = alpha, beta
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (dt,) = ctx.saved_tensors
        return grad * (ctx.alpha * torch.exp(-ctx.beta * dt)), None, None, None


class _LinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (ctx.alpha * (1.0 - x.abs()).clamp(min=0.0)), None


@dataclass
class STDB:
    """``∂o/∂x = α·exp(−β·Δt)`` (Rathi et al., ICLR 2020); α = 0.3, β = 0.01."""

    alpha: float = 0.3
    beta: float = 0.01

    def __call__(self, x: Tensor, dt: Tensor) -> Tensor:
        return _STDBFn.apply(x, dt.to(x.dtype), float(self.alpha), float(self.beta))


@dataclass
class LinearSurrogate:
    """``∂o/∂x = α·max(0, 1 − |x|)`` (Bellec et al., NeurIPS 2018); α = 0.3."""

    alpha: float = 0.3

    def __call__(self, x: Tensor, dt: Tensor | None = None) -> Tensor:
        return _LinearFn.apply(x, float(self.alpha))


SURROGATES = {"stdb": STDB, "linear": LinearSurrogate}


def make_surrogate(name: str, alpha: float = 0.3, beta: float = 0.01):
    """A surrogate by name (``stdb`` or ``linear``)."""
    if name == "stdb":
        return STDB(alpha, beta)
    if name == "linear":
        return LinearSurrogate(alpha)
    raise ValueError(f"algorithm.surrogate: got {name!r}; allowed: {', '.join(map(repr, SURROGATES))}")
