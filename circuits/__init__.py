"""Circuits: arrays, the crossbar solve, converters, mapping and the energy ledger (docs/circuits.md)."""

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
from .mapping import MappedMatrix
from .netlist import crossbar_netlist, nodal_solve, run_ngspice
from .solver import (
    SolverConvergenceError,
    SolverConvergenceWarning,
    solve_crossbar,
    solve_crossbar_iterative,
    transfer_matrix,
)
from .spec import SCHEMES, CrossbarSpec, WeightCoding, weight_coding

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
    "SolverConvergenceError",
    "SolverConvergenceWarning",
    "crossbar_netlist",
    "nodal_solve",
    "run_ngspice",
    "solve_crossbar",
    "solve_crossbar_iterative",
    "transfer_matrix",
]
