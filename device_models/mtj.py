"""Magnetic tunnel junctions: binary P/AP cells with stochastic (thermal + precessional) switching.

References (docs/devices.md, docs/references.md; the values tagged [lit] were recalled from the cited papers and could
not be re-read against the primary texts in this project — the ``search`` tool returned no copy of
Ikeda 2010, Sun 2000 or Butler 2012 — so they are kept as tabulated there):

* Néel–Brown thermal activation: Koch et al., PRL 92, 088302 (2004); Diao et al., J. Phys.:
  Condens. Matter 19, 165209 (2007).
* Precessional regime: Sun, PRB 62, 570 (2000); switching distribution of the macrospin with a
  thermal initial angle, Butler et al., IEEE Trans. Magn. 48, 4684 (2012).
* p-CoFeB/MgO numbers: Ikeda et al., Nat. Mater. 9, 721 (2010) (40 nm, TMR ≈ 124 %, Δ ≈ 40,
  Ic0 ≈ 49 µA) [lit].
* SOT: Liu et al., Science 336, 555 (2012); Pai et al., APL 101, 122404 (2012); Garello et al.,
  VLSI 2018 [lit].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from .base import Device, DeviceState, apply_mask, check_choice, check_range, rand, randn, work_dtype

__all__ = ["STTMTJ", "SOTMTJ", "MTJ"]

GYROMAGNETIC_RATIO = 1.760859e11  # γ [rad/(s·T)] (CODATA electron)
_EXP_CLIP = 700.0  # clip exponents before exp() (overflow above ~709)


def _is_tensor(*xs) -> bool:
    return any(torch.is_tensor(x) for x in xs)


@dataclass
class MTJ(Device):
    """Common physics of STT and SOT MTJs (see :class:`STTMTJ` for the equations)."""

    r_p: float = 8.0e3
    tmr: float = 1.2
    tmr_v_half: float | None = 0.5
    delta: float = 40.0
    i_c0: float = 49.0e-6
    tau0: float = 1.0e-9
    nb_exponent: float = 1.0
    alpha: float = 0.01
    mu0_hk_T: float = 0.16
    t_write_s: float = 10.0e-9
    i_write: float = 100.0e-6
    v_read: float = 0.1
    t_read_s: float = 10.0e-9
    read_disturb: bool = True
    read_disturb_to: str = "ap"
    above_ic0: str = "precessional"
    sigma_d2d_delta_rel: float = 0.05
    sigma_d2d_ic0_rel: float = 0.05
    sigma_d2d_r_rel: float = 0.05
    sigma_read: float = 0.0

    name: ClassVar[str] = "mtj"
    binary: ClassVar[bool] = True
    pulsed: ClassVar[bool] = True

    def __post_init__(self):
        check_range("r_p", self.r_p, lo=0.0, lo_open=True)
        check_range("tmr", self.tmr, lo=0.0, lo_open=True)
        if self.tmr_v_half is not None:
            check_range("tmr_v_half", self.tmr_v_half, lo=0.0, lo_open=True)
        check_range("delta", self.delta, lo=0.0, lo_open=True)
        check_range("i_c0", self.i_c0, lo=0.0, lo_open=True)
        check_range("tau0", self.tau0, lo=0.0, lo_open=True)
        check_range("nb_exponent", self.nb_exponent, lo=0.0, lo_open=True)
        check_range("alpha", self.alpha, lo=0.0, lo_open=True, hi=1.0)
        check_range("mu0_hk_T", self.mu0_hk_T, lo=0.0, lo_open=True)
        check_range("t_write_s", self.t_write_s, lo=0.0, lo_open=True)
        check_range("i_write", self.i_write, lo=0.0)
        check_range("v_read", self.v_read, lo=0.0, lo_open=True)
        check_range("t_read_s", self.t_read_s, lo=0.0, lo_open=True)
        check_choice("read_disturb", self.read_disturb, (True, False))
        check_choice("read_disturb_to", self.read_disturb_to, ("ap", "p"))
        check_choice("above_ic0", self.above_ic0, ("precessional", "extrapolate"))
        check_range("sigma_d2d_delta_rel", self.sigma_d2d_delta_rel, lo=0.0)
        check_range("sigma_d2d_ic0_rel", self.sigma_d2d_ic0_rel, lo=0.0)
        check_range("sigma_d2d_r_rel", self.sigma_d2d_r_rel, lo=0.0)
        check_range("sigma_read", self.sigma_read, lo=0.0)

    # -- static -------------------------------------------------------------------------------
    @property
    def g_p(self) -> float:
        """Parallel (low-resistance, "on") conductance ``1/R_P`` [S]."""
        return 1.0 / self.r_p

    @property
    def g_ap(self) -> float:
        """Antiparallel conductance ``G_P/(1 + TMR)`` [S] (zero bias)."""
        return self.g_p / (1.0 + self.tmr)

    @property
    def g_max(self) -> float:  # type: ignore[override]
        return self.g_p

    @property
    def g_min(self) -> float:  # type: ignore[override]
        return self.g_ap

    @property
    def tau_d(self) -> float:
        """Precessional time constant ``τ_D = (1 + α²)/(α·γ·μ0H_k)`` [s] (Butler 2012)."""
        return (1.0 + self.alpha**2) / (self.alpha * GYROMAGNETIC_RATIO * self.mu0_hk_T)

    def tmr_at(self, v: float) -> float:
        """Bias-dependent TMR: ``TMR(V) = TMR0/(1 + V²/V_h²)`` (constant when ``tmr_v_half`` is None)."""
        if self.tmr_v_half is None:
            return self.tmr
        return self.tmr / (1.0 + (v / self.tmr_v_half) ** 2)

    def write_resistance(self, g_state: Tensor) -> Tensor:
        """Resistance the write current flows through [Ω] (STT: the MTJ in its present state)."""
        return 1.0 / g_state

    # -- switching physics ------------------------------------------------------------------
    def _p_sw(self, i_abs, t, delta, i_c0) -> Tensor:
        """P_sw for |I| (tensors, broadcast), see :meth:`switching_probability`."""
        x = i_abs / i_c0
        if self.above_ic0 == "extrapolate":
            u = 1.0 - x
            expo = (delta * torch.sign(u) * u.abs() ** self.nb_exponent).clamp(min=-_EXP_CLIP, max=_EXP_CLIP)
            return -torch.expm1(-t / (self.tau0 * torch.exp(expo)))
        u = (1.0 - x).clamp(min=0.0)
        expo = (delta * u**self.nb_exponent).clamp(max=_EXP_CLIP)
        tau = self.tau0 * torch.exp(expo)
        p_th = -torch.expm1(-t / tau)
        arg = (-2.0 * (x - 1.0) * t / self.tau_d).clamp(max=_EXP_CLIP)
        p_pr = torch.exp(-(math.pi**2 / 4.0) * delta * torch.exp(arg))
        return torch.maximum(p_th, p_pr)

    def switching_probability(self, current_A, t_pulse_s):
        """Probability that one pulse of ``|current_A|`` [A] and width ``t_pulse_s`` [s] switches the cell.

        Nominal parameters (no d2d spread). Two mechanisms, joined as competing bounds:

        * thermal activation (Néel–Brown; Koch 2004, Diao 2007):
          ``τ = τ0·exp(Δ·(1 − I/Ic0)₊^β)``, ``P_th = −expm1(−t/τ)``; the bracket is clipped at 0
          above Ic0 (τ never drops below the attempt time τ0) and the exponent at 700;
        * precessional (Sun 2000; Butler 2012 macrospin with a thermal initial angle):
          ``P_pr = exp(−(π²Δ/4)·exp(−2·(I/Ic0 − 1)·t/τ_D))``, ``τ_D = (1+α²)/(α·γ·μ0H_k)``; evaluated
          for all I (below Ic0 it decays super-exponentially towards 0).

        ``P = max(P_th, P_pr)`` (``above_ic0 = "precessional"``, the STT default). Each term is
        continuous and non-decreasing in |I|, so P is too — no jump at Ic0, where
        ``P = max(1 − e^(−t/τ0), e^(−π²Δ/4))``. Long pulses (t ≫ τ0) are thermal up to Ic0; for
        pulses comparable to τ0, P stays at ``1 − e^(−t/τ0)`` from Ic0 until the precessional law
        overtakes it (the "dynamic reversal" gap that neither asymptotic law describes).

        ``above_ic0 = "extrapolate"`` (the SOT default) instead continues the Néel–Brown law through
        Ic0, ``τ = τ0·exp(Δ·sgn(1 − I/Ic0)·|1 − I/Ic0|^β)``: the empirical sigmoid P_sw(I) used for
        SOT and stochastic-synapse designs (no incubation delay in SOT switching).
        Returns a float for float inputs, else a tensor.
        """
        as_float = not _is_tensor(current_A, t_pulse_s)
        i = torch.as_tensor(current_A, dtype=torch.float64).abs()
        t = torch.as_tensor(t_pulse_s, dtype=torch.float64)
        p = self._p_sw(i, t, torch.tensor(self.delta, dtype=torch.float64), self.i_c0)
        return float(p) if as_float else p

    def current_for_probability(self, p, t_pulse_s):
        """Smallest |I| [A] whose pulse of width ``t_pulse_s`` switches with probability ``p``.

        Closed-form inverses of both branches, ``I = max(0, min(I_th(p), I_pr(p)))``:

        * ``I_th = Ic0·[1 − (ln(τ_p/τ0)/Δ)^(1/β)]`` with ``τ_p = t/(−ln(1−p))``; only where
          ``τ_p ≥ τ0`` (else thermal activation cannot reach p: ``I_th = ∞``). For β = 1 this is
          the textbook inverse ``I(P) = Ic0·[1 − (1/Δ)·ln(t/(τ0·(−ln(1−P))))]``.
        * ``I_pr = Ic0·[1 − (τ_D/(2t))·ln(4·(−ln p)/(π²Δ))]``.

        ``p`` = 0 gives 0, ``p`` = 1 gives ∞. With ``above_ic0 = "extrapolate"``:
        ``I = Ic0·[1 − sgn(r)·|r|^(1/β)]``, ``r = ln(τ_p/τ0)/Δ``. Returns a float for float inputs, else a tensor.
        """
        as_float = not _is_tensor(p, t_pulse_s)
        p = torch.as_tensor(p, dtype=torch.float64)
        t = torch.as_tensor(t_pulse_s, dtype=torch.float64)
        if bool(((p < 0) | (p > 1)).any()):
            raise ValueError("p: probabilities must lie in [0, 1]")
        with torch.no_grad():
            tau_p = t / -torch.log1p(-p)
            lnr = torch.log(tau_p / self.tau0)
            if self.above_ic0 == "extrapolate":
                r = lnr / self.delta
                i = (self.i_c0 * (1.0 - torch.sign(r) * r.abs() ** (1.0 / self.nb_exponent))).clamp(min=0.0)
                i = torch.where(p >= 1, torch.full_like(i, math.inf), torch.where(p <= 0, torch.zeros_like(i), i))
                return float(i) if as_float else i
            u = (lnr.clamp(min=0.0) / self.delta) ** (1.0 / self.nb_exponent)
            i_th = torch.where(lnr >= 0, self.i_c0 * (1.0 - u), torch.full_like(lnr, math.inf))
            q = -torch.log(p)
            y = torch.log(4.0 * q / (math.pi**2 * self.delta))
            i_pr = self.i_c0 * (1.0 - self.tau_d / (2.0 * t) * y)
            i = torch.minimum(i_th, i_pr).clamp(min=0.0)
            i = torch.where(p >= 1, torch.full_like(i, math.inf), torch.where(p <= 0, torch.zeros_like(i), i))
        return float(i) if as_float else i

    def retention_time(self) -> float:
        """Mean dwell time ``τ0·e^Δ`` [s] of the nominal cell at zero current."""
        return self.tau0 * math.exp(min(self.delta, _EXP_CLIP))

    # -- state ------------------------------------------------------------------------------
    def sample_d2d(self, shape, generator, dtype):
        wd = work_dtype(generator.device)
        d2d = {
            "delta": (self.delta * (1.0 + self.sigma_d2d_delta_rel * randn(shape, generator, wd))).clamp(min=1e-3),
            "i_c0": (self.i_c0 * (1.0 + self.sigma_d2d_ic0_rel * randn(shape, generator, wd))).clamp(
                min=1e-3 * self.i_c0
            ),
            "g_p": (self.g_p / (1.0 + self.sigma_d2d_r_rel * randn(shape, generator, wd)).clamp(min=0.05)).to(dtype),
        }
        return d2d

    def new_state(self, shape, generator, dtype=torch.float32) -> DeviceState:
        """Fresh cells in the AP (low-conductance) state."""
        state = super().new_state(shape, generator, dtype)
        return state.replace(g=state.d2d["g_p"] / (1.0 + self.tmr))

    def _g_p(self, state):
        return state.d2d["g_p"].to(state.g.dtype)

    def is_parallel(self, state: DeviceState) -> Tensor:
        """Boolean mask of cells in the P (high-conductance) state."""
        return self._above_mid(state.g, self._g_p(state))

    def _above_mid(self, g: Tensor, g_p: Tensor) -> Tensor:
        """``g > (G_P + G_AP)/2 = G_P·(2 + TMR)/(2·(1 + TMR))``."""
        return g * (2.0 * (1.0 + self.tmr)) > g_p * (2.0 + self.tmr)

    def _with_bits(self, state: DeviceState, parallel: Tensor) -> DeviceState:
        g_p = self._g_p(state)
        return state.replace(g=torch.where(parallel, g_p, g_p / (1.0 + self.tmr)))

    # -- operations -------------------------------------------------------------------------
    def program(self, state: DeviceState, g_target: Tensor, generator: torch.Generator) -> DeviceState:
        """Write-verify for inference: each cell goes to the nearer of its own G_AP/G_P."""
        g_p = self._g_p(state)
        g_t = g_target.to(dtype=state.g.dtype, device=state.g.device)
        return self._with_bits(state, self._above_mid(g_t, g_p))

    def read(self, state: DeviceState, t: float, generator: torch.Generator) -> Tensor:
        """Conductance [S] at the read bias ``v_read``, ``t`` s after programming.

        AP cells read ``G_P/(1 + TMR(v_read))`` (bias-dependent TMR). Retention: each cell is found
        in the opposite state with the two-state telegraph probability
        ``(1 − e^(−2t/τ_ret))/2``, ``τ_ret = τ0·e^Δ`` (per-cell Δ) — a fresh sample on every call,
        not committed to the state (Δ = 40: τ_ret ≈ 7.5 years).
        """
        if not t >= 0:
            raise ValueError(f"t: got {t!r}; must be ≥ 0 s")
        par = self.is_parallel(state)
        age = self.age(state, t)
        if torch.is_tensor(age) or age > 0:
            wd = work_dtype(state.g.device)
            tau_ret = self.tau0 * torch.exp(state.d2d["delta"].to(wd).clamp(max=_EXP_CLIP))
            age = age.to(wd) if torch.is_tensor(age) else float(age)
            p_flip = 0.5 * -torch.expm1(-2.0 * age / tau_ret)
            par = par ^ (rand(state.shape, generator, wd) < p_flip)
        g_p = self._g_p(state)
        return torch.where(par, g_p, g_p / (1.0 + self.tmr_at(self.v_read)))

    def read_disturb_probability(self, state: DeviceState) -> Tensor:
        """Per-cell probability that one read pulse flips the cell (Néel–Brown at I_read = v_read·G).

        Only cells in the state opposite to ``read_disturb_to`` can be disturbed; 0 everywhere
        when ``read_disturb`` is False (SOT: decoupled read path).
        """
        wd = work_dtype(state.g.device)
        if not self.read_disturb:
            return torch.zeros(state.shape, dtype=wd, device=state.g.device)
        par = self.is_parallel(state)
        i_read = self.v_read * state.g.to(wd)
        p = self._p_sw(i_read, torch.tensor(self.t_read_s, dtype=wd), state.d2d["delta"], state.d2d["i_c0"])
        susceptible = par if self.read_disturb_to == "ap" else ~par
        return torch.where(susceptible, p, torch.zeros_like(p))

    def disturb(self, state: DeviceState, n_reads, generator: torch.Generator) -> DeviceState:
        """Apply the read disturb of ``n_reads`` read pulses (``1 − (1 − P_rd)^n`` per cell) to the state."""
        p1 = self.read_disturb_probability(state)
        n = torch.as_tensor(n_reads, dtype=p1.dtype, device=p1.device)
        p = -torch.expm1(n * torch.log1p(-p1))
        flip = rand(state.shape, generator, p.dtype) < p
        return self._with_bits(state, self.is_parallel(state) ^ flip)

    def switch(self, state: DeviceState, current_A, t_pulse_s, generator: torch.Generator, mask: Tensor | None = None):
        """One write pulse per cell: ``current_A`` > 0 drives towards P (high G), < 0 towards AP, 0 = no pulse.

        ``current_A`` (scalar or tensor broadcastable to the array) and ``t_pulse_s`` [s]. Cells already
        in the driven state stay; the others switch with probability ``P_sw(|I|, t)`` using their own
        Δ and Ic0. Returns ``(state, energy_J)``: total ``Σ I²·R_write·t`` [J] (0-d tensor), where
        ``R_write`` is the MTJ in its pre-pulse state (STT) or the heavy-metal strip (SOT); failed
        switches burn the energy too. Cells outside ``mask`` get no pulse (current 0).
        """
        wd = work_dtype(state.g.device)
        i = apply_mask(torch.as_tensor(current_A, dtype=wd, device=state.g.device).expand(state.shape), mask)
        t = torch.as_tensor(t_pulse_s, dtype=wd, device=state.g.device)
        par = self.is_parallel(state)
        p = self._p_sw(i.abs(), t, state.d2d["delta"], state.d2d["i_c0"])
        u = rand(state.shape, generator, wd)
        towards_p = i > 0
        towards_ap = i < 0
        go = (u < p) & ((towards_p & ~par) | (towards_ap & par))
        new_par = torch.where(go, ~par, par)
        energy = (i * i * self.write_resistance(state.g.to(wd)) * t).sum()
        return self._with_bits(state, new_par), energy.to(state.g.dtype)

    def pulse_step(self, state: DeviceState, direction: int) -> Tensor:
        """Mean |ΔG| [S] of one ``i_write`` pulse: ``P_sw·(G_P − G_AP)`` for cells in the other state, else 0
        (nominal Δ, Ic0)."""
        wd = work_dtype(state.g.device)
        p = self.switching_probability(self.i_write, self.t_write_s)
        par = self.is_parallel(state)
        movable = ~par if direction > 0 else par
        return movable.to(wd) * (p * (self.g_p - self.g_ap))

    def pulse(self, state: DeviceState, n_pulses: Tensor, generator: torch.Generator, mask: Tensor | None = None):
        """``|n|`` identical write pulses (``i_write``, ``t_write_s``); sign: > 0 towards P, < 0 towards AP.

        A cell in the other state switches at the first successful pulse; the number of pulses
        needed is geometric, ``N = ⌈ln U/ln(1 − P_sw)⌉``. Energy (total, 0-d): every pulse costs
        ``I²·R_write·t``, with ``R_write`` of the state the cell is in during that pulse.
        """
        wd = work_dtype(state.g.device)
        n = apply_mask(torch.as_tensor(n_pulses, device=state.g.device).to(wd).round().expand(state.shape), mask)
        m = n.abs()
        par = self.is_parallel(state)
        i = torch.as_tensor(self.i_write, dtype=wd, device=state.g.device)
        t = torch.as_tensor(self.t_write_s, dtype=wd, device=state.g.device)
        p = self._p_sw(i, t, state.d2d["delta"], state.d2d["i_c0"])
        u = rand(state.shape, generator, wd).clamp(min=1e-300)
        with torch.no_grad():
            n_needed = torch.ceil(torch.log(u) / torch.log1p(-p)).clamp(min=1.0)  # p = 1 → 1; p = 0 → inf
        wrong = ((n > 0) & ~par) | ((n < 0) & par)
        go = wrong & (n_needed <= m)
        new_par = torch.where(go, ~par, par)
        state_new = self._with_bits(state, new_par)
        r_before = self.write_resistance(state.g.to(wd))
        r_after = self.write_resistance(state_new.g.to(wd))
        k_before = torch.where(go, n_needed, m)
        e_cell = i * i * t * (k_before * r_before + (m - k_before) * r_after)
        return state_new, e_cell.sum().to(state.g.dtype)


@dataclass
class STTMTJ(MTJ):
    """Two-terminal spin-transfer-torque MTJ: a binary, stochastic synapse (docs/devices.md).

    * States: P with ``G_P = 1/R_P`` and AP with ``G_AP = G_P/(1 + TMR)`` (zero bias); reads at
      ``v_read`` see ``TMR(V) = TMR0/(1 + V²/V_h²)``.
    * Switching probability of one pulse (:meth:`switching_probability`):
      ``P = max(P_th, P_pr)`` with Néel–Brown ``P_th = −expm1(−t/(τ0·e^(Δ(1 − I/Ic0)₊^β)))`` and
      the precessional (Sun 2000 / Butler 2012) ``P_pr = exp(−(π²Δ/4)·e^(−2(I/Ic0 − 1)t/τ_D))``;
      inverse in :meth:`current_for_probability`. The same Ic0 is used for both directions
      (real P→AP thresholds are often 1.2–2× higher; model it with a signed-current wrapper).
    * Read disturb per read pulse: Néel–Brown at ``I_read = v_read·G`` for ``t_read_s``
      (:meth:`read_disturb_probability`, :meth:`disturb`); towards ``read_disturb_to``.
    * Write energy ``I²·R_MTJ·t`` (R of the pre-pulse state).
    * Device-to-device (drawn in ``new_state``): ``Δ·(1 + N(0, σ_Δ))``, ``Ic0·(1 + N(0, σ_Ic0))``,
      ``R_P·(1 + N(0, σ_R))`` per cell.
    * ``program`` (inference) snaps each target to the nearer of the cell's G_AP/G_P.

    Defaults: Ikeda et al., Nat. Mater. 2010 p-CoFeB/MgO, 40 nm [lit]: TMR 1.2 (≈124 %), Δ = 40,
    Ic0 = 49 µA; τ0 = 1 ns (conventional attempt time [lit]); β = 1 (Koch/Diao; 1.5–2 in some PMA
    fits); α = 0.01 [lit]. Estimates [est]: R_P = 8 kΩ (RA 10 Ω·µm² over a 40 nm disc),
    ``tmr_v_half`` 0.5 V [lit], μ0H_k = 0.16 T (from Δ = μ0·M_s·H_k·V/(2k_BT) = 40 with
    M_s ≈ 1.26 MA/m and a 40 nm × 1.3 nm free layer) → τ_D ≈ 3.5 ns; write 100 µA / 10 ns;
    read 0.1 V / 10 ns (I_read ≈ 0.26·Ic0 in P); d2d σ 5 % each.
    """

    name: ClassVar[str] = "stt_mtj"


@dataclass
class SOTMTJ(MTJ):
    """Three-terminal spin-orbit-torque MTJ (docs/devices.md): write current in a heavy-metal strip.

    Same binary states as :class:`STTMTJ`; the switching law is Néel–Brown with ``I`` the heavy-metal
    current and ``i_c0`` its critical current (``J_c·w·t``), continued through Ic0
    (``above_ic0 = "extrapolate"``): SOT's damping-like torque is not collinear with the
    magnetisation, so there is no incubation (initial-angle) delay and the STT precessional law does
    not apply; experiments use the resulting sigmoid P_sw(I) for 1–10 ns pulses (Ostwal et al. 2019,
    docs/devices.md). The read path (through the MTJ) is decoupled from
    the write path, so there is no read disturb (``read_disturb`` False). Write energy
    ``I²·R_HM·t`` with ``r_hm`` the strip resistance, independent of the MTJ state.

    Defaults [est] (docs/devices.md): β-W strip 50 nm × 4 nm × 100 nm at ρ ≈ 200 µΩ·cm →
    R_HM ≈ 1 kΩ; J_c ≈ 1e12 A/m² [lit] → Ic0 ≈ 200 µA; 1 ns write pulses (Garello VLSI 2018 [lit])
    at 300 µA (P_sw ≈ 1 − 3e-9); MTJ stack as the STT preset (R_P 8 kΩ, TMR 1.2, Δ 40).
    """

    i_c0: float = 200.0e-6
    t_write_s: float = 1.0e-9
    i_write: float = 300.0e-6
    read_disturb: bool = False
    above_ic0: str = "extrapolate"
    r_hm: float = 1.0e3

    name: ClassVar[str] = "sot_mtj"

    def __post_init__(self):
        super().__post_init__()
        check_range("r_hm", self.r_hm, lo=0.0, lo_open=True)

    def write_resistance(self, g_state: Tensor) -> Tensor:
        return torch.full_like(g_state, self.r_hm)
