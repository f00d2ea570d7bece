"""Resistive RAM (filamentary oxide) cell: inference writes and the NeuroSim nonlinear pulse model.

References
----------
* Chen, Peng & Yu, "NeuroSim: a circuit-level macro model for benchmarking neuro-inspired
  architectures in online learning", IEEE TCAD 37(12) 3067 (2018), eqs. 5 and 8–10, Table I;
  MLP+NeuroSim V3.0 manual Table II (device parameters); docs/devices.md.
* Chen C.-Y. et al., IEEE Trans. Comput. 64, 180 (2015): stuck-at rates SA0 1.75 %, SA1 9.04 %.
* Yang et al., Nat. Nanotech. 3, 429 (2008): ``I = a·sinh(b·V)`` I–V of oxide memristors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from .base import (
    Device,
    DeviceState,
    apply_mask,
    apply_stuck,
    check_choice,
    check_range,
    quantize_levels,
    randn,
    sample_stuck,
    state_work_dtype,
    work_dtype,
)
from .nonlinearity import NL_MAX, nl_to_a, nl_to_a_tensor

__all__ = ["RRAM", "work_dtype", "state_work_dtype"]  # the dtype helpers live in base (re-exported)


def _geom_sum_ratio(m: Tensor, a: Tensor) -> Tensor:
    """``Σ_{k<m} r^k = (1 − r^m)/(1 − r)`` with ``r = e^(−1/a)``, stable for a → ∞ (→ m)."""
    return torch.expm1(-m / a) / torch.expm1(-1.0 / a)


@dataclass
class RRAM(Device):
    """Multi-level RRAM: program-and-verify writes for inference, NeuroSim pulses for learning.

    **Inference write** (``program``), per cell, SI units:

    * ``G_prog = q_L(clip(G_T, G_min, G_max)) + N(0, σ_prog·(G_max − G_min))``, clipped to the
      cell's window, where ``q_L`` rounds to ``levels`` equally spaced states.
    * Stuck-at faults: a Bernoulli mask drawn once per array in ``new_state``; SA0 cells read the
      cell's ``G_min`` (high-resistance state), SA1 cells its ``G_max``; pulses and writes never move
      them (Chen et al. 2015 measured SA0 ≈ 1.75 %, SA1 ≈ 9.04 % on a 4 Mb HfOx array).
    * ``read`` returns the stored conductance; the white read noise ``I = V·G·(1 + N(0, σ_read))``
      (NeuroSim ``RealDevice``) is applied by the circuits layer on every MVM via :meth:`read_noise_rel`.

    **Learning pulses** (``pulse``; NeuroSim, Chen/Peng/Yu TCAD 2018 eqs. 8–10). ``P_max`` pulses
    (``levels_ltp``/``levels_ltd``) traverse the window along

        G_LTP(P) = B_p·(1 − e^(−P/A_p)) + G_min,   B_p = (G_max − G_min)/(1 − e^(−P_max,p/A_p))
        G_LTD(P) = G_max − B_d·(1 − e^(−P/A_d)),   B_d = (G_max − G_min)/(1 − e^(−P_max,d/A_d))

    which, written per pulse, needs no inversion: n potentiating pulses give
    ``G ← G + (G∞p − G)·(1 − e^(−n/A_p))`` with ``G∞p = G_min + B_p`` and n depressing pulses
    ``G ← G − (G − G∞d)·(1 − e^(−n/A_d))`` with ``G∞d = G_max − B_d``; then clip to the window.
    ``A = a·P_max`` where ``a`` solves ``d(a) = 0.0989949·|NL|`` (brentq, once at construction; see
    :mod:`device_models.nonlinearity`). The sign of ``nl_ltd`` (NeuroSim writes LTD labels as
    negative) is ignored: LTD is always the mirrored, concave-down-in-time curve.

    * Cycle-to-cycle: ``G += N(0, σ_c2c·(G_max − G_min))·sqrt(|n|)`` on pulsed cells (NeuroSim).
    * Device-to-device (drawn in ``new_state``): ``NL_cell = NL + N(0, σ_d2d,NL)`` → per-cell ``A``
      (``|NL_cell|`` is used; vectorised bisection); ``G_max,cell = G_max·(1 + N(0, σ_gmax))``,
      ``G_min,cell = G_min·(1 + N(0, σ_gmin))`` (NeuroSim ``maxConductanceVar``/``minConductanceVar``,
      here relative), kept ordered and ≥ 0.
    * Write energy (TCAD eq. 5): ``E = G·V_w²·T_w`` per pulse, with ``G`` the conductance before each
      pulse along the noise-free trajectory (closed-form geometric sum for n pulses), ``V_w`` =
      ``v_write_ltp`` or ``v_write_ltd``. Half-select and wire charging are circuit-level costs.

    **I–V** (``iv``): ``"linear"`` (Ohm) or ``"sinh"``: ``I = a·sinh(b·V)`` with ``a = G/b`` so that
    the small-signal conductance at 0 V is the stored ``G``; ``b = iv_sinh_b`` [1/V]. NeuroSim's
    ``NL_IV = I(V_w)/I(V_w/2) = 2·cosh(b·V_w/2)``; NL_IV = 10 at V_w = 2 V gives b ≈ 2.29 V⁻¹ [est].

    Defaults: TaOx/HfOx of Wu et al., VLSI 2018, as tabulated by NeuroSim (TCAD 2018; V3.0 manual
    Table II): G_max 10 µS (R_on 100 kΩ), on/off 10, 128/128 pulses, NL 0.04/−0.63, σ_c2c 3.7 %,
    ±1.6 V / 50 ns pulses. ``sigma_prog`` = 3.7 % reuses the c2c figure as the single-shot
    programming error [est]. ``v_read`` 0.2 V, ``t_read_s`` 10 ns are typical analog reads
    (docs/devices.md). Stuck-at rates, d2d spreads and read noise default to 0 (a clean array).
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
    # --- NeuroSim pulse model ---
    levels_ltp: int = 128
    levels_ltd: int = 128
    nl_ltp: float = 0.04
    nl_ltd: float = -0.63
    sigma_c2c: float = 0.037
    sigma_d2d_nl: float = 0.0
    sigma_d2d_gmax_rel: float = 0.0
    sigma_d2d_gmin_rel: float = 0.0
    v_write_ltp: float = 1.6
    v_write_ltd: float = -1.6
    t_write_s: float = 50.0e-9
    # --- I–V ---
    iv: str = "linear"
    iv_sinh_b: float = 2.29

    name: ClassVar[str] = "rram"
    pulsed: ClassVar[bool] = True

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
        check_range("levels_ltp", self.levels_ltp, lo=1)
        check_range("levels_ltd", self.levels_ltd, lo=1)
        check_range("nl_ltp", self.nl_ltp, lo=-NL_MAX, hi=NL_MAX)
        check_range("nl_ltd", self.nl_ltd, lo=-NL_MAX, hi=NL_MAX)
        check_range("sigma_c2c", self.sigma_c2c, lo=0.0)
        check_range("sigma_d2d_nl", self.sigma_d2d_nl, lo=0.0)
        check_range("sigma_d2d_gmax_rel", self.sigma_d2d_gmax_rel, lo=0.0)
        check_range("sigma_d2d_gmin_rel", self.sigma_d2d_gmin_rel, lo=0.0)
        check_range("v_write_ltp", abs(self.v_write_ltp), lo=0.0, lo_open=True)
        check_range("v_write_ltd", abs(self.v_write_ltd), lo=0.0, lo_open=True)
        check_range("t_write_s", self.t_write_s, lo=0.0, lo_open=True)
        check_choice("iv", self.iv, ("linear", "sinh"))
        check_range("iv_sinh_b", self.iv_sinh_b, lo=0.0, lo_open=True)
        # NL → A once, at construction (a scalar root-find)
        self._a_ltp = nl_to_a(self.nl_ltp)
        self._a_ltd = nl_to_a(self.nl_ltd)

    # -- derived ---------------------------------------------------------------------------
    @property
    def on_off_ratio(self) -> float:
        return self.g_max / self.g_min if self.g_min > 0 else float("inf")

    @property
    def a_ltp(self) -> float:
        """Normalised LTP curvature ``a_p`` (``A_p = a_p·levels_ltp`` pulses)."""
        return self._a_ltp

    @property
    def a_ltd(self) -> float:
        """Normalised LTD curvature ``a_d`` (``A_d = a_d·levels_ltd`` pulses)."""
        return self._a_ltd

    @property
    def nonlinear_iv(self) -> bool:  # type: ignore[override]
        return self.iv == "sinh"

    def g_ltp_curve(self, p) -> Tensor:
        """Closed-form nominal LTP curve ``G_LTP(P)`` [S] from ``G_min`` (TCAD 2018 eq. 8)."""
        p = torch.as_tensor(p, dtype=torch.float64)
        a = self._a_ltp * self.levels_ltp
        b = (self.g_max - self.g_min) / -math.expm1(-self.levels_ltp / a)
        return (b * -torch.expm1(-p / a) + self.g_min).clamp(self.g_min, self.g_max)

    def g_ltd_curve(self, p) -> Tensor:
        """Closed-form nominal LTD curve ``G_LTD(P)`` [S] from ``G_max``."""
        p = torch.as_tensor(p, dtype=torch.float64)
        a = self._a_ltd * self.levels_ltd
        b = (self.g_max - self.g_min) / -math.expm1(-self.levels_ltd / a)
        return (self.g_max - b * -torch.expm1(-p / a)).clamp(self.g_min, self.g_max)

    # -- I–V -------------------------------------------------------------------------------
    def current(self, g: Tensor, v: Tensor) -> Tensor:
        """``I = G·V`` (linear) or ``I = (G/b)·sinh(b·V)`` (sinh)."""
        if self.iv == "sinh":
            b = self.iv_sinh_b
            return g / b * torch.sinh(b * v)
        return g * v

    def current_derivative(self, g: Tensor, v: Tensor) -> Tensor:
        """``∂I/∂V = G`` (linear) or ``G·cosh(b·V)`` (sinh)."""
        if self.iv == "sinh":
            return g * torch.cosh(self.iv_sinh_b * v)
        return g * torch.ones_like(v)

    # -- state -----------------------------------------------------------------------------
    def sample_d2d(self, shape, generator, dtype):
        d2d = {"stuck": sample_stuck(shape, generator, self.p_stuck_off, self.p_stuck_on)}
        if self.sigma_d2d_gmax_rel > 0 or self.sigma_d2d_gmin_rel > 0:
            gmax = self.g_max * (1.0 + self.sigma_d2d_gmax_rel * randn(shape, generator, dtype))
            gmin = (self.g_min * (1.0 + self.sigma_d2d_gmin_rel * randn(shape, generator, dtype))).clamp(min=0.0)
            # keep every window open: G_max,cell ≥ G_min,cell + 1 % of the nominal window
            gmax = torch.maximum(gmax, gmin + 0.01 * (self.g_max - self.g_min))
            d2d["g_max"], d2d["g_min"] = gmax, gmin
        if self.sigma_d2d_nl > 0:
            nl_p = self.nl_ltp + self.sigma_d2d_nl * randn(shape, generator, torch.float64)
            nl_d = abs(self.nl_ltd) + self.sigma_d2d_nl * randn(shape, generator, torch.float64)
            d2d["a_ltp"] = nl_to_a_tensor(nl_p).to(dtype)
            d2d["a_ltd"] = nl_to_a_tensor(nl_d).to(dtype)
        return d2d

    def new_state(self, shape, generator, dtype=torch.float32) -> DeviceState:
        """Fresh cells at their own ``G_min`` (the formed, reset state)."""
        state = super().new_state(shape, generator, dtype)
        g = state.d2d["g_min"].clone() if "g_min" in state.d2d else state.g
        return state.replace(g=apply_stuck(g, state, *self.window(state)))

    def window(self, state: DeviceState):
        """Per-cell ``(G_min, G_max)`` [S] (tensors with d2d spread, else floats)."""
        return state.d2d.get("g_min", self.g_min), state.d2d.get("g_max", self.g_max)

    # -- operations ------------------------------------------------------------------------
    def program(self, state: DeviceState, g_target: Tensor, generator: torch.Generator) -> DeviceState:
        gmin, gmax = self.window(state)
        g = g_target.to(dtype=state.g.dtype, device=state.g.device).clamp(self.g_min, self.g_max)
        g = quantize_levels(g, self.g_min, self.g_max, self.levels)
        if self.sigma_prog > 0:
            g = g + randn(g.shape, generator, g.dtype) * self.sigma_prog * (self.g_max - self.g_min)
        g = _clip(g, gmin, gmax)
        return state.replace(g=apply_stuck(g, state, gmin, gmax))

    def read(self, state: DeviceState, t: float, generator: torch.Generator) -> Tensor:
        """Stored conductance (no drift in this model); white read noise is per MVM (circuits layer)."""
        gmin, gmax = self.window(state)
        return apply_stuck(state.g, state, gmin, gmax)

    def pulse_step(self, state: DeviceState, direction: int) -> Tensor:
        """Nominal |ΔG| [S] of one pulse at each cell's G: ``(G∞p − G)(1 − e^(−1/A_p))`` (LTP) or
        ``(G − G∞d)(1 − e^(−1/A_d))`` (LTD), nominal A and window (no d2d, no noise)."""
        wd = state_work_dtype(state.g)
        g = state.g.to(wd)
        rng = self.g_max - self.g_min
        if direction > 0:
            big_a = self._a_ltp * self.levels_ltp
            g_inf = self.g_min + rng / -math.expm1(-self.levels_ltp / big_a)
            return (g_inf - g) * -math.expm1(-1.0 / big_a)
        big_a = self._a_ltd * self.levels_ltd
        g_inf = self.g_max - rng / -math.expm1(-self.levels_ltd / big_a)
        return (g - g_inf) * -math.expm1(-1.0 / big_a)

    def pulse(self, state: DeviceState, n_pulses: Tensor, generator: torch.Generator, mask: Tensor | None = None):
        """Apply signed pulse counts (``> 0`` potentiate/LTP, ``< 0`` depress/LTD) to every cell at once.

        Returns ``(state, energy_J)``; ``energy_J`` is the total write energy [J] of the call
        (0-d tensor), ``Σ_cells Σ_pulses G·V_w²·T_w``. Cells outside ``mask`` get no pulse.
        """
        g0 = state.g
        wd = state_work_dtype(g0)
        n = apply_mask(torch.as_tensor(n_pulses, device=g0.device).to(wd).round().expand(g0.shape), mask)
        g = g0.to(wd)
        gmin, gmax = self.window(state)
        gmin = gmin.to(wd) if torch.is_tensor(gmin) else gmin
        gmax = gmax.to(wd) if torch.is_tensor(gmax) else gmax
        rng = gmax - gmin
        m = n.abs()
        pos = n > 0

        # per-cell curvature A [pulses] and asymptote G∞ of the branch each cell moves on:
        # LTP: G∞p = G_min + B_p (above G_max); LTD: G∞d = G_max − B_d (below G_min)
        def branch(key: str, a_nominal: float, p_max: int):
            if key in state.d2d:
                big_a = state.d2d[key].to(wd) * p_max
                return big_a, rng / -torch.expm1(-p_max / big_a)
            big_a = a_nominal * p_max
            return big_a, rng / -math.expm1(-p_max / big_a)

        a_p, b_p = branch("a_ltp", self._a_ltp, self.levels_ltp)
        a_d, b_d = branch("a_ltd", self._a_ltd, self.levels_ltd)
        def as_t(x):
            return torch.as_tensor(x, dtype=wd, device=g.device)

        big_a = torch.where(pos, as_t(a_p), as_t(a_d))
        g_inf = torch.where(pos, as_t(gmin + b_p), as_t(gmax - b_d))
        bound = torch.where(pos, as_t(gmax), as_t(gmin))

        # deterministic update along the curve (both branches): G ← G + (G∞ − G)·(1 − e^(−m/A))
        gap = g_inf - g
        g_new = g + gap * -torch.expm1(-m / big_a)

        # write energy on the noise-free trajectory, G_k = G∞ − (G∞ − G)·r^k (r = e^(−1/A)) until the
        # curve crosses the window bound after k* pulses, then the bound: Σ_{k<m} G_k in closed form
        with torch.no_grad():
            k_in = torch.ceil(big_a * torch.log(gap / (g_inf - bound))).clamp(min=0)
            k_in = torch.minimum(k_in, m)
            s_g = k_in * g_inf - gap * _geom_sum_ratio(k_in, big_a) + (m - k_in) * bound
            stuck = state.d2d.get("stuck")
            if stuck is not None:
                # a stuck cell takes every pulse at its (unchanging) stuck conductance
                s_g = torch.where(stuck != 0, m * g, s_g)
            v2 = torch.where(pos, as_t(self.v_write_ltp**2), as_t(self.v_write_ltd**2))
            energy = (s_g * v2).sum() * self.t_write_s

        # cycle-to-cycle noise on pulsed cells
        if self.sigma_c2c > 0:
            z = randn(g.shape, generator, g0.dtype).to(wd)
            g_new = g_new + z * (self.sigma_c2c * rng) * torch.sqrt(m)
        g_new = _clip(g_new, gmin, gmax).to(g0.dtype)
        g_new = apply_stuck(g_new, state, *self.window(state))
        return state.replace(g=g_new), energy.to(g0.dtype)


def _clip(g: Tensor, lo, hi) -> Tensor:
    """Clip to per-cell (tensor) or scalar bounds."""
    if torch.is_tensor(lo) or torch.is_tensor(hi):
        lo_t = torch.as_tensor(lo, dtype=g.dtype, device=g.device)
        hi_t = torch.as_tensor(hi, dtype=g.dtype, device=g.device)
        return torch.minimum(torch.maximum(g, lo_t), hi_t)
    return g.clamp(lo, hi)
