"""Mapping of a weight matrix onto tiled crossbar arrays and the hardware matmul (DESIGN §5).

``W [out, in]`` is stored transposed, inputs on rows and outputs on columns. The
signed weight is a **differential pair** in adjacent columns (interleaved ``G⁺, G⁻``):

    G± = g_min + clip(±W, 0, ∞)·s,   s = (g_max − g_min)/max|W|

so that ``I⁺ − I⁻ = s·(v @ Wᵀ)`` (the ``g_min`` baseline cancels). The matrix is split
into tiles of at most ``rows`` inputs × ``cols/2`` outputs; every tile is a physical
``rows × cols`` array (unused cells at ``g_min``, unused rows driven at 0 V). The forward
path is DAC → circuit solve → analog subtraction → ADC per tile → digital accumulation
of the partial sums over input tiles → rescale to weight units.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from device_models import Device

from .converters import ADC, DAC
from .crossbar import Crossbar
from .energy import EnergyLedger

__all__ = ["CrossbarSpec", "MappedMatrix"]


@dataclass
class CrossbarSpec:
    """Everything needed to build the physical arrays of one layer."""

    rows: int = 128
    cols: int = 128
    r_wire_row: float = 0.0
    r_wire_col: float = 0.0
    r_source: float = 0.0
    r_sense: float = 0.0
    r_access: float = 0.0
    solver: str = "ideal"
    v_read: float | None = None  # None: the device's v_read
    t_read_s: float | None = None  # None: the device's t_read_s

    def __post_init__(self):
        if self.cols < 2:
            raise ValueError(f"crossbar.cols: got {self.cols!r}; the differential mapping needs ≥ 2 columns")


class MappedMatrix:
    """A weight matrix ``W [out, in]`` programmed onto crossbars; :meth:`matmul` computes ``x @ Wᵀ`` in hardware.

    Parameters
    ----------
    weight:
        ``[out, in]`` tensor (any float dtype; the software reference).
    device:
        Cell model used for every array of this matrix.
    spec:
        Array size, wire resistances, solver and read pulse.
    dac, adc:
        Converter templates (copied; each matrix calibrates its own ranges).
    generator:
        Source of all randomness (programming noise, faults, read noise).
    drift_compensation:
        Global drift compensation (Le Gallo et al., Adv. Electron. Mater. 4, 1700627,
        2018): the digital output is scaled by ``α = ΣI(t0)/ΣI(t)``, the ratio of the
        summed column currents for an all-ones input read at calibration and now.
    """

    def __init__(
        self,
        weight: Tensor,
        device: Device,
        spec: CrossbarSpec | None = None,
        dac: DAC | None = None,
        adc: ADC | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        drift_compensation: bool = False,
        name: str = "matrix",
    ):
        if weight.dim() != 2:
            raise ValueError(f"weight: got shape {tuple(weight.shape)}; expected [out, in]")
        if not torch.isfinite(weight).all():
            raise ValueError("weight: contains NaN or inf")
        self.name = name
        self.device = device
        self.spec = spec or CrossbarSpec()
        self.dac = copy.deepcopy(dac) if dac is not None else DAC(bits=None)
        self.adc = copy.deepcopy(adc) if adc is not None else ADC(bits=None)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.dtype = dtype
        self.drift_compensation = drift_compensation
        self.out_features, self.in_features = weight.shape
        self.v_read = float(self.spec.v_read if self.spec.v_read is not None else device.v_read)
        self.t_read_s = float(self.spec.t_read_s if self.spec.t_read_s is not None else device.t_read_s)

        rows, cols = self.spec.rows, self.spec.cols
        self.out_per_tile = cols // 2
        self.n_tiles_in = math.ceil(self.in_features / rows)
        self.n_tiles_out = math.ceil(self.out_features / self.out_per_tile)
        tdev = self.generator.device
        w = weight.detach().to(device=tdev, dtype=torch.float64)
        w_abs_max = float(w.abs().max())
        self.g_scale = (device.g_max - device.g_min) / (w_abs_max if w_abs_max > 0 else 1.0)  # S per weight unit
        self.crossbar = Crossbar(
            rows,
            cols,
            device,
            r_wire_row=self.spec.r_wire_row,
            r_wire_col=self.spec.r_wire_col,
            r_source=self.spec.r_source,
            r_sense=self.spec.r_sense,
            r_access=self.spec.r_access,
            solver=self.spec.solver,
            stack=(self.n_tiles_in, self.n_tiles_out),
            generator=self.generator,
            dtype=dtype,
        )
        self.crossbar.program(self._targets(w).to(dtype))
        self._alpha = 1.0
        self._ones_ref: float | None = None

    # -- layout -----------------------------------------------------------------------------
    def _targets(self, w: Tensor) -> Tensor:
        """Target conductances ``[n_tiles_in, n_tiles_out, rows, cols]`` for the differential pair layout."""
        rows, cols, opt = self.spec.rows, self.spec.cols, self.out_per_tile
        wt = torch.zeros(self.n_tiles_in * rows, self.n_tiles_out * opt, dtype=w.dtype, device=w.device)
        wt[: self.in_features, : self.out_features] = w.T
        wt = wt.reshape(self.n_tiles_in, rows, self.n_tiles_out, opt).permute(0, 2, 1, 3)
        g = torch.full((self.n_tiles_in, self.n_tiles_out, rows, cols), self.device.g_min, dtype=w.dtype, device=w.device)
        g[..., 0 : 2 * opt : 2] += wt.clamp(min=0) * self.g_scale
        g[..., 1 : 2 * opt : 2] += (-wt).clamp(min=0) * self.g_scale
        return g

    @property
    def n_arrays(self) -> int:
        return self.n_tiles_in * self.n_tiles_out

    # -- time -------------------------------------------------------------------------------
    def set_time(self, t_s: float) -> None:
        """Evaluate ``t_s`` seconds after programming; re-measures the drift-compensation factor."""
        self.crossbar.set_time(t_s)
        self._alpha = 1.0
        if self._ones_ref is not None and t_s > 0:
            now = self._ones_read()
            self._alpha = self._ones_ref / now if now > 0 else 1.0

    def _ones_read(self) -> float:
        v = torch.full((self.n_tiles_in, 1, 1, self.spec.rows), self.v_read, dtype=self.dtype, device=self.generator.device)
        return float(self.crossbar.mvm(v).sum())

    # -- forward ----------------------------------------------------------------------------
    def _row_voltages(self, x: Tensor) -> Tensor:
        """``x [B, in]`` → row voltages ``[n_tiles_in, 1, B, rows]``."""
        u = self.dac.normalise(x.to(self.dtype))
        b = u.shape[0]
        pad = self.n_tiles_in * self.spec.rows - self.in_features
        if pad:
            u = torch.nn.functional.pad(u, (0, pad))
        return (u * self.v_read).reshape(b, self.n_tiles_in, self.spec.rows).permute(1, 0, 2).unsqueeze(1)

    def _tile_currents(self, v: Tensor) -> Tensor:
        """Differential output currents ``[n_tiles_in, n_tiles_out, B, cols/2]`` (before the ADC)."""
        i = self.crossbar.mvm(v)
        opt = self.out_per_tile
        return i[..., 0 : 2 * opt : 2] - i[..., 1 : 2 * opt : 2]

    def calibrate(self, x: Tensor) -> None:
        """Set DAC and ADC ranges from representative inputs ``x [B, in]`` (on the programmed arrays)."""
        self.dac.calibrate(x)
        if self.adc.range_mode == "max":
            self.adc.set_range(self.theoretical_max_current())
        elif self.adc.range_mode == "calibrate":
            with torch.no_grad():
                self.adc.calibrate(self._tile_currents(self._row_voltages(x)))
        # reference for global drift compensation: the all-ones read right after programming
        saved = self.crossbar.t_s
        self.crossbar.set_time(0.0)
        self._ones_ref = self._ones_read()
        self.set_time(saved)

    def theoretical_max_current(self) -> float:
        """Largest possible |I⁺ − I⁻| of a tile: every row at ``v_read``, every cell pair at the full window."""
        rows_used = min(self.spec.rows, self.in_features)
        return self.v_read * rows_used * (self.device.g_max - self.device.g_min)

    def matmul(self, x: Tensor, ledger: EnergyLedger | None = None) -> Tensor:
        """``x @ Wᵀ`` as the hardware computes it. ``x [B, in]`` → ``[B, out]``; energy goes to ``ledger``."""
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x: got shape {tuple(x.shape)}; expected [batch, {self.in_features}]")
        v = self._row_voltages(x)
        i = self.adc(self._tile_currents(v))
        y = i.sum(0)  # digital accumulation of partial sums over input tiles: [n_tiles_out, B, opt]
        y = y.permute(1, 0, 2).reshape(x.shape[0], -1)[:, : self.out_features]
        alpha = self._alpha if self.drift_compensation else 1.0
        y = y * (alpha * self.dac.x_max / (self.v_read * self.g_scale))
        if ledger is not None:
            self._account(x, v, ledger)
        return y

    def _account(self, x: Tensor, v: Tensor, ledger: EnergyLedger) -> None:
        b = x.shape[0]
        e_array = float(self.crossbar.read_energy(v, self.t_read_s).sum())
        n_dac = b * self.in_features * self.n_tiles_out  # every used row of every array is driven once
        n_adc = b * self.out_features * self.n_tiles_in  # one conversion per differential output per tile
        ledger.add(self.name, "array", e_array, events=b * self.n_arrays)
        ledger.add(self.name, "dac", n_dac * self.dac.energy_per_conversion_J, events=n_dac)
        ledger.add(self.name, "adc", n_adc * self.adc.energy_per_conversion_J, events=n_adc)
