"""A stack of physical crossbar arrays of one device type, programmable and pulsable for its life.

Plastic arrays and the exact solve
----------------------------------
Writes (:meth:`Crossbar.program` with a mask, :meth:`Crossbar.pulse`, :meth:`Crossbar.switch`)
change some cells; the array's clock (:meth:`Crossbar.set_time`) stamps each written cell, and
drift is computed from each cell's own write time. With ``solver="exact"`` and linear cells every
MVM is ``i = v @ T`` (transfer matrix per array, :func:`circuits.solver.transfer_matrix`); after
writes only the arrays (tiles) whose conductances changed are touched, in one of two modes
(``plastic_solve``):

* ``"exact"``: the transfer matrix of every changed tile is recomputed (the direct nested-dissection
  solve, ~1e-12 from a sparse direct solve); unchanged tiles keep theirs.
* ``"bounded"``: a changed tile keeps the transfer matrix ``T0`` of its last refresh (at ``G0``) and
  adds the change as if the wires were ideal, ``T ≈ T0 + (G − G0)``; it is refreshed when the
  following bound on the resulting column-current error exceeds ``plastic_tol`` × the tile's
  full-scale current ``V·max_j Σ_a G0_aj`` (``V`` = max |v|).

**Bound.** In the cell-current form of the network (:mod:`circuits.solver`), cell voltages obey
``x = v·1ᵀ − Z(c)``, ``c = G∘x``, with ``Z`` a linear operator with non-negative coefficients (sums
of wire, source, sense and access resistances along each cell's path) and ``|x| ≤ κV`` (node
voltages lie within the source range: ``κ = 1`` when every input is ≥ 0 — spikes —, else ``κ = 2``;
each read decides with its own inputs, so the bound holds for the read it guards). With
``ΔG = G − G0`` and ``d = x(G) − x(G0)`` the error of the approximation is exactly
``e_j = Σ_a G0_aj d_aj + Σ_a ΔG_aj (x_aj − v_a)``. The second sum is bounded by
``κV·Σ_a |ΔG_aj|·Z(G)_aj`` (``|v_a − x_aj| = |Z(c)_aj| ≤ κV·Z(G)_aj``). For the first,
``d + Z(G0∘d) = −Z(ΔG∘x)``, i.e. ``(I + sZs)(s∘d) = −s∘Z(ΔG∘x)`` with ``s = √G0``; ``I + sZs`` is
symmetric with eigenvalues ≥ 1, so ``‖s∘d‖ ≤ κV‖s∘Z(|ΔG|)‖_F`` and, by Cauchy–Schwarz per
column, ``|Σ_a G0_aj d_aj| ≤ √(Σ_a G0_aj)·κV‖√G0∘Z(|ΔG|)‖_F``. Hence

    |e_j| ≤ κV·[Σ_a |ΔG_aj|·Z(G)_aj + √(Σ_a G0_aj)·‖√G0∘Z(|ΔG|)‖_F]

for every input with ``|v| ≤ V`` — a guarantee, computed in ``O(rows·cols)`` per changed tile.
Read energy in bounded mode uses ``Y0 + diag(Σ_j ΔG_ij)`` (the ideal-wire change), unbounded.
Nonlinear cells are always solved exactly (Newton) on every MVM.

Read energy with wire resistance (``read_energy``)
--------------------------------------------------
The source power of a read is the quadratic form ``P = v Y vᵀ`` of the input admittance ``Y``
(rows × rows, symmetric positive semidefinite: the Schur complement of the network's nodal
conductance matrix onto the driven row nodes). By Tellegen's theorem (B. D. H. Tellegen, Philips
Res. Rep. 7, 259, 1952) it equals the Joule heat in every cell, wire, source and sense resistor, and
``E = t_read·Σ_n v_n Y v_nᵀ`` over the reads (ideal wires: ``Σ_ij v_i² g_ij``). ``"exact"`` evaluates it as it stands (one
rows × rows product per array and read). ``"bounded"`` (:func:`split_admittance`) splits, once per
solved ``Y``,

    Y = D + V Λ Vᵀ + R,    D = diag(Y),   V Λ Vᵀ = the K largest-magnitude eigenpairs of Y − D,

and evaluates ``Ê = t·Σ_n (Σ_i d_i v_ni² + Σ_k λ_k (v_n·V_k)²)`` in ``O(rows·K)`` per read. The
neglected part is ``t·Σ_n v_n R v_nᵀ``; ``R`` is symmetric, so by the Rayleigh quotient bound
(Horn & Johnson, *Matrix Analysis*, 2nd ed., Thm 4.2.2) ``|v R vᵀ| ≤ ‖R‖₂‖v‖²`` and

    |E − Ê| ≤ t·‖R‖₂·Σ_n ‖v_n‖²          (a posteriori, per call)
            ≤ (‖R‖₂ / λ_min(Y))·E          (a priori, every input: ‖v‖² ≤ v Y vᵀ / λ_min(Y)).

``ρ = ‖R‖₂/λ_min(Y)`` is the certified relative bound; ``K`` is the smallest rank with
``ρ ≤ read_energy_tol`` on every array of the stack. ``‖R‖₂`` is not taken from the discarded
eigenvalues but computed from ``R = Y − (D̂ + V̂Λ̂V̂ᵀ)`` formed in float64 with the factors as stored
(in the working dtype), so the rounding of the stored factors is inside the bound; the float64
eigenvalue error (``≤ c·n·ε·‖A‖₂``, Weyl) is added to ``‖R‖₂`` and subtracted from ``λ_min``. The
rounding of the reads themselves (the same order for the exact form) is not part of the bound. Example:
1 Ω wires on a 128 × 128 array of cells uniform in 0–5 µS (the ideal device's window): the
largest-magnitude eigenvalues of ``Y − D`` are 1.9e-2, 2.0e-3, 6.3e-4, 4.3e-4 … 6e-5 of ``λ_min(Y)``
(a smooth, nearly rank-one coupling through the shared column wires), so ``K = 2`` reaches
``ρ ≤ 1e-3``; the rest of the spectrum (from the cells' spread) is a flat bulk,
so much tighter tolerances need ``K`` near ``rows``. If no ``K ≤ rows/2`` reaches the tolerance (or
``λ_min(Y) ≈ 0``: rows without conductance), the exact form is used: beyond that rank the split
is no cheaper. Ideal wires never form ``Y`` (``P = Σ_ij v_i² g_ij`` exactly), so
both modes are identical there. :class:`~circuits.mapping.MappedMatrix` splits, per input tile, the
sum of ``Y`` over the output tiles restricted to the rows the tile uses (its principal submatrix:
``λ_min`` can only grow, Cauchy interlacing); a count-coded read is the sum of its pulses, each a
read of its own. With ``K = 0`` the charged energy ``t·Σ_i d_i Σ_n v_ni²`` is linear in the pulses
per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from device_models import Device, DeviceState
from device_models.base import GeneratorStack, new_generator, randn

__all__ = ["AdmittanceSplit", "Crossbar", "PLASTIC_SOLVES", "READ_ENERGIES", "SOLVERS", "check_read_energy",
           "split_admittance"]

SOLVERS = ("ideal", "exact")
PLASTIC_SOLVES = ("exact", "bounded")
READ_ENERGIES = ("exact", "bounded")


def check_read_energy(mode, tol) -> None:
    """``crossbar.read_energy`` / ``read_energy_tol``: a clear error naming the key (shared by the YAML spec)."""
    if mode not in READ_ENERGIES:
        raise ValueError(f"crossbar.read_energy: got {mode!r}; allowed: {', '.join(READ_ENERGIES)}")
    if isinstance(tol, bool) or not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise ValueError(f"crossbar.read_energy_tol: got {tol!r}; must be a relative tolerance in (0, 1)")
#: κ of the bounded-staleness bound: cell voltages within [0, V] for inputs in [0, V], within ±V
#: of 0 for signed inputs of magnitude ≤ V (|x| ≤ 2V)
_KAPPA_SIGNED, _KAPPA_NONNEG = 2.0, 1.0


@dataclass(frozen=True)
class AdmittanceSplit:
    """``Y ≈ D + V Λ Vᵀ`` with a certified remainder (module docstring, "Read energy with wire resistance").

    Shapes for ``Y [..., n, n]``: ``d [..., n]``, ``lam [..., K]``, ``vec [..., n, K]`` (the working
    dtype), ``r_norm`` and ``rel_bound`` ``[...]`` (float64): ``‖R‖₂`` [S] and ``ρ = ‖R‖₂/λ_min(Y)``.
    """

    d: Tensor
    lam: Tensor
    vec: Tensor
    r_norm: Tensor
    rel_bound: Tensor

    @property
    def rank(self) -> int:
        return int(self.lam.shape[-1])

    def quad_sums(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """``(Σ_n u_n (D + VΛVᵀ) u_nᵀ, Σ_n ‖u_n‖²)`` per leading index, for ``u [..., N, n]``."""
        sq = (u * u).sum(-2)  # Σ_n u_ni² [..., n]
        z = u @ self.vec  # [..., N, K]
        return (sq * self.d).sum(-1) + ((z * z).sum(-2) * self.lam).sum(-1), sq.sum(-1)

    def error_bound(self, sq_norm: Tensor) -> Tensor:
        """Certified ``|Σ_n u_n R u_nᵀ| ≤ ‖R‖₂·Σ_n ‖u_n‖²`` (float64) for ``sq_norm = Σ_n ‖u_n‖²``."""
        return (self.r_norm * sq_norm.to(torch.float64)).sum()


def split_admittance(y: Tensor, tol: float, dtype: torch.dtype | None = None,
                     max_rank: int | None = None) -> AdmittanceSplit | None:
    """The smallest-rank :class:`AdmittanceSplit` of ``Y [..., n, n]`` with ``ρ = ‖R‖₂/λ_min(Y) ≤ tol`` on
    every matrix of the stack (one ``K`` for all), or ``None`` when that needs ``K > max_rank`` (default
    ``n // 2``: beyond it the ``O(rows·K)`` form costs about as much as the exact ``O(rows²)`` one), and
    then the caller uses the exact form.

    ``dtype``: the dtype the factors are stored and used in (default ``y``'s); the bound is computed
    for the stored factors. Cost: one ``eigh`` of ``Y − D`` and one ``eigvalsh`` of ``Y`` and of ``R``
    (float64), once per solved ``Y``.
    """
    if not (tol > 0 and math.isfinite(tol)):
        raise ValueError(f"crossbar.read_energy_tol: got {tol!r}; must be a finite relative tolerance > 0")
    dtype = y.dtype if dtype is None else dtype
    n = y.shape[-1]
    y64 = y.to(torch.float64)
    y64 = 0.5 * (y64 + y64.transpose(-2, -1))  # v Y vᵀ only sees the symmetric part
    d64 = y64.diagonal(dim1=-2, dim2=-1)
    mu, vec = torch.linalg.eigh(y64 - torch.diag_embed(d64))
    order = mu.abs().argsort(-1, descending=True)
    mu = mu.gather(-1, order)
    vec = vec.gather(-1, order.unsqueeze(-2).expand_as(vec))
    eps = torch.finfo(torch.float64).eps
    scale = y64.abs().sum(-1).amax(-1)  # ‖Y‖_∞ ≥ ‖Y‖₂, ≥ ‖Y − D‖₂ for the Weyl slack
    slack = 4.0 * n * eps * scale
    lam_lo = torch.linalg.eigvalsh(y64)[..., 0] - slack  # certified lower bound on λ_min(Y)
    d = d64.to(dtype)
    # candidate K from the discarded eigenvalues, then certified on the stored factors (K grows if not)
    rest = torch.cat([mu.abs(), mu.new_zeros(mu.shape[:-1] + (1,))], -1)  # ‖R‖ for K = 0..n (exact arithmetic)
    good = (rest <= tol * lam_lo.unsqueeze(-1)).reshape(-1, n + 1).all(0)
    k = int(good.nonzero()[0]) if bool(good.any()) else n
    max_rank = n // 2 if max_rank is None else int(max_rank)
    while k <= max_rank:
        lam_k, vec_k = mu[..., :k].to(dtype), vec[..., :k].to(dtype)
        v64 = vec_k.to(torch.float64)
        approx = torch.diag_embed(d.to(torch.float64)) + (v64 * lam_k.to(torch.float64).unsqueeze(-2)) @ v64.transpose(-2, -1)
        r = torch.linalg.eigvalsh(y64 - approx).abs().amax(-1) + slack
        rho = torch.where(lam_lo > 0, r / lam_lo.clamp(min=1e-300), torch.full_like(r, math.inf))
        if bool((rho <= tol).all()):
            return AdmittanceSplit(d, lam_k, vec_k, r, rho)
        if bool(((r - rest[..., k]) > tol * lam_lo).any()):  # the stored factors' rounding alone exceeds tol
            return None
        k += 1
    return None


class Crossbar:
    """``rows × cols`` resistive arrays (optionally a stack of them) with their periphery-free read.

    Canonical topology (docs/circuits.md): row ``i`` is driven by ``v[i]`` through
    ``r_source`` at column 0, row-wire segments of ``r_wire_row`` join adjacent
    cells, the cell (optionally in series with an access transistor ``r_access``)
    joins row node (i, j) to column node (i, j), column-wire segments of
    ``r_wire_col`` join adjacent rows, and column ``j`` is sensed after the last
    row through ``r_sense`` into a virtual ground. The output is the current
    through ``r_sense`` [A].

    ``solver="ideal"`` computes ``i = v @ G``; ``solver="exact"`` solves the
    resistive network (cached transfer matrix per programmed state).

    ``stack`` (a tuple) simulates that many independent arrays at once: ``g`` has
    shape ``stack + (rows, cols)`` and :meth:`mvm` takes ``v`` of shape
    ``stack + (batch, rows)`` (broadcastable). ``generator`` is a ``torch.Generator`` or a
    :class:`~device_models.base.GeneratorStack` (one generator per index of the leading stack
    dimension: independent chips); ``None`` draws a fresh OS-entropy seed.

    ``plastic_solve`` / ``plastic_tol``: how the exact solve follows writes (module docstring).
    ``read_energy`` / ``read_energy_tol``: the read-power quadratic form with wire resistance, exact or
    with the certified relative error bound ``read_energy_tol`` (module docstring); after each bounded
    :meth:`read_power`, :attr:`read_energy_rel_bound` holds the certified ``ρ`` (max over the stack).
    """

    def __init__(
        self,
        rows: int,
        cols: int,
        device: Device,
        r_wire_row: float = 0.0,
        r_wire_col: float = 0.0,
        r_source: float = 0.0,
        r_sense: float = 0.0,
        r_access: float = 0.0,
        solver: str = "ideal",
        stack: tuple = (),
        generator: torch.Generator | GeneratorStack | None = None,
        dtype: torch.dtype = torch.float32,
        plastic_solve: str = "exact",
        plastic_tol: float = 1e-3,
        read_energy: str = "exact",
        read_energy_tol: float = 1e-3,
    ):
        for name, val in (("rows", rows), ("cols", cols)):
            if int(val) != val or val < 1:
                raise ValueError(f"crossbar.{name}: got {val!r}; must be an integer ≥ 1")
        for name, val in (
            ("r_wire_row", r_wire_row),
            ("r_wire_col", r_wire_col),
            ("r_source", r_source),
            ("r_sense", r_sense),
            ("r_access", r_access),
        ):
            if not (val >= 0 and math.isfinite(val)):
                raise ValueError(f"crossbar.{name}: got {val!r}; must be a finite resistance ≥ 0 Ω")
        if solver not in SOLVERS:
            raise ValueError(f"crossbar.solver: got {solver!r}; allowed: {', '.join(SOLVERS)}")
        if plastic_solve not in PLASTIC_SOLVES:
            raise ValueError(f"crossbar.plastic_solve: got {plastic_solve!r}; allowed: {', '.join(PLASTIC_SOLVES)}")
        if not (plastic_tol > 0 and math.isfinite(plastic_tol)):
            raise ValueError(f"crossbar.plastic_tol: got {plastic_tol!r}; must be a finite relative tolerance > 0")
        check_read_energy(read_energy, read_energy_tol)
        self.rows, self.cols = int(rows), int(cols)
        self.device = device
        self.r_wire_row, self.r_wire_col = float(r_wire_row), float(r_wire_col)
        self.r_source, self.r_sense, self.r_access = float(r_source), float(r_sense), float(r_access)
        self.solver = solver
        self.stack = tuple(stack)
        self.plastic_solve, self.plastic_tol = plastic_solve, float(plastic_tol)
        #: ``read_energy`` mode (the attribute name ``read_energy`` is the method)
        self.read_energy_mode, self.read_energy_tol = read_energy, float(read_energy_tol)
        self._split: tuple[Tensor, AdmittanceSplit | None] | None = None  # (the Y it splits, the split)
        #: certified relative error bound ρ of the last bounded read energy (0: exact form)
        self.read_energy_rel_bound = 0.0
        self.generator = generator if generator is not None else new_generator()
        if isinstance(self.generator, GeneratorStack) and (not self.stack or self.stack[0] != len(self.generator)):
            raise ValueError(f"generator: a stack of {len(self.generator)} generators needs stack[0] == {len(self.generator)}; got stack {self.stack}")
        self.dtype = dtype
        self.state: DeviceState = device.new_state(self.stack + (self.rows, self.cols), self.generator, dtype)
        self.t_s = 0.0
        self._g: Tensor | None = None
        self._transfer: tuple[Tensor, Tensor] | None = None
        self._t0: tuple[Tensor, Tensor, Tensor] | None = None  # (T0, Y0, G0) of the last refresh per tile
        self._transfer_nonneg = False  # the cached transfer was validated for inputs ≥ 0 only
        #: incremented whenever the conductances (hence every cached solve) may have changed
        self.version = 0
        #: tiles refreshed (transfer matrix recomputed) since construction, for diagnostics/benchmarks
        self.n_refreshed = 0
        #: per-call thread budget of the exact solve (``transfer_matrix(threads=...)``): "auto", an
        #: integer, or None (leave torch's threading alone)
        self.solver_threads: int | str | None = "auto"

    # -- state ------------------------------------------------------------------------------
    @property
    def torch_device(self) -> torch.device:
        return self.state.g.device

    @property
    def has_wire_resistance(self) -> bool:
        return any(r > 0 for r in (self.r_wire_row, self.r_wire_col, self.r_source, self.r_sense, self.r_access))

    def _cells(self, mask: Tensor | None, name: str = "mask") -> Tensor | None:
        if mask is None:
            return None
        mask = torch.as_tensor(mask, device=self.torch_device)
        if mask.dtype != torch.bool:
            raise ValueError(f"{name}: got dtype {mask.dtype}; expected a boolean tensor (True = write the cell)")
        try:
            return mask.expand(self.stack + (self.rows, self.cols))
        except RuntimeError:
            raise ValueError(f"{name}: got shape {tuple(mask.shape)}; expected {self.stack + (self.rows, self.cols)}") from None

    def _stamp(self, state: DeviceState, written: Tensor | None) -> DeviceState:
        """Record the clock as the last-write time of the ``written`` cells (``None``: all of them)."""
        if written is None:
            return state.replace(t_prog_s=self.t_s, t_write_s=None)
        old = state.t_write_s
        if old is None:
            if not bool(written.any()):
                return state
            old = torch.full(written.shape, state.t_prog_s, dtype=torch.float64, device=written.device)
        return state.replace(t_write_s=torch.where(written, torch.tensor(self.t_s, dtype=torch.float64, device=old.device), old))

    def _changed(self) -> None:
        self._g = None
        self._transfer = None  # rebuilt by transfer() from the per-tile refresh state
        self.version += 1

    def program(self, g_target: Tensor, mask: Tensor | None = None) -> None:
        """Write target conductances [S] (shape ``stack + (rows, cols)``) with the device's programming model.

        ``mask`` (boolean, broadcastable): only those cells are written (the others keep their state).
        The written cells are stamped with the clock ``t_s`` (0 for a new array).
        """
        expected = self.stack + (self.rows, self.cols)
        if tuple(g_target.shape) != expected:
            raise ValueError(f"g_target: got shape {tuple(g_target.shape)}; expected {expected}")
        mask = self._cells(mask)
        new = self.device.program(self.state, g_target, self.generator)
        if mask is not None:
            d2d = {k: (torch.where(mask, v, self.state.d2d[k]) if v is not self.state.d2d.get(k) and torch.is_tensor(v)
                       and v.shape == mask.shape else v) for k, v in new.d2d.items()}
            new = new.replace(g=torch.where(mask, new.g, self.state.g), d2d=d2d)
        self.state = self._stamp(new, mask)
        self._changed()

    def _write(self, op, x: Tensor, mask: Tensor | None) -> Tensor:
        """Apply a device write ``op(state, x, mask, generator) -> (state, energy)`` with per-cell values ``x``.

        Event-driven: a chip that writes at most a quarter of its cells has only those cells gathered,
        written (the device draws its random numbers for exactly those cells) and scattered back;
        otherwise the device writes the whole array. Stacked chips (a ``GeneratorStack``) make the same
        choice chip by chip — in one batched call when all chips write the whole array or all write the
        same cells, else one call per chip — so they stay equal to chips built one by one.
        """
        full = self.stack + (self.rows, self.cols)
        x = torch.as_tensor(x, device=self.torch_device).expand(full)
        written = x != 0 if mask is None else (x != 0) & mask
        gens = self.generator
        if not isinstance(gens, GeneratorStack):
            state, energy = self._write_chip(op, self.state, x, written, mask, gens, 0)
        else:
            flat = written.flatten(1)
            counts = flat.sum(-1).tolist()
            limit = flat.shape[-1] // 4
            dense_all = all(c > limit for c in counts)
            same = all(c <= limit for c in counts) and bool((flat == flat[0]).all())
            if dense_all or same:
                state, energy = self._write_chip(op, self.state, x, written, mask, gens, 1)
            else:  # chip by chip, each exactly as a chip built alone
                st = self.state
                parts, energy = [], 0.0
                for r, g in enumerate(gens):
                    sub = _chip(st, r, full)
                    new, e = self._write_chip(op, sub, x[r], written[r], None if mask is None else mask[r], g, 0)
                    parts.append(new)
                    energy = energy + e
                state = _stack_chips(st, parts, full)
        self.state = self._stamp(state, written)
        self._changed()
        return energy

    def _write_chip(self, op, st: DeviceState, x: Tensor, written: Tensor, mask, gen, lead: int):
        """One (or a stack of identically written) chip(s): gather the written cells when few."""
        shape = tuple(st.g.shape)
        flat = written.flatten(lead)
        first = flat if lead == 0 else flat[0]
        if int(first.sum()) > flat.shape[-1] // 4:
            return op(st, x, mask, gen)
        idx = first.nonzero().squeeze(-1)

        def take(t: Tensor) -> Tensor:
            return t.flatten(lead).index_select(-1, idx)

        d2d = {k: take(v) for k, v in st.d2d.items() if torch.is_tensor(v) and tuple(v.shape) == shape}
        sub = st.replace(g=take(st.g), d2d={**st.d2d, **d2d}, t_write_s=None)
        new, energy = op(sub, take(x), None, gen)

        def put(t: Tensor, part: Tensor) -> Tensor:
            out = t.flatten(lead).clone()
            out.index_copy_(out.dim() - 1, idx, part.to(out.dtype))
            return out.reshape(t.shape)

        new_d2d = dict(st.d2d)
        for k, v in new.d2d.items():
            if k in d2d and v is not d2d[k]:
                new_d2d[k] = put(st.d2d[k], v)
        return st.replace(g=put(st.g, new.g), d2d=new_d2d), energy

    def pulse(self, n_pulses: Tensor, mask: Tensor | None = None) -> Tensor:
        """Apply signed pulse counts per cell through the device's ``pulse``; returns the write energy [J] (0-d).

        Only cells with a nonzero count (inside ``mask``) are written, event-driven when few (:meth:`_write`)."""
        return self._write(lambda st, n, m, g: self.device.pulse(st, n, g, mask=m), n_pulses, self._cells(mask))

    def switch(self, current_A: Tensor, t_pulse_s, mask: Tensor | None = None) -> Tensor:
        """One stochastic write pulse per cell (binary devices, ``current_A`` signed, 0 = none); energy [J] (0-d)."""
        if not getattr(self.device, "binary", False):
            raise ValueError(f"device: {self.device.name!r} is not a binary device; switch() needs an MTJ (binary = True)")
        return self._write(lambda st, i, m, g: self.device.switch(st, i, t_pulse_s, g, mask=m), current_A,
                           self._cells(mask))

    def set_time(self, t_s: float, reread: bool = False) -> None:
        """Move the array's clock to ``t_s`` [s] (drift, 1/f noise; each cell ages from its own last write).

        The conductances seen at a time are one snapshot: asking again for the time already
        read keeps it (and its cached transfer matrix) unless ``reread`` draws a fresh one.
        A new time invalidates the cached solves.
        """
        if not t_s >= 0:
            raise ValueError(f"t_s: got {t_s!r}; must be ≥ 0 s")
        if float(t_s) == self.t_s and self._g is not None and not reread:
            return
        self.t_s = float(t_s)
        self._g = None
        self._transfer = None
        self._t0 = None
        self.version += 1

    def set_state(self, state: DeviceState) -> None:
        """Replace the cell state (e.g. after learning pulses); cached solves follow ``plastic_solve``."""
        self.state = state
        self._changed()

    @property
    def g(self) -> Tensor:
        """Conductances [S] now in the array (after drift to ``t_s``)."""
        if self._g is None:
            self._g = self.device.read(self.state, self.t_s, self.generator)
            self._transfer = None  # rebuilt from the per-tile refresh state by transfer()
        return self._g

    # -- solve ------------------------------------------------------------------------------
    def _use_network_solve(self) -> bool:
        return self.solver == "exact" and self.has_wire_resistance

    def _solve_tiles(self, g: Tensor) -> tuple[Tensor, Tensor]:
        from .solver import transfer_matrix

        self.n_refreshed += int(math.prod(g.shape[:-2]))
        return transfer_matrix(g, self.r_wire_row, self.r_wire_col, self.r_source, self.r_sense, self.r_access,
                               threads=self.solver_threads)

    def staleness_bound(self, g: Tensor | None = None, nonnegative: bool = False) -> Tensor:
        """Relative bound (module docstring) on the column-current error of ``T0 + (G − G0)`` per tile
        (shape ``stack``), as a fraction of the tile's full-scale current ``V·max_j Σ_a G0_aj``, for any
        inputs with ``|v| ≤ V`` (``nonnegative``: inputs in ``[0, V]``, half the bound)."""
        from .solver import _zop

        if self._t0 is None:
            return torch.zeros(self.stack, dtype=torch.float64, device=self.torch_device)
        g = (self.g if g is None else g).to(torch.float64)
        g0 = self._t0[2].to(torch.float64)
        dg = g - g0
        r = {"r_source": self.r_source, "r_wire_row": self.r_wire_row, "r_sense": self.r_sense,
             "r_wire_col": self.r_wire_col, "r_access": self.r_access}
        second = (dg.abs() * _zop(g, r)).sum(-2)  # [..., cols]
        col0 = g0.sum(-2)  # Σ_a G0_aj
        first = col0.sqrt() * (g0.sqrt() * _zop(dg.abs(), r)).square().sum((-2, -1), keepdim=True).sqrt()[..., 0]
        fs = col0.amax(-1).clamp(min=1e-300)
        kappa = _KAPPA_NONNEG if nonnegative else _KAPPA_SIGNED
        return kappa * (second + first).amax(-1) / fs

    def transfer(self, nonnegative: bool = False) -> tuple[Tensor, Tensor]:
        """Transfer matrix ``T`` (``i = v @ T``) and input admittance ``Y`` (``P = v Y vᵀ``), cached.

        After writes, only changed tiles are touched, following ``plastic_solve`` (module docstring);
        ``nonnegative``: the read this serves has inputs ≥ 0 (a tighter bound in ``bounded`` mode).
        """
        if self._transfer is not None and (nonnegative or not self._transfer_nonneg):
            return self._transfer
        self._transfer_nonneg = nonnegative
        g = self.g
        if self._t0 is None:
            t, y = self._solve_tiles(g)
            self._t0 = (t, y, g)
            self._transfer = (t, y)
            return self._transfer
        t0, y0, g0 = self._t0
        changed = (g != g0).flatten(-2).any(-1)  # [stack]
        if self.plastic_solve == "bounded" and bool(changed.any()):
            refresh = changed & (self.staleness_bound(g, nonnegative) > self.plastic_tol)
        else:
            refresh = changed
        if bool(refresh.any()):
            t0, y0, g0 = t0.clone(), y0.clone(), g0.clone()
            t_new, y_new = self._solve_tiles(g[refresh])
            t0[refresh], y0[refresh], g0[refresh] = t_new, y_new, g[refresh]
            self._t0 = (t0, y0, g0)
        if self.plastic_solve == "bounded" and bool((changed & ~refresh).any()):
            dg = g - g0  # zero on refreshed and unchanged tiles
            self._transfer = (t0 + dg, y0 + torch.diag_embed(dg.sum(-1)))
        else:
            self._transfer = (t0, y0)
        return self._transfer

    def mvm(self, v: Tensor) -> Tensor:
        """Column currents [A] for row voltages ``v`` [V] (before any ADC)."""
        v = v.to(self.dtype)
        g = self.g
        if self._use_network_solve():
            if self.device.nonlinear_iv:
                from .solver import solve_crossbar

                i = solve_crossbar(
                    g, v, self.r_wire_row, self.r_wire_col, self.r_source, self.r_sense, self.r_access,
                    iv=self.device,
                )
            else:
                i = v @ self.transfer(nonnegative=bool((v >= 0).all()))[0]
        else:
            i = v @ g
        sigma = self.device.read_noise_rel()
        if sigma > 0:
            # independent per-read Gaussian noise on every cell: i_j += σ·sqrt(Σ_i v_i² g_ij²)·N(0, 1)
            std = torch.sqrt((v * v) @ (g * g))
            i = i + sigma * std * randn(i.shape, self.generator, i.dtype)
        return i

    def read_power(self, v: Tensor) -> Tensor:
        """Power [W] drawn from the row sources for each input vector (shape ``v.shape[:-1]``).

        Ideal wires: ``P = Σ_ij v_i² g_ij``. With wire resistance: ``P = v Y vᵀ`` from the exact solve
        (cells, wires, source and sense resistors together).
        """
        v = v.to(self.dtype)
        if self._use_network_solve():
            y = (self._transfer or self.transfer())[1]  # the solve the read used (bounded mode: no extra refresh)
            sp = self.admittance_split(y) if self.read_energy_mode == "bounded" else None
            if sp is not None:
                self.read_energy_rel_bound = float(sp.rel_bound.max())
                sq = v * v
                z = v @ sp.vec  # [*stack, B, K]
                return (sq * sp.d.unsqueeze(-2)).sum(-1) + (z * z * sp.lam.unsqueeze(-2)).sum(-1)
            self.read_energy_rel_bound = 0.0
            return ((v @ y) * v).sum(-1)
        return ((v * v) * self.g.sum(-1).unsqueeze(-2)).sum(-1)

    def admittance_split(self, y: Tensor | None = None) -> AdmittanceSplit | None:
        """:func:`split_admittance` of ``Y`` (default: the cached solve's) at ``read_energy_tol``, cached per ``Y``."""
        y = (self._transfer or self.transfer())[1] if y is None else y
        if self._split is None or self._split[0] is not y:
            self._split = (y, split_admittance(y, self.read_energy_tol, self.dtype))
        return self._split[1]

    def read_energy(self, v: Tensor, t_read_s: float | None = None) -> Tensor:
        """Energy [J] of one read pulse of width ``t_read_s`` (default: the device's) per input vector."""
        t = self.device.t_read_s if t_read_s is None else t_read_s
        return self.read_power(v) * t


def _chip(st: DeviceState, r: int, full: tuple) -> DeviceState:
    """Chip ``r`` of a stacked state (tensors of the full stacked shape are indexed)."""
    d2d = {k: (v[r] if torch.is_tensor(v) and tuple(v.shape) == full else v) for k, v in st.d2d.items()}
    return st.replace(g=st.g[r], d2d=d2d, t_write_s=None)


def _stack_chips(st: DeviceState, parts: list, full: tuple) -> DeviceState:
    """Stack per-chip states back into one (keys of the full stacked shape)."""
    d2d = dict(st.d2d)
    for k, v in st.d2d.items():
        if torch.is_tensor(v) and tuple(v.shape) == full:
            d2d[k] = torch.stack([p.d2d[k].to(v.dtype) for p in parts])
    return st.replace(g=torch.stack([p.g for p in parts]), d2d=d2d)
