"""The device interface shared by every cell model (DESIGN §4).

A device model is a small dataclass of parameters (SI units, published
defaults) plus pure, vectorised functions over a :class:`DeviceState`, the
tensors of a whole array of cells. Per-cell static variation
(device-to-device spread, stuck-at masks, drift exponents) is drawn once in
:meth:`Device.new_state` and carried in ``state.d2d``; everything after that
is a function of the state, the inputs and a ``torch.Generator``.

Conventions
-----------
* Tensors live on ``generator.device``; conductances are in siemens.
* ``program(state, g_target, generator) -> state``: closed-loop write for
  inference (programming noise, level quantisation, stuck cells stay stuck).
* ``read(state, t, generator) -> G``: conductance seen ``t`` seconds after
  programming (drift, read noise).
* ``pulse(state, n_pulses, generator) -> (state, energy_J)``: open-loop update
  for on-chip learning (signed pulse counts; positive potentiates).
* ``current(g, v)``: the cell's I–V; linear (Ohm) by default;
  ``current_derivative(g, v) = ∂I/∂V`` for Newton solves.

Write energy
------------
Every ``pulse``/``switch`` returns ``energy_J``: the **total** write energy of
the call [J], summed over all cells, as a 0-d tensor (dtype of ``state.g``, on
the state's device). Cells that receive no pulse cost nothing.

Randomness
----------
Every random draw goes through the ``generator`` argument, on
``generator.device``: the same seed gives bit-identical arrays.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

__all__ = [
    "Device",
    "DeviceState",
    "DeviceParameterError",
    "check_range",
    "check_choice",
    "apply_stuck",
    "quantize_levels",
    "sample_stuck",
    "randn",
    "rand",
    "FREE",
    "STUCK_OFF",
    "STUCK_ON",
]


class DeviceParameterError(ValueError):
    """A device parameter is outside its physical range."""


def check_choice(name: str, value, allowed) -> None:
    """Raise :class:`DeviceParameterError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise DeviceParameterError(f"{name}: got {value!r}; allowed: {', '.join(map(repr, allowed))}")


def randn(shape, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal draws of ``shape`` on ``generator.device`` (the only way models draw Gaussians)."""
    return torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=dtype)


def rand(shape, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
    """Uniform [0, 1) draws of ``shape`` on ``generator.device``."""
    return torch.rand(tuple(shape), generator=generator, device=generator.device, dtype=dtype)


def check_range(name: str, value, lo=None, hi=None, lo_open=False, hi_open=False) -> None:
    """Raise :class:`DeviceParameterError` naming ``name`` when ``value`` is outside [lo, hi]."""
    import math

    if value is None:
        return
    if isinstance(value, (str, bytes)):
        raise DeviceParameterError(f"{name}: got {value!r}; expected a number")
    try:
        bad = math.isnan(float(value))
    except (TypeError, ValueError):
        raise DeviceParameterError(f"{name}: got {value!r}; expected a number") from None
    if bad:
        raise DeviceParameterError(f"{name}: got NaN; expected a finite number")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        rel = ">" if lo_open else "≥"
        raise DeviceParameterError(f"{name}: got {value!r}; must be {rel} {lo!r}")
    if hi is not None and (value > hi or (hi_open and value == hi)):
        rel = "<" if hi_open else "≤"
        raise DeviceParameterError(f"{name}: got {value!r}; must be {rel} {hi!r}")


@dataclass(frozen=True)
class DeviceState:
    """Tensors describing an array of cells.

    Attributes
    ----------
    g:
        Programmed conductance of each cell [S], shape ``shape``.
    d2d:
        Per-cell static parameters drawn once by ``new_state`` (e.g.
        ``stuck`` codes, drift exponent ``nu``, ``g_max`` spread).
    t_prog_s:
        Time stamp of the last programming [s] (the drift clock's origin).
    """

    g: Tensor
    d2d: dict = field(default_factory=dict)
    t_prog_s: float = 0.0

    def replace(self, **changes) -> DeviceState:
        return dataclasses.replace(self, **changes)

    @property
    def shape(self) -> torch.Size:
        return self.g.shape


#: codes in ``state.d2d["stuck"]``
FREE, STUCK_OFF, STUCK_ON = 0, 1, 2


def sample_stuck(shape, generator: torch.Generator, p_stuck_off: float, p_stuck_on: float) -> Tensor:
    """Per-cell stuck-at codes (``FREE``/``STUCK_OFF``/``STUCK_ON``, uint8) from one uniform draw per cell.

    A cell is SA0 (stuck off) with probability ``p_stuck_off`` and SA1 (stuck on)
    with probability ``p_stuck_on``, independently of every other cell.
    """
    u = rand(shape, generator, torch.float64)
    off = u < p_stuck_off
    on = (u < p_stuck_off + p_stuck_on) & ~off
    return off.to(torch.uint8) * STUCK_OFF + on.to(torch.uint8) * STUCK_ON


def apply_stuck(g: Tensor, state: DeviceState, g_off: Tensor | float, g_on: Tensor | float) -> Tensor:
    """Force stuck cells to their stuck conductance (SA0 → ``g_off``, SA1 → ``g_on``)."""
    stuck = state.d2d.get("stuck")
    if stuck is None:
        return g
    g = torch.where(stuck == STUCK_OFF, torch.as_tensor(g_off, dtype=g.dtype, device=g.device), g)
    return torch.where(stuck == STUCK_ON, torch.as_tensor(g_on, dtype=g.dtype, device=g.device), g)


def quantize_levels(g: Tensor, g_min, g_max, levels: int | None) -> Tensor:
    """Round ``g`` to the nearest of ``levels`` equally spaced conductances in [g_min, g_max]."""
    if not levels:
        return g
    step = (g_max - g_min) / (levels - 1)
    return g_min + torch.round((g - g_min) / step) * step


class Device:
    """Base class of all cell models. Subclasses are dataclasses of parameters.

    Subclasses must set ``name`` and implement :meth:`program` and
    :meth:`read`; learning-capable devices also implement :meth:`pulse`.
    ``g_min``/``g_max`` [S] bound the programmable window; ``v_read`` [V] and
    ``t_read_s`` [s] set the read pulse used by the circuits layer.
    """

    name: ClassVar[str] = "device"
    #: ``True`` when :meth:`current` is not linear in ``v`` (the solver then needs Newton).
    nonlinear_iv: ClassVar[bool] = False

    g_min: float
    g_max: float
    v_read: float
    t_read_s: float

    # -- construction -------------------------------------------------------------------
    def new_state(self, shape, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> DeviceState:
        """Make a fresh array of cells at ``g_min`` with its device-to-device variation drawn."""
        g = torch.full(tuple(shape), float(self.g_min), dtype=dtype, device=generator.device)
        return DeviceState(g=g, d2d=self.sample_d2d(tuple(shape), generator, dtype))

    def sample_d2d(self, shape: tuple, generator: torch.Generator, dtype: torch.dtype) -> dict:
        """Per-cell static variation, drawn once per array. Default: none."""
        return {}

    # -- operations -----------------------------------------------------------------------
    def program(self, state: DeviceState, g_target: Tensor, generator: torch.Generator) -> DeviceState:
        raise NotImplementedError

    def read(self, state: DeviceState, t: float, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def pulse(self, state: DeviceState, n_pulses: Tensor, generator: torch.Generator):
        raise NotImplementedError(f"{type(self).__name__} does not support pulsed (learning) updates")

    def current(self, g: Tensor, v: Tensor) -> Tensor:
        """Cell current [A] for conductance ``g`` [S] at voltage ``v`` [V]: Ohm's law by default."""
        return g * v

    def current_derivative(self, g: Tensor, v: Tensor) -> Tensor:
        """Differential conductance ``∂I/∂V`` [S] of :meth:`current` (``g`` for a linear cell)."""
        return g * torch.ones_like(v)

    def read_noise_rel(self) -> float:
        """Relative σ of the white per-read conductance noise applied on every MVM (0: none)."""
        return float(getattr(self, "sigma_read", 0.0) or 0.0)

    def describe(self) -> dict:
        """Parameters as a flat dict (for results tables and ``xbarsim devices``)."""
        if dataclasses.is_dataclass(self):
            return {"model": self.name, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}
        return {"model": self.name}
