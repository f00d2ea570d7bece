"""The ``ann`` algorithm: a trained ANN evaluated with every weight matrix on crossbars.

``fit`` builds a :class:`algorithms.ann.CrossbarNetwork` from the software model and the
:class:`algorithms.base.Hardware` (per-layer overrides included), programs every array, and
calibrates the DAC/ADC ranges layer by layer on the hardware activations of the first
``hardware.n_calibration`` training samples. ``predict`` is the hardware forward pass;
``evaluate`` reports ``accuracy_hw``, the software model's ``accuracy_sw`` on the same samples,
``accuracy_drop = accuracy_sw − accuracy_hw``, the inference ledger's energy/latency/op columns
and ``n_arrays``. Drift compensation (global, Le Gallo et al., IEEE TED 65(10), 2018: outputs
rescaled by the all-ones read at programming over that at ``t``) is switched per evaluation with
:meth:`AnnAlgorithm.set_drift_compensation`. No cell is written after programming, so there is
no training ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from circuits import EnergyLedger

from .ann import CrossbarNetwork
from .base import Algorithm, DataSplit, Hardware, accuracy, ledger_columns, param
from .layers import DEFAULT_CHUNK_ELEMENTS

__all__ = ["AnnAlgorithm", "check_calibration_data"]


def check_calibration_data(x: Tensor, what: str = "calibration data") -> None:
    """Refuse calibration inputs that would give meaningless converter ranges (``ValueError``).

    Empty, non-finite (NaN/inf) or all-zero data would set every ADC/DAC range to a placeholder
    and make every input produce the same output.
    """
    if x.numel() == 0 or x.shape[0] == 0:
        raise ValueError(f"eval.n_calibration: the {what} is empty (shape {tuple(x.shape)}); calibration needs at least "
                         "one training sample")
    if not bool(torch.isfinite(x).all()):
        n = int((~torch.isfinite(x)).sum())
        raise ValueError(f"dataset: the {what} holds {n} non-finite values (NaN/inf); clean the data or choose other samples")
    if not bool((x != 0).any()):
        raise ValueError(f"dataset: the {what} is all zeros; the DAC/ADC ranges cannot be calibrated on it "
                         "(every input would give the same output); use informative training samples")


class AnnAlgorithm(Algorithm):
    """ANN inference on crossbars (a trained network mapped onto arrays, calibrated, evaluated)."""

    name = "ann"
    #: analog weights need an analog cell; a binary (two-state) device is refused by the framework
    supports_binary_devices = False

    @dataclass
    class Params:
        chunk_elements: int = param(
            DEFAULT_CHUNK_ELEMENTS,
            description="largest intermediate tensor (elements) of one hardware call; larger batches run in chunks",
            ge=1,
        )

    def __init__(self, params, hardware: Hardware, model: torch.nn.Module | None = None):
        super().__init__(params, hardware, model)
        self.net: CrossbarNetwork | None = None
        self._t: float | None = None
        self._sw_cache: tuple | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def build(self) -> CrossbarNetwork:
        """Map the software model onto crossbars (programs every array)."""
        if self.model is None:
            raise ValueError("model: the ann algorithm needs a trained software model")
        self.net = CrossbarNetwork.from_hardware(self.model, self.hardware, chunk_elements=self.params.chunk_elements)
        self._t = None
        return self.net

    def fit(self, data: DataSplit, ledger: EnergyLedger | None = None) -> None:
        """Build the network and calibrate its converters on ``hardware.n_calibration`` training samples."""
        x = data.x_train[: self.hardware.n_calibration]
        check_calibration_data(x, f"calibration data (the first {self.hardware.n_calibration} training samples)")
        if self.net is None:
            self.build()
        self.net.calibrate(x)

    def predict(self, x: Tensor, ledger: EnergyLedger | None = None) -> Tensor:
        if self.net is None:
            raise RuntimeError("AnnAlgorithm: call fit(data) before predict")
        return self.net(x, ledger)

    def set_time(self, t_s: float) -> None:
        if self.net is not None and t_s != self._t:
            self.net.set_time(t_s)
            self._t = t_s

    def set_drift_compensation(self, enabled: bool) -> None:
        if self.net is not None:
            self.net.set_drift_compensation(bool(enabled))

    def software_accuracy(self, x: Tensor, y: Tensor, batch_size: int = 512) -> float:
        """Accuracy of the software model on ``(x, y)`` (cached for the same tensors)."""
        key = (id(x), id(y), x.shape[0], batch_size)
        if self._sw_cache is None or self._sw_cache[0] != key:
            self.model.eval()
            self._sw_cache = (key, accuracy(self.model, x, y, batch_size))
        return self._sw_cache[1]

    def evaluate(self, x: Tensor, y: Tensor, t_s: float, batch_size: int = 512) -> list[dict]:
        """One row at ``t_s``: software and hardware accuracy, their difference, the inference ledger's columns.

        The row also carries ``"_ledger"`` (the :class:`EnergyLedger`; the runner turns it into the
        energy/latency breakdown and drops it).
        """
        acc_sw = self.software_accuracy(x, y, batch_size)
        self.set_time(t_s)
        ledger = EnergyLedger()
        acc_hw = accuracy(lambda xb: self.predict(xb, ledger), x, y, batch_size)
        return [{
            "t_s": float(t_s),
            "accuracy_sw": acc_sw,
            "accuracy_hw": acc_hw,
            "accuracy_drop": acc_sw - acc_hw,
            **ledger_columns(ledger),
            "n_arrays": self.net.n_arrays,
            "_ledger": ledger,
        }]
