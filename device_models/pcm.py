"""Phase-change memory: IBM statistical inference model and a gradual-SET / abrupt-RESET pulse model.

References
----------
* Nandakumar et al., "Phase-change memory models for deep learning training and inference",
  ICECS 2019; Joshi et al., Nat. Commun. 11, 2473 (2020). Equations and coefficients as
  implemented in IBM aihwkit ``inference/noise/pcm.py`` (``PCMLikeNoiseModel``); docs/devices.md.
* Nandakumar et al., "A phase-change memory model for neuromorphic computing", J. Appl. Phys. 124,
  152135 (2018), in the linearised form of Demirag et al. (``YigitDemirag/srnn-pcm``), docs/devices.md.
* Le Gallo et al., Adv. Electron. Mater. 4, 1700627 (2018): drift; global drift compensation
  (done by the circuits layer).
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
    check_range,
    quantize_levels,
    randn,
    sample_stuck,
    state_work_dtype,
)

__all__ = ["PCM"]

_G_T_FLOOR = 1.0e-7  # aihwkit _ZERO_CLIP: g_T is clipped here before ln(g_T)


def _t(x) -> Tensor:
    """Tensors pass through; Python numbers become float64 tensors (not torch's float32 default)."""
    return x if torch.is_tensor(x) else torch.as_tensor(x, dtype=torch.float64)


def _as_pair(name, value) -> tuple:
    try:
        vals = tuple(float(v) for v in value)
    except TypeError:
        vals = ()
    if len(vals) != 2:
        from .base import DeviceParameterError

        raise DeviceParameterError(f"{name}: got {value!r}; expected two numbers")
    return vals


@dataclass
class PCM(Device):
    """Doped-GST mushroom PCM cell: IBM statistical inference model + Nandakumar 2018 pulse model.

    Let ``g_T = G_T/g_max`` (target, normalised; ``g_max`` 25 µS as in aihwkit/Joshi 2020).

    **Programming** (``program``; iterative program-and-verify leaves Gaussian error):
        ``G_prog = G_T + prog_noise_scale·σ_prog·N(0,1)``, clamped ≥ 0, with
        ``σ_prog = (c0 + c1·g_T + c2·g_T²) µS · (g_max/25 µS)``, ``c = (0.26348, 1.9650, −1.1731)``.
        The target is first clipped to ``[g_min, g_max]`` (and rounded to ``levels`` if set); the
        programmed value may exceed ``g_max`` by the noise, as in aihwkit.

    **Drift** (``read``): ``G_drift(t) = G_prog·((t + t0)/t0)^(−ν)``, ``t0`` = 20 s, where ``t`` is the
        time since programming (aihwkit's ``t_inference``). The exponent ``ν = drift_scale·|N(μ_ν, σ_ν)|``
        with ``μ_ν = clip(−0.0155·ln g_T + 0.0244, 0.049, 0.1)``, ``σ_ν = clip(−0.0125·ln g_T − 0.0059,
        0.008, 0.045)`` (``g_T`` floored at 1e-7) is drawn **at programming**, from the target: the
        exponent belongs with the programmed (amorphous) state, so every ``program`` (and every
        pulse that changes a cell) draws it anew, and it is kept in ``state.d2d["nu"]``.

    **1/f read noise** (``read``; accumulated since programming, ``S_G/G² = Q/f``):
        ``G(t) = G_drift + |G_drift|·read_noise_scale·σ_nG·N(0,1)``, clamped ≥ 0, with
        ``σ_nG = Q_s·sqrt(ln((t + t0 + t_read)/(2·t_read)))``, ``t_read`` = 250 ns,
        ``Q_s = min(0.0088/max((G_prog/g_max)^0.65, 1e-3), 0.2)``. Sampled anew on every ``read``
        call from the generator (aihwkit samples it once per ``drift_analog_weights``; the
        circuits layer calls ``read`` once per evaluation time). ``read(state, 0)`` is the
        reference read at the end of programming (1/f noise integrated up to t0).

    **Short-term per-MVM noise**: ``sigma_read`` (relative, white), applied on every MVM by the
        circuits layer through :meth:`read_noise_rel`. 0 by default, so the model equals aihwkit's
        ``PCMLikeNoiseModel``; aihwkit's docs add ``forward.w_noise = 0.02`` (additive, of w_max)
        for chip-like short-term noise — the ``pcm_ibm`` preset uses ``sigma_read`` = 0.02.

    **Learning pulses** (``pulse``; Nandakumar 2018, linearised by Demirag et al. srnn-pcm; all
    conductances in the reference units, published with ``G_ref`` = 20 µS and rescaled by
    ``s = g_max/pulse_g_max_ref``, as aihwkit rescales its programming polynomial):

    * partial SET (``n > 0``, each pulse in turn): ``ΔG ~ s·N(μ, σ)``, ``μ = 0.892 µS − 0.084·G/s``,
      ``σ = 0.575 µS + 0.09·G/s``; ``G ← clip(G + ΔG, s·0.1 µS, g_max)``. The mean step vanishes
      at G ≈ 10.6·s µS (soft saturation). ``pulse_noise_scale`` multiplies σ (0: deterministic).
    * RESET (``n < 0``): abrupt melt-quench, ``G ← max(s·N(0.1 µS, 0.01 µS), s·0.01 µS)`` whatever |n|.
    * Energy: ``e_set`` per SET pulse, ``e_reset`` per RESET pulse ([est] docs/devices.md:
      ~100 µA·1 V·50–100 ns → 5 pJ; ~300 µA·1.5 V·50 ns → 20 pJ).
    * Write pulse width ``t_write_s`` 50 ns (SET pulses of 50–100 ns [est]; write latency only).
    * Pulsed cells get a fresh drift exponent for their new conductance.

    The SET loop runs over pulse index up to ``max|n|`` (the step depends on G), vectorised over cells.
    """

    g_max: float = 25.0e-6
    g_min: float = 0.0
    levels: int | None = None
    prog_coeff: tuple = (0.26348, 1.9650, -1.1731)
    prog_coeff_g_max_ref: float = 25.0e-6
    t0_s: float = 20.0
    drift_mu_coeff: tuple = (-0.0155, 0.0244)
    drift_mu_clip: tuple = (0.049, 0.1)
    drift_sigma_coeff: tuple = (-0.0125, -0.0059)
    drift_sigma_clip: tuple = (0.008, 0.045)
    read_noise_q_coeff: float = 0.0088
    read_noise_q_exp: float = 0.65
    read_noise_q_max: float = 0.2
    t_read_s: float = 250.0e-9
    prog_noise_scale: float = 1.0
    read_noise_scale: float = 1.0
    drift_scale: float = 1.0
    sigma_read: float = 0.0
    p_stuck_off: float = 0.0
    p_stuck_on: float = 0.0
    v_read: float = 0.2
    # --- learning pulses (Nandakumar 2018 / srnn-pcm), reference units ---
    pulse_g_max_ref: float = 20.0e-6
    set_dg_mean: tuple = (0.892e-6, -0.084)
    set_dg_std: tuple = (0.575e-6, 0.09)
    set_g_floor: float = 0.1e-6
    reset_g: float = 0.1e-6
    reset_g_std: float = 0.01e-6
    reset_g_floor: float = 0.01e-6
    pulse_noise_scale: float = 1.0
    e_set: float = 5.0e-12
    e_reset: float = 2.0e-11
    t_write_s: float = 50.0e-9

    name: ClassVar[str] = "pcm"
    pulsed: ClassVar[bool] = True

    def __post_init__(self):
        check_range("g_min", self.g_min, lo=0.0)
        check_range("g_max", self.g_max, lo=self.g_min, lo_open=True)
        if self.levels is not None:
            check_range("levels", self.levels, lo=2)
        self.prog_coeff = tuple(float(c) for c in self.prog_coeff)
        if not self.prog_coeff:
            check_range("len(prog_coeff)", 0, lo=1)
        check_range("prog_coeff_g_max_ref", self.prog_coeff_g_max_ref, lo=0.0, lo_open=True)
        check_range("t0_s", self.t0_s, lo=0.0, lo_open=True)
        self.drift_mu_coeff = _as_pair("drift_mu_coeff", self.drift_mu_coeff)
        self.drift_mu_clip = _as_pair("drift_mu_clip", self.drift_mu_clip)
        self.drift_sigma_coeff = _as_pair("drift_sigma_coeff", self.drift_sigma_coeff)
        self.drift_sigma_clip = _as_pair("drift_sigma_clip", self.drift_sigma_clip)
        check_range("drift_mu_clip[0]", self.drift_mu_clip[0], lo=0.0)
        check_range("drift_mu_clip[1]", self.drift_mu_clip[1], lo=self.drift_mu_clip[0])
        check_range("drift_sigma_clip[0]", self.drift_sigma_clip[0], lo=0.0)
        check_range("drift_sigma_clip[1]", self.drift_sigma_clip[1], lo=self.drift_sigma_clip[0])
        check_range("read_noise_q_coeff", self.read_noise_q_coeff, lo=0.0)
        check_range("read_noise_q_exp", self.read_noise_q_exp, lo=0.0)
        check_range("read_noise_q_max", self.read_noise_q_max, lo=0.0)
        check_range("t_read_s", self.t_read_s, lo=0.0, lo_open=True)
        check_range("prog_noise_scale", self.prog_noise_scale, lo=0.0)
        check_range("read_noise_scale", self.read_noise_scale, lo=0.0)
        check_range("drift_scale", self.drift_scale, lo=0.0)
        check_range("sigma_read", self.sigma_read, lo=0.0)
        check_range("p_stuck_off", self.p_stuck_off, lo=0.0, hi=1.0)
        check_range("p_stuck_on", self.p_stuck_on, lo=0.0, hi=1.0)
        check_range("p_stuck_off + p_stuck_on", self.p_stuck_off + self.p_stuck_on, hi=1.0)
        check_range("v_read", self.v_read, lo=0.0, lo_open=True)
        check_range("pulse_g_max_ref", self.pulse_g_max_ref, lo=0.0, lo_open=True)
        self.set_dg_mean = _as_pair("set_dg_mean", self.set_dg_mean)
        self.set_dg_std = _as_pair("set_dg_std", self.set_dg_std)
        check_range("set_g_floor", self.set_g_floor, lo=0.0, hi=self.pulse_g_max_ref)
        check_range("reset_g", self.reset_g, lo=0.0, hi=self.pulse_g_max_ref)
        check_range("reset_g_std", self.reset_g_std, lo=0.0)
        check_range("reset_g_floor", self.reset_g_floor, lo=0.0)
        check_range("pulse_noise_scale", self.pulse_noise_scale, lo=0.0)
        check_range("e_set", self.e_set, lo=0.0)
        check_range("e_reset", self.e_reset, lo=0.0)
        check_range("t_write_s", self.t_write_s, lo=0.0, lo_open=True)

    # -- model pieces (public so tests and users can evaluate the closed forms) --------------
    def sigma_prog(self, g_target) -> Tensor:
        """Programming-noise σ [S] at target conductance ``g_target`` [S] (before ``prog_noise_scale``)."""
        g_t = _t(g_target) / self.g_max
        sig = torch.zeros_like(g_t)
        for i, c in enumerate(self.prog_coeff):
            sig = sig + c * g_t**i
        return sig * 1.0e-6 * (self.g_max / self.prog_coeff_g_max_ref)

    def drift_mu_sigma(self, g_target) -> tuple[Tensor, Tensor]:
        """``(μ_ν, σ_ν)`` of the drift exponent at target ``g_target`` [S] (before ``drift_scale``)."""
        g_t = (_t(g_target) / self.g_max).abs().clamp(min=_G_T_FLOOR)
        ln = torch.log(g_t)
        mu = (self.drift_mu_coeff[0] * ln + self.drift_mu_coeff[1]).clamp(*self.drift_mu_clip)
        sig = (self.drift_sigma_coeff[0] * ln + self.drift_sigma_coeff[1]).clamp(*self.drift_sigma_clip)
        return mu, sig

    def read_noise_sigma_rel(self, g_prog, t) -> Tensor:
        """Relative σ of the accumulated 1/f noise at ``t`` s after programming (``σ_nG/G_drift``).

        ``t`` is a float or a per-cell tensor of ages (cells written at different times)."""
        g_rel = (_t(g_prog) / self.g_max).abs()
        q = (self.read_noise_q_coeff / (g_rel**self.read_noise_q_exp).clamp(min=1e-3)).clamp(max=self.read_noise_q_max)
        if torch.is_tensor(t):
            tt = t.to(torch.float64) + self.t0_s
            return q * torch.sqrt(torch.log((tt + self.t_read_s) / (2.0 * self.t_read_s))).to(q.dtype)
        tt = float(t) + self.t0_s
        return q * math.sqrt(math.log((tt + self.t_read_s) / (2.0 * self.t_read_s)))

    def drift_factor(self, nu: Tensor, t) -> Tensor:
        """``((t + t0)/t0)^(−ν)`` (``t`` a float or a per-cell tensor of ages)."""
        if torch.is_tensor(t):
            return torch.exp(-nu * torch.log1p(t.to(torch.float64).clamp(min=0.0) / self.t0_s).to(nu.dtype))
        if t <= 0:
            return torch.ones_like(nu)
        return torch.exp(-nu * math.log((float(t) + self.t0_s) / self.t0_s))

    def _draw_nu(self, g_target: Tensor, generator) -> Tensor:
        mu, sig = self.drift_mu_sigma(g_target)
        z = randn(g_target.shape, generator, g_target.dtype)
        return (mu + sig * z).abs() * self.drift_scale

    # -- state -----------------------------------------------------------------------------
    def sample_d2d(self, shape, generator, dtype):
        return {"stuck": sample_stuck(shape, generator, self.p_stuck_off, self.p_stuck_on)}

    def new_state(self, shape, generator, dtype=torch.float32) -> DeviceState:
        """Fresh (RESET) cells at ``g_min``, with a drift exponent drawn for that state."""
        state = super().new_state(shape, generator, dtype)
        nu = self._draw_nu(state.g, generator)
        g = apply_stuck(state.g, state, self.g_min, self.g_max)
        return state.replace(g=g, d2d={**state.d2d, "nu": nu})

    # -- operations ------------------------------------------------------------------------
    def program(self, state: DeviceState, g_target: Tensor, generator: torch.Generator) -> DeviceState:
        g_t = g_target.to(dtype=state.g.dtype, device=state.g.device).clamp(self.g_min, self.g_max)
        g_t = quantize_levels(g_t, self.g_min, self.g_max, self.levels)
        z = randn(g_t.shape, generator, g_t.dtype)
        g = (g_t + self.prog_noise_scale * self.sigma_prog(g_t) * z).clamp(min=max(self.g_min, 0.0))
        nu = self._draw_nu(g_t, generator)
        g = apply_stuck(g, state, self.g_min, self.g_max)
        return state.replace(g=g, d2d={**state.d2d, "nu": nu})

    def read(self, state: DeviceState, t: float, generator: torch.Generator) -> Tensor:
        """Conductance [S] seen at chip time ``t``: drift, then accumulated 1/f noise, each cell from its
        own last write (:meth:`Device.age`; ``t`` s after programming when all cells were written together)."""
        if not t >= 0:
            raise ValueError(f"t: got {t!r}; must be ≥ 0 s")
        g = state.g
        age = self.age(state, t)
        g_drift = g * self.drift_factor(state.d2d["nu"].to(g.dtype), age)
        sig = self.read_noise_sigma_rel(g, age).to(g.dtype)
        z = randn(g.shape, generator, g.dtype)
        g_out = (g_drift + g_drift.abs() * (self.read_noise_scale * sig) * z).clamp(min=0.0)
        return apply_stuck(g_out, state, self.g_min, self.g_max)

    def pulse_step(self, state: DeviceState, direction: int) -> Tensor:
        """Mean |ΔG| [S] of one pulse: SET ``s·max(μ(G/s), 0)``; RESET ``max(G − s·reset_g, 0)``."""
        wd = state_work_dtype(state.g)
        g = state.g.to(wd)
        s = self.g_max / self.pulse_g_max_ref
        if direction > 0:
            return (s * (self.set_dg_mean[0] + self.set_dg_mean[1] * g / s)).clamp(min=0.0)
        return (g - s * self.reset_g).clamp(min=0.0)

    def pulse(self, state: DeviceState, n_pulses: Tensor, generator: torch.Generator, mask: Tensor | None = None):
        """Signed pulse counts: ``n > 0`` partial-SET pulses, ``n < 0`` one abrupt RESET.

        Returns ``(state, energy_J)`` with the total write energy [J] as a 0-d tensor:
        ``e_set·Σ n⁺ + e_reset·Σ |n⁻|``. Cells outside ``mask`` get no pulse.
        """
        g0 = state.g
        wd = state_work_dtype(g0)
        n = apply_mask(torch.as_tensor(n_pulses, device=g0.device).to(wd).round().expand(g0.shape), mask)
        s = self.g_max / self.pulse_g_max_ref
        g = g0.to(wd)
        c_mu0, c_mu1 = self.set_dg_mean
        c_sd0, c_sd1 = self.set_dg_std
        lo, hi = s * self.set_g_floor, self.g_max
        n_set = n.clamp(min=0)
        k_max = int(n_set.max().item()) if n_set.numel() else 0
        for k in range(k_max):
            active = n_set > k
            x = g / s  # reference units [S]
            mu = c_mu0 + c_mu1 * x
            sd = (c_sd0 + c_sd1 * x).clamp(min=0.0) * self.pulse_noise_scale
            z = randn(g.shape, generator, g0.dtype).to(wd)
            g = torch.where(active, (g + s * (mu + sd * z)).clamp(lo, hi), g)
        reset = n < 0
        if bool(reset.any()):
            z = randn(g.shape, generator, g0.dtype).to(wd)
            g_reset = (s * (self.reset_g + self.pulse_noise_scale * self.reset_g_std * z)).clamp(
                min=s * self.reset_g_floor
            )
            g = torch.where(reset, g_reset, g)
        g = g.to(g0.dtype)
        pulsed = n != 0
        nu = state.d2d["nu"]
        if bool(pulsed.any()):
            nu = torch.where(pulsed, self._draw_nu(g, generator), nu)
        g = apply_stuck(g, state, self.g_min, self.g_max)
        energy = (self.e_set * n_set.sum() + self.e_reset * (-n).clamp(min=0).sum()).to(g0.dtype)
        return state.replace(g=g, d2d={**state.d2d, "nu": nu}), energy
