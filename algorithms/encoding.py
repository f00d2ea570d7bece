"""Input encoders for spiking networks: Poisson and Bernoulli rate coding, direct (analog) coding.

All randomness comes from the ``generator`` argument; spike trains are float tensors of 0/1
(or ±1 for signed Bernoulli inputs) shaped ``[T, *x.shape]`` (``encode``) or ``x.shape`` (``step``).

* :class:`PoissonEncoder` — each input is a Poisson process of rate ``r = x·max_rate_hz`` [Hz]
  (``x`` in [0, 1], e.g. pixel/255). In discrete time ``dt`` a neuron spikes in a step with
  probability ``p = 1 − exp(−r·dt)`` (the probability of at least one Poisson event in the step;
  ≈ ``r·dt`` for ``r·dt ≪ 1``), at most one spike per step. Diehl & Cook (2015) use
  ``max_rate_hz`` = 63.75 Hz (pixel/8·2 with 255 max; Brian ``PoissonGroup``); BindsNET's
  ``PoissonEncoder`` with intensity 128 uses 128 Hz.
* :class:`BernoulliEncoder` — each step a spike with probability ``|x|`` (``x`` in [−1, 1]), signed by
  ``sign(x)`` when ``signed``: the rate coding of Rathi et al., ICLR 2020 (``spike = (U < |x|)·sign(x)``)
  and of Sengupta et al. 2019 / snnTorch ``spikegen.rate``.
* :class:`DirectEncoder` — the analog value itself enters the first layer at every step (the input
  layer integrates ``x`` as a current; Rueckauer et al., Front. Neurosci. 11:682, 2017, "analog input").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["PoissonEncoder", "BernoulliEncoder", "DirectEncoder", "ENCODERS", "make_encoder", "isi_spike_trains"]


def _uniform(shape, generator: torch.Generator | None, dtype, device) -> Tensor:
    return torch.rand(tuple(shape), generator=generator, dtype=dtype, device=device)


@dataclass
class PoissonEncoder:
    """Poisson rate coding: ``P(spike in a step) = 1 − exp(−x·max_rate_hz·dt_s)``.

    ``x`` in [0, 1] (clipped); ``dt_s`` the time step [s].
    """

    max_rate_hz: float = 63.75
    dt_s: float = 0.5e-3
    binary = True

    def __post_init__(self):
        if not (self.max_rate_hz >= 0 and math.isfinite(self.max_rate_hz)):
            raise ValueError(f"max_rate_hz: got {self.max_rate_hz!r}; must be a finite rate ≥ 0 Hz")
        if not (self.dt_s > 0 and math.isfinite(self.dt_s)):
            raise ValueError(f"dt_s: got {self.dt_s!r}; must be a finite time step > 0 s")

    def probability(self, x: Tensor, scale: float = 1.0) -> Tensor:
        """Per-step spike probability for inputs ``x`` (rates multiplied by ``scale``)."""
        rate = x.clamp(0.0, 1.0) * (self.max_rate_hz * scale)
        return -torch.expm1(-rate * self.dt_s)

    def step(self, p: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One step of spikes from the probabilities ``p`` of :meth:`probability`."""
        return (_uniform(p.shape, generator, p.dtype, p.device) < p).to(p.dtype)

    def encode(self, x: Tensor, timesteps: int, generator: torch.Generator | None = None, scale: float = 1.0) -> Tensor:
        p = self.probability(x, scale)
        return (_uniform((timesteps, *p.shape), generator, p.dtype, p.device) < p).to(p.dtype)


def isi_spike_trains(rate_hz: Tensor, t_steps: int, dt_s: float, generator: torch.Generator | None = None) -> Tensor:
    """Spike trains ``[T, *rate.shape]`` (bool) with **Poisson-distributed inter-spike intervals**, as BindsNET
    0.3.4's ``PoissonEncoder`` (``bindsnet.encoding.poisson``; Hazan et al., Front. Neuroinform. 12:89, 2018):
    intervals ``n ~ Poisson(λ)`` steps with ``λ = 1/(rate·dt)``, a zero interval counted as 1, spikes at the
    cumulative sums ``≤ T`` (the first at step ``n_1``, 1-based). The mean rate is ``rate``, but the trains are far
    more regular than a Poisson process (interval variance λ instead of ≈ λ²); ``rate = 0``: no spike."""
    lam = torch.where(rate_hz > 0, 1.0 / (rate_hz.clamp(min=1e-30) * dt_s), torch.zeros_like(rate_hz))
    n = torch.poisson(lam.expand(t_steps + 1, *lam.shape).contiguous(), generator=generator)
    n = torch.where((n == 0) & (lam > 0), torch.ones_like(n), n)
    times = torch.cumsum(n, 0).long()  # 1-based step of each spike (0: a silent input)
    times = torch.where(times > t_steps, torch.zeros_like(times), times)
    out = torch.zeros((t_steps + 1, *lam.shape), dtype=torch.bool, device=rate_hz.device)
    out.scatter_(0, times, torch.ones_like(times, dtype=torch.bool))
    return out[1:]


@dataclass
class BernoulliEncoder:
    """Bernoulli rate coding: a spike with probability ``|x|`` each step, signed when ``signed``."""

    signed: bool = True
    binary = True

    def probability(self, x: Tensor, scale: float = 1.0) -> Tensor:
        return (x * scale).clamp(-1.0, 1.0)

    def step(self, p: Tensor, generator: torch.Generator | None = None) -> Tensor:
        s = (_uniform(p.shape, generator, p.dtype, p.device) < p.abs()).to(p.dtype)
        return s * torch.sign(p) if self.signed else s

    def encode(self, x: Tensor, timesteps: int, generator: torch.Generator | None = None, scale: float = 1.0) -> Tensor:
        p = self.probability(x, scale)
        s = (_uniform((timesteps, *p.shape), generator, p.dtype, p.device) < p.abs()).to(p.dtype)
        return s * torch.sign(p) if self.signed else s


@dataclass
class DirectEncoder:
    """Direct (analog) coding: the input current is ``x`` at every step (no randomness)."""

    binary = False

    def probability(self, x: Tensor, scale: float = 1.0) -> Tensor:
        return x * scale

    def step(self, p: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return p

    def encode(self, x: Tensor, timesteps: int, generator: torch.Generator | None = None, scale: float = 1.0) -> Tensor:
        return (x * scale).unsqueeze(0).expand(timesteps, *x.shape)


ENCODERS = {"poisson": PoissonEncoder, "bernoulli": BernoulliEncoder, "direct": DirectEncoder}


def make_encoder(name: str, **kwargs):
    """An encoder by name (``poisson``, ``bernoulli``, ``direct``); a clear error for unknown names."""
    if name not in ENCODERS:
        raise ValueError(f"encoding: got {name!r}; allowed: {', '.join(ENCODERS)}")
    return ENCODERS[name](**kwargs)
