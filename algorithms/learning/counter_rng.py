"""Counter-based uniform draws (SplitMix64) for the switching attempts of binary synapses.

``u(seed, n) = mix(seed + (n + 1)·γ)·2⁻⁵³`` with ``γ = 0x9E3779B97F4A7C15`` and SplitMix64's output mix
(Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014; the finaliser constants
of Vigna's ``splitmix64.c``) — the ``n``-th output of a SplitMix64 stream started at ``seed``, which passes
BigCrush. A draw is a pure function of ``(seed, n)``: a compiled loop evaluates it only for the cells that can
switch (not already in the target state) and the torch path for all of them, and both see the same numbers.
``seed`` is one draw per write call from the synapses' torch generator, so runs stay deterministic under the
configured seed.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["GAMMA", "uniform", "new_seed"]

GAMMA = 0x9E3779B97F4A7C15
M1 = 0xBF58476D1CE4E5B9
M2 = 0x94D049BB133111EB


def _signed(x: int) -> int:
    """A 64-bit constant as the int64 with the same bits."""
    return x - (1 << 64) if x >= 1 << 63 else x


def _srl(z: Tensor, s: int) -> Tensor:
    """Logical right shift of int64 bits (torch's ``>>`` is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def uniform(seed: int, index: Tensor) -> Tensor:
    """``u(seed, index)`` in [0, 1) as float64 for an int64 ``index`` tensor (module docstring); int64 products
    wrap modulo 2⁶⁴ as the unsigned arithmetic of the compiled version does."""
    z = (index + 1) * _signed(GAMMA) + _signed(seed)
    z = (z ^ _srl(z, 30)) * _signed(M1)
    z = (z ^ _srl(z, 27)) * _signed(M2)
    z = z ^ _srl(z, 31)
    return _srl(z, 11).to(torch.float64) * 2.0**-53


def new_seed(generator: torch.Generator) -> int:
    """A stream seed in [0, 2⁶²) drawn from ``generator``."""
    return int(torch.randint(0, 1 << 62, (1,), generator=generator, device=generator.device))
