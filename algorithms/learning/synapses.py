"""Plastic synapse arrays for on-line learning: a plain-torch reference and a crossbar of devices.

Both hold the input weights of ``R`` independent networks in the **crossbar layout** ``[R, in, out]``
(inputs on rows, neurons on columns) and share one interface, used by the rules
(:mod:`algorithms.learning.rules`) and the networks:

* ``read(spikes, ledger)`` — ``[R, M, in]`` input spikes (``M`` time steps or samples, each a read) →
  ``[R, M, out]`` summed weights of the spiking rows, times the per-neuron input ``gain`` when the
  normalisation is digital;
* ``add(dw)`` — accumulate a weight change (weight units); ``flush(ledger)`` writes what was accumulated
  (software: add and clip to ``[w_min, w_max]``; device: pulses through ``MappedMatrix.update``);
* ``switch(p, ledger)`` — signed switching probabilities of binary cells (``MappedMatrix.switch``), applied at once;
* ``normalise(total, mode, ledger)`` — column sums to ``total``: ``"reprogram"`` rewrites the weights
  (``w ← w·total/Σ_i w_ij``; write energy charged on a device), ``"gain"`` leaves them and sets a digital
  per-neuron input gain ``total/Σ_i w_ij`` (no writes);
* ``weights()`` — the weights held now (``[R, in, out]``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["Synapses", "TorchSynapses", "CrossbarSynapses", "NORMALISATIONS"]

NORMALISATIONS = ("reprogram", "gain", "none")


class Synapses:
    """Common part: pending weight changes, normalisation gain, shape bookkeeping."""

    def __init__(self, replicas: int, n_pre: int, n_post: int, w_min: float, w_max: float,
                 device=None, dtype: torch.dtype = torch.float32):
        for name, val in (("replicas", replicas), ("n_pre", n_pre), ("n_post", n_post)):
            if int(val) != val or val < 1:
                raise ValueError(f"{name}: got {val!r}; must be an integer ≥ 1")
        if not (math.isfinite(w_min) and math.isfinite(w_max) and w_max > w_min):
            raise ValueError(f"w_max: got {w_max!r} (w_min {w_min!r}); must be finite and > w_min")
        self.replicas, self.n_pre, self.n_post = int(replicas), int(n_pre), int(n_post)
        self.w_min, self.w_max = float(w_min), float(w_max)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.pending: Tensor | None = None
        self.gain: Tensor | None = None  # [R, 1, out] digital input gain (normalisation "gain")
        self.writes = 0  # flushes that wrote something

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.replicas, self.n_pre, self.n_post)

    def new_delta(self) -> Tensor:
        return torch.zeros(self.shape, device=self.device, dtype=self.dtype)

    def add(self, dw: Tensor) -> None:
        if self.pending is None:
            self.pending = dw.clone() if dw.shape == self.shape else dw.expand(self.shape).clone()
        else:
            self.pending.add_(dw)

    def flush(self, ledger=None) -> None:
        if self.pending is not None:
            dw, self.pending = self.pending, None
            self._apply(dw, ledger)
            self.writes += 1

    def discard(self) -> None:
        self.pending = None

    def column_sums(self) -> Tensor:
        return self.weights().sum(1, keepdim=True)  # [R, 1, out]

    def normalise(self, total: float, mode: str = "reprogram", ledger=None) -> None:
        if mode not in NORMALISATIONS:
            raise ValueError(f"normalisation: got {mode!r}; allowed: {', '.join(NORMALISATIONS)}")
        if mode == "none":
            return
        sums = self.column_sums()
        scale = torch.where(sums > 0, total / sums.clamp(min=1e-30), torch.ones_like(sums))
        if mode == "gain":
            self.gain = scale
        else:
            self._rescale(scale, ledger)

    # -- backend ---------------------------------------------------------------------------------
    def weights(self) -> Tensor:
        raise NotImplementedError

    def read(self, spikes: Tensor, ledger=None) -> Tensor:
        raise NotImplementedError

    def _apply(self, dw: Tensor, ledger) -> None:
        raise NotImplementedError

    def _rescale(self, scale: Tensor, ledger) -> None:
        raise NotImplementedError

    def switch(self, p: Tensor, ledger=None) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no binary switching")


class TorchSynapses(Synapses):
    """Weights in a tensor (the software reference): writes add and clip, reads are matmuls, no energy."""

    def __init__(self, w: Tensor, w_min: float = 0.0, w_max: float = 1.0):
        if w.dim() != 3:
            raise ValueError(f"w: got shape {tuple(w.shape)}; expected [R, in, out]")
        super().__init__(w.shape[0], w.shape[1], w.shape[2], w_min, w_max, w.device, w.dtype)
        self.w = w.clone().clamp_(self.w_min, self.w_max)

    def weights(self) -> Tensor:
        return self.w

    def read(self, spikes: Tensor, ledger=None) -> Tensor:
        y = torch.bmm(spikes.to(self.dtype), self.w)
        return y * self.gain if self.gain is not None else y

    def _apply(self, dw: Tensor, ledger) -> None:
        self.w.add_(dw).clamp_(self.w_min, self.w_max)

    def _rescale(self, scale: Tensor, ledger) -> None:
        self.w.mul_(scale).clamp_(self.w_min, self.w_max)


class CrossbarSynapses(Synapses):
    """Weights on a plastic ``unipolar`` :class:`circuits.MappedMatrix` (``replicas=R``, ``[R, out, in]``).

    * reads: the spike rows are read pulses; the column currents go through the matrix's readout
      (ADC or lossless), ``MappedMatrix.matmul``. When the read is exactly linear and noiseless (ideal
      wires or ``solver: ideal``, lossless ADC, no read noise) the result equals ``spikes @ weights()``
      and that product is used (``fast_read``); the read energy is still charged from the array.
    * writes: ``MappedMatrix.update(dw, rounding)`` — the device's nominal step turns Δw into pulse
      counts (stochastic rounding by default), so nonlinearity, c2c noise, levels and saturation act as
      in the device; write energy to ``ledger`` component ``write``.
    * normalisation ``reprogram``: the rescaled weights are written as pulses (``update(w' − w)``).
    """

    def __init__(self, mm, rounding: str = "stochastic", fast_read: bool | None = None):
        w = mm.weights()
        if w.dim() == 2:
            w = w.unsqueeze(0)
        super().__init__(w.shape[0], w.shape[2], w.shape[1], 0.0, float(mm.w_max), w.device, w.dtype)
        self.mm = mm
        self.rounding = rounding
        self._squeeze = mm.weights().dim() == 2
        self.fast_read = self._linear_read() if fast_read is None else bool(fast_read)
        self._w: Tensor | None = None

    def _linear_read(self) -> bool:
        mm = self.mm
        spec = mm.spec
        wires = any(getattr(spec, k, 0.0) > 0 for k in ("r_wire_row", "r_wire_col", "r_source", "r_sense", "r_access"))
        if spec.solver == "exact" and wires:
            return False
        if mm.adc.bits is not None or mm.device.read_noise_rel() > 0 or mm.device.nonlinear_iv:
            return False
        return True

    def _to_mm(self, t: Tensor) -> Tensor:
        t = t.transpose(1, 2)
        return t[0] if self._squeeze else t

    def weights(self) -> Tensor:
        if self._w is None:
            w = self.mm.weights()
            w = w.unsqueeze(0) if w.dim() == 2 else w
            self._w = w.transpose(1, 2).contiguous()
        return self._w

    def read(self, spikes: Tensor, ledger=None) -> Tensor:
        x = spikes.to(self.dtype)
        if self.fast_read:
            y = torch.bmm(x, self.weights())
            if ledger is not None:
                self.mm.account_read(x[0] if self._squeeze else x, ledger)
        else:
            y = self.mm.matmul(x[0] if self._squeeze else x, ledger)
            y = y.unsqueeze(0) if self._squeeze else y
        return y * self.gain if self.gain is not None else y

    def _apply(self, dw: Tensor, ledger) -> None:
        self.mm.update(self._to_mm(dw), ledger=ledger, rounding=self.rounding)
        self._w = None

    def _rescale(self, scale: Tensor, ledger) -> None:
        w = self.weights()
        target = (w * scale).clamp(self.w_min, self.w_max)
        self._apply(target - w, ledger)

    def switch(self, p: Tensor, ledger=None) -> None:
        self.mm.switch(p=self._to_mm(p), ledger=ledger)
        self._w = None
