"""Mapping of a weight matrix onto tiled crossbar arrays and the hardware matmul (DESIGN §5).

``W [out, in]`` is stored transposed, inputs on rows and outputs on columns; ``w_max = max|W|``.

Signed weights (``scheme``)
---------------------------
* ``differential`` (default): a pair of adjacent columns ``(G⁺, G⁻)`` per output,
  ``G± = g_min + clip(±W, 0, ∞)·s``, ``s = (g_max − g_min)/w_max``, so ``I⁺ − I⁻ = s·(v @ Wᵀ)``
  (the ``g_min`` baseline cancels; aihwkit's single-pair mapping, REFERENCES §5.1).
* ``offset``: one column per output holding the weight plus an offset, and a **reference column**
  per array holding the conductance that encodes *weight zero*; the reference current is
  subtracted from every column in the analog domain (a current mirror) before the ADC:
  ``G = g_min + (W + w_max)·s/2``, ``G_ref = g_min + w_max·s/2 = (g_min + g_max)/2``, so
  ``I − I_ref = (s/2)·(v @ Wᵀ)``. This is the dummy column at the mid conductance of
  DNN+NeuroSim (V1.3 Python inference wrapper ``dummyP = (cellRange − 1)(upper + lower)/2``
  [code]), with the subtraction moved before the ADC so that one signed conversion per column
  suffices. With quantised weights the offset is ISAAC's biased encoding (Shafiee et al., ISCA
  2016): ``X = W_int + 2^(n−1)`` (offset binary), and the reference column holds the code of
  ``W_int = 0``, so zero weights are exact and every reference level is a programmable cell level.

Quantised and bit-sliced weights (``weight_bits = n``, ``bits_per_cell = b``)
-------------------------------------------------------------------------------
``W_int = round(W/q)``, ``q = w_max/(2^(n−1) − 1)`` (symmetric ``n``-bit integers). The
non-negative code (differential: ``|W_int|`` on the ``G⁺`` or ``G⁻`` side, ``n − 1`` bits;
offset: ``X = W_int + 2^(n−1)``, ``n`` bits) is split into ``K = ⌈bits/b⌉`` base-``2^b`` digits
``d_k``, one cell per digit and slice, each slice on its own column (pair), all slices of one
output on the same array (ISAAC; PUMA, Ankit et al., ASPLOS 2019). A cell holds
``G = g_min + d·Δg``, ``Δg = (g_max − g_min)/(2^b − 1)``. For the offset scheme the code of zero,
``2^(n−1)``, has digit ``2^(n−1−b(K−1))`` in the top slice and 0 below, so an array carries two
reference columns (at that level and at ``g_min``) when ``K > 1``. Every slice column (pair) is
digitised by the ADC on its own; the digital periphery recombines ``Σ_k 2^(b·k)·y_k``
(shift-and-add). ``bits_per_cell = None`` keeps one cell per weight (``b`` = the code's bits).

Inputs, tiles and recombination
-------------------------------
The matrix is split into tiles of at most ``rows`` inputs × ``⌊(cols − n_ref)/(K·p)⌋``
outputs (``p`` = 2 columns per slice for the differential pair, 1 for offset); every tile is a
physical ``rows × cols`` array (unused cells at ``g_min``, unused rows at 0 V). Inputs enter as
amplitude (one read), bit-serial (one read per input bit, recombined ``Σ_j 2^j·y_j``) or
binary spikes (see :class:`DAC`). The forward path is DAC → circuit solve → analog subtraction →
ADC per slice, input bit and tile → digital shift-and-add over slices and input bits and
accumulation of the partial sums over input tiles → rescale to weight units.

Energy and latency (to an :class:`EnergyLedger`)
------------------------------------------------
``array``: exact read energy of every read pulse from the solve (``t_read·vᵀYv``; ideal wires:
``t_read·Σ v_i² g_ij``). ``dac``: one row drive per used row, array and read. ``adc``: one
conversion per slice column (pair), input bit, tile and output. ``digital``: the shift-and-add
and partial-sum additions, ``out·(n_tiles_in·J·K − 1)`` integer adds per input vector at the
Horowitz (ISSCC 2014, 45 nm) energy of the accumulator width (see :meth:`MappedMatrix.accumulator_bits`).
Latency of one MVM (all arrays of the layer in parallel, each ADC converting its columns one
after the other, reads and conversions not overlapped):
``t = J·(t_read + n_seq·t_conv)``, ``n_seq = min(cols_per_adc, K·outputs on the busiest array)``;
the ledger splits it into the ``array`` (``J·t_read``) and ``adc`` (``J·n_seq·t_conv``) parts.
Digital recombination is assumed pipelined behind the conversions (no latency).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor

from device_models import Device

from .constants import int_add_energy_J
from .converters import ADC, DAC
from .crossbar import Crossbar
from .energy import EnergyLedger
from .spec import SCHEMES, CrossbarSpec, WeightCoding, weight_coding

__all__ = ["CrossbarSpec", "MappedMatrix", "SCHEMES", "WeightCoding", "weight_coding"]

#: largest number of elements of the per-call intermediate tensors before :meth:`MappedMatrix.matmul`
#: splits the batch (a loop over batch chunks, not samples)
_CHUNK_ELEMENTS = 2**24


class MappedMatrix:
    """A weight matrix ``W [out, in]`` programmed onto crossbars; :meth:`matmul` computes ``x @ Wᵀ`` in hardware.

    Parameters
    ----------
    weight:
        ``[out, in]`` tensor (any float dtype; the software reference).
    device:
        Cell model used for every array of this matrix.
    spec:
        Array size, wire resistances, solver, read pulse and weight mapping.
    dac, adc:
        Converter templates (copied; each matrix calibrates its own ranges). ``dac.mode`` selects
        amplitude, bit-serial or spike inputs.
    generator:
        Source of all randomness (programming noise, faults, read noise, ADC errors).
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
        self.coding = self.spec.coding

        rows, cols, c = self.spec.rows, self.spec.cols, self.coding
        self.out_per_tile = (cols - c.n_ref) // c.cols_per_output
        self.n_tiles_in = math.ceil(self.in_features / rows)
        self.n_tiles_out = math.ceil(self.out_features / self.out_per_tile)
        tdev = self.generator.device
        w = weight.detach().to(device=tdev, dtype=torch.float64)
        digits, self._ref_digits, self.delta_g, self.q = self._encode(w)
        self.g_scale = self.delta_g / self.q  # effective siemens per weight unit of the recombined output
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
        self.crossbar.program(self._targets(digits).to(dtype))
        # static ADC errors, one draw per physical ADC of every array (nothing drawn when off)
        self.n_adc_per_array = math.ceil(self.signals_per_array / self.adc.cols_per_adc)
        static = self.adc.draw_static((self.n_tiles_in, self.n_tiles_out, self.n_adc_per_array), self.generator, dtype)
        if static is None:
            self._adc_gain = self._adc_offset = None
        else:
            idx = torch.arange(self.signals_per_array, device=tdev) // self.adc.cols_per_adc
            self._adc_gain = static[0][..., idx].unsqueeze(-2)
            self._adc_offset = static[1][..., idx].unsqueeze(-2)
        self._alpha = 1.0
        self._ones_ref: float | None = None

    # -- layout -----------------------------------------------------------------------------
    @property
    def n_arrays(self) -> int:
        return self.n_tiles_in * self.n_tiles_out

    @property
    def signals_per_array(self) -> int:
        """ADC inputs per array: one per slice column (pair) of every output slot."""
        return self.out_per_tile * self.coding.n_slices

    def _encode(self, w: Tensor) -> tuple[Tensor, Tensor, float, float]:
        """Cell digits ``[K, p, out, in]``, reference digits per slice ``[K]``, ``Δg`` [S/digit], ``q`` [weight/integer]."""
        c = self.coding
        g_win = self.device.g_max - self.device.g_min
        w_abs_max = float(w.abs().max()) if w.numel() else 0.0
        w_max = w_abs_max if w_abs_max > 0 else 1.0
        if c.weight_bits is None:  # continuous weights, one cell (pair) per weight
            if c.scheme == "differential":
                digits = torch.stack([w.clamp(min=0), (-w).clamp(min=0)]).unsqueeze(0)
                return digits, w.new_zeros(1), g_win / w_max, 1.0
            digits = (w + w_max).unsqueeze(0).unsqueeze(0)
            return digits, w.new_full((1,), w_max), g_win / (2 * w_max), 1.0
        n, b, k = c.weight_bits, c.cell_bits, c.n_slices
        half = 2 ** (n - 1)
        q = w_max / (half - 1)
        w_int = torch.round(w / q).clamp(-(half - 1), half - 1)
        base = 2.0**b
        powers = base ** torch.arange(k, dtype=w.dtype, device=w.device)
        if c.scheme == "differential":
            code = torch.stack([w_int.clamp(min=0), (-w_int).clamp(min=0)])  # [2, out, in]
            ref = w.new_zeros(k)
        else:
            code = (w_int + half).unsqueeze(0)  # [1, out, in]
            ref = torch.remainder(torch.floor(half / powers), base)
        digits = torch.remainder(torch.floor(code.unsqueeze(0) / powers.view(-1, 1, 1, 1)), base)  # [K, p, out, in]
        return digits, ref, g_win / (base - 1), q

    def _ref_columns(self) -> Tensor:
        """Column index of the reference each slice subtracts (offset scheme): ``[K]``."""
        c, cols = self.coding, self.spec.cols
        if c.n_ref == 1:
            return torch.full((c.n_slices,), cols - 1, dtype=torch.long)
        idx = torch.full((c.n_slices,), cols - 2, dtype=torch.long)  # lower slices: the g_min reference
        idx[-1] = cols - 1  # top slice: the reference at the code of zero
        return idx

    def _targets(self, digits: Tensor) -> Tensor:
        """Target conductances ``[n_tiles_in, n_tiles_out, rows, cols]``.

        Output ``o`` of a tile occupies columns ``o·K·p … (o+1)·K·p − 1``, slice ``k`` and polarity
        ``s`` at ``o·K·p + k·p + s``; the reference columns (offset scheme) are the last ``n_ref``.
        """
        rows, cols, opt, c = self.spec.rows, self.spec.cols, self.out_per_tile, self.coding
        k, p = c.n_slices, c.cols_per_slice
        d = digits.permute(3, 2, 0, 1)  # [in, out, K, p]
        wt = d.new_zeros(self.n_tiles_in * rows, self.n_tiles_out * opt, k, p)
        wt[: self.in_features, : self.out_features] = d
        wt = wt.reshape(self.n_tiles_in, rows, self.n_tiles_out, opt * k * p).permute(0, 2, 1, 3)
        g = torch.full((self.n_tiles_in, self.n_tiles_out, rows, cols), self.device.g_min, dtype=d.dtype, device=d.device)
        g[..., : opt * k * p] += wt * self.delta_g
        if c.n_ref:
            ref_cols = self._ref_columns()
            for kk in range(k):  # a handful of slices
                g[..., int(ref_cols[kk])] = self.device.g_min + float(self._ref_digits[kk]) * self.delta_g
        return g

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
    def _rows(self, u: Tensor) -> Tensor:
        """Row drive fractions ``u [N, in]`` → row voltages ``[n_tiles_in, 1, N, rows]``."""
        n = u.shape[0]
        pad = self.n_tiles_in * self.spec.rows - self.in_features
        if pad:
            u = torch.nn.functional.pad(u, (0, pad))
        return (u * self.v_read).reshape(n, self.n_tiles_in, self.spec.rows).permute(1, 0, 2).unsqueeze(1)

    def _signals(self, v: Tensor) -> Tensor:
        """ADC input currents ``[n_tiles_in, n_tiles_out, N, out_per_tile·K]`` (after analog subtraction).

        Signal ``o·K + k`` is slice ``k`` of output slot ``o``: ``I⁺ − I⁻`` (differential) or
        ``I − I_ref`` (offset).
        """
        i = self.crossbar.mvm(v)
        c, opt = self.coding, self.out_per_tile
        k, p = c.n_slices, c.cols_per_slice
        blk = i[..., : opt * k * p].reshape(*i.shape[:-1], opt, k, p)
        if p == 2:
            sig = blk[..., 0] - blk[..., 1]
        else:
            ref = i[..., self._ref_columns().to(i.device)]  # [..., K]
            sig = blk[..., 0] - ref.unsqueeze(-2)
        return sig.reshape(*i.shape[:-1], opt * k)

    def _drive(self, x: Tensor) -> tuple[Tensor, list[float], float]:
        u, wj, x_scale = self.dac.slices(x.to(self.dtype))
        return u.reshape(-1, u.shape[-1]), wj, x_scale

    def calibrate(self, x: Tensor) -> None:
        """Set DAC and ADC ranges from representative inputs ``x [B, in]`` (on the programmed arrays)."""
        self.dac.calibrate(x)
        if self.adc.range_mode == "max":
            self.adc.set_range(self.theoretical_max_current())
        elif self.adc.range_mode == "calibrate":
            with torch.no_grad():
                self.adc.calibrate(self._signals(self._rows(self._drive(x)[0])))
        # reference for global drift compensation: the all-ones read right after programming
        saved = self.crossbar.t_s
        self.crossbar.set_time(0.0)
        self._ones_ref = self._ones_read()
        self.set_time(saved)

    def theoretical_max_current(self) -> float:
        """Largest possible |ADC input| of a tile: every row at ``v_read``, every cell at its largest signal.

        Differential: ``v_read·rows·(g_max − g_min)`` (scaled by the largest digit of a partly used
        top slice); offset: the largest ``|d − d_ref|·Δg`` per row (half the window for continuous weights).
        """
        rows_used = min(self.spec.rows, self.in_features)
        c = self.coding
        if c.weight_bits is None:
            frac = 1.0 if c.scheme == "differential" else 0.5
        else:
            base = 2**c.cell_bits
            top_max = 2 ** (c.code_bits - c.cell_bits * (c.n_slices - 1)) - 1
            dmax = [base - 1] * (c.n_slices - 1) + [top_max]
            frac = max(max(dm - float(r), float(r)) for dm, r in zip(dmax, self._ref_digits)) / (base - 1)
        return self.v_read * rows_used * (self.device.g_max - self.device.g_min) * frac

    def elements_per_vector(self) -> int:
        """Elements of the largest intermediate tensors of :meth:`matmul` per input vector (for chunking)."""
        j = self.dac.n_slices
        return int(j * (self.n_tiles_in * self.spec.rows + 3 * self.n_arrays * self.spec.cols) + self.in_features + self.out_features)

    def matmul(self, x: Tensor, ledger: EnergyLedger | None = None) -> Tensor:
        """``x @ Wᵀ`` as the hardware computes it. ``x [B, in]`` → ``[B, out]``; energy and latency go to ``ledger``."""
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x: got shape {tuple(x.shape)}; expected [batch, {self.in_features}]")
        step = max(1, _CHUNK_ELEMENTS // self.elements_per_vector())
        if x.shape[0] <= step:
            return self._matmul(x, ledger)
        return torch.cat([self._matmul(x[s : s + step], ledger) for s in range(0, x.shape[0], step)])

    def _matmul(self, x: Tensor, ledger: EnergyLedger | None) -> Tensor:
        b = x.shape[0]
        u, wj, x_scale = self._drive(x)
        nj = len(wj)
        c, opt = self.coding, self.out_per_tile
        v = self._rows(u)
        a = self.adc(self._signals(v), self._adc_gain, self._adc_offset, self.generator)
        a = a.reshape(self.n_tiles_in, self.n_tiles_out, nj, b, opt, c.n_slices)
        if c.n_slices > 1:  # shift-and-add over weight slices
            wk = (2.0**c.cell_bits) ** torch.arange(c.n_slices, dtype=a.dtype, device=a.device)
            a = (a * wk).sum(-1)
        else:
            a = a[..., 0]
        if nj > 1:  # shift-and-add over input bits
            a = (a * torch.tensor(wj, dtype=a.dtype, device=a.device).view(-1, 1, 1)).sum(2)
        else:
            a = a[:, :, 0]
        y = a.sum(0)  # digital accumulation of partial sums over input tiles: [n_tiles_out, B, opt]
        y = y.permute(1, 0, 2).reshape(b, -1)[:, : self.out_features]
        alpha = self._alpha if self.drift_compensation else 1.0
        y = y * (alpha * x_scale / (self.v_read * self.g_scale))
        if ledger is not None:
            self._account(b, nj, v, ledger)
        return y

    # -- cost -------------------------------------------------------------------------------
    def accumulator_bits(self) -> int:
        """Width of the digital accumulator [bits] for the shift-and-add energy.

        ADC code bits + the largest shift (``b·(K−1)`` over weight slices, ``J − 1`` over input
        bits) + ``⌈log2(terms)⌉`` growth over the ``n_tiles_in·J·K`` accumulated terms; 32 for a
        lossless ADC [est].
        """
        if self.adc.bits is None:
            return 32
        c, nj = self.coding, self.dac.n_slices
        shift = (c.cell_bits * (c.n_slices - 1) if c.n_slices > 1 else 0) + (nj - 1)
        terms = self.n_tiles_in * nj * c.n_slices
        return int(self.adc.bits) + shift + math.ceil(math.log2(terms)) if terms > 1 else int(self.adc.bits) + shift

    def mvm_latency_s(self) -> tuple[float, float]:
        """``(read, conversion)`` time [s] of one MVM (one input vector) of this layer.

        ``read = J·t_read``; ``conversion = J·n_seq·t_conv`` with ``n_seq = min(cols_per_adc,
        K·outputs on the busiest array)``: each ADC converts its columns one after the other, the
        ADCs of all columns and arrays run in parallel, reads and conversions do not overlap.
        """
        nj = self.dac.n_slices
        busiest = min(self.out_per_tile, self.out_features) * self.coding.n_slices
        n_seq = min(self.adc.cols_per_adc, busiest)
        return nj * self.t_read_s, nj * n_seq * self.adc.conversion_time_s

    def _account(self, b: int, nj: int, v: Tensor, ledger: EnergyLedger) -> None:
        k = self.coding.n_slices
        t_read, t_conv = self.mvm_latency_s()
        e_array = float(self.crossbar.read_energy(v, self.t_read_s).sum())
        n_dac = b * nj * self.in_features * self.n_tiles_out if self.dac.mode != "spikes" else 0  # row drives
        n_adc = b * nj * self.out_features * k * self.n_tiles_in  # one conversion per slice signal, bit and tile
        n_add = b * self.out_features * (self.n_tiles_in * nj * k - 1)  # shift-and-add and tile accumulation
        ledger.add(self.name, "array", e_array, events=b * nj * self.n_arrays, latency_s=b * t_read)
        ledger.add(self.name, "dac", n_dac * self.dac.energy_per_conversion_J, events=n_dac)
        ledger.add(self.name, "adc", n_adc * self.adc.energy_per_conversion_J, events=n_adc, latency_s=b * t_conv)
        ledger.add(self.name, "digital", n_add * int_add_energy_J(self.accumulator_bits()), events=n_add)
