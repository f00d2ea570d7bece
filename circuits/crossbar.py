"""A stack of physical crossbar arrays of one device type (DESIGN §3, §5)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from device_models import Device, DeviceState

__all__ = ["Crossbar", "SOLVERS"]

SOLVERS = ("ideal", "exact")


class Crossbar:
    """``rows × cols`` resistive arrays (optionally a stack of them) with their periphery-free read.

    Canonical topology (DESIGN §3): row ``i`` is driven by ``v[i]`` through
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
    ``stack + (batch, rows)`` (broadcastable).
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
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
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
        self.rows, self.cols = int(rows), int(cols)
        self.device = device
        self.r_wire_row, self.r_wire_col = float(r_wire_row), float(r_wire_col)
        self.r_source, self.r_sense, self.r_access = float(r_source), float(r_sense), float(r_access)
        self.solver = solver
        self.stack = tuple(stack)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.dtype = dtype
        self.state: DeviceState = device.new_state(self.stack + (self.rows, self.cols), self.generator, dtype)
        self.t_s = 0.0
        self._g: Tensor | None = None
        self._transfer: tuple[Tensor, Tensor] | None = None

    # -- state ------------------------------------------------------------------------------
    @property
    def torch_device(self) -> torch.device:
        return self.state.g.device

    @property
    def has_wire_resistance(self) -> bool:
        return any(r > 0 for r in (self.r_wire_row, self.r_wire_col, self.r_source, self.r_sense, self.r_access))

    def program(self, g_target: Tensor) -> None:
        """Write target conductances [S] (shape ``stack + (rows, cols)``) with the device's programming model."""
        expected = self.stack + (self.rows, self.cols)
        if tuple(g_target.shape) != expected:
            raise ValueError(f"g_target: got shape {tuple(g_target.shape)}; expected {expected}")
        self.state = self.device.program(self.state, g_target, self.generator)
        self.set_time(0.0, reread=True)

    def set_time(self, t_s: float, reread: bool = False) -> None:
        """Look at the array ``t_s`` seconds after programming (drift, 1/f noise).

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

    def set_state(self, state: DeviceState) -> None:
        """Replace the cell state (e.g. after learning pulses); invalidates cached solves."""
        self.state = state
        self._g = None
        self._transfer = None

    @property
    def g(self) -> Tensor:
        """Conductances [S] now in the array (after drift to ``t_s``)."""
        if self._g is None:
            self._g = self.device.read(self.state, self.t_s, self.generator)
        return self._g

    # -- solve ------------------------------------------------------------------------------
    def _use_network_solve(self) -> bool:
        return self.solver == "exact" and self.has_wire_resistance

    def transfer(self) -> tuple[Tensor, Tensor]:
        """Exact transfer matrix ``T`` (``i = v @ T``) and input admittance ``Y`` (``P = v Y vᵀ``), cached."""
        if self._transfer is None:
            from .solver import transfer_matrix

            self._transfer = transfer_matrix(
                self.g, self.r_wire_row, self.r_wire_col, self.r_source, self.r_sense, self.r_access
            )
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
                i = v @ self.transfer()[0]
        else:
            i = v @ g
        sigma = self.device.read_noise_rel()
        if sigma > 0:
            # independent per-read Gaussian noise on every cell: i_j += σ·sqrt(Σ_i v_i² g_ij²)·N(0, 1)
            std = torch.sqrt((v * v) @ (g * g))
            i = i + sigma * std * torch.randn(i.shape, generator=self.generator, device=i.device, dtype=i.dtype)
        return i

    def read_power(self, v: Tensor) -> Tensor:
        """Power [W] drawn from the row sources for each input vector (shape ``v.shape[:-1]``).

        Ideal wires: ``P = Σ_ij v_i² g_ij``. With wire resistance: ``P = v Y vᵀ`` from the exact solve
        (cells, wires, source and sense resistors together).
        """
        v = v.to(self.dtype)
        if self._use_network_solve():
            y = self.transfer()[1]
            return ((v @ y) * v).sum(-1)
        return ((v * v) * self.g.sum(-1).unsqueeze(-2)).sum(-1)

    def read_energy(self, v: Tensor, t_read_s: float | None = None) -> Tensor:
        """Energy [J] of one read pulse of width ``t_read_s`` (default: the device's) per input vector."""
        t = self.device.t_read_s if t_read_s is None else t_read_s
        return self.read_power(v) * t
