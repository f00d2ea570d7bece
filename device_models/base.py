"""The device interface shared by every cell model (docs/devices.md).

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
* ``pulse(state, n_pulses, generator, mask=None) -> (state, energy_J)``: open-loop
  update for on-chip learning (signed pulse counts; positive potentiates); cells outside
  ``mask`` (a boolean tensor broadcastable to the array) receive no pulse.
* ``switch(state, current_A, t_pulse_s, generator, mask=None) -> (state, energy_J)``: one
  stochastic write pulse per cell for binary devices (``binary`` True; MTJ).
* ``pulse_step(state, direction)``: the mean conductance change of one pulse at each cell's
  present conductance (nominal parameters), used to turn weight changes into pulse counts.

Capabilities: ``binary`` (two states; :meth:`Device.switch`), ``pulsed`` (:meth:`Device.pulse`
implemented), ``continuous_writes`` (fractional pulse counts are exact writes: the ideal device).

Cell age
--------
``DeviceState.t_prog_s`` is the time of the last write of the whole array; after partial writes
``DeviceState.t_write_s`` holds each cell's own last-write time [s]. :meth:`Device.age` gives the
time since each cell's last write (a float while all cells share one write time, else a tensor),
so cells written at different times drift from their own time. The circuits layer stamps the
times (it owns the chip clock).
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
``generator.device``: the same seed gives bit-identical arrays. A :class:`GeneratorStack`
of ``R`` generators stands for ``R`` independent chips stacked on the leading dimension:
:func:`randn`/:func:`rand` take row ``r`` of every draw from generator ``r``, so a stacked
array is bit-identical to ``R`` arrays built one by one with those generators.
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
    "GeneratorStack",
    "new_generator",
    "work_dtype",
    "state_work_dtype",
    "apply_mask",
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


def new_generator(device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh generator seeded from OS entropy (never a fixed seed: two calls give different streams)."""
    g = torch.Generator(device=device)
    g.seed()
    return g


class GeneratorStack:
    """``R`` independent generators acting as one, for ``R`` chips stacked on the leading dimension.

    :func:`randn` and :func:`rand` draw row ``r`` of a ``[R, ...]`` draw from ``generators[r]``
    (shape ``[...]``), so every replica sees exactly the stream a single chip built with that
    generator would see. ``device`` is the generators' (common) device.
    """

    def __init__(self, generators):
        self.generators = list(generators)
        if not self.generators:
            raise ValueError("generator: an empty list of generators; give one per replica")
        devs = {torch.device(g.device) for g in self.generators}
        if len(devs) != 1:
            raise ValueError(f"generator: all replica generators must be on one device; got {sorted(map(str, devs))}")
        self.device = devs.pop()

    def __len__(self) -> int:
        return len(self.generators)

    def __getitem__(self, r: int) -> torch.Generator:
        return self.generators[r]

    def __iter__(self):
        return iter(self.generators)

    def _draw(self, fn, shape, dtype):
        shape = tuple(shape)
        if not shape or shape[0] != len(self.generators):
            raise ValueError(f"generator: a stack of {len(self.generators)} generators draws shapes [{len(self.generators)}, ...]; got {shape}")
        return torch.stack([fn(shape[1:], generator=g, device=self.device, dtype=dtype) for g in self.generators])


def randn(shape, generator, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal draws of ``shape`` on ``generator.device`` (the only way models draw Gaussians).

    ``generator`` is a ``torch.Generator`` or a :class:`GeneratorStack` (one per leading index).
    """
    if isinstance(generator, GeneratorStack):
        return generator._draw(torch.randn, shape, dtype)
    return torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=dtype)


def rand(shape, generator, dtype: torch.dtype = torch.float32) -> Tensor:
    """Uniform [0, 1) draws of ``shape`` on ``generator.device`` (``GeneratorStack`` as :func:`randn`)."""
    if isinstance(generator, GeneratorStack):
        return generator._draw(torch.rand, shape, dtype)
    return torch.rand(tuple(shape), generator=generator, device=generator.device, dtype=dtype)


def work_dtype(device: torch.device) -> torch.dtype:
    """float64 for probabilities and uniform draws compared with them (float32 uniforms have a
    2^-24 floor, too coarse for read-disturb rates ~1e-13), except where the backend lacks it (MPS)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def state_work_dtype(g: Tensor) -> torch.dtype:
    """Arithmetic precision of conductance updates: the state's own (at least float32).

    The update formulas are written in cancellation-free form (``expm1``, ``G∞ − G`` products), so
    float32 states lose nothing material and float64 states stay exact to round-off.
    """
    return torch.promote_types(g.dtype, torch.float32)


def apply_mask(n: Tensor, mask: Tensor | None) -> Tensor:
    """Pulse counts ``n`` with the cells outside ``mask`` (boolean, broadcastable) set to 0."""
    if mask is None:
        return n
    mask = torch.as_tensor(mask, device=n.device)
    if mask.dtype != torch.bool:
        raise ValueError(f"mask: got dtype {mask.dtype}; expected a boolean tensor (True = write this cell)")
    return torch.where(mask, n, torch.zeros((), dtype=n.dtype, device=n.device))


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
        Time stamp of the last programming of the whole array [s] (the drift clock's origin).
    t_write_s:
        Per-cell time of the last write [s] after partial writes (pulses, masked programs), or
        ``None`` while every cell was last written at ``t_prog_s``.
    """

    g: Tensor
    d2d: dict = field(default_factory=dict)
    t_prog_s: float = 0.0
    t_write_s: Tensor | None = None

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
    #: two-state cell written by stochastic :meth:`switch` pulses (MTJ)
    binary: ClassVar[bool] = False
    #: :meth:`pulse` is implemented (open-loop learning updates)
    pulsed: ClassVar[bool] = False

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

    def pulse(self, state: DeviceState, n_pulses: Tensor, generator: torch.Generator, mask: Tensor | None = None):
        """Signed pulse counts per cell (``> 0`` potentiate); returns ``(state, energy_J)``."""
        raise NotImplementedError(f"{type(self).__name__} does not support pulsed (learning) updates")

    def switch(self, state: DeviceState, current_A, t_pulse_s, generator: torch.Generator, mask: Tensor | None = None):
        """One stochastic write pulse per cell (binary devices); returns ``(state, energy_J)``."""
        raise NotImplementedError(f"{type(self).__name__} is not a binary device: switch() needs binary = True (an MTJ)")

    def pulse_step(self, state: DeviceState, direction: int) -> Tensor:
        """Mean conductance change [S] (magnitude) of one pulse in ``direction`` (+1 potentiate, −1 depress)
        at each cell's present conductance, with nominal parameters (no noise, no window clip)."""
        raise NotImplementedError(f"{type(self).__name__} does not support pulsed (learning) updates")

    @property
    def continuous_writes(self) -> bool:
        """``True`` when fractional pulse counts are exact continuous writes (no levels, no noise)."""
        return False

    def age(self, state: DeviceState, t: float):
        """Time [s] since each cell's last write at chip time ``t``: a float while every cell shares
        ``t_prog_s``, else a tensor (``max(t − t_write, 0)``, dtype float64)."""
        if state.t_write_s is None:
            return max(float(t) - state.t_prog_s, 0.0) if state.t_prog_s else float(t)
        return (float(t) - state.t_write_s.to(torch.float64)).clamp(min=0.0)

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
