"""Circuits: arrays, the crossbar solve, converters, mapping and the energy ledger (DESIGN §5)."""

from .converters import ADC, DAC, quantize_uniform
from .crossbar import SOLVERS, Crossbar
from .energy import EnergyLedger
from .mapping import CrossbarSpec, MappedMatrix
from .solver import solve_crossbar, transfer_matrix

__all__ = [
    "ADC",
    "DAC",
    "SOLVERS",
    "Crossbar",
    "CrossbarSpec",
    "EnergyLedger",
    "MappedMatrix",
    "quantize_uniform",
    "solve_crossbar",
    "transfer_matrix",
]

try:  # the netlist writer arrives with the exact-solver work
    from .netlist import crossbar_netlist  # noqa: F401

    __all__.append("crossbar_netlist")
except ImportError:  # pragma: no cover
    pass
