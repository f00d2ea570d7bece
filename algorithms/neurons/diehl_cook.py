"""Diehl & Cook (2015) neurons: adaptive-threshold LIF (conductance- and current-based) and the inhibitory LIF.

All quantities in SI units (V, s); state tensors ``[R, B, N]`` (replicas, batch, neurons), the adaptive
threshold ``θ`` ``[R, 1, N]`` (shared by the batch: one network per replica). :meth:`step` returns
``(spikes, state)`` (snnTorch style) and updates the state in place.

Conductance-based excitatory neuron (:class:`DiehlCookConductanceLIF`, ``mode: paper``)
----------------------------------------------------------------------------------------
Diehl & Cook, Front. Comput. Neurosci. 9:99 (2015), Eqs. 1–2 and the released Brian code
(``peter-u-diehl/stdp-mnist``, ``Diehl&Cook_spiking_MNIST.py``)::

    τ_e dv/dt = (v_rest − v) + g_e·(E_exc − v) + g_i·(E_inh − v)        τ_e = 100 ms
    dg_e/dt = −g_e/τ_ge (1 ms),  dg_i/dt = −g_i/τ_gi (2 ms)              (g in units of the leak conductance)
    spike when v > v_thresh + θ − θ_offset and not refractory;  v ← v_reset, θ ← θ + θ+
    dθ/dt = −θ/τ_θ  (τ_θ = 1e7 ms; applied once per presentation, see below)

v_rest = v_reset = −65 mV, v_thresh = −52 mV, θ_offset = 20 mV, θ starts at 20 mV, θ+ = 0.05 mV,
E_exc = 0, E_inh = −100 mV, refractory 5 ms (v held at v_reset); the layer starts at v_rest − 40 mV.
Integration: forward Euler with step ``dt`` (Brian 1 integrates these bilinear equations with Euler),
one step being: g ← g·(1 − dt/τ_g) + Δg (the conductance increments of this step's input spikes),
v ← v + dt/τ·(…) (held at v_reset while refractory), threshold, reset, θ update.
Stiff-step guard: where ``dt/τ·(1 + g_e + g_i) > 1`` the Euler step would carry v past the membrane's
instantaneous equilibrium ``v∞ = (v_rest + g_e·E_exc + g_i·E_inh)/(1 + g_e + g_i)`` (and beyond
``2/(dt/τ)`` diverge in growing oscillations); there v ← v∞, the limit of the exact solution for a stiff
step, so that v stays between the reversal potentials as the ODE keeps it. Elsewhere the step is Euler's,
bit for bit. It matters when many neurons fire together: at dt/τ = 0.005 it takes g_i > 199, i.e. about
12 inhibitory spikes of weight 17 arriving in one step (a 400-neuron paper-mode network with all neurons
firing in one step got g_i ≈ 6 800 and, without the guard, kept firing through the input-free rest).
Spike order as in Brian 1 (a spike is propagated after the update of the step that emits it): an
excitatory spike of step t reaches its inhibitory neuron's update at t+1, whose spike reaches the other
excitatory neurons at t+2.

Current-based excitatory neuron (:class:`DiehlCookCurrentLIF`, ``mode: fast``)
------------------------------------------------------------------------------
BindsNET 0.3.4 ``DiehlAndCookNodes`` (Hazan et al., Front. Neuroinform. 12:89, 2018): exact exponential
leak and instantaneous voltage jumps, one step being::

    v ← v_rest + (v − v_rest)·e^(−dt/τ)
    v ← v + x·[refrac ≤ 0];  refrac ← refrac − dt
    s = v ≥ v_thresh + θ;  refrac[s] ← t_ref;  v[s] ← v_reset;  θ ← θ + θ+·Σ_batch s (learning only)
    one_spike: of the m neurons with s, the ⌊u·m⌋-th (u ~ U[0, 1), one per step) emits the spike

(``x`` = Σ w over the input spikes, weights in mV: 1 weight unit = ``w_unit`` = 1 mV). As in BindsNET,
every neuron above threshold is reset and adapts, but only the one picked emits a spike (the stand-in
for fast winner-take-all inhibition). Defaults: rest −65 mV, reset −60 mV, thresh −52 mV, τ 100 ms,
refractory 5 ms, θ+ 0.05 mV, τ_θ 1e7 ms. θ decays (learning only) once per presentation,
``θ ← θ·e^(−T·dt/τ_θ)``: with τ_θ = 1e7 ms the per-step decay of both codes differs from it by < 1e-5 of θ.

Inhibitory neuron (:class:`DiehlCookInhibitoryLIF`)
---------------------------------------------------
Conductance-based (paper): τ_i dv/dt = (v_rest − v) + g_e·(E_exc − v) + g_i·(E_inh,i − v), τ_i = 10 ms,
v_rest −60 mV, v_reset −45 mV, v_thresh −40 mV, refractory 2 ms, E_inh,i = −85 mV, τ_ge 1 ms, τ_gi 2 ms.
Current-based (BindsNET ``LIFNodes``): the same rest/reset/threshold, τ 10 ms, refractory 2 ms, voltage jumps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DiehlCookState",
    "DiehlCookCurrentLIF",
    "DiehlCookConductanceLIF",
    "DiehlCookInhibitoryLIF",
    "decay_path",
    "run_conductance",
]


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: got {value!r}; must be a finite number > 0")


def _finite(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise ValueError(f"{name}: got {value!r}; must be a finite number")


@dataclass
class DiehlCookState:
    """Membrane potential ``v`` [V], remaining refractory steps ``refrac``, threshold adaptation ``theta`` [V]
    (``[R, 1, N]``), and for conductance-based neurons ``g_e``, ``g_i`` (leak-conductance units).

    ``busy`` counts the steps during which some neuron may still be refractory (quiet steps then skip the
    refractory mask; the result is identical to masking every step).
    """

    v: Tensor
    refrac: Tensor
    theta: Tensor | None = None
    g_e: Tensor | None = None
    g_i: Tensor | None = None
    busy: int = 0
    thr: Tensor | None = None  # firing threshold v_thresh + θ (− θ_offset), kept with θ ([R, 1, N])
    #: conductance network (Brian 1 order): the synaptic conductance increment that arrives at this layer's
    #: next step (spikes emitted in one step act on the targets' state update of the next), carried across calls
    pending: Tensor | None = None
    #: input drive already on its way (per-synapse input delays): ``[K, R, B, N]`` conductance increments that
    #: arrive at the next call's first ``K`` steps
    spill: Tensor | None = None


def _settle_stiff(v, ge, gi, k: float, v_rest: float, e_exc: float, e_inh: float, free=None):
    """The stiff-step guard (module docstring): after an Euler step of a conductance membrane, ``v ← v∞`` where
    ``1 + g_e + g_i > 1/k`` (and the neuron is not refractory). Works on torch tensors and numpy arrays alike
    (the same operations in the same order, so the step loop and the numpy engine stay bit-identical)."""
    gsum = ge + gi + 1.0
    over = gsum > 1.0 / k
    if free is not None:
        over &= free
    if over.any():
        vinf = (ge * e_exc + gi * e_inh + v_rest) / gsum
        v[over] = vinf[over]


def _pick_one(s: Tensor, generator: torch.Generator | None, u: Tensor | None = None) -> Tensor:
    """Keep one spike per ``[r, b]`` row of ``s`` (uniformly among the set entries); BindsNET ``one_spike``.

    With ``m`` entries set and ``u ~ U[0, 1)`` (one per row, ``[..., 1]``; pre-drawn, else drawn from
    ``generator``), the ``⌊u·m⌋``-th set entry in index order (``u·m`` in float64) emits the spike."""
    if u is None:
        u = torch.rand((*s.shape[:-1], 1), generator=generator, device=s.device, dtype=s.dtype)
    c = s.cumsum(-1)
    m = c[..., -1:]
    k = torch.minimum(torch.floor(u.to(torch.float64) * m.to(torch.float64)), m.to(torch.float64) - 1)
    win = (c.to(torch.float64) > k).to(torch.int8).argmax(-1, keepdim=True)  # rows without a spike: index 0, s = 0
    return torch.zeros_like(s).scatter_(-1, win, s.gather(-1, win))


def _steps(name: str, t_s: float, dt_s: float) -> int:
    n = round(t_s / dt_s)
    if n < 0 or abs(n * dt_s - t_s) > 1e-9 * max(1.0, abs(t_s)):
        raise ValueError(f"{name}: got {t_s!r} s; must be ≥ 0 and a whole number of steps of dt_s = {dt_s!r} s")
    return int(n)


@dataclass
class DiehlCookCurrentLIF:
    """Current-based adaptive-threshold LIF (BindsNET ``DiehlAndCookNodes``; module docstring).

    :meth:`step` takes ``u``, the voltage input of the step **including the leak's rest term**,
    ``u = x + v_rest·(1 − e^(−dt/τ))`` with ``x`` the voltage jumps [V] (input weights × ``w_unit`` plus
    inhibition); :meth:`drive` forms it for a whole presentation at once. The leak then is
    ``v ← v·e^(−dt/τ) + u`` (= ``v_rest + (v − v_rest)·e^(−dt/τ) + x``). During learning θ decays by
    :meth:`decay_theta` once per presentation (``θ ← θ·e^(−T·dt/τ_θ)``; with τ_θ = 1e7 ms this differs from
    BindsNET's per-step decay by < 1e-5 of θ).
    """

    dt_s: float = 1e-3
    v_rest: float = -65e-3
    v_reset: float = -60e-3
    v_thresh: float = -52e-3
    tau_s: float = 100e-3
    refractory_s: float = 5e-3
    theta_plus: float = 0.05e-3
    tau_theta_s: float = 1e4
    one_spike: bool = True
    w_unit: float = 1e-3

    def __post_init__(self):
        for name in ("dt_s", "tau_s", "tau_theta_s", "w_unit"):
            _positive(name, getattr(self, name))
        for name in ("v_rest", "v_reset", "v_thresh", "refractory_s", "theta_plus"):
            _finite(name, getattr(self, name))
        self.decay = math.exp(-self.dt_s / self.tau_s)
        self.rest_term = self.v_rest * (1.0 - self.decay)
        self.refrac_steps = _steps("refractory_s", self.refractory_s, self.dt_s)

    def init_state(self, shape, device=None, dtype=torch.float32, theta: Tensor | None = None) -> DiehlCookState:
        """State at rest; ``theta`` (``[R, 1, N]``) is carried over when given, else zero."""
        r, _, n = shape
        v = torch.full(tuple(shape), self.v_rest, device=device, dtype=dtype)
        th = theta if theta is not None else torch.zeros(r, 1, n, device=device, dtype=dtype)
        return DiehlCookState(v=v, refrac=torch.zeros(tuple(shape), device=device, dtype=dtype), theta=th,
                              thr=th + self.v_thresh)

    def reset(self, state: DiehlCookState) -> None:
        """Between samples (BindsNET ``reset_state_variables``): v at rest, refractory cleared, θ kept."""
        state.v.fill_(self.v_rest)
        state.refrac.zero_()
        state.busy = 0

    def drive(self, x: Tensor) -> Tensor:
        """``u = x + v_rest·(1 − e^(−dt/τ))`` for voltage jumps ``x`` [V] (any shape)."""
        return x + self.rest_term

    def decay_theta(self, state: DiehlCookState, steps: int) -> None:
        """θ ← θ·e^(−steps·dt/τ_θ) (the decay of a presentation of ``steps`` steps, learning only)."""
        state.theta.mul_(math.exp(-steps * self.dt_s / self.tau_theta_s))
        state.thr = state.theta + self.v_thresh

    def scan(self, u: Tensor, state: DiehlCookState) -> int:
        """Advance over the leading steps of ``u`` ``[K, R, B, N]`` in which no neuron reaches threshold; returns
        their number ``n`` (``K`` if none does). The state is then that of ``n`` calls of :meth:`step`
        (up to rounding: the linear leak is summed in closed form,
        ``v_k = e^(−(k+1)dt/τ)·v_0 + Σ_{j≤k} e^(−(k−j)dt/τ)·u_j``, with the input of refractory neurons
        replaced by the rest term); step ``n`` is left to :meth:`step`. Quiet stretches thus cost a few
        tensor operations instead of a few per step.
        """
        k_steps = u.shape[0]
        if k_steps == 0:
            return 0
        key = (k_steps, u.dtype, u.device, u.dim())
        cache = self.__dict__.setdefault("_scan_cache", {})
        if key not in cache:
            k = torch.arange(k_steps, device=u.device, dtype=u.dtype).view(-1, *([1] * (u.dim() - 1)))
            cache[key] = (k, torch.exp(k * (self.dt_s / self.tau_s)))  # e^(+j·dt/τ): at most e^(K·dt/τ)
        k, inv = cache[key]
        if state.busy > 0:
            u = torch.where(state.refrac - k <= 0, u, self.rest_term)
        acc = torch.cumsum(u * inv, 0).add_(state.v, alpha=self.decay)
        v_all = acc.div_(inv)
        hit = (v_all >= state.thr).view(k_steps, -1).any(1)
        n = int(torch.argmax(hit.to(torch.int8)))  # the first step with a crossing (0 also when none: checked below)
        if n == 0 and not bool(hit[0]):
            n = k_steps
        if n:
            state.v.copy_(v_all[n - 1])
            state.refrac.sub_(float(n))
            state.busy = max(0, state.busy - n)
        return n

    def step(self, u: Tensor | None, state: DiehlCookState, learning: bool = True,
             generator: torch.Generator | None = None, pick: Tensor | None = None) -> tuple[Tensor | None, DiehlCookState]:
        """One step (``u``: see the class docstring; ``None``: no input); returns ``(spikes or None, state)``.
        ``pick``: pre-drawn ``U[0, 1)`` ``[R, B, 1]`` for the one-spike choice (else drawn from ``generator``).

        BindsNET order: leak, input unless refractory, refractory count down, threshold, reset and
        θ += θ+ for **every** neuron above threshold, then (``one_spike``) one of them emits the spike.
        """
        v = state.v
        if state.busy > 0:
            if u is not None:
                u = torch.where(state.refrac <= 0, u, self.rest_term)
            state.refrac.sub_(1.0)
            state.busy -= 1
        if u is None:
            v.mul_(self.decay).add_(self.rest_term)
        else:
            torch.add(u, v, alpha=self.decay, out=v)  # v ← e^(−dt/τ)·v + u, one fused op
        s = v >= state.thr
        if not bool(s.any()):
            return None, state
        state.refrac.masked_fill_(s, float(self.refrac_steps))
        state.busy = self.refrac_steps + 1
        v.masked_fill_(s, self.v_reset)
        s = s.to(v.dtype)
        if learning:
            inc = s.sum(1, keepdim=True).mul_(self.theta_plus) if s.shape[1] > 1 else s * self.theta_plus
            state.theta.add_(inc)
            state.thr.add_(inc)
        if self.one_spike and (s.numel() == s.shape[-1] and float(s.sum()) > 1 or s.numel() > s.shape[-1]):
            s = _pick_one(s, generator, pick)  # (a single crossing needs no pick)
        return s, state


@dataclass
class DiehlCookConductanceLIF:
    """Conductance-based adaptive-threshold LIF of Diehl & Cook (2015) (module docstring).

    :meth:`step` takes the excitatory conductance increments of the step (input weights; leak units) and
    ``inhibition``, the inhibitory conductance increments.
    """

    dt_s: float = 0.5e-3
    v_rest: float = -65e-3
    v_reset: float = -65e-3
    v_thresh: float = -52e-3
    theta_offset: float = 20e-3
    theta_init: float = 20e-3
    tau_s: float = 100e-3
    tau_ge_s: float = 1e-3
    tau_gi_s: float = 2e-3
    e_exc: float = 0.0
    e_inh: float = -100e-3
    refractory_s: float = 5e-3
    theta_plus: float = 0.05e-3
    tau_theta_s: float = 1e4
    v_init_offset: float = -40e-3

    def __post_init__(self):
        for name in ("dt_s", "tau_s", "tau_ge_s", "tau_gi_s", "tau_theta_s"):
            _positive(name, getattr(self, name))
        for name in ("v_rest", "v_reset", "v_thresh", "theta_offset", "theta_init", "e_exc", "e_inh",
                     "refractory_s", "theta_plus", "v_init_offset"):
            _finite(name, getattr(self, name))
        if self.dt_s >= self.tau_ge_s * 2 or self.dt_s >= self.tau_gi_s * 2:
            raise ValueError(f"dt_s: got {self.dt_s!r}; forward Euler needs dt < 2·τ_g (τ_ge {self.tau_ge_s}, τ_gi {self.tau_gi_s})")
        self.k = self.dt_s / self.tau_s
        self.ge_decay = 1.0 - self.dt_s / self.tau_ge_s
        self.gi_decay = 1.0 - self.dt_s / self.tau_gi_s
        self.refrac_steps = _steps("refractory_s", self.refractory_s, self.dt_s)

    def init_state(self, shape, device=None, dtype=torch.float32, theta: Tensor | None = None) -> DiehlCookState:
        r, _, n = shape
        z = torch.zeros(tuple(shape), device=device, dtype=dtype)
        th = theta if theta is not None else torch.full((r, 1, n), self.theta_init, device=device, dtype=dtype)
        return DiehlCookState(v=z + (self.v_rest + self.v_init_offset), refrac=z.clone(), theta=th, g_e=z.clone(),
                              g_i=z.clone(), thr=th + (self.v_thresh - self.theta_offset))

    def reset(self, state: DiehlCookState) -> None:
        """Nothing: the paper does not reset between examples (a 150 ms rest lets the state decay)."""

    def drive(self, x: Tensor) -> Tensor:
        """The input of :meth:`step` is the conductance increment itself."""
        return x

    def decay_theta(self, state: DiehlCookState, steps: int) -> None:
        """θ ← θ·e^(−steps·dt/τ_θ), once per presentation (learning only; τ_θ = 1e7 ms ≫ a presentation)."""
        state.theta.mul_(math.exp(-steps * self.dt_s / self.tau_theta_s))
        state.thr = state.theta + (self.v_thresh - self.theta_offset)

    def step(self, x: Tensor | None, state: DiehlCookState, learning: bool = True,
             generator: torch.Generator | None = None, inhibition: Tensor | None = None) -> tuple[Tensor | None, DiehlCookState]:
        """One Euler step; returns ``(spikes or None, state)``."""
        ge, gi, v = state.g_e, state.g_i, state.v
        ge.mul_(self.ge_decay)
        if x is not None:
            ge.add_(x)
        gi.mul_(self.gi_decay)
        if inhibition is not None:
            gi.add_(inhibition)
        dv = (self.v_rest - v) + ge * (self.e_exc - v) + gi * (self.e_inh - v)
        if state.busy > 0:
            free = state.refrac <= 0
            v.add_(dv * (self.k * free))
            _settle_stiff(v, ge, gi, self.k, self.v_rest, self.e_exc, self.e_inh, free)
            state.refrac.sub_(1.0)
            state.busy -= 1
            s = (v > state.thr) & free
        else:
            v.add_(dv * self.k)
            _settle_stiff(v, ge, gi, self.k, self.v_rest, self.e_exc, self.e_inh)
            s = v > state.thr
        if bool(s.any()):
            state.refrac.masked_fill_(s, float(self.refrac_steps))
            state.busy = self.refrac_steps + 1
            v.masked_fill_(s, self.v_reset)
            s = s.to(v.dtype)
            if learning:
                state.theta.add_(self.theta_plus * s.sum(1, keepdim=True))
                state.thr = state.theta + (self.v_thresh - self.theta_offset)
            return s, state
        return None, state


@dataclass
class DiehlCookInhibitoryLIF:
    """Inhibitory LIF of Diehl & Cook (2015): conductance-based (``conductance=True``) or BindsNET's current-based.

    :meth:`step` takes conductance increments (conductance-based) or voltage jumps [V] (current-based).
    :meth:`advance` lets a current-based layer that receives no input catch up ``n`` steps at once
    (``v ← v_rest + (v − v_rest)·e^(−n·dt/τ)``, the exact result of ``n`` input-free steps).
    """

    dt_s: float = 0.5e-3
    conductance: bool = True
    v_rest: float = -60e-3
    v_reset: float = -45e-3
    v_thresh: float = -40e-3
    tau_s: float = 10e-3
    tau_ge_s: float = 1e-3
    tau_gi_s: float = 2e-3
    e_exc: float = 0.0
    e_inh: float = -85e-3
    refractory_s: float = 2e-3
    v_init_offset: float = -40e-3

    def __post_init__(self):
        for name in ("dt_s", "tau_s", "tau_ge_s", "tau_gi_s"):
            _positive(name, getattr(self, name))
        for name in ("v_rest", "v_reset", "v_thresh", "e_exc", "e_inh", "refractory_s", "v_init_offset"):
            _finite(name, getattr(self, name))
        self.decay = math.exp(-self.dt_s / self.tau_s)
        self.k = self.dt_s / self.tau_s
        self.ge_decay = 1.0 - self.dt_s / self.tau_ge_s
        self.gi_decay = 1.0 - self.dt_s / self.tau_gi_s
        self.refrac_steps = _steps("refractory_s", self.refractory_s, self.dt_s)

    def init_state(self, shape, device=None, dtype=torch.float32) -> DiehlCookState:
        z = torch.zeros(tuple(shape), device=device, dtype=dtype)
        if self.conductance:
            return DiehlCookState(v=z + (self.v_rest + self.v_init_offset), refrac=z.clone(), g_e=z.clone(), g_i=z.clone())
        return DiehlCookState(v=z + self.v_rest, refrac=z.clone())

    def reset(self, state: DiehlCookState) -> None:
        if not self.conductance:
            state.v.fill_(self.v_rest)
            state.refrac.zero_()

    def advance(self, state: DiehlCookState, n: int) -> None:
        """``n`` input-free steps of the current-based layer in closed form."""
        if n > 0:
            state.v.sub_(self.v_rest).mul_(self.decay**n).add_(self.v_rest)
            state.refrac.sub_(float(n))

    def step_after(self, x: Tensor, state: DiehlCookState, n: int) -> tuple[Tensor, DiehlCookState]:
        """Current-based: ``n`` input-free steps (:meth:`advance`) then one step with input ``x`` [V], fused."""
        v = state.v
        dn = self.decay ** (n + 1)
        torch.add(torch.where(state.refrac <= n, x, 0.0), v, alpha=dn, out=v).add_(self.v_rest * (1.0 - dn))
        state.refrac.sub_(float(n + 1))  # (input masked while refractory before this step's count-down)
        s = v >= self.v_thresh
        state.refrac.masked_fill_(s, float(self.refrac_steps))
        v.masked_fill_(s, self.v_reset)
        return s.to(v.dtype), state

    def step(self, x: Tensor | None, state: DiehlCookState) -> tuple[Tensor, DiehlCookState]:
        v = state.v
        if self.conductance:
            ge = state.g_e.mul_(self.ge_decay)
            if x is not None:
                ge.add_(x)
            gi = state.g_i.mul_(self.gi_decay)
            dv = (self.v_rest - v) + ge * (self.e_exc - v) + gi * (self.e_inh - v)
            free = state.refrac <= 0
            v.add_(dv * (self.k * free))
            _settle_stiff(v, ge, gi, self.k, self.v_rest, self.e_exc, self.e_inh, free)
            state.refrac.sub_(1.0)
            s = (v > self.v_thresh) & free
        else:
            v.sub_(self.v_rest).mul_(self.decay).add_(self.v_rest)
            if x is not None:
                v.add_(x * (state.refrac <= 0))
            state.refrac.sub_(1.0)
            s = v >= self.v_thresh
        state.refrac.masked_fill_(s, float(self.refrac_steps))
        v.masked_fill_(s, self.v_reset)
        return s.to(v.dtype), state


def decay_path(g0: Tensor, decay: float, steps: int, x: Tensor | None = None) -> Tensor:
    """The conductance after each of ``steps`` Euler steps ``g ← g·decay + x_t`` (``x`` ``[steps, *g0.shape]``,
    None: no input), ``[steps, *g0.shape]`` — bit-identical to the step loop (``mul_`` then ``add_``): a
    first-order recursive filter (``scipy.signal.lfilter``) computes ``y_t = decay·y_(t−1) + x_t`` with the same
    two rounded operations per step in the tensor's dtype."""
    shape = (steps, *g0.shape)
    if x is None and not bool(g0.any()):
        return torch.zeros(shape, dtype=g0.dtype, device=g0.device)
    from scipy.signal import lfilter

    dt = g0.dtype
    zi = (g0 * decay).detach().cpu().reshape(1, -1).numpy()
    npdt = zi.dtype
    xs = x.detach().cpu().reshape(steps, -1).numpy() if x is not None else np.zeros((steps, zi.shape[1]), dtype=npdt)
    b = np.array([1.0], dtype=npdt)
    a = np.array([1.0, -decay], dtype=npdt)
    y, _ = lfilter(b, a, xs, axis=0, zi=zi)
    return torch.from_numpy(y).to(device=g0.device, dtype=dt).reshape(shape)


def _np(t: Tensor):
    """A numpy view sharing the tensor's memory (CPU, contiguous)."""
    return t.detach().numpy()


def _lin_scan(k: float, v_rest: float, e_exc: float, e_inh: float, ge, gi, v0, free):
    """Euler membrane of a conductance LIF over ``K`` steps with known conductances (float64 closed form):
    ``v_j = a_j·v_(j−1) + c_j``, ``a = 1 − k·f·(1 + g_e + g_i)``, ``c = k·f·(v_rest + g_e·E_exc + g_i·E_inh)``
    (``f``: not refractory at step j) → ``v_j = P_j·(v_0 + Σ_(i≤j) c_i/P_i)``, ``P_j = Π_(i≤j) a_i``.
    None when a step of the window is stiff (``a`` near or below 0: the stiff-step guard applies there)."""
    kf = k if free is None else free * k
    a = 1.0 - kf * (1.0 + ge + gi)
    if (a < 1e-3).any():  # a stiff step in the window (the guard of the step code): the caller steps exactly
        return None
    c = v_rest + gi * e_inh if e_exc == 0.0 else v_rest + ge * e_exc + gi * e_inh
    c = c * kf
    p = torch.cumprod(torch.from_numpy(a), 0).numpy()  # (torch's scans are several times faster than numpy's here)
    v = torch.cumsum(torch.from_numpy(c / p), 0).numpy()
    v += v0
    v *= p
    return v


def _online_update(plastic, s, t: int, x_all, ge_path, ge, decay: float, npdt) -> None:
    """The drive of the columns that spiked at step ``t`` from step ``t+1`` on (``plastic.spike``), and their
    ``g_e`` path recomputed from the step's ``g_e`` (``g ← g·d + x``, as :func:`decay_path`)."""
    from scipy.signal import lfilter

    b1, a1 = np.array([1.0], dtype=npdt), np.array([1.0, -decay], dtype=npdt)
    for r, b, j in zip(*np.nonzero(s)):
        dx = plastic.spike(t, int(r), int(j))
        if dx is None:
            continue
        col = x_all[t + 1:, r, b, j]
        col += dx.astype(npdt)
        ge_path[t + 1:, r, b, j] = lfilter(b1, a1, col, zi=np.array([ge[r, b, j] * npdt(decay)], dtype=npdt))[0]


def run_conductance(exc: DiehlCookConductanceLIF, inh: DiehlCookInhibitoryLIF, drive: Tensor | None, t_steps: int,
                    st: DiehlCookState, ist: DiehlCookState, w_ei: float, w_ie: float, learning: bool = True,
                    horizon: int = 64, plastic=None) -> Tensor:
    """``t_steps`` steps of the Diehl & Cook (2015) conductance network (excitatory ``st`` → one-to-one
    inhibitory ``ist`` with weight ``w_ei`` → all-but-self inhibition ``w_ie``) with a fixed input drive
    ``drive`` ``[T, R, B, N]`` (excitatory conductance increments; None: no input, the rest period).
    Returns the excitatory spikes ``[T, R, B, N]``; the states are advanced in place. CPU tensors.

    Same results as the step loop (:meth:`DiehlCookConductanceLIF.step`, :meth:`DiehlCookInhibitoryLIF.step`;
    Brian 1's order: the excitatory spikes of step t reach the inhibitory layer at step t+1, its spikes reach
    the excitatory layer one step later; the increments still in flight are carried in ``st.pending`` /
    ``ist.pending`` to the next call), computed faster:

    * the excitatory ``g_e`` of every step is one recursive filter of the drive (:func:`decay_path`, exact);
    * quiet stretches — no spike in either layer, no inhibition arriving — are jumped over in closed form:
      every conductance only decays and the Euler membrane update is a linear recursion with known
      coefficients, summed in float64 (:func:`_lin_scan`) over a window of ``horizon`` steps (doubling while
      quiet, up to 8×); the first step with a crossing and the step after a spike are stepped exactly;
    * the exact steps run the same floating-point operations as ``step`` in the same order on numpy views of
      the state (bit-identical to the torch code; a small layer costs a few µs per operation less).
      ``horizon`` 0: every step exactly (a batch of samples in lockstep has a spike almost every step).

    The jumped-over stretches differ from the step loop only by rounding (the float64 closed form of the
    same recursion; membrane ≲ 1e-6 mV, conductances ≲ 1 ulp); the spikes are the same unless a membrane
    ends within that of threshold.

    ``plastic`` (learning, one sample per replica): an object with ``start()`` → the drive change ``[T, R, N]``
    known before the first step (or None) and ``spike(t, r, j)`` → the change of column ``j``'s drive at steps
    ``t+1 …`` caused by its spike at step ``t`` (or None) — the weights written within the presentation
    (:class:`~algorithms.learning.rules.OnlineTripletDrive`, Brian 1's per-event writes). The drive and
    ``g_e``'s path of the column are updated from the step after the spike on (the recursion recomputed from
    the step's ``g_e``: the same operations as the step loop).
    """
    dt = st.v.dtype
    npdt = np.float32 if dt == torch.float32 else np.float64
    x_all = _np(drive.contiguous()).copy() if drive is not None else None
    if plastic is not None and x_all is not None:
        dx0 = plastic.start()
        if dx0 is not None:
            x_all += dx0[:, :, None, :]
            drive = torch.from_numpy(x_all)
    else:
        plastic = None
    ge_path = _np(decay_path(st.g_e, exc.ge_decay, t_steps, drive))
    v, ge, gi, refrac, theta = _np(st.v), _np(st.g_e), _np(st.g_i), _np(st.refrac), _np(st.theta)
    st.thr = st.thr.contiguous()
    thr = _np(st.thr)
    vi, gei, gii, refi = _np(ist.v), _np(ist.g_e), _np(ist.g_i), _np(ist.refrac)
    shape = v.shape
    post = np.zeros((t_steps, *shape), dtype=npdt)
    busy = st.busy
    # constants as the torch code uses them: python floats (cast to the tensor dtype by each operation), the
    # refractory mask k·free in float32 (torch's default dtype for a python float times a bool tensor)
    ke_f, ki_f = np.float32(exc.k), np.float32(inh.k)
    zero32 = np.float32(0.0)
    k_e = float(ke_f) if npdt is np.float32 else exc.k  # the coefficient the float32 steps apply
    k_i = float(ki_f) if npdt is np.float32 else inh.k
    kmax = 8 * max(int(horizon), 1)
    jj = np.arange(kmax, dtype=np.float64).reshape(-1, 1, 1, 1)
    pw = {name: d ** np.arange(1, kmax + 1, dtype=np.float64).reshape(-1, 1, 1, 1)
          for name, d in (("gi", exc.gi_decay), ("gei", inh.ge_decay), ("gii", inh.gi_decay))}
    thr_i = inh.v_thresh
    inhibition = _np(st.pending).copy() if st.pending is not None else None  # Ai → Ae, arriving at step t
    pend = _np(ist.pending).copy() if ist.pending is not None else None  # Ae → Ai, arriving at step t
    k = max(int(horizon), 1)
    t = 0
    while t < t_steps:
        if inhibition is None and pend is None and horizon > 0:  # jump over the steps in which nothing spikes
            kk = min(k, t_steps - t)
            j = jj[:kk]
            g_e = ge_path[t:t + kk].astype(np.float64)
            g_i = gi.astype(np.float64) * pw["gi"][:kk]
            free_e = (refrac.astype(np.float64) - j <= 0) if busy > 0 else None
            ve = _lin_scan(k_e, exc.v_rest, exc.e_exc, exc.e_inh, g_e, g_i, v.astype(np.float64), free_e)
            g_ei = gei.astype(np.float64) * pw["gei"][:kk]
            g_ii = gii.astype(np.float64) * pw["gii"][:kk]
            free_i = refi.astype(np.float64) - j <= 0
            vv = _lin_scan(k_i, inh.v_rest, inh.e_exc, inh.e_inh, g_ei, g_ii, vi.astype(np.float64), free_i)
            if ve is None or vv is None or not (np.isfinite(ve[-1]).all() and np.isfinite(vv[-1]).all()):
                m = 0  # a stiff (or divergent) window: step one by one
            else:
                hit_e = ve > thr
                if free_e is not None:
                    hit_e &= free_e
                hit = hit_e.reshape(kk, -1).any(1) | ((vv > thr_i) & free_i).reshape(kk, -1).any(1)
                m = int(hit.argmax()) if hit.any() else kk
            if m:
                v[...] = ve[m - 1]
                ge[...] = ge_path[t + m - 1]
                gi[...] = g_i[m - 1]
                if busy > 0:
                    refrac -= min(m, busy)
                    busy = max(0, busy - m)
                vi[...] = vv[m - 1]
                gei[...] = g_ei[m - 1]
                gii[...] = g_ii[m - 1]
                refi -= m
            k = min(2 * k, kmax) if m == kk else max(int(horizon), 1)
            t += m
            if t >= t_steps:
                break
        # -- one exact step: DiehlCookConductanceLIF.step, then DiehlCookInhibitoryLIF.step -------------
        ge *= exc.ge_decay
        if x_all is not None:
            ge += x_all[t]
        gi *= exc.gi_decay
        if inhibition is not None:
            gi += inhibition
        dv = (exc.v_rest - v) + ge * (exc.e_exc - v) + gi * (exc.e_inh - v)
        if busy > 0:
            free = refrac <= 0
            v += dv * np.where(free, ke_f, zero32)
            _settle_stiff(v, ge, gi, exc.k, exc.v_rest, exc.e_exc, exc.e_inh, free)
            refrac -= 1.0
            busy -= 1
            s = (v > thr) & free
        else:
            v += dv * exc.k
            _settle_stiff(v, ge, gi, exc.k, exc.v_rest, exc.e_exc, exc.e_inh)
            s = v > thr
        spiked = bool(s.any())
        if spiked:
            refrac[s] = exc.refrac_steps
            busy = exc.refrac_steps + 1
            v[s] = exc.v_reset
            sf = s.astype(npdt)
            if learning:
                theta += exc.theta_plus * sf.sum(1, keepdims=True)
                np.add(theta, exc.v_thresh - exc.theta_offset, out=thr)
            post[t] = sf
            if plastic is not None and t + 1 < t_steps:
                _online_update(plastic, s, t, x_all, ge_path, ge, exc.ge_decay, npdt)
        gei *= inh.ge_decay
        if pend is not None:
            gei += pend
        pend = sf * w_ei if spiked else None  # reaches the inhibitory layer at the next step
        gii *= inh.gi_decay
        dv = (inh.v_rest - vi) + gei * (inh.e_exc - vi) + gii * (inh.e_inh - vi)
        free = refi <= 0
        vi += dv * np.where(free, ki_f, zero32)
        _settle_stiff(vi, gei, gii, inh.k, inh.v_rest, inh.e_exc, inh.e_inh, free)
        refi -= 1.0
        si = (vi > thr_i) & free
        if si.any():
            refi[si] = inh.refrac_steps
            vi[si] = inh.v_reset
            sif = si.astype(npdt)
            inhibition = (sif.sum(-1, keepdims=True) - sif) * w_ie
        else:
            inhibition = None
        t += 1
    st.busy = busy
    st.pending = torch.from_numpy(inhibition) if inhibition is not None else None
    ist.pending = torch.from_numpy(pend) if pend is not None else None
    return torch.from_numpy(post)

