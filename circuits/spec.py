"""Layout of one mapped layer: array size, wires, read pulse and the weight coding (module docstring of
:mod:`circuits.mapping` for the equations)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .crossbar import READ_ENERGIES, check_read_energy

__all__ = ["CrossbarSpec", "SCHEMES", "WeightCoding", "weight_coding"]

SCHEMES = ("differential", "offset", "unipolar")


@dataclass(frozen=True)
class WeightCoding:
    """How one weight is spread over cells: slices, columns per slice, reference columns."""

    scheme: str
    weight_bits: int | None  # n: signed integer width (None: continuous weights)
    cell_bits: int | None  # b: bits per cell (None: continuous)
    code_bits: int | None  # bits of the non-negative code that is sliced (n − 1 differential, n offset)
    n_slices: int  # K
    cols_per_slice: int  # p: 2 (differential pair) or 1 (offset)
    n_ref: int  # reference columns per array

    @property
    def cols_per_output(self) -> int:
        return self.n_slices * self.cols_per_slice


def weight_coding(scheme: str = "differential", weight_bits: int | None = None, bits_per_cell: int | None = None) -> WeightCoding:
    """The :class:`WeightCoding` of a mapping; raises ``ValueError`` naming the bad ``mapping.*`` key."""
    if scheme not in SCHEMES:
        raise ValueError(f"mapping.scheme: got {scheme!r}; allowed: {', '.join(map(repr, SCHEMES))}")
    if weight_bits is not None and (int(weight_bits) != weight_bits or weight_bits < 2):
        raise ValueError(f"mapping.weight_bits: got {weight_bits!r}; must be an integer ≥ 2 or None (continuous weights)")
    if bits_per_cell is not None:
        if int(bits_per_cell) != bits_per_cell or bits_per_cell < 1:
            raise ValueError(f"mapping.bits_per_cell: got {bits_per_cell!r}; must be an integer ≥ 1 or None")
        if weight_bits is None:
            raise ValueError(f"mapping.bits_per_cell: got {bits_per_cell!r}; bit slicing needs mapping.weight_bits (got None)")
    p = 2 if scheme == "differential" else 1
    if weight_bits is None:
        return WeightCoding(scheme, None, None, None, 1, p, 0 if p == 2 else 1)
    # differential: n − 1 magnitude bits per side; offset: n-bit offset binary; unipolar: n-bit unsigned
    code = int(weight_bits) - 1 if scheme == "differential" else int(weight_bits)
    b = int(bits_per_cell) if bits_per_cell is not None else code
    k = math.ceil(code / b)
    # offset: a reference at the code of zero (+ one at g_min when sliced); unipolar: one at g_min
    n_ref = 0 if p == 2 else (1 if k == 1 or scheme == "unipolar" else 2)
    return WeightCoding(scheme, int(weight_bits), b, code, k, p, n_ref)


@dataclass
class CrossbarSpec:
    """Everything needed to build the physical arrays of one layer: array, wires, read pulse, mapping.

    ``scheme``, ``weight_bits`` and ``bits_per_cell`` choose the weight mapping (module docstring).
    """

    # Schema of every field (YAML ``crossbar.<name>``, or ``mapping.<name>`` where ``section="mapping"``):
    # description, unit, bounds (ge/gt/le/lt), choices, nullable.
    rows: int = field(default=128, metadata=dict(description="rows (inputs) per physical array", ge=1, le=65536))
    cols: int = field(default=128, metadata=dict(description="columns per physical array", ge=2, le=65536))
    r_wire_row: float = field(default=0.0, metadata=dict(description="row wire resistance per cell", unit="Ω", ge=0))
    r_wire_col: float = field(default=0.0, metadata=dict(description="column wire resistance per cell", unit="Ω", ge=0))
    r_source: float = field(default=0.0, metadata=dict(description="driver output resistance", unit="Ω", ge=0))
    r_sense: float = field(default=0.0, metadata=dict(description="sense (input) resistance of the column amplifier", unit="Ω", ge=0))
    r_access: float = field(default=0.0, metadata=dict(description="1T1R access transistor on-resistance", unit="Ω", ge=0))
    solver: str = field(default="ideal", metadata=dict(
        description="ideal: Ohm + Kirchhoff, no wires; exact: nodal solve with wire resistances", choices=("ideal", "exact")))
    v_read: float | None = field(default=None, metadata=dict(
        description="read voltage (null: the device's)", unit="V", gt=0, nullable=True))
    t_read_s: float | None = field(default=None, metadata=dict(
        description="read pulse width (null: the device's)", unit="s", gt=0, nullable=True))
    scheme: str = field(default="differential", metadata=dict(
        description="differential: G+ − G− column pairs; offset: one column per output + reference column; "
        "unipolar: one cell per non-negative weight + a g_min reference",
        choices=SCHEMES, section="mapping"))
    weight_bits: int | None = field(default=None, metadata=dict(
        description="quantise weights to signed integers of this width (null: continuous)", ge=2, le=16, nullable=True,
        section="mapping"))
    bits_per_cell: int | None = field(default=None, metadata=dict(
        description="bit slicing: bits stored per cell (null: one cell per weight)", ge=1, le=8, nullable=True,
        section="mapping"))
    # on-chip learning with solver "exact": how the solve follows writes (circuits.crossbar docstring)
    plastic_solve: str = field(default="exact", metadata=dict(
        description="solver exact, after writes: exact (re-solve every changed tile) or bounded (refresh a tile when its "
        "accumulated conductance change could move its column currents by more than plastic_tol)",
        choices=("exact", "bounded")))
    plastic_tol: float = field(default=1e-3, metadata=dict(
        description="plastic_solve bounded: relative column-current error bound", gt=0, lt=1))
    # read energy with wire resistance (solver "exact"): the quadratic form t·v Y vᵀ (circuits.crossbar docstring)
    read_energy: str = field(default="exact", metadata=dict(
        description="solver exact: read energy t·vYvᵀ exact (one rows×rows product per read) or bounded "
        "(diagonal + low-rank split of Y, certified relative error ≤ read_energy_tol on every read)",
        choices=READ_ENERGIES))
    read_energy_tol: float = field(default=1e-3, metadata=dict(
        description="read_energy bounded: certified relative error bound of the read energy", gt=0, lt=1))

    def __post_init__(self):
        check_read_energy(self.read_energy, self.read_energy_tol)
        if self.cols < 2:
            raise ValueError(f"crossbar.cols: got {self.cols!r}; the {self.scheme} mapping needs ≥ 2 columns")
        c = self.coding
        need = c.cols_per_output + c.n_ref
        if need > self.cols:
            raise ValueError(
                f"crossbar.cols: got {self.cols!r}; the {self.scheme} mapping with weight_bits={self.weight_bits}, "
                f"bits_per_cell={self.bits_per_cell} needs {c.cols_per_output} columns per output"
                + (f" + {c.n_ref} reference = {need}" if c.n_ref else "")
            )

    @property
    def coding(self) -> WeightCoding:
        return weight_coding(self.scheme, self.weight_bits, self.bits_per_cell)
