"""Mapping of a weight matrix onto tiled crossbar arrays: a long-lived, reprogrammable chip.

``W [out, in]`` is stored transposed, inputs on rows and outputs on columns. ``w_max`` is the chip's
fixed weight range: given, or ``max|W|`` of the first :meth:`MappedMatrix.program`; weights beyond
it saturate at the cells' window.

Lifecycle: build (device-to-device spread and stuck-at masks drawn once, with the cells) →
``program(W)`` (closed-loop write; per-ADC static errors drawn once, at the first program) →
``matmul``/``weights``/``pulse``/``update``/``switch``/``set_time`` → ``program(W2)`` on the same cells.

Signed weights (``scheme``)
---------------------------
* ``differential`` (default): a pair of adjacent columns ``(G⁺, G⁻)`` per output,
  ``G± = g_min + clip(±W, 0, ∞)·s``, ``s = (g_max − g_min)/w_max``, so ``I⁺ − I⁻ = s·(v @ Wᵀ)``
  (the ``g_min`` baseline cancels; aihwkit's single-pair mapping, docs/circuits.md).
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
* ``unipolar``: one column per output for non-negative weights, ``G = g_min + W·s``,
  ``s = (g_max − g_min)/w_max``, and one **reference column** per array with every cell at ``g_min``;
  its current is subtracted from every column in the analog domain before the ADC (or the column
  neuron), ``I − I_ref = s·(v @ Wᵀ)``. The reference is physical (it sees the same wires and the
  same device spread as the weights' baseline), which is why it is a column and not a digital
  offset. The layout of STDP and binary (MTJ) synapses. Negative weights raise ``ValueError``.

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

Writes after programming (on-chip learning)
-------------------------------------------
Signed pulse counts ``n [out, in]`` go through the device's own ``pulse`` (nonlinearity, noise,
saturation); bit-sliced codings (``n_slices > 1``) cannot be pulsed. Per scheme:

* ``unipolar``/``offset``: the weight's single cell gets ``n`` (``n > 0`` potentiates, ``n < 0``
  depresses; for PCM a depression is an abrupt RESET).
* ``differential``: SET-only on the pair — ``n > 0`` potentiates ``G⁺`` by ``n`` pulses, ``n < 0``
  potentiates ``G⁻`` by ``|n|`` (no depression pulses, so asymmetric or abrupt-RESET devices such as
  PCM work; Burr et al., IEEE TED 62, 3498, 2015). When a side saturates — its mean step at its
  conductance has fallen below half the step at ``g_min``, or one more step would pass ``g_max`` —
  the pair is **refreshed**: its effective weight is read and re-programmed with the minimal pair
  (the other side at ``g_min``), counted as ``refresh`` write events (program-and-verify energy is
  not modelled).

:meth:`MappedMatrix.update` turns weight changes into pulse counts with the local nominal step of
the cell that would move (``Device.pulse_step``), by stochastic rounding; on a continuous ideal
device ``rounding="none"`` writes the change exactly. :meth:`MappedMatrix.switch` writes binary
devices: a signed switching probability per weight becomes a current by the device's
``current_for_probability`` at nominal parameters, and each cell then switches with its own Δ and
Ic0 — the single cell (unipolar, offset) or both cells of the pair in push-pull (``G⁺`` towards
P and ``G⁻`` towards AP for ``p > 0``, reversed for ``p < 0``: ternary weights).

Write energy (the device's, summed over cells) and latency go to the ledger's ``write``
component; latency assumes all arrays write in parallel and, within an array, one row after the
other with all cells of a row in parallel: ``Σ_rows max_cells |n|·t_write`` on the slowest array.

Replicas
--------
``replicas=R`` stacks ``R`` independent chips (own d2d draws, stuck masks, ADC errors, noise) in one
set of tensors, inputs ``[R, B, in]`` → ``[R, B, out]``. Replica ``r`` draws every random number from
its own generator (a :class:`~device_models.base.GeneratorStack`) in the same order as a single
matrix, so a replicated matrix equals ``R`` matrices built separately with those generators. The
weight range ``w_max`` is common; DAC ranges are shared, ADC ranges and drift compensation are
per replica.

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

import contextlib
import copy
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from device_models import Device
from device_models.base import GeneratorStack, new_generator, rand

from .constants import int_add_energy_J
from .converters import ADC, DAC
from .crossbar import Crossbar, split_admittance
from .energy import EnergyLedger
from .spec import SCHEMES, CrossbarSpec, WeightCoding, weight_coding

__all__ = ["CrossbarSpec", "MappedMatrix", "RowDrive", "SCHEMES", "WeightCoding", "weight_coding"]

#: largest number of elements of the per-call intermediate tensors before :meth:`MappedMatrix.matmul`
#: splits the batch (a loop over batch chunks, not samples)
_CHUNK_ELEMENTS = 2**24
#: spike inputs read only the active rows when at most this fraction of the rows is active
_SPARSE_FRACTION = 0.25
#: reads inspected first to recognise dense spike drives without a full pass
_DENSE_PROBE = 256
#: most pulses one :meth:`MappedMatrix.update` call sends to a cell
_MAX_PULSES = 1000
#: |p| is clipped here in :meth:`MappedMatrix.switch` (p = 1 needs an infinite current)
_P_MAX = 1.0 - 1e-9



def pulse_counts(dw: Tensor, step_pos: Tensor, step_neg: Tensor, rounding: str,
                 generator=None) -> tuple[Tensor, Tensor | None]:
    """Weight changes ``dw`` → signed pulse counts, with ``step_pos``/``step_neg`` the local nominal weight step
    of a potentiating / depressing pulse of each cell (same shape; cells with no step left get none).

    ``"stochastic"``: ``⌊|dw|/step⌋ + Bernoulli(frac)`` (unbiased; at most 1000 per cell); ``"nearest"``: rounded;
    ``"none"``: the exact fractional count (continuous devices); ``"accumulate"``: truncated towards zero, and
    the residual ``dw − n·step`` is returned as well (mixed precision: Nandakumar et al., Front. Neurosci.
    14:406, 2020) — for the other modes the residual is None."""
    pos = dw > 0
    step = torch.where(pos, step_pos, step_neg)
    ok = step > 0
    x = torch.where(ok, dw.abs() / torch.where(ok, step, torch.ones_like(step)), torch.zeros_like(step))
    if rounding == "none":
        return torch.where(pos, x, -x), None
    x = x.clamp(max=_MAX_PULSES)
    if rounding == "nearest":
        k = torch.round(x)
    elif rounding == "accumulate":
        k = torch.floor(x)
    else:
        fl = torch.floor(x)
        k = fl + (rand(x.shape, generator, torch.float64) < (x - fl)).to(x.dtype)
    n = torch.where(pos, k, -k)
    if rounding != "accumulate":
        return n, None
    return n, torch.where(ok, dw - n * step, torch.zeros_like(dw))

@dataclass
class RowDrive:
    """Row drive of one :meth:`MappedMatrix.drive` call (the input of :meth:`MappedMatrix.signals`).

    ``u [*L, N, in]`` is the signed fraction of ``v_read`` on each input row for each of the
    ``N = J·B`` reads (read-major: read ``j`` of vector ``b`` is ``j·B + b``); ``weights`` the ``J``
    shift-and-add weights of the reads; ``x = x_scale·Σ_j weights[j]·u[j]``. ``active`` holds the
    indices of the rows any read drives (sparse spike inputs), else ``None``. ``*L`` is ``(R,)`` for
    replicated matrices. :attr:`v` gives the row voltages of every array ``[*L, n_tiles_in, 1, N, rows]``.
    """

    u: Tensor
    weights: list
    x_scale: float
    batch: int
    active: Tensor | None = None
    _mm: MappedMatrix | None = field(default=None, repr=False)
    _v: Tensor | None = field(default=None, repr=False)
    nonnegative: bool | None = None  # every drive ≥ 0 (None: not yet known)
    row_counts: Tensor | None = field(default=None, repr=False)  # Σ over reads of u per row (0/1 spikes)

    def is_nonnegative(self) -> bool:
        if self.nonnegative is None:
            self.nonnegative = bool((self.u >= 0).all())
        return self.nonnegative

    @property
    def n_reads(self) -> int:
        return len(self.weights)

    @property
    def v(self) -> Tensor:
        if self._v is None:
            self._v = self._mm._rows(self.u)
        return self._v


def _make_generator(generator, replicas: int | None):
    """A torch.Generator (single chip) or a GeneratorStack (replicas) from the user's argument."""
    if replicas is None:
        if generator is None:
            return new_generator()
        if isinstance(generator, torch.Generator):
            return generator
        raise ValueError(f"generator: got {type(generator).__name__}; expected a torch.Generator (replicas is None)")
    if generator is None:
        return GeneratorStack([new_generator() for _ in range(replicas)])
    if isinstance(generator, torch.Generator):
        # one child stream per replica, seeded from the given generator (deterministic under its seed)
        seeds = torch.randint(0, 2**62, (replicas,), generator=generator, device=generator.device).tolist()
        return GeneratorStack([torch.Generator(device=generator.device).manual_seed(int(sd)) for sd in seeds])
    gens = list(generator)
    if len(gens) != replicas or not all(isinstance(g, torch.Generator) for g in gens):
        raise ValueError(f"generator: got {len(gens)} items; replicas={replicas} needs one torch.Generator per replica")
    return GeneratorStack(gens)


class MappedMatrix:
    """A weight matrix ``[out, in]`` on tiled crossbars: one chip for its life (module docstring).

    Parameters
    ----------
    weight:
        ``(out, in)``: the shape of the matrix (cells start at the device's fresh state, call
        :meth:`program`); or a ``[out, in]`` (``[R, out, in]`` with ``replicas``) tensor: build, then
        :meth:`program` it (the previous behaviour).
    device:
        Cell model used for every array of this matrix.
    spec:
        Array size, wire resistances, solver (``plastic_solve``, ``plastic_tol``), read pulse, weight mapping.
    dac, adc:
        Converter templates (copied; each matrix calibrates its own ranges). ``dac.mode`` selects
        amplitude, bit-serial or spike inputs.
    generator:
        Source of all randomness (programming noise, faults, read noise, ADC errors, stochastic
        rounding). ``None``: a fresh OS-entropy seed (two matrices never share noise). With
        ``replicas``: one generator per replica (a list), or one generator whose draws seed the
        replicas' own.
    drift_compensation:
        Global drift compensation (Le Gallo et al., Adv. Electron. Mater. 4, 1700627,
        2018): the digital output is scaled by ``α = ΣI(t0)/ΣI(t)``, the ratio of the
        summed column currents for an all-ones input read at calibration and now.
    w_max:
        Fixed weight range of the chip (``None``: ``max|W|`` of the first :meth:`program`).
    replicas:
        ``None`` (one chip) or ``R``: independent chips computed together (module docstring).
    """

    def __init__(
        self,
        weight,
        device: Device,
        spec: CrossbarSpec | None = None,
        dac: DAC | None = None,
        adc: ADC | None = None,
        generator=None,
        dtype: torch.dtype = torch.float32,
        drift_compensation: bool = False,
        name: str = "matrix",
        w_max: float | None = None,
        replicas: int | None = None,
    ):
        if replicas is not None and (isinstance(replicas, bool) or int(replicas) != replicas or replicas < 1):
            raise ValueError(f"replicas: got {replicas!r}; must be an integer ≥ 1 or None")
        self.replicas = None if replicas is None else int(replicas)
        w = None
        if isinstance(weight, Tensor):
            want = 2 if self.replicas is None else (2, 3)
            if weight.dim() not in ((want,) if isinstance(want, int) else want):
                raise ValueError(
                    f"weight: got shape {tuple(weight.shape)}; expected [out, in]"
                    + ("" if self.replicas is None else f" or [{self.replicas}, out, in]")
                )
            if weight.dim() == 3 and weight.shape[0] != self.replicas:
                raise ValueError(f"weight: got shape {tuple(weight.shape)}; the leading dim must be replicas={self.replicas}")
            if not torch.isfinite(weight).all():
                raise ValueError("weight: contains NaN or inf")
            w = weight
            shape = tuple(weight.shape[-2:])
        else:
            try:
                shape = tuple(int(d) for d in weight)
            except TypeError:
                raise ValueError(f"weight: got {weight!r}; expected a shape (out, in) or a weight tensor") from None
            if len(shape) != 2 or min(shape) < 1 or any(int(a) != a for a in weight):
                raise ValueError(f"weight: got shape {weight!r}; expected (out, in), two integers ≥ 1")
        if w_max is not None and not (float(w_max) > 0 and math.isfinite(float(w_max))):
            raise ValueError(f"w_max: got {w_max!r}; must be a finite weight range > 0 (or None: max|W| of the first program)")
        self.name = name
        self.device = device
        self.spec = spec or CrossbarSpec()
        self.dac = copy.deepcopy(dac) if dac is not None else DAC(bits=None)
        self.adc = copy.deepcopy(adc) if adc is not None else ADC(bits=None)
        self.generator = _make_generator(generator, self.replicas)
        self.dtype = dtype
        self.drift_compensation = drift_compensation
        self.out_features, self.in_features = shape
        self.v_read = float(self.spec.v_read if self.spec.v_read is not None else device.v_read)
        self.t_read_s = float(self.spec.t_read_s if self.spec.t_read_s is not None else device.t_read_s)
        self.coding = self.spec.coding
        self._lead = () if self.replicas is None else (self.replicas,)

        rows, cols, c = self.spec.rows, self.spec.cols, self.coding
        self.out_per_tile = (cols - c.n_ref) // c.cols_per_output
        self.n_tiles_in = math.ceil(self.in_features / rows)
        self.n_tiles_out = math.ceil(self.out_features / self.out_per_tile)
        self.w_max: float | None = None
        self._set_range(w_max)
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
            stack=self._lead + (self.n_tiles_in, self.n_tiles_out),
            generator=self.generator,
            dtype=dtype,
            plastic_solve=getattr(self.spec, "plastic_solve", "exact"),
            plastic_tol=getattr(self.spec, "plastic_tol", 1e-3),
            read_energy=getattr(self.spec, "read_energy", "exact"),
            read_energy_tol=getattr(self.spec, "read_energy_tol", 1e-3),
        )
        #: ``read_energy: bounded``: the a-priori relative bound ρ of the current split (0: exact form); the
        #: certified absolute bound summed over the reads charged so far is :attr:`read_energy_error_J`
        self.read_energy_rel_bound = 0.0
        self._read_energy_err = None  # 0-d float64 tensor on the chip's device (no sync per read)
        self._ysplit = None  # (summed Y it splits, [AdmittanceSplit | None per input tile])
        self.n_adc_per_array = math.ceil(self.signals_per_array / self.adc.cols_per_adc)
        self._static_drawn = False
        self._adc_gain = self._adc_offset = None
        self._alpha = 1.0
        self._ones_ref = None
        self._eff_cache: tuple[int, Tensor] | None = None
        self._trusted_spikes: bool | None = None  # set by assume_spikes
        self._tile_cache: tuple | None = None  # (eff, v_read·eff per input tile [*L, ti, rows, to·S])
        self._rowsum_cache: tuple | None = None  # (g, Σ over columns and output tiles of G per input row)
        self._adc_reps: list | None = None  # per-replica ADC copies (own calibrated ranges)
        self.programmed = False
        if w is not None:
            self.program(w)

    # -- layout -----------------------------------------------------------------------------
    @property
    def n_arrays(self) -> int:
        return self.n_tiles_in * self.n_tiles_out

    @property
    def signals_per_array(self) -> int:
        """ADC inputs per array: one per slice column (pair) of every output slot."""
        return self.out_per_tile * self.coding.n_slices

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.generator.device)

    @property
    def weight_shape(self) -> tuple:
        return self._lead + (self.out_features, self.in_features)

    def _set_range(self, w_max: float | None) -> None:
        """Fix the weight range and the conductance scale: ``Δg`` [S/digit], ``q``, ``g_scale = Δg/q``."""
        c = self.coding
        if w_max is None:
            self.delta_g = self.q = self.g_scale = None
            self._ref_digits = None
            return
        self.w_max = float(w_max)
        g_win = self.device.g_max - self.device.g_min
        wm = self.w_max
        if c.weight_bits is None:
            if c.scheme == "offset":
                self._ref_digits, self.delta_g, self.q = [wm], g_win / (2 * wm), 1.0
            else:
                self._ref_digits, self.delta_g, self.q = [0.0], g_win / wm, 1.0
        else:
            n, b, k = c.weight_bits, c.cell_bits, c.n_slices
            base = 2**b
            if c.scheme == "unipolar":
                self.q = wm / (2**n - 1)
                self._ref_digits = [0.0] * k
            else:
                half = 2 ** (n - 1)
                self.q = wm / (half - 1)
                if c.scheme == "differential":
                    self._ref_digits = [0.0] * k
                else:
                    self._ref_digits = [float((half // base**kk) % base) for kk in range(k)]
            self.delta_g = g_win / (base - 1)
        self.g_scale = self.delta_g / self.q  # effective siemens per weight unit of the recombined output

    def _need_range(self, what: str) -> None:
        if self.w_max is None:
            raise ValueError(f"{what}: the weight range is not set; pass w_max= to MappedMatrix or program(W) first")

    def _encode(self, w: Tensor) -> Tensor:
        """Cell digits ``[*L, K, p, out, in]`` of weights ``w [*L, out, in]`` (float64)."""
        c = self.coding
        wm = self.w_max
        if c.weight_bits is None:  # continuous weights, one cell (pair) per weight
            if c.scheme == "differential":
                return torch.stack([w.clamp(min=0), (-w).clamp(min=0)], -3).unsqueeze(-4)
            if c.scheme == "unipolar":
                return w.unsqueeze(-3).unsqueeze(-4)
            return (w + wm).unsqueeze(-3).unsqueeze(-4)
        n, b, k = c.weight_bits, c.cell_bits, c.n_slices
        base = 2.0**b
        powers = base ** torch.arange(k, dtype=w.dtype, device=w.device)
        if c.scheme == "unipolar":
            code = torch.round(w / self.q).clamp(0, 2**n - 1).unsqueeze(-3)
        else:
            half = 2 ** (n - 1)
            w_int = torch.round(w / self.q).clamp(-(half - 1), half - 1)
            if c.scheme == "differential":
                code = torch.stack([w_int.clamp(min=0), (-w_int).clamp(min=0)], -3)  # [*L, 2, out, in]
            else:
                code = (w_int + half).unsqueeze(-3)  # [*L, 1, out, in]
        return torch.remainder(torch.floor(code.unsqueeze(-4) / powers.view(-1, 1, 1, 1)), base)  # [*L, K, p, out, in]

    def _ref_columns(self) -> Tensor:
        """Column index of the reference each slice subtracts (offset, unipolar): ``[K]``."""
        c, cols = self.coding, self.spec.cols
        if c.n_ref == 1:
            return torch.full((c.n_slices,), cols - 1, dtype=torch.long)
        idx = torch.full((c.n_slices,), cols - 2, dtype=torch.long)  # lower slices: the g_min reference
        idx[-1] = cols - 1  # top slice: the reference at the code of zero
        return idx

    def _to_cells(self, d: Tensor, fill: float = 0.0) -> Tensor:
        """Per-weight cell values ``[*L, K, p, out, in]`` → array layout ``[*L, ti, to, rows, cols]``.

        Output ``o`` of a tile occupies columns ``o·K·p … (o+1)·K·p − 1``, slice ``k`` and polarity
        ``s`` at ``o·K·p + k·p + s``; the reference columns (offset, unipolar) are the last ``n_ref``;
        cells that hold no weight get ``fill``.
        """
        rows, cols, opt, c = self.spec.rows, self.spec.cols, self.out_per_tile, self.coding
        k, p = c.n_slices, c.cols_per_slice
        lead = tuple(d.shape[:-4])
        nl = len(lead)
        d = d.permute(*range(nl), nl + 3, nl + 2, nl, nl + 1)  # [*L, in, out, K, p]
        wt = d.new_zeros(*lead, self.n_tiles_in * rows, self.n_tiles_out * opt, k, p)
        wt[..., : self.in_features, : self.out_features, :, :] = d
        wt = wt.reshape(*lead, self.n_tiles_in, rows, self.n_tiles_out, opt * k * p).transpose(-3, -2)
        out = torch.full((*lead, self.n_tiles_in, self.n_tiles_out, rows, cols), fill, dtype=d.dtype, device=d.device)
        out[..., : opt * k * p] = wt
        return out

    def _targets(self, digits: Tensor) -> Tensor:
        """Target conductances ``[*L, n_tiles_in, n_tiles_out, rows, cols]`` of cell digits (:meth:`_to_cells`)."""
        rows, cols, opt, c = self.spec.rows, self.spec.cols, self.out_per_tile, self.coding
        k, p = c.n_slices, c.cols_per_slice
        wt = self._to_cells(digits)[..., : opt * k * p]
        g = torch.full((*digits.shape[:-4], self.n_tiles_in, self.n_tiles_out, rows, cols), self.device.g_min,
                       dtype=digits.dtype, device=digits.device)
        g[..., : opt * k * p] += wt * self.delta_g
        if c.n_ref:
            ref_cols = self._ref_columns()
            for kk in range(k):  # a handful of slices
                g[..., int(ref_cols[kk])] = self.device.g_min + float(self._ref_digits[kk]) * self.delta_g
        return g

    def _combine(self, i: Tensor) -> Tensor:
        """Analog subtraction on the last (column) dim: ``[..., cols]`` → ``[..., out_per_tile·K]``.

        Signal ``o·K + k`` is slice ``k`` of output slot ``o``: ``I⁺ − I⁻`` (differential) or
        ``I − I_ref`` (offset, unipolar).
        """
        c, opt = self.coding, self.out_per_tile
        k, p = c.n_slices, c.cols_per_slice
        blk = i[..., : opt * k * p].reshape(*i.shape[:-1], opt, k, p)
        if p == 2:
            sig = blk[..., 0] - blk[..., 1]
        else:
            ref = i[..., self._ref_columns().to(i.device)]  # [..., K]
            sig = blk[..., 0] - ref.unsqueeze(-2)
        return sig.reshape(*i.shape[:-1], opt * k)

    def _slots_to_weights(self, m: Tensor) -> Tensor:
        """``[*L, ti, to, rows, opt]`` (one value per row and output slot) → ``[*L, out, in]``."""
        lead = m.shape[:-4]
        m = m.transpose(-3, -2).reshape(*lead, self.n_tiles_in * self.spec.rows, self.n_tiles_out * self.out_per_tile)
        return m[..., : self.in_features, : self.out_features].transpose(-2, -1)

    def _cells_to_weights(self, g: Tensor) -> Tensor:
        """Weights ``[*L, out, in]`` that conductances ``g [*L, ti, to, rows, cols]`` encode (ideal read)."""
        c = self.coding
        sig = self._combine(g)  # [*L, ti, to, rows, opt·K]
        if c.n_slices > 1:
            sig = sig.reshape(*sig.shape[:-1], self.out_per_tile, c.n_slices)
            wk = (2.0**c.cell_bits) ** torch.arange(c.n_slices, dtype=sig.dtype, device=sig.device)
            sig = (sig * wk).sum(-1)
        return self._slots_to_weights(sig) / self.g_scale

    def _from_cells(self, x: Tensor) -> Tensor:
        """Array layout ``[*L, ti, to, rows, cols]`` → per-weight cells ``[*L, K, p, out, in]``."""
        c, opt, rows = self.coding, self.out_per_tile, self.spec.rows
        k, p = c.n_slices, c.cols_per_slice
        lead = x.shape[:-4]
        nl = len(lead)
        blk = x[..., : opt * k * p].transpose(-3, -2).reshape(*lead, self.n_tiles_in * rows, self.n_tiles_out * opt, k, p)
        blk = blk[..., : self.in_features, : self.out_features, :, :]
        return blk.permute(*range(nl), nl + 2, nl + 3, nl + 1, nl)

    # -- programming ------------------------------------------------------------------------
    def _weights_arg(self, w: Tensor, name: str) -> Tensor:
        if not isinstance(w, Tensor):
            w = torch.as_tensor(w)
        try:
            w = w.detach().to(device=self.torch_device, dtype=torch.float64).expand(self.weight_shape)
        except RuntimeError:
            raise ValueError(f"{name}: got shape {tuple(w.shape)}; expected {list(self.weight_shape)}"
                             + (f" or [{self.out_features}, {self.in_features}]" if self.replicas else "")) from None
        if not bool(torch.isfinite(w).all()):
            raise ValueError(f"{name}: contains NaN or inf")
        return w

    def _mask_arg(self, mask) -> Tensor | None:
        if mask is None:
            return None
        mask = torch.as_tensor(mask, device=self.torch_device)
        if mask.dtype != torch.bool:
            raise ValueError(f"mask: got dtype {mask.dtype}; expected a boolean tensor [out, in] (True = write)")
        try:
            return mask.expand(self.weight_shape)
        except RuntimeError:
            raise ValueError(f"mask: got shape {tuple(mask.shape)}; expected {list(self.weight_shape)}") from None

    def program(self, weight: Tensor) -> None:
        """Write ``weight`` (``[out, in]``, or ``[R, out, in]`` with replicas) on the same cells.

        The cells' device-to-device spread and stuck-at masks, and the ADC static errors (drawn at
        the first program), are kept; programming noise is drawn anew. Written at the chip clock's
        present time (:meth:`set_time`). Weights beyond ``±w_max`` saturate.
        """
        w = self._weights_arg(weight, "weight")
        if self.coding.scheme == "unipolar" and bool((w < 0).any()):
            raise ValueError(
                f"weight: the unipolar scheme stores non-negative weights only; got min {float(w.min()):.4g} "
                "(use scheme 'differential' or 'offset', or clip W at 0)"
            )
        if self.w_max is None:
            m = float(w.abs().max()) if w.numel() else 0.0
            self._set_range(m if m > 0 else 1.0)
        self.crossbar.program(self._targets(self._encode(w)).to(self.dtype))
        self._ensure_static()
        self.programmed = True

    def _ensure_static(self) -> None:
        """Static ADC errors, one draw per physical ADC of every array (nothing drawn when off), once."""
        if self._static_drawn:
            return
        self._static_drawn = True
        shape = (self.n_tiles_in, self.n_tiles_out, self.n_adc_per_array)
        gens = self.generator if isinstance(self.generator, GeneratorStack) else [self.generator]
        draws = [self.adc.draw_static(shape, g, self.dtype) for g in gens]
        if draws[0] is None:
            return
        gain = torch.stack([d[0] for d in draws]) if self.replicas else draws[0][0]
        off = torch.stack([d[1] for d in draws]) if self.replicas else draws[0][1]
        idx = torch.arange(self.signals_per_array, device=self.torch_device) // self.adc.cols_per_adc
        self._adc_gain = gain[..., idx].unsqueeze(-2)
        self._adc_offset = off[..., idx].unsqueeze(-2)

    def weights(self) -> Tensor:
        """Effective weights the chip holds now ``[out, in]`` (``[R, out, in]``), in weight units.

        What the arrays encode with ideal wires and converters: ``(G⁺ − G⁻)/g_scale`` (differential),
        ``(G − G_ref)/g_scale`` (offset, unipolar; the reference cell of the same row), recombined over
        slices, with every cell's programming noise, stuck state, drift to the present time and pulses.
        """
        self._need_range("weights()")
        return self._cells_to_weights(self.crossbar.g.to(torch.float64)).to(self.dtype)

    # -- on-chip writes ---------------------------------------------------------------------
    def _check_pulsable(self, what: str) -> None:
        self._need_range(what)
        if self.coding.n_slices > 1:
            raise ValueError(f"{what}: bit-sliced weights (n_slices = {self.coding.n_slices}) cannot be pulsed; "
                             "use program(), or mapping.bits_per_cell = None")
        if not getattr(self.device, "pulsed", False):
            raise ValueError(f"{what}: device {self.device.name!r} does not support pulsed updates")
        self._ensure_static()

    def _cell_counts(self, n: Tensor) -> Tensor:
        """Signed per-weight pulse counts ``[*L, out, in]`` → per-cell counts in the array layout."""
        if self.coding.cols_per_slice == 2:  # SET-only on the pair
            d = torch.stack([n.clamp(min=0), (-n).clamp(min=0)], -3).unsqueeze(-4)
        else:
            d = n.unsqueeze(-3).unsqueeze(-4)
        return self._to_cells(d)

    def _write_latency(self, cell_counts: Tensor, t_write: float) -> Tensor:
        """Rows one after the other, cells of a row in parallel, all arrays (and replicas) in parallel."""
        per_row = cell_counts.abs().amax(-1).sum(-1)  # [*L, ti, to]
        return per_row.amax() * t_write

    def _record_write(self, ledger, energy, events, latency) -> None:
        if ledger is not None:
            ledger.add(self.name, "write", energy, events=events, latency_s=latency)

    def pulse(self, n: Tensor, ledger: EnergyLedger | None = None, mask: Tensor | None = None, *, _exact: bool = False) -> Tensor:
        """Apply signed pulse counts per weight ``n [out, in]`` (``[R, out, in]``) through the device's ``pulse``.

        Mapping to cells per scheme (module docstring): unipolar/offset the weight's cell, differential
        SET-only on the pair with a refresh of saturated pairs. ``mask`` (boolean, per weight) limits the
        write to those weights. Write energy and latency go to ``ledger`` (component ``write``).
        Returns the write energy [J] (0-d tensor).
        """
        self._check_pulsable("pulse")
        n = self._weights_arg(n, "n")
        if not _exact:
            n = n.round()
        m = self._mask_arg(mask)
        if m is not None:
            n = torch.where(m, n, torch.zeros((), dtype=n.dtype, device=n.device))
        cells = self._cell_counts(n)
        energy = self.crossbar.pulse(cells.to(self.crossbar.state.g.dtype if _exact else torch.float64))
        events = cells.abs().sum()
        latency = self._write_latency(cells, float(getattr(self.device, "t_write_s", 0.0) or 0.0))
        self._record_write(ledger, energy, events, latency)
        if self.coding.cols_per_slice == 2:
            self._refresh_saturated(n != 0, ledger)
        return energy

    def _refresh_saturated(self, touched: Tensor, ledger) -> None:
        """Re-program differential pairs (among ``touched`` weights) whose potentiated side saturated."""
        dev, state = self.device, self.crossbar.state
        step = dev.pulse_step(state, +1)
        ref = dev.pulse_step(state.replace(g=torch.full_like(state.g, float(dev.g_min))), +1)
        sat = (step < 0.5 * ref) | (state.g.to(step.dtype) + 0.5 * ref > dev.g_max)
        sat_w = self._from_cells(sat).any(-3)[..., 0, :, :] & touched  # [*L, out, in]
        if not bool(sat_w.any()):
            return
        w = self._cells_to_weights(self.crossbar.g.to(torch.float64))
        cell_mask = self._to_cells(sat_w.unsqueeze(-3).unsqueeze(-4).expand(*sat_w.shape[:-2], 1, 2, *sat_w.shape[-2:]).to(torch.float64)) > 0
        self.crossbar.program(self._targets(self._encode(w)).to(self.dtype), mask=cell_mask)
        if ledger is not None:
            ledger.add(self.name, "write", 0.0, events=cell_mask.sum())
        self.n_refreshes = getattr(self, "n_refreshes", 0) + int(sat_w.sum())

    def pulse_step_w(self, direction: int = 1) -> Tensor:
        """Weight change of one pulse per weight ``[out, in]`` (``[R, out, in]``) at the cells' present
        conductances: the device's mean step of the cell that would move (``Device.pulse_step``) over
        ``g_scale``. Differential: the ``G⁺`` side for ``direction > 0``, ``G⁻`` otherwise (SET-only)."""
        self._check_pulsable("pulse_step_w")
        st = self.crossbar.state
        if self.coding.cols_per_slice == 2:
            cells = self._from_cells(self.device.pulse_step(st, +1))[..., 0, :, :, :]  # [*L, 2, out, in]
            g_step = cells[..., 0, :, :] if direction > 0 else cells[..., 1, :, :]
        else:
            g_step = self._from_cells(self.device.pulse_step(st, 1 if direction > 0 else -1))[..., 0, 0, :, :]
        return g_step.to(torch.float64) / self.g_scale

    def update(self, dw: Tensor, ledger: EnergyLedger | None = None, mask: Tensor | None = None, rounding: str = "stochastic",
               residual: Tensor | None = None) -> Tensor:
        """Change the weights by ``dw`` (weight units, ``[out, in]``/``[R, out, in]``) with device pulses.

        ``rounding="stochastic"``: ``n = ⌊|dw|/step⌋ + Bernoulli(frac)`` pulses with ``step`` the local
        nominal weight step of the cell that moves (:meth:`pulse_step_w`; unbiased in expectation, at
        most 1000 pulses per cell and call; cells with no step left get none); ``"nearest"``: rounded;
        ``"none"``: exact continuous writes, only for devices with ``continuous_writes`` (the ideal
        device without levels), which reproduces a software rule to float precision; ``"accumulate"``:
        mixed precision (:func:`pulse_counts`) with ``residual`` the accumulator χ (float64, weight units, the
        shape of ``dw``), updated in place: ``dw + χ`` is written as whole pulses and the remainder stays in χ
        (masked cells keep theirs).
        Returns the signed pulse counts applied ``[*L, out, in]`` (fractional for ``"none"``).
        """
        if rounding not in ("stochastic", "nearest", "none", "accumulate"):
            raise ValueError(f"rounding: got {rounding!r}; allowed: 'stochastic', 'nearest', 'none', 'accumulate'")
        if (rounding == "accumulate") != (residual is not None):
            raise ValueError("residual: rounding 'accumulate' needs residual= (the accumulator, float64, shape of dw), "
                             f"and only it takes one; got rounding {rounding!r}")
        self._check_pulsable("update")
        dw = self._weights_arg(dw, "dw")
        m = self._mask_arg(mask)
        if m is not None:
            dw = torch.where(m, dw, torch.zeros((), dtype=dw.dtype, device=dw.device))
        if rounding == "none" and not getattr(self.device, "continuous_writes", False):
            raise ValueError(f"rounding: 'none' needs a device with continuous writes (the ideal device without "
                             f"levels); device {self.device.name!r} takes whole pulses")
        if residual is not None:
            dw = dw.to(torch.float64) + residual
            if m is not None:
                dw = torch.where(m, dw, torch.zeros((), dtype=dw.dtype, device=dw.device))
        n, chi = pulse_counts(dw, self.pulse_step_w(+1), self.pulse_step_w(-1), rounding, self.generator)
        if residual is not None:
            residual.copy_(chi if m is None else torch.where(m, chi, residual))
        if rounding == "none":
            self.pulse(n, ledger, None, _exact=True)
            return n
        if bool((n != 0).any()):
            self.pulse(n, ledger, None)
        return n

    def switch(self, p: Tensor | None = None, current_A: Tensor | None = None, t_pulse_s: float | None = None,
               ledger: EnergyLedger | None = None, mask: Tensor | None = None) -> Tensor:
        """One stochastic write pulse per weight on a binary device (MTJ); returns the write energy [J].

        ``p`` (signed switching probability per weight, ``+`` towards ON/P, ``−`` towards OFF/AP, 0 no
        pulse) is turned into a current by ``device.current_for_probability`` at nominal parameters
        (``|p|`` clipped at ``1 − 1e-9``); or give ``current_A`` (signed, per weight) directly. The cells
        then switch with their own Δ and Ic0. ``t_pulse_s``: pulse width (default the device's
        ``t_write_s``). Unipolar/offset: the weight's cell; differential: push-pull on the pair.
        """
        self._need_range("switch")
        if not getattr(self.device, "binary", False):
            raise ValueError(f"switch: device {self.device.name!r} is not binary; use pulse()/update() (switch needs an MTJ)")
        if (p is None) == (current_A is None):
            raise ValueError("switch: give exactly one of p (switching probabilities) or current_A (write currents)")
        if self.coding.n_slices > 1:
            raise ValueError("switch: bit-sliced weights cannot be switched; use mapping.bits_per_cell = None")
        self._ensure_static()
        t = float(self.device.t_write_s if t_pulse_s is None else t_pulse_s)
        if not t > 0:
            raise ValueError(f"t_pulse_s: got {t_pulse_s!r}; must be > 0 s")
        if p is not None:
            p = self._weights_arg(p, "p")
            if bool((p.abs() > 1).any()):
                raise ValueError(f"p: switching probabilities must lie in [-1, 1]; got max |p| = {float(p.abs().max()):.4g}")
            mag = self.device.current_for_probability(p.abs().clamp(max=_P_MAX), torch.tensor(t, dtype=torch.float64))
            cur = torch.sign(p) * mag.to(p.device)
        else:
            cur = self._weights_arg(current_A, "current_A")
        m = self._mask_arg(mask)
        if m is not None:
            cur = torch.where(m, cur, torch.zeros((), dtype=cur.dtype, device=cur.device))
        if self.coding.cols_per_slice == 2:
            d = torch.stack([cur, -cur], -3).unsqueeze(-4)  # push-pull on the pair
        else:
            d = cur.unsqueeze(-3).unsqueeze(-4)
        cells = self._to_cells(d)
        energy = self.crossbar.switch(cells, t)
        events = (cells != 0).sum()
        self._record_write(ledger, energy, events, self._write_latency((cells != 0).to(torch.float64), t))
        return energy

    # -- time -------------------------------------------------------------------------------
    def set_time(self, t_s: float) -> None:
        """Move the chip clock to ``t_s`` [s] (drift from each cell's own last write); re-measures the
        drift-compensation factor."""
        self.crossbar.set_time(t_s)
        self._alpha = 1.0
        if self._ones_ref is not None and t_s > 0:
            now = self._ones_read()
            if self.replicas is None:
                self._alpha = self._ones_ref / now if now > 0 else 1.0
            else:
                self._alpha = torch.where(now > 0, self._ones_ref / now, torch.ones_like(now)).view(-1, 1, 1)

    def _ones_read(self):
        v = torch.full((self.n_tiles_in, 1, 1, self.spec.rows), self.v_read, dtype=self.dtype, device=self.torch_device)
        i = self.crossbar.mvm(v)
        if self.replicas is None:
            return float(i.sum())
        return i.flatten(1).sum(1)

    # -- forward stages ---------------------------------------------------------------------
    def _inputs(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise ValueError(f"x: got {type(x).__name__}; expected a tensor [batch, {self.in_features}]")
        if self.replicas is None:
            if x.dim() != 2 or x.shape[1] != self.in_features:
                raise ValueError(f"x: got shape {tuple(x.shape)}; expected [batch, {self.in_features}]")
            return x
        if x.dim() == 2 and x.shape[1] == self.in_features:
            return x.unsqueeze(0).expand(self.replicas, *x.shape)
        if x.dim() != 3 or x.shape[0] != self.replicas or x.shape[2] != self.in_features:
            raise ValueError(f"x: got shape {tuple(x.shape)}; expected [{self.replicas}, batch, {self.in_features}] "
                             f"(or [batch, {self.in_features}], the same input for every replica)")
        return x

    def drive(self, x: Tensor) -> RowDrive:
        """Row drive for inputs ``x [B, in]`` (``[R, B, in]``): DAC (amplitude, bit-serial) or spikes (no DAC).

        Sparse spike inputs (at most a quarter of the rows active) record the active rows, so that
        :meth:`signals` and :meth:`column_currents` read only those rows (event-driven).
        """
        x = self._inputs(x)
        b = x.shape[-2]
        xf = x.reshape(-1, self.in_features).to(self.dtype)
        trusted = getattr(self, "_trusted_spikes", None) if self.dac.mode == "spikes" else None
        if trusted is not None:  # the caller guarantees binary spikes (or pulse counts): skip the per-element check
            as_counts = getattr(self, "_trusted_counts", False) and self.dac.pulses > 1
            u, wj, x_scale = xf.unsqueeze(0), [1.0], (1.0 / self.dac.pulses if self.dac.pulses > 1 else 1.0)
            if self.dac.pulses > 1 and not as_counts:
                u = u * self.dac.pulses
        else:
            u, wj, x_scale = self.dac.slices(xf)  # [J, L·B, in]
        nj = u.shape[0]
        if self.replicas is not None:
            u = u.reshape(nj, self.replicas, b, self.in_features).transpose(0, 1)
        u = u.reshape(*self._lead, nj * b, self.in_features)
        active = None
        counts = None
        if self.dac.mode == "spikes":
            flat = u.reshape(-1, self.in_features)
            if trusted and int(flat[:_DENSE_PROBE].sum(0).gt(0).sum()) > _SPARSE_FRACTION * self.in_features:
                hit = None  # the first reads alone drive too many rows: dense (row counts come from signals())
            elif trusted:  # 0/1 spikes: the reads per row (a sum is much cheaper than any() on floats)
                counts = u.sum(-2)  # [*L, in]
                hit = counts.reshape(-1, self.in_features).sum(0) > 0
            else:
                hit = flat.any(0)
            if hit is not None and int(hit.sum()) <= _SPARSE_FRACTION * self.in_features:
                active = hit.nonzero().squeeze(-1)
        drive = RowDrive(u, wj, x_scale, b, active, self)
        if trusted:
            drive.nonnegative = True
            drive.row_counts = counts
        return drive

    @contextlib.contextmanager
    def assume_spikes(self, nonnegative: bool = False, counts: bool = False):
        """Within the block, spike-mode inputs are taken as binary spikes without the per-element check
        of :meth:`DAC.slices` (the caller produced them, e.g. IF neurons); ``nonnegative``: they are 0/1.

        ``counts`` (count-coded drives, ``dac.pulses = n > 1``): the inputs are the integer pulse counts
        ``k`` themselves (not ``k/n``); the result is still in units of ``k/n``."""
        saved = getattr(self, "_trusted_spikes", None), getattr(self, "_trusted_counts", False)
        self._trusted_spikes = bool(nonnegative)
        self._trusted_counts = bool(counts)
        try:
            yield self
        finally:
            self._trusted_spikes, self._trusted_counts = saved

    def _drive(self, x: Tensor) -> tuple[Tensor, list, float]:
        """Deprecated private form of :meth:`drive` (``(u [J·B, in], weights, x_scale)``); use ``drive(x).v``."""
        d = self.drive(x)
        return d.u, d.weights, d.x_scale

    def _rows(self, u: Tensor) -> Tensor:
        """Row drive fractions ``u [*L, N, in]`` → row voltages ``[*L, n_tiles_in, 1, N, rows]``."""
        n = u.shape[-2]
        pad = self.n_tiles_in * self.spec.rows - self.in_features
        if pad:
            u = torch.nn.functional.pad(u, (0, pad))
        return (u * self.v_read).reshape(*u.shape[:-2], n, self.n_tiles_in, self.spec.rows).transpose(-3, -2).unsqueeze(-3)

    def _fast(self) -> bool:
        """Reads can use the cached effective matrix: linear solve and no per-read noise."""
        return self.device.read_noise_rel() == 0 and not (self.crossbar._use_network_solve() and self.device.nonlinear_iv)

    def _effective(self, nonnegative: bool = False) -> Tensor:
        """Signal transfer per array after analog subtraction ``[*L, ti, to, rows, opt·K]`` (cached per chip
        state); ``nonnegative``: serves inputs ≥ 0 (bounded IR-drop mode may then keep a tile longer)."""
        ver = self.crossbar.version
        c = self._eff_cache
        if c is None or c[0] != ver or (c[2] and not nonnegative):
            xb = self.crossbar
            m = xb.transfer(nonnegative)[0] if xb._use_network_solve() else xb.g
            self._eff_cache = (ver, self._combine(m), nonnegative and xb._use_network_solve())
        return self._eff_cache[1]

    def _column_matrix(self, nonnegative: bool = False) -> Tensor:
        """Signal transfer summed over input tiles, weights layout transposed ``[*L, in, out]`` [S] (cached)."""
        eff = self._effective(nonnegative)
        cache = getattr(self, "_colm_cache", None)
        if cache is None or cache[0] is not eff:
            self._colm_cache = (eff, self._slots_to_weights(eff).transpose(-2, -1).contiguous())
        return self._colm_cache[1]

    def _tile_matrix(self, eff: Tensor, n_sig: int | None = None) -> Tensor:
        """The signal transfer laid out per input tile ``[*L, ti, rows, to·S]`` (contiguous, cached per ``eff``);
        ``n_sig``: only the first ``n_sig`` signals (contiguous too)."""
        c = getattr(self, "_tile_cache", None)
        if c is None or c[0] is not eff:
            ef = eff.transpose(-3, -2).reshape(*eff.shape[:-3], self.spec.rows, -1)
            c = self._tile_cache = (eff, {None: ef.contiguous()})
        if n_sig not in c[1]:
            c[1][n_sig] = c[1][None][..., :n_sig].contiguous()
        return c[1][n_sig]

    def _used_signals(self) -> int | None:
        """Signals per array worth digitising in :meth:`_matmul`: ``out_features·K`` when one output tile
        holds every output in fewer slots than it has and the ADC is the same deterministic quantiser for
        every signal (no static errors, no noise, one range), else ``None`` (all signals)."""
        if self.n_tiles_out != 1 or self.out_features >= self.out_per_tile or self.replicas is not None:
            return None
        return self.out_features * self.coding.n_slices if self.uniform_adc() else None

    def uniform_adc(self) -> bool:
        """Whether the ADC is the same deterministic quantiser for every signal: no static gain/offset
        errors, no noise, one scalar range (or lossless)."""
        if self._adc_gain is not None or self._adc_offset is not None:
            return False
        a = self.adc
        if a.bits is None:
            return True
        if a.noise_sigma_lsb > 0:
            return False
        r = a.full_scale()
        return r is not None and not (torch.is_tensor(r) and r.numel() != 1)

    def signals(self, drive: RowDrive | Tensor, _used: int | None = None) -> Tensor:
        """ADC input currents ``[*L, n_tiles_in, n_tiles_out, N, out_per_tile·K]`` [A] (after analog subtraction).

        ``drive``: a :class:`RowDrive` or row voltages ``[*L, n_tiles_in, 1, N, rows]``. Signal ``o·K + k`` is
        slice ``k`` of output slot ``o``: ``I⁺ − I⁻`` (differential) or ``I − I_ref`` (offset, unipolar).
        """
        if isinstance(drive, RowDrive) and self.dac.mode == "spikes" and self._fast():
            u = drive.u
            nonneg = drive.is_nonnegative() if self.crossbar._use_network_solve() else False
            eff = self._effective(nonneg)  # [*L, ti, to, rows, S]
            efv = self._tile_matrix(eff)  # [*L, ti, rows, to·S]
            rows = self.spec.rows
            if drive.active is not None:  # event-driven: only the active rows are read
                idx = drive.active
                ua = u.index_select(-1, idx) * self.v_read  # [*L, N, A]
                tile = idx // rows
                sel = (tile.unsqueeze(0) == torch.arange(self.n_tiles_in, device=idx.device).unsqueeze(1)).to(ua.dtype)
                va = ua.unsqueeze(-3) * sel.unsqueeze(-2)  # [*L, ti, N, A]
                ea = efv.reshape(*efv.shape[:-3], self.n_tiles_in * rows, -1).index_select(-2, idx)  # [*L, A, to·S]
                i = va @ ea.unsqueeze(-3)  # [*L, ti, N, to·S]
            else:  # one product per input tile on a view of the inputs (no padded copy)
                n = u.shape[-2]
                efs = self._tile_matrix(eff, _used)  # [*L, ti, rows, n_sig]: only the signals digitised
                n_sig = efs.shape[-1]
                i = u.new_empty(*u.shape[:-2], self.n_tiles_in, n, n_sig)
                buf = u.new_empty(*u.shape[:-2], n, min(rows, self.in_features))  # one tile's row voltages, reused
                cnt = None
                if drive.row_counts is None and drive.nonnegative and getattr(self, "_trusted_spikes", None) is not None:
                    cnt = drive.row_counts = u.new_empty(*u.shape[:-2], self.in_features)
                for k in range(self.n_tiles_in):
                    lo, hi = k * rows, min(self.in_features, (k + 1) * rows)
                    vk = torch.mul(u[..., lo:hi], self.v_read, out=buf[..., : hi - lo])
                    if cnt is not None:  # per-row spike counts for the read energy, while the tile is in cache
                        torch.sum(u[..., lo:hi], -2, out=cnt[..., lo:hi])
                    torch.matmul(vk, efs[..., k, : hi - lo, :], out=i[..., k, :, :])
            if _used is not None and i.shape[-1] > _used:  # digitise only the used slots
                i = i[..., :_used]
            i = i.reshape(*i.shape[:-1], self.n_tiles_out, -1)
            return i.movedim(-2, -3)
        if isinstance(drive, RowDrive) and self.dac.mode == "spikes" and self.dac.pulses > 1:
            # count-coded reads through the circuit solve (read noise, nonlinear cells): every pulse is its own
            # binary read (pulse p drives the rows with |k| ≥ p; its own noise draw), the column sums their charge
            u = drive.u
            mag, sg = u.abs(), torch.sign(u)
            total = None
            for p in range(1, self.dac.pulses + 1):
                up = torch.clamp(mag - (p - 1), 0.0, 1.0).mul_(sg)
                sp = self._combine(self.crossbar.mvm(self._rows(up)))
                total = sp if total is None else total.add_(sp)
            return total
        v = drive.v if isinstance(drive, RowDrive) else drive
        return self._combine(self.crossbar.mvm(v))

    def column_currents(self, x: Tensor) -> Tensor:
        """Analog output currents per output, summed over input tiles ``[B, out]`` (``[R, B, out]``) [A].

        The input of analog column neurons (no ADC): ``i = v_read·Σ_i x_i (G_io − G_ref)`` with wires and
        device read noise as configured; in weight units ``i·x_scale/(v_read·g_scale)`` (``x_scale`` = 1 for
        spikes). Needs one read per input (not bit-serial) and one slice per weight.
        """
        if self.coding.n_slices > 1 or self.dac.n_slices > 1:
            raise ValueError("column_currents: needs one cell (pair) per weight and one read per input "
                             "(no bit slicing, dac.mode not 'bit_serial')")
        drive = self.drive(x)
        if self._fast():
            u = drive.u
            m = self._column_matrix(bool((u >= 0).all()))  # [*L, in, out]
            if drive.active is not None:
                return (u.index_select(-1, drive.active) * self.v_read) @ m.index_select(-2, drive.active)
            return (u * self.v_read) @ m
        s = self.signals(drive)  # [*L, ti, to, N, opt]
        y = s.sum(-4).movedim(-3, -2)  # [*L, N, to, opt]
        return y.reshape(*y.shape[:-2], -1)[..., : self.out_features]

    def digitise(self, s: Tensor, drive: RowDrive, ledger: EnergyLedger | None = None) -> Tensor:
        """ADC per signal (static errors, noise), shift-and-add over slices and input bits, accumulation
        over input tiles, rescale to weight units: ``[B, out]`` (``[R, B, out]``). ``drive`` is the
        :class:`RowDrive` the signals came from; energy and latency of the whole MVM go to ``ledger``."""
        b, nj, wj, x_scale = drive.batch, drive.n_reads, drive.weights, drive.x_scale
        c, opt = self.coding, self.out_per_tile
        if isinstance(self.generator, GeneratorStack) and self.adc.bits is not None and self.adc.noise_sigma_lsb > 0:
            adcs = self._adc_reps or [self.adc] * self.replicas
            a = torch.stack([
                adcs[r](s[r], None if self._adc_gain is None else self._adc_gain[r],
                        None if self._adc_offset is None else self._adc_offset[r], self.generator[r])
                for r in range(self.replicas)
            ])
        else:
            gen = self.generator if isinstance(self.generator, torch.Generator) else None
            a = self.adc(s, self._adc_gain, self._adc_offset, gen)
        if a.shape[-1] < opt * c.n_slices and self.n_tiles_in > 1:
            # trimmed signals (_used_signals): back to the full width with zeros, so that the sum over input
            # tiles below reduces the same shape, in the same order, as for all the signals (bit-identical)
            shape = (*a.shape[:-1], opt * c.n_slices)
            buf = getattr(self, "_refill_buf", None)  # reused: its unused slots stay zero (page faults are costly)
            if buf is None or tuple(buf.shape) != shape or buf.dtype != a.dtype:
                buf = self._refill_buf = a.new_zeros(shape)
            full = buf
            full[..., : a.shape[-1]] = a
            a = full
        opt = a.shape[-1] // c.n_slices  # out_per_tile, or out_features for trimmed signals (_used_signals)
        a = a.reshape(*self._lead, self.n_tiles_in, self.n_tiles_out, nj, b, opt, c.n_slices)
        if c.n_slices > 1:  # shift-and-add over weight slices
            wk = (2.0**c.cell_bits) ** torch.arange(c.n_slices, dtype=a.dtype, device=a.device)
            a = (a * wk).sum(-1)
        else:
            a = a[..., 0]
        if nj > 1:  # shift-and-add over input bits
            a = (a * torch.tensor(wj, dtype=a.dtype, device=a.device).view(-1, 1, 1)).sum(-3)
        else:
            a = a[..., 0, :, :]
        y = a.sum(-4)  # digital accumulation of partial sums over input tiles: [*L, n_tiles_out, B, opt]
        y = y.transpose(-3, -2).reshape(*self._lead, b, -1)[..., : self.out_features]
        alpha = self._alpha if self.drift_compensation else 1.0
        y = y * (alpha * x_scale / (self.v_read * self.g_scale))
        if ledger is not None:
            self._account(b, nj, drive, ledger)
        return y

    def calibrate(self, x: Tensor) -> None:
        """Set DAC and ADC ranges from representative inputs ``x [B, in]`` (``[R, B, in]``) on the programmed arrays.

        With replicas every chip gets its own ADC range (the DAC range is common)."""
        x = self._inputs(x)
        self.dac.calibrate(x)
        if self.adc.range_mode == "max":
            self.adc.set_range(self.theoretical_max_current())
        elif self.adc.range_mode == "calibrate":
            with torch.no_grad():
                s = self.signals(self.drive(x))
                if self.replicas is None:
                    self.adc.calibrate(s)
                else:
                    ranges, self._adc_reps = [], []
                    for r in range(self.replicas):
                        self.adc.calibrate(s[r])
                        self._adc_reps.append(copy.deepcopy(self.adc))
                        ranges.append(torch.as_tensor(self.adc.full_scale(), dtype=torch.float64))
                    self.adc.set_range(torch.stack(ranges).view(-1, 1, 1, 1, 1))
        # reference for global drift compensation: the all-ones read right after programming
        saved = self.crossbar.t_s
        self.crossbar.set_time(0.0)
        self._ones_ref = self._ones_read()
        self.set_time(saved)

    def theoretical_max_current(self) -> float:
        """Largest possible |ADC input| of a tile: every row at ``v_read``, every cell at its largest signal.

        Differential/unipolar: ``v_read·rows·(g_max − g_min)`` (scaled by the largest digit of a partly used
        top slice); offset: the largest ``|d − d_ref|·Δg`` per row (half the window for continuous weights).
        """
        self._need_range("theoretical_max_current")
        rows_used = min(self.spec.rows, self.in_features)
        c = self.coding
        if c.weight_bits is None:
            frac = 0.5 if c.scheme == "offset" else 1.0
        else:
            base = 2**c.cell_bits
            top_max = 2 ** (c.code_bits - c.cell_bits * (c.n_slices - 1)) - 1
            dmax = [base - 1] * (c.n_slices - 1) + [top_max]
            frac = max(max(dm - float(r), float(r)) for dm, r in zip(dmax, self._ref_digits)) / (base - 1)
        return self.v_read * rows_used * (self.device.g_max - self.device.g_min) * frac

    def elements_per_vector(self) -> int:
        """Elements of the largest intermediate tensors of :meth:`matmul` per input vector (for chunking)."""
        j = self.dac.n_slices
        r = self.replicas or 1
        return int(r * (j * (self.n_tiles_in * self.spec.rows + 3 * self.n_arrays * self.spec.cols) + self.in_features + self.out_features))

    def matmul(self, x: Tensor, ledger: EnergyLedger | None = None) -> Tensor:
        """``x @ Wᵀ`` as the hardware computes it: ``digitise(signals(drive(x)))``.

        ``x [B, in]`` → ``[B, out]`` (replicas: ``[R, B, in]`` or ``[B, in]`` → ``[R, B, out]``); energy and
        latency go to ``ledger``.
        """
        x = self._inputs(x)
        step = max(1, _CHUNK_ELEMENTS // self.elements_per_vector())
        if x.shape[-2] <= step:
            return self._matmul(x, ledger)
        return torch.cat([self._matmul(x[..., s : s + step, :], ledger) for s in range(0, x.shape[-2], step)], -2)

    def _matmul(self, x: Tensor, ledger: EnergyLedger | None) -> Tensor:
        drive = self.drive(x)
        used = self._used_signals() if self.dac.mode == "spikes" and self._fast() else None
        return self.digitise(self.signals(drive, used), drive, ledger)

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
        slots = self.dac.pulses if self.dac.mode == "spikes" else 1  # count-coded reads: n pulse slots per read
        return nj * slots * self.t_read_s, nj * n_seq * self.adc.conversion_time_s

    def _read_energy(self, drive: RowDrive) -> Tensor:
        """Energy [J] of all the reads of ``drive``: ``t_read·Σ_reads P`` (:meth:`Crossbar.read_power`).

        Ideal wires: ``P = Σ_i v_i²·Σ_j g_ij``, so the total is ``t_read·v_read²·Σ_i (Σ_reads u_i²)·r_i``
        with ``r_i`` the row sums of G over all columns and output tiles (cached per chip state): one
        reduction over the reads instead of a padded per-tile product. With wire resistance the
        quadratic form ``v Y vᵀ`` of the solve, summed over the reads, is ``⟨Y, Σ_n v_nᵀ v_n⟩`` per input tile
        (one Gram product on a view of ``u``, no padding).
        """
        xb = self.crossbar
        rows = self.spec.rows
        if not xb._use_network_solve():
            g = xb.g
            c = getattr(self, "_rowsum_cache", None)
            if c is None or c[0] is not g:
                r = g.sum(-1).sum(-2).flatten(-2)[..., : self.in_features]  # [*L, in]
                self._rowsum_cache = (g, r)
            r = self._rowsum_cache[1]
            cnt = drive.row_counts
            if cnt is None:
                u = drive.u.to(self.dtype)
                if self.dac.mode == "spikes" and self.dac.pulses > 1:  # |k| pulses of v_read: energy linear in |k|
                    u2 = u if drive.nonnegative else u.abs()
                else:
                    u2 = u if drive.nonnegative and self.dac.mode == "spikes" else u * u  # 0/1 spikes: u² = u
                cnt = u2.sum(-2)  # [*L, in]
            return (cnt.double() * r.double()).sum() * (self.v_read * self.v_read * self.t_read_s)
        y = (xb._transfer or xb.transfer())[1]  # [*L, ti, to, rows, rows]
        n_pulses = self.dac.pulses if self.dac.mode == "spikes" else 1
        if xb.read_energy_mode == "bounded":
            splits = self._admittance_splits(y)
            if all(sp is not None for sp in splits):
                return self._read_energy_bounded(drive, splits, n_pulses)
        if drive.u is None:
            raise ValueError(f"{self.name}: the read energy needs every read's row drive here "
                             "(MappedMatrix.energy_needs_reads() is True); got a drive with row counts only")
        u = drive.u.to(self.dtype)
        ys = y.sum(-3)  # the quadratic form summed over output tiles [*L, ti, rows, rows]
        tot = u.new_zeros(())
        for k in range(self.n_tiles_in):
            lo, hi = k * rows, min(self.in_features, (k + 1) * rows)
            uk = u[..., lo:hi]
            if n_pulses > 1:  # count-coded: pulse p drives the rows with |k| ≥ p; Σ_p u_p Y u_pᵀ
                mag = uk.abs() if not drive.nonnegative else uk
                sg = None if drive.nonnegative else torch.sign(uk)
                gram = None
                for p in range(1, n_pulses + 1):
                    up = torch.clamp(mag - (p - 1), 0.0, 1.0)  # 1 where |k| ≥ p (integer k), in one pass
                    if sg is not None:
                        up.mul_(sg)
                    g = up.transpose(-2, -1) @ up
                    gram = g if gram is None else gram.add_(g)
            else:
                gram = uk.transpose(-2, -1) @ uk  # Σ_reads u uᵀ [*L, rows, rows]: Σ_n u_n Y u_nᵀ = ⟨Y, Σ_n u_nᵀ u_n⟩
            tot = tot + (gram * ys[..., k, : hi - lo, : hi - lo]).sum()
        return tot * (self.v_read * self.v_read * self.t_read_s)

    def _admittance_splits(self, y: Tensor) -> list:
        """Per input tile, :func:`~circuits.crossbar.split_admittance` of ``Σ_to Y`` on the tile's used rows
        (cached per solve): the read energy of a tile's row drive is its quadratic form summed over output tiles."""
        if self._ysplit is None or self._ysplit[0] is not y:
            ys = y.sum(-3)  # [*L, ti, rows, rows]
            rows, tol = self.spec.rows, self.crossbar.read_energy_tol
            splits = []
            for k in range(self.n_tiles_in):
                m = min(self.in_features, (k + 1) * rows) - k * rows
                splits.append(split_admittance(ys[..., k, :m, :m], tol, self.dtype))
            self._ysplit = (y, splits)
            ok = [sp for sp in splits if sp is not None]
            self.read_energy_rel_bound = max(float(sp.rel_bound.max()) for sp in ok) if len(ok) == len(splits) else 0.0
        return self._ysplit[1]

    def energy_needs_reads(self) -> bool:
        """Whether the read energy needs every read's row vector (``RowDrive.u``), or only the pulses per row
        (``RowDrive.row_counts``, nonnegative spikes or pulse counts): the latter with ideal wires, and with
        ``read_energy: bounded`` when every input tile's split has rank ``K = 0`` (the energy is then linear
        in the counts; a caller can skip building the reads, e.g. a convolution's patch matrix)."""
        xb = self.crossbar
        if not xb._use_network_solve():
            return False
        if xb.read_energy_mode != "bounded" or self.dac.mode != "spikes":
            return True
        splits = self._admittance_splits((xb._transfer or xb.transfer())[1])
        return not all(sp is not None and sp.rank == 0 for sp in splits)

    def _read_energy_bounded(self, drive: RowDrive, splits: list, n_pulses: int) -> Tensor:
        """``read_energy: bounded``: ``t·v²·Σ_n u_n (D + VΛVᵀ) u_nᵀ`` per input tile; the certified bound
        ``t·v²·‖R‖₂·Σ_n ‖u_n‖²`` is added to :attr:`read_energy_error_J` (crossbar docstring).

        The diagonal part is linear in the per-row sums ``Σ_n u_ni²`` — for 0/1 spikes and for count-coded
        reads (integer ``|k| ≤ n`` pulses: ``Σ_p [|k| ≥ p] = |k|``) the row counts of the drive — so a tile
        with ``K = 0`` costs one reduction, like ideal wires; only the ``K`` low-rank terms need the reads
        (per pulse level for count-coded reads), ``O(rows·K)`` each."""
        rows = self.spec.rows
        spikes = self.dac.mode == "spikes"
        nonneg = bool(drive.nonnegative)
        cnt = drive.row_counts if spikes and nonneg else None  # Σ_n u per row [*L, in]
        u = drive.u.to(self.dtype) if drive.u is not None else None
        if u is None and (cnt is None or any(sp.rank for sp in splits)):
            raise ValueError(f"{self.name}: the read energy needs every read's row drive here "
                             "(MappedMatrix.energy_needs_reads() is True); got a drive with row counts only")
        if cnt is None and spikes:  # ±1/0 spikes (u² = |u|) or integer pulse counts (Σ_p [|k| ≥ p]² = |k|): one pass
            cnt = (u if nonneg else u.abs()).sum(-2)
        tot, err = (u if u is not None else cnt).new_zeros((), dtype=self.dtype), 0.0
        for k, sp in enumerate(splits):
            lo, hi = k * rows, min(self.in_features, (k + 1) * rows)
            uk = u[..., lo:hi] if u is not None else None
            if spikes:
                sq = cnt[..., lo:hi].to(self.dtype)
            else:
                sq = (uk * uk).sum(-2)
            e = (sq * sp.d).sum(-1)
            if sp.rank:
                if n_pulses > 1:  # count-coded: pulse p drives the rows with |k| ≥ p
                    mag = uk if nonneg else uk.abs()
                    sg = None if nonneg else torch.sign(uk)
                    for p in range(1, n_pulses + 1):
                        up = torch.clamp(mag - (p - 1), 0.0, 1.0)
                        if sg is not None:
                            up.mul_(sg)
                        z = up @ sp.vec
                        e = e + ((z * z).sum(-2) * sp.lam).sum(-1)
                else:
                    z = uk @ sp.vec
                    e = e + ((z * z).sum(-2) * sp.lam).sum(-1)
            tot = tot + e.sum()
            err = err + sp.error_bound(sq.sum(-1))
        scale = self.v_read * self.v_read * self.t_read_s
        err = err * scale
        self._read_energy_err = err if self._read_energy_err is None else self._read_energy_err + err
        return tot * scale

    @property
    def read_energy_error_J(self) -> float:
        """``read_energy: bounded``: certified bound [J] on |exact − charged| read energy, summed over every read
        charged to a ledger so far (0 in exact mode or where the exact form was used)."""
        return 0.0 if self._read_energy_err is None else float(self._read_energy_err)

    def _account(self, b: int, nj: int, drive: RowDrive, ledger: EnergyLedger) -> None:
        k = self.coding.n_slices
        r = self.replicas or 1
        t_read, t_conv = self.mvm_latency_s()
        e_array = self._read_energy(drive)
        n_dac = r * b * nj * self.in_features * self.n_tiles_out if self.dac.mode != "spikes" else 0  # row drives
        n_adc = r * b * nj * self.out_features * k * self.n_tiles_in  # one conversion per slice signal, bit and tile
        n_add = r * b * self.out_features * (self.n_tiles_in * nj * k - 1)  # shift-and-add and tile accumulation
        ledger.add(self.name, "array", e_array, events=r * b * nj * self.n_arrays, latency_s=b * t_read)
        ledger.add(self.name, "dac", n_dac * self.dac.energy_per_conversion_J, events=n_dac)
        ledger.add(self.name, "adc", n_adc * self.adc.energy_per_conversion_J, events=n_adc, latency_s=b * t_conv)
        ledger.add(self.name, "digital", n_add * int_add_energy_J(self.accumulator_bits()), events=n_add)
