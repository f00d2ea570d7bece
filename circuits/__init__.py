"""Circuits: arrays, the crossbar solve, converters, mapping and the energy ledger (DESIGN §5)."""

from .converters import (
    ADC,
    ADC_ENERGY_MODELS,
    DAC,
    INPUT_MODES,
    neurosim_sar_energy_J,
    neurosim_sar_power_W,
    quantize_uniform,
)
from .crossbar import SOLVERS, Crossbar
from .energy import COMPONENTS, EnergyLedger
from .mapping import SCHEMES, CrossbarSpec, MappedMatrix, WeightCoding, weight_coding
from .solver import solve_crossbar, transfer_matrix

__all__ = [
    "ADC",
    "ADC_ENERGY_MODELS",
    "COMPONENTS",
    "DAC",
    "INPUT_MODES",
    "SCHEMES",
    "SOLVERS",
    "Crossbar",
    "CrossbarSpec",
    "EnergyLedger",
    "MappedMatrix",
    "WeightCoding",
    "neurosim_sar_energy_J",
    "neurosim_sar_power_W",
    "quantize_uniform",
    "weight_coding",
    "solve_crossbar",
    "transfer_matrix",
]

try:  # the netlist writer arrives with the exact-solver work
    from .netlist import crossbar_netlist  # noqa: F401

    __all__.append("crossbar_netlist")
except ImportError:  # pragma: no cover
    pass
