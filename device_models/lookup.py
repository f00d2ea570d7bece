"""Measured conductance-vs-pulse curves as a device model (look-up table, interpolated)."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from .base import (
    Device,
    DeviceParameterError,
    DeviceState,
    apply_mask,
    apply_stuck,
    check_range,
    quantize_levels,
    randn,
    sample_stuck,
    state_work_dtype,
)

__all__ = ["LookupDevice", "read_curve_csv"]


def _float_or_none(text: str):
    text = (text or "").strip()
    return float(text) if text else None


def read_curve_csv(path_or_text: str) -> tuple[list[float], list[float]]:
    """Parse a pulse-curve CSV into ``(g_up, g_down)`` lists of conductances [S].

    Two layouts are accepted (lines starting with ``#`` are comments, e.g. provenance):

    * **wide**: header ``pulse,g_up_S,g_down_S``; row ``k`` holds the conductance after ``k`` pulses
      on each branch (``k`` = 0, 1, …, consecutive). A shorter branch leaves its tail cells empty.
    * **long**: header ``branch,pulse,g_S`` with ``branch`` ∈ {``up``, ``down``}; rows in any order.

    The up (potentiation) branch starts at its lowest conductance and must be non-decreasing;
    the down (depression) branch starts at its highest and must be non-increasing.
    """
    if "\n" in path_or_text or "," in path_or_text and not os.path.exists(path_or_text):
        text = path_or_text
    else:
        with open(path_or_text, encoding="utf-8") as fh:
            text = fh.read()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    if not rows:
        raise DeviceParameterError("csv: no data rows")
    cols = {c.strip() for c in rows[0].keys()}
    rows = [{k.strip(): v for k, v in r.items()} for r in rows]
    if {"pulse", "g_up_S", "g_down_S"} <= cols:
        pts_up, pts_dn = [], []
        for r in rows:
            p = int(float(r["pulse"]))
            if (v := _float_or_none(r["g_up_S"])) is not None:
                pts_up.append((p, v))
            if (v := _float_or_none(r["g_down_S"])) is not None:
                pts_dn.append((p, v))
    elif {"branch", "pulse", "g_S"} <= cols:
        pts_up, pts_dn = [], []
        for r in rows:
            b = r["branch"].strip().lower()
            if b not in ("up", "down"):
                raise DeviceParameterError(f"csv: branch must be 'up' or 'down'; got {r['branch']!r}")
            (pts_up if b == "up" else pts_dn).append((int(float(r["pulse"])), float(r["g_S"])))
    else:
        raise DeviceParameterError(
            f"csv: columns {sorted(cols)} not understood; expected 'pulse,g_up_S,g_down_S' or 'branch,pulse,g_S'"
        )
    out = []
    for name, pts in (("up", pts_up), ("down", pts_dn)):
        pts.sort()
        if [p for p, _ in pts] != list(range(len(pts))):
            raise DeviceParameterError(f"csv: {name} branch pulses must be 0, 1, 2, … without gaps")
        out.append([g for _, g in pts])
    return out[0], out[1]


@dataclass
class LookupDevice(Device):
    """A device defined by measured potentiation/depression curves ``G_up(k)``, ``G_down(k)``.

    The state of a cell is its conductance alone. ``n > 0`` pulses move it along the up branch:
    its position ``k* = G_up⁻¹(G)`` (inverse linear interpolation, ``torch.searchsorted``) becomes
    ``k* + n`` and ``G ← G_up(k* + n)`` (linear interpolation, saturating at the last point);
    ``n < 0`` does the same on the down branch with ``|n|``. A cell outside a branch's range does
    not move the wrong way (``G`` never decreases on LTP or increases on LTD). Then
    cycle-to-cycle noise ``N(0, σ_c2c·(G_max − G_min))·sqrt(|n|)`` (NeuroSim's convention) and a
    clip to ``[G_min, G_max]`` (the extremes of both curves). Everything is vectorised.

    ``program`` (inference): clip, optional ``levels`` rounding, ``N(0, σ_prog·(G_max − G_min))``.
    Write energy per pulse ``G·V_w²·T_w`` along the noise-free branch (as :class:`~device_models.RRAM`),
    summed over pulses and cells (0-d tensor). Stuck-at masks as RRAM.

    Curves come from ``csv`` (a path; relative paths resolve against the current directory — the
    config layer passes absolute ones) or directly from ``g_up``/``g_down`` (sequences in S); see
    :func:`read_curve_csv` for the formats. ``examples/lookup_taox.csv`` is the NeuroSim TaOx/HfOx
    curve (Wu et al. VLSI 2018 via Chen/Peng/Yu TCAD 2018), so ``LookupDevice`` on it reproduces
    ``RRAM()`` pulses exactly. Write pulse defaults (±1.6 V, 50 ns) are that device's.
    """

    csv: str | None = None
    g_up: tuple | None = None
    g_down: tuple | None = None
    sigma_c2c: float = 0.0
    sigma_prog: float = 0.0
    levels: int | None = None
    p_stuck_off: float = 0.0
    p_stuck_on: float = 0.0
    sigma_read: float = 0.0
    v_write_ltp: float = 1.6
    v_write_ltd: float = -1.6
    t_write_s: float = 50.0e-9
    v_read: float = 0.2
    t_read_s: float = 1.0e-8

    name: ClassVar[str] = "lookup"
    pulsed: ClassVar[bool] = True

    def __post_init__(self):
        if self.csv is not None:
            if self.g_up is not None or self.g_down is not None:
                raise DeviceParameterError("csv: give either csv or g_up/g_down, not both")
            up, down = read_curve_csv(os.fspath(self.csv))
        else:
            if self.g_up is None or self.g_down is None:
                raise DeviceParameterError("csv: a LookupDevice needs csv=PATH or both g_up and g_down")
            up, down = [float(x) for x in self.g_up], [float(x) for x in self.g_down]
        for name, curve, sign in (("g_up", up, 1.0), ("g_down", down, -1.0)):
            if len(curve) < 2:
                raise DeviceParameterError(f"{name}: need at least 2 points; got {len(curve)}")
            if any(g < 0 for g in curve):
                raise DeviceParameterError(f"{name}: conductances must be ≥ 0 S")
            steps = [sign * (b - a) for a, b in zip(curve[:-1], curve[1:])]
            if any(s < 0 for s in steps):
                word = "non-decreasing" if sign > 0 else "non-increasing"
                raise DeviceParameterError(f"{name}: the curve must be {word} with pulse number")
        self.g_up, self.g_down = tuple(up), tuple(down)
        self._g_min = min(up[0], down[-1])
        self._g_max = max(up[-1], down[0])
        check_range("g_max - g_min", self._g_max - self._g_min, lo=0.0, lo_open=True)
        check_range("sigma_c2c", self.sigma_c2c, lo=0.0)
        check_range("sigma_prog", self.sigma_prog, lo=0.0)
        if self.levels is not None:
            check_range("levels", self.levels, lo=2)
        check_range("p_stuck_off", self.p_stuck_off, lo=0.0, hi=1.0)
        check_range("p_stuck_on", self.p_stuck_on, lo=0.0, hi=1.0)
        check_range("p_stuck_off + p_stuck_on", self.p_stuck_off + self.p_stuck_on, hi=1.0)
        check_range("sigma_read", self.sigma_read, lo=0.0)
        check_range("v_write_ltp", abs(self.v_write_ltp), lo=0.0, lo_open=True)
        check_range("v_write_ltd", abs(self.v_write_ltd), lo=0.0, lo_open=True)
        check_range("t_write_s", self.t_write_s, lo=0.0, lo_open=True)
        check_range("v_read", self.v_read, lo=0.0, lo_open=True)
        check_range("t_read_s", self.t_read_s, lo=0.0, lo_open=True)

    @classmethod
    def from_csv(cls, path, **params) -> LookupDevice:
        return cls(csv=os.fspath(path), **params)

    @property
    def g_min(self) -> float:  # type: ignore[override]
        return self._g_min

    @property
    def g_max(self) -> float:  # type: ignore[override]
        return self._g_max

    # -- interpolation helpers ----------------------------------------------------------------
    @staticmethod
    def _invert(xs: Tensor, g: Tensor) -> Tensor:
        """Fractional index k* with ``interp(k*) = g`` for ascending ``xs`` (clipped to the ends)."""
        last = xs.numel() - 1
        g = g.clamp(xs[0], xs[-1])
        hi = torch.searchsorted(xs, g.contiguous(), right=True).clamp(1, last)
        x0, x1 = xs[hi - 1], xs[hi]
        dx = x1 - x0
        frac = torch.where(dx > 0, (g - x0) / torch.where(dx > 0, dx, torch.ones_like(dx)), torch.zeros_like(g))
        return (hi - 1).to(g.dtype) + frac

    @staticmethod
    def _interp(ys: Tensor, k: Tensor) -> Tensor:
        last = ys.numel() - 1
        k = k.clamp(0, last)
        i = torch.floor(k).long().clamp(0, last - 1)
        f = k - i.to(k.dtype)
        return ys[i] + f * (ys[i + 1] - ys[i])

    @staticmethod
    def _sum_along(ys: Tensor, k0: Tensor, m: Tensor) -> Tensor:
        """``Σ_{j<m} interp(k0 + j)`` (saturating at the last point), via cumulative sums."""
        last = ys.numel() - 1
        c = torch.cat([ys.new_zeros(1), torch.cumsum(ys, 0)])  # c[j] = Σ_{i<j} y_i, j = 0..last+1

        def cum(j: Tensor) -> Tensor:  # Σ_{i<j} y_ext(i), y_ext(i) = y_last for i > last
            jc = j.clamp(max=last + 1).long()
            return c[jc] + (j - jc.to(j.dtype)).clamp(min=0) * ys[-1]

        k0 = k0.clamp(0, last)
        i = torch.floor(k0)
        f = k0 - i
        return (1 - f) * (cum(i + m) - cum(i)) + f * (cum(i + 1 + m) - cum(i + 1))

    def _curves(self, device, dtype):
        up = torch.tensor(self.g_up, dtype=dtype, device=device)
        down = torch.tensor(self.g_down, dtype=dtype, device=device)
        return up, down

    # -- state and operations ---------------------------------------------------------------
    def sample_d2d(self, shape, generator, dtype):
        return {"stuck": sample_stuck(shape, generator, self.p_stuck_off, self.p_stuck_on)}

    def new_state(self, shape, generator, dtype=torch.float32) -> DeviceState:
        state = super().new_state(shape, generator, dtype)
        return state.replace(g=apply_stuck(state.g, state, self.g_min, self.g_max))

    def program(self, state: DeviceState, g_target: Tensor, generator: torch.Generator) -> DeviceState:
        g = g_target.to(dtype=state.g.dtype, device=state.g.device).clamp(self.g_min, self.g_max)
        g = quantize_levels(g, self.g_min, self.g_max, self.levels)
        if self.sigma_prog > 0:
            g = g + randn(g.shape, generator, g.dtype) * self.sigma_prog * (self.g_max - self.g_min)
            g = g.clamp(self.g_min, self.g_max)
        return state.replace(g=apply_stuck(g, state, self.g_min, self.g_max))

    def read(self, state: DeviceState, t: float, generator: torch.Generator) -> Tensor:
        return apply_stuck(state.g, state, self.g_min, self.g_max)

    def pulse_step(self, state: DeviceState, direction: int) -> Tensor:
        """|ΔG| [S] of one pulse along the branch from each cell's present G (noise-free)."""
        wd = state_work_dtype(state.g)
        g = state.g.to(wd)
        up, down = self._curves(g.device, wd)
        if direction > 0:
            return (self._interp(up, self._invert(up, g) + 1) - g).clamp(min=0.0)
        return (g - self._interp(down, self._invert(-down, -g) + 1)).clamp(min=0.0)

    def pulse(self, state: DeviceState, n_pulses: Tensor, generator: torch.Generator, mask: Tensor | None = None):
        """Signed pulse counts along the measured branches; returns ``(state, energy_J)`` (total, 0-d).
        Cells outside ``mask`` get no pulse."""
        g0 = state.g
        wd = state_work_dtype(g0)
        n = apply_mask(torch.as_tensor(n_pulses, device=g0.device).to(wd).round().expand(g0.shape), mask)
        m = n.abs()
        g = g0.to(wd)
        up, down = self._curves(g0.device, wd)
        # up branch (ascending)
        k_up = self._invert(up, g)
        g_up_new = torch.maximum(g, self._interp(up, k_up + m))
        # down branch: descending in k, so invert on the negated curve
        k_dn = self._invert(-down, -g)
        g_dn_new = torch.minimum(g, self._interp(down, k_dn + m))
        g_new = torch.where(n > 0, g_up_new, torch.where(n < 0, g_dn_new, g))
        s_up = self._sum_along(up, k_up, m)
        s_dn = self._sum_along(down, k_dn, m)
        stuck = state.d2d.get("stuck")
        if stuck is not None:
            s_up = torch.where(stuck != 0, m * g, s_up)
            s_dn = torch.where(stuck != 0, m * g, s_dn)
        e_cell = torch.where(
            n > 0,
            s_up * (self.v_write_ltp**2 * self.t_write_s),
            torch.where(n < 0, s_dn * (self.v_write_ltd**2 * self.t_write_s), torch.zeros_like(g)),
        )
        if self.sigma_c2c > 0:
            z = randn(g.shape, generator, g0.dtype).to(wd)
            g_new = g_new + (m > 0) * z * (self.sigma_c2c * (self.g_max - self.g_min)) * torch.sqrt(m)
        g_new = g_new.clamp(self.g_min, self.g_max).to(g0.dtype)
        return state.replace(g=apply_stuck(g_new, state, self.g_min, self.g_max)), e_cell.sum().to(g0.dtype)
