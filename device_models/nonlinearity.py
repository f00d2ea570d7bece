"""NeuroSim nonlinearity label NL → curvature constant A of the exponential pulse model.

Chen, Peng & Yu, IEEE TCAD 37(12) 3067 (2018), eqs. 8–10, and MLP+NeuroSim V3.0
(``formula.cpp``/``Cell.cpp``): a potentiation curve with ``P_max`` pulses is

    G(P) = B·(1 − exp(−P/A)) + G_min,        B = (G_max − G_min)/(1 − exp(−P_max/A)).

On the normalised axes x = P/P_max, y = (G − G_min)/(G_max − G_min) it is
``f(x) = (1 − e^(−x/a))/(1 − e^(−1/a))`` with ``a = A/P_max``. The label NL is defined by the
largest distance of this curve above the diagonal: ``max_x [f(x) − x] = 0.07·√2·|NL|``. With
``K = 1 − e^(−1/a)`` the maximum is reached at ``x* = −a·ln(a·K)``, giving the closed form

    d(a) = (1 − a·K)/K + a·ln(a·K) = 0.0989949·|NL|                       (docs/devices.md)

``d`` falls monotonically from 1 (a → 0, a step) to 0 (a → ∞, a straight line; d ≈ 1/(8a)),
so every |NL| in (0, 10.1) has exactly one root. It reproduces NeuroSim's tabulated values
(NL = 2.4 → a = 0.49918, NL = 0.04 → a = 31.567, …; tests/test_device_rram.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import brentq
from torch import Tensor

__all__ = ["NL_DISTANCE_PER_UNIT", "A_NORM_MAX", "NL_MAX", "nl_distance", "nl_to_a", "nl_to_a_tensor"]

#: 0.07·√2: the normalised max distance above the diagonal per unit of |NL| (NeuroSim definition)
NL_DISTANCE_PER_UNIT = 0.07 * math.sqrt(2.0)
#: a above this is treated as linear (|NL| below ~1.2e-6): the update is linear to 1e-6
A_NORM_MAX = 1.0e6
_A_NORM_MIN = 1.0e-5
#: the largest |NL| accepted (d(a) → 1 as a → 0, i.e. |NL| < 1/0.0989949 ≈ 10.10)
NL_MAX = 10.0


def nl_distance(a):
    """``d(a) = (1 − aK)/K + a·ln(aK)``, ``K = 1 − e^(−1/a)`` (numpy or float)."""
    a = np.asarray(a, dtype=np.float64)
    k = -np.expm1(-1.0 / a)
    return (1.0 - a * k) / k + a * np.log(a * k)


def nl_to_a(nl: float) -> float:
    """Normalised curvature ``a = A/P_max`` for the label ``nl`` (sign ignored); ``A_NORM_MAX`` for NL ≈ 0."""
    target = NL_DISTANCE_PER_UNIT * abs(float(nl))
    if target <= float(nl_distance(A_NORM_MAX)):
        return A_NORM_MAX
    if abs(nl) > NL_MAX:
        raise ValueError(f"|NL| = {abs(nl)} exceeds {NL_MAX}")
    return float(brentq(lambda a: float(nl_distance(a)) - target, _A_NORM_MIN, A_NORM_MAX, xtol=1e-15, rtol=1e-13))


def nl_to_a_tensor(nl: Tensor, iterations: int = 64) -> Tensor:
    """Vectorised :func:`nl_to_a` for a tensor of per-cell labels (bisection on ln a, float64).

    Used for device-to-device NL spread: every cell gets its own curvature without a
    Python loop. 64 bisection steps on ``ln a ∈ [ln 1e-5, ln 1e6]`` leave a relative
    error below 1e-17 (i.e. float64 round-off).
    """
    dev = nl.device
    wd = torch.float32 if dev.type == "mps" else torch.float64
    target = NL_DISTANCE_PER_UNIT * nl.detach().to(wd).abs().clamp(max=NL_MAX)
    lo = torch.full_like(target, math.log(_A_NORM_MIN))
    hi = torch.full_like(target, math.log(A_NORM_MAX))
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        a = torch.exp(mid)
        k = -torch.expm1(-1.0 / a)
        d = (1.0 - a * k) / k + a * torch.log(a * k)
        # d decreases with a: too much curvature (d > target) → a must grow
        grow = d > target
        lo = torch.where(grow, mid, lo)
        hi = torch.where(grow, hi, mid)
    a = torch.exp(0.5 * (lo + hi))
    linear = target <= float(nl_distance(A_NORM_MAX))
    return torch.where(linear, torch.full_like(a, A_NORM_MAX), a)
